package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// chatEnv is a fresh database with a store and a ChatLog over it.
type chatEnv struct {
	pool  *pgxpool.Pool
	store *postgres.Store
	log   *postgres.ChatLog
}

func newChatEnv(t testing.TB, subscriptionBatch int) *chatEnv {
	t.Helper()
	pool := pgtest.NewPool(t, 10)
	store := postgres.NewStore(pool, postgres.StoreConfig{SubscriptionBatch: subscriptionBatch})
	t.Cleanup(func() { store.Close() })
	cl, err := postgres.NewChatLog(pool, postgres.ChatLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &chatEnv{pool: pool, store: store, log: cl}
}

// runner starts a Runner of p over the env's store until the test ends.
func (e *chatEnv) runner(t *testing.T, p projections.Projection) (*projections.Runner, func() error) {
	t.Helper()
	r := &projections.Runner{Store: e.store, Projection: p, MinBackoff: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return r, stop
}

// catchUp waits until r has applied the whole log as it is now.
func (e *chatEnv) catchUp(t *testing.T, r *projections.Runner) {
	t.Helper()
	settle(t, e)
	head, err := e.store.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, head); err != nil {
		t.Fatalf("wait for the projection to reach %s: %v", head, err)
	}
}

// appendRoom appends payloads to room id's stream, one append each.
func appendRoom(t testing.TB, s domain.Appender, id int64, evs ...room.Event) {
	t.Helper()
	for _, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		appendRaw(t, s, room.Stream(id), e.EventType(), string(b))
	}
}

func appendRaw(t testing.TB, s domain.Appender, stream, typ, data string) domain.AppendResult {
	t.Helper()
	id, err := domain.NewUUID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Append(context.Background(), stream, domain.Any(), domain.EventData{ID: id, Type: typ, Data: json.RawMessage(data)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func uuid(n int) domain.UUID { return domain.NameUUID(domain.UUID{}, strconv.Itoa(n)) }

// scriptGen is a hand-written generator driven by the question:
// "<mode> <n>" emits n deltas, then completes (mode "ok"), fails ("fail")
// or waits to be cancelled ("block").
type scriptGen struct{}

func (scriptGen) Name() string { return "test/script" }

func (scriptGen) Generate(ctx context.Context, p chat.Prompt, emit func(string) error) error {
	mode, count, _ := strings.Cut(p.Question, " ")
	n, _ := strconv.Atoi(count)
	for i := range n {
		if err := emit(fmt.Sprintf("w%d é😀 ", i)); err != nil {
			return err
		}
	}
	switch mode {
	case "fail":
		return errors.New("the model crashed")
	case "block":
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// readState folds room id's stream into its state.
func readState(t testing.TB, s domain.StreamReader, id int64) *room.State {
	t.Helper()
	st := room.NewState()
	evs, err := s.ReadStream(context.Background(), room.Stream(id), domain.ReadStreamOptions{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := st.Evolve(ev); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// waitRoom polls room id's state until ok holds.
func waitRoom(t testing.TB, s domain.StreamReader, id int64, what string, ok func(*room.State) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok(readState(t, s, id)) {
		if time.Now().After(deadline) {
			t.Fatalf("room %d: %s never happened", id, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// writeConversations writes rooms through the chat service, concurrently:
// completed answers of many chunks, a failure, cancellations, a deletion
// while streaming, an empty answer and a retried client ID. It returns
// the rooms' ids.
func writeConversations(t testing.TB, store *postgres.Store) []int64 {
	t.Helper()
	// One delta to a chunk: a log with as many chunks as an answer has
	// deltas (writeOddities adds chunks of several).
	svc := chat.NewService(chat.Config{Instance: "test", MaxChunkBatch: 1}, chat.Deps{Store: store, Generator: scriptGen{}, Now: time.Now, Random: rand.Reader})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { stop(); <-done }()

	const user = "alice"
	scripts := [][]string{
		{"ok 3", "ok 150", "ok 1"},
		{"fail 20", "ok 5"},
		{"block 12", "cancel", "ok 2"},
		{"ok 40", "block 7", "delete"},
		{"ok 0", "ok 64"},
		{"ok 2 client:c1", "ok 2 client:c1", "ok 9 client:c2"},
	}
	ids := make([]int64, len(scripts))
	var wg sync.WaitGroup
	for i, script := range scripts {
		wg.Go(func() {
			info, err := svc.CreateRoom(ctx, user, fmt.Sprintf("Room %d", i))
			if err != nil {
				t.Error(err)
				return
			}
			id := info.ID
			ids[i] = id
			for _, step := range script {
				switch step {
				case "cancel":
					if err := svc.Cancel(ctx, id, user); err != nil {
						t.Error(err)
					}
				case "delete":
					if err := svc.Delete(ctx, id, user); err != nil {
						t.Error(err)
					}
				default:
					question, clientID, _ := strings.Cut(step, " client:")
					res, err := svc.Post(ctx, id, user, question, clientID)
					if err != nil {
						t.Error(err)
						return
					}
					if res.Duplicate {
						continue
					}
					if strings.HasPrefix(question, "block ") {
						n, _ := strconv.Atoi(strings.TrimPrefix(question, "block "))
						waitRoom(t, store, id, "all chunks streamed", func(st *room.State) bool { return st.Open != nil && st.Open.NextSeq == n })
					} else {
						waitRoom(t, store, id, "the answer's end", func(st *room.State) bool { return st.Open == nil })
					}
				}
			}
		})
	}
	wg.Wait()
	return ids
}

// writeOddities appends by hand what the service never writes but the
// fold handles: unknown event types, chunks after an answer's end or for
// no answer, sources null, empty and with awkward scores, a stream without
// RoomCreated, and streams the ChatLog skips. It returns the room ids.
func writeOddities(t testing.TB, store *postgres.Store) []int64 {
	t.Helper()
	const id, headless = 9001, 9002
	a1, a2, a3, a4 := uuid(1), uuid(2), uuid(3), uuid(4)
	appendRoom(t, store, id,
		room.RoomCreated{RoomID: id, OwnerID: "bob", Title: "Odd"},
		room.MessagePosted{MessageID: uuid(10), ClientID: "x", UserID: "bob", Text: "héllo \"quoted\" \\ back"},
		room.AnswerStarted{AnswerID: a1, QuestionID: uuid(10)},
		room.AnswerChunk{AnswerID: a1, Seq: 0, Delta: "Hel"},
		room.SummaryUpdated{Summary: "greetings", CoversThroughVersion: 1}, // mid-answer: the ChatLog must still hold the chunks' place
	)
	appendRaw(t, store, room.Stream(id), "AnswerRated", `{"answer_id":"`+a1.String()+`","stars":5}`)
	appendRoom(t, store, id,
		room.AnswerChunk{AnswerID: a1, Seq: 1, Delta: "lo"},
		room.NewAnswerChunk(a1, 2, []string{" there", "!"}, []time.Time{time.Unix(0, 0), time.Unix(0, 3e6)}),
		room.AnswerCompleted{AnswerID: a1, Text: "Hello there!", Chunks: 4, Sources: []room.Source{
			{Document: "policy.pdf", ChunkID: "c-1", Score: 0.12345678901234567, Snippet: "ünïcode"},
			{Document: "faq.md", ChunkID: "c-2", Score: 1e-7},
			{Document: "big.md", ChunkID: "c-3", Score: 1e300},
		}},
		room.AnswerChunk{AnswerID: a1, Seq: 2, Delta: " (late)"},
		room.AnswerChunk{AnswerID: uuid(99), Seq: 0, Delta: "nobody's"},
		room.MessagePosted{MessageID: uuid(11), UserID: "bob", Text: "again"},
		room.AnswerStarted{AnswerID: a2, QuestionID: uuid(11)},
		room.AnswerCompleted{AnswerID: a2, Text: "no sources"},
		room.MessagePosted{MessageID: uuid(12), UserID: "bob", Text: "and again"},
		room.AnswerStarted{AnswerID: a3, QuestionID: uuid(12)},
		room.AnswerChunk{AnswerID: a3, Seq: 0, Delta: "part"},
		room.AnswerFailed{AnswerID: a3, Reason: room.ReasonTimeout, Text: "partial"},
		room.AnswerStarted{AnswerID: a4, QuestionID: uuid(12)},
		room.AnswerCompleted{AnswerID: a4, Text: "", Sources: []room.Source{}},
	)
	appendRoom(t, store, headless, room.MessagePosted{MessageID: uuid(20), UserID: "carol", Text: "no RoomCreated before me"})
	// Not room streams: skipped, though the first would not decode.
	appendRaw(t, store, "room-abc", room.TypeMessagePosted, `{"message_id": 5}`)
	appendRaw(t, store, "user-1", "UserSeen", `{}`)
	return []int64{id, headless}
}

// fold is the reference: room.History folded from the room's stream.
func fold(t testing.TB, s domain.StreamReader, id int64) *room.History {
	t.Helper()
	h := room.NewHistory()
	evs, err := s.ReadStream(context.Background(), room.Stream(id), domain.ReadStreamOptions{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := h.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// checkMatchesFold compares the ChatLog's view of each room with the fold
// of its stream: its History rows, continued with the stream after the
// version they reflect (as connect-time history reads them), must be the
// fold; and Messages, paged back to the start, must be those rows.
func checkMatchesFold(t *testing.T, e *chatEnv, ids []int64) {
	t.Helper()
	for _, id := range ids {
		want := fold(t, e.store, id)
		msgs, version, err := e.log.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		got := room.NewHistory()
		got.Load(slices.Clone(msgs), version)
		evs, err := e.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{From: version + 1, Limit: 100000})
		if err != nil && !errors.Is(err, domain.ErrStreamNotFound) {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if err := got.Apply(ev); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(got.Messages, want.Messages); diff != "" {
			t.Errorf("room %d: History messages and the stream after version %d (-got +want):\n%s", id, version, diff)
		}
		if got.Version != want.Version {
			t.Errorf("room %d: History and the stream after it reach version %d, want %d", id, got.Version, want.Version)
		}

		var paged []room.Message
		before := int64(0)
		for range 1000 {
			page, err := e.log.Messages(t.Context(), id, before, 3)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 3 {
				t.Fatalf("room %d: a page of limit 3 has %d messages", id, len(page))
			}
			if len(page) == 0 {
				break
			}
			paged = append(paged, page...)
			before = page[len(page)-1].Version
			if before <= 0 {
				break // nothing comes before version 0 (and 0 means the newest)
			}
		}
		slices.Reverse(paged)
		if diff := cmp.Diff(paged, msgs); diff != "" {
			t.Errorf("room %d: Messages paged from the newest, reversed (-got +History's rows):\n%s", id, diff)
		}
	}
}

func TestChatLogMatchesTheFold(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{1, 7, 1000} {
		t.Run(fmt.Sprintf("subscription batches of %d", batch), func(t *testing.T) {
			t.Parallel()
			e := newChatEnv(t, batch)
			// Events before the runner starts are caught up on, the rest
			// arrive live.
			ids := writeOddities(t, e.store)
			r, _ := e.runner(t, e.log)
			ids = append(ids, writeConversations(t, e.store)...)
			e.catchUp(t, r)
			checkMatchesFold(t, e, ids)

			st, err := r.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !st.CaughtUp || st.State != projections.StateRunning || st.LastError != "" || st.Checkpoint.IsZero() {
				t.Errorf("status = %+v, want running, caught up, no error", st)
			}
			cps, err := postgres.ListCheckpoints(t.Context(), e.pool)
			if err != nil {
				t.Fatal(err)
			}
			if len(cps) != 1 || cps[0].Name != "chatlog" || cps[0].Position != st.Checkpoint || cps[0].LastError != "" {
				t.Errorf("checkpoints = %+v, want chatlog at %s", cps, st.Checkpoint)
			}
		})
	}
}

// dump returns the ChatLog's tables and checkpoint as text, in order.
func dump(t testing.TB, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'rooms ' || to_jsonb(r)::text FROM (SELECT * FROM rooms ORDER BY id) r
		UNION ALL
		SELECT 'chat_logs ' || to_jsonb(c)::text FROM (SELECT * FROM chat_logs ORDER BY room_id, seq) c
		UNION ALL
		SELECT 'checkpoint ' || to_jsonb(p)::text FROM (SELECT name, commit_pos, prepare_pos, last_error FROM projection_checkpoints ORDER BY name) p`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// settle waits until every event committed so far is readable from the
// global log: readers stop below the oldest transaction running in the
// whole cluster, which other tests may hold for a moment.
func settle(t testing.TB, e *chatEnv) {
	t.Helper()
	var txid, seq int64
	err := e.pool.QueryRow(context.Background(), `SELECT txid, seq FROM events ORDER BY txid DESC, seq DESC LIMIT 1`).Scan(&txid, &seq)
	if err != nil {
		t.Fatal(err)
	}
	last := domain.Position{Commit: uint64(txid), Prepare: uint64(seq)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		head, err := e.store.HeadPosition(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !head.Less(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never became readable", last)
		}
		time.Sleep(time.Millisecond)
	}
}

// roomEvents returns every event of the room streams.
func roomEvents(t testing.TB, e *chatEnv) []domain.RecordedEvent {
	t.Helper()
	settle(t, e)
	s := e.store
	evs, err := s.ReadAll(context.Background(), domain.ReadAllOptions{StreamPrefix: room.StreamPrefix, Limit: 1000000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// applyInBatches applies evs to cl in batches of n.
func applyInBatches(t testing.TB, cl *postgres.ChatLog, evs []domain.RecordedEvent, n int) {
	t.Helper()
	for batch := range slices.Chunk(evs, n) {
		if err := cl.Apply(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

func resetCheckpoint(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), `UPDATE projection_checkpoints SET commit_pos = 0, prepare_pos = 0`); err != nil {
		t.Fatal(err)
	}
}

func TestChatLogApplyIsIdempotent(t *testing.T) {
	t.Parallel()
	src := newChatEnv(t, 0)
	writeOddities(t, src.store)
	writeConversations(t, src.store)
	evs := roomEvents(t, src)
	applyInBatches(t, src.log, evs, 50)
	want := dump(t, src.pool)
	if len(want) < 20 {
		t.Fatalf("the tables hold only %d rows", len(want))
	}

	for _, tc := range []struct {
		name  string
		apply func(t *testing.T, e *chatEnv)
	}{
		{"every batch twice", func(t *testing.T, e *chatEnv) {
			for batch := range slices.Chunk(evs, 50) {
				applyInBatches(t, e.log, batch, len(batch))
				applyInBatches(t, e.log, batch, len(batch))
			}
		}},
		{"the first batch again at the end", func(t *testing.T, e *chatEnv) {
			applyInBatches(t, e.log, evs, 50)
			applyInBatches(t, e.log, evs[:50], 50)
		}},
		{"everything again from a reset checkpoint, in other batches", func(t *testing.T, e *chatEnv) {
			applyInBatches(t, e.log, evs, 50)
			resetCheckpoint(t, e.pool)
			applyInBatches(t, e.log, evs, 13)
		}},
		{"overlapping halves from a reset checkpoint", func(t *testing.T, e *chatEnv) {
			applyInBatches(t, e.log, evs[:len(evs)*2/3], 37)
			resetCheckpoint(t, e.pool)
			applyInBatches(t, e.log, evs[len(evs)/3:], 1000)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newChatEnv(t, 0)
			tc.apply(t, e)
			if diff := cmp.Diff(dump(t, e.pool), want); diff != "" {
				t.Errorf("tables (-got +want):\n%s", diff)
			}
		})
	}
}

// interrupted wraps the ChatLog: on its calls-th Apply it cancels the
// runner's context before applying, while applying, or after committing
// (as a crash between the commit and the runner's bookkeeping would); and
// it can report one successful Apply as failed, as a lost commit
// acknowledgement would.
type interrupted struct {
	*postgres.ChatLog
	calls   int
	when    string // "before", "during" or "after"
	cancel  context.CancelFunc
	loseAck bool
	n       int
	wg      sync.WaitGroup
}

func (p *interrupted) Apply(ctx context.Context, batch []domain.RecordedEvent) error {
	p.n++
	switch {
	case p.n != p.calls:
	case p.when == "before":
		p.cancel()
	case p.when == "during":
		p.wg.Go(func() {
			time.Sleep(time.Duration(p.calls%3) * 200 * time.Microsecond)
			p.cancel()
		})
	}
	err := p.ChatLog.Apply(ctx, batch)
	if p.n == p.calls && p.when == "after" {
		p.cancel()
	}
	if err == nil && p.loseAck {
		p.loseAck = false
		return errors.New("connection reset after COMMIT was sent")
	}
	return err
}

func TestChatLogRunnerRestartsFromItsCheckpoint(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, 5)
	ids := append(writeOddities(t, e.store), writeConversations(t, e.store)...)

	// About 75 batches of 5: the runs below stop within them.
	for i, calls := range []int{1, 3, 4, 9, 2, 17, 5, 6, 8, 7} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		p := &interrupted{ChatLog: e.log, calls: calls, when: []string{"before", "during", "after"}[i%3], cancel: cancel, loseAck: i == 2}
		r := &projections.Runner{Store: e.store, Projection: p, MinBackoff: time.Millisecond}
		if err := r.Run(ctx); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("run %d never made Apply call %d", i, calls)
		}
		p.wg.Wait()
		cancel()
	}
	r, _ := e.runner(t, e.log)
	e.catchUp(t, r)
	checkMatchesFold(t, e, ids)
}

func TestChatLogStopsOnAnUndecodableEvent(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, 0)
	appendRoom(t, e.store, 1,
		room.RoomCreated{RoomID: 1, OwnerID: "alice", Title: "Fine"},
		room.MessagePosted{MessageID: uuid(1), UserID: "alice", Text: "hi"},
		room.AnswerStarted{AnswerID: uuid(2), QuestionID: uuid(1)})
	r, stop := e.runner(t, e.log)
	e.catchUp(t, r)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	before := dump(t, e.pool)

	// One batch: good events, the bad one, good events.
	appendRoom(t, e.store, 1, room.AnswerChunk{AnswerID: uuid(2), Delta: "lost"})
	appendRoom(t, e.store, 2, room.RoomCreated{RoomID: 2, OwnerID: "alice", Title: "Broken"})
	bad := appendRaw(t, e.store, room.Stream(2), room.TypeMessagePosted, `{"message_id": 5}`)
	appendRoom(t, e.store, 1, room.AnswerChunk{AnswerID: uuid(2), Seq: 1, Delta: "also lost"})
	settle(t, e)

	r = &projections.Runner{Store: e.store, Projection: e.log}
	err := r.Run(t.Context())
	var ee *projections.EventError
	if !errors.As(err, &ee) {
		t.Fatalf("Run = %v, want an EventError", err)
	}
	t.Logf("Run = %v", err)
	if ee.Stream != "room-2" || ee.Version != 1 || ee.Position != bad.Position {
		t.Errorf("EventError at %s@%d position %s, want room-2@1 position %s", ee.Stream, ee.Version, ee.Position, bad.Position)
	}
	for _, want := range []string{"chatlog", "room-2@1", bad.Position.String(), "MessagePosted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run's error %q does not name %q", err, want)
		}
	}
	if diff := cmp.Diff(dump(t, e.pool)[:len(before)-1], before[:len(before)-1]); diff != "" {
		t.Errorf("the failed batch changed the tables (-got +want):\n%s", diff)
	}
	st, serr := r.Status(t.Context())
	if serr != nil {
		t.Fatal(serr)
	}
	if st.State != projections.StateFailed || !strings.Contains(st.LastError, "room-2@1") || st.CaughtUp {
		t.Errorf("status = %+v, want failed on room-2@1", st)
	}
	cps, err := postgres.ListCheckpoints(t.Context(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 || !strings.Contains(cps[0].LastError, "room-2@1") {
		t.Errorf("checkpoints = %+v, want the error recorded", cps)
	}
}

// TestChatLogRecordsErrorsAndFailures checks the checkpoint row's error
// columns: a failure stops the projection at its position, a later error
// that may pass clears the stop, and neither moves the position.
func TestChatLogRecordsErrorsAndFailures(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, 0)
	at := domain.Position{Commit: 7, Prepare: 3}
	checkpoint := func() postgres.Checkpoint {
		t.Helper()
		cps, err := postgres.ListCheckpoints(t.Context(), e.pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(cps) != 1 {
			t.Fatalf("checkpoints = %+v, want one", cps)
		}
		return cps[0]
	}

	if err := e.log.RecordFailure(t.Context(), at, "cannot decode"); err != nil {
		t.Fatal(err)
	}
	cp := checkpoint()
	if !cp.Stopped || cp.StoppedAt != at || cp.LastError != "cannot decode" || cp.LastErrorAt.IsZero() || cp.Position != domain.Start {
		t.Errorf("after RecordFailure: %+v, want stopped at %s with its error, at the start", cp, at)
	}

	if err := e.log.RecordError(t.Context(), "connection lost"); err != nil {
		t.Fatal(err)
	}
	cp = checkpoint()
	if cp.Stopped || cp.LastError != "connection lost" || cp.Position != domain.Start {
		t.Errorf("after RecordError: %+v, want not stopped, with the new error, at the start", cp)
	}
}

// TestChatLogWritesAnAnswerOnce: an answer's row is written when it opens
// and once more when it ends; its chunks, however many batches bring
// them, cost no row update, and its version stays where the answer opened
// so that connect-time history reads the chunks from the stream.
func TestChatLogWritesAnAnswerOnce(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, 0)
	// Count row updates of chat_logs and rooms.
	if _, err := e.pool.Exec(t.Context(), `
		CREATE TABLE test_updates (n int NOT NULL);
		INSERT INTO test_updates VALUES (0);
		CREATE FUNCTION test_count_update() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN UPDATE test_updates SET n = n + 1; RETURN NEW; END $$;
		CREATE TRIGGER test_count_update BEFORE UPDATE ON chat_logs
			FOR EACH ROW EXECUTE FUNCTION test_count_update();
		CREATE TRIGGER test_count_room_update BEFORE UPDATE ON rooms
			FOR EACH ROW EXECUTE FUNCTION test_count_update();`); err != nil {
		t.Fatal(err)
	}
	updates := func() int {
		var n int
		if err := e.pool.QueryRow(t.Context(), `SELECT n FROM test_updates`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	next := domain.Start
	applyNew := func() {
		t.Helper()
		settle(t, e)
		evs, err := e.store.ReadAll(t.Context(), domain.ReadAllOptions{After: next, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.log.Apply(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
		next = evs[len(evs)-1].Position
	}
	chunks := func(answer domain.UUID, from, n int) ([]domain.EventData, string) {
		var (
			out  []domain.EventData
			text strings.Builder
		)
		for i := from; i < from+n; i++ {
			d := fmt.Sprintf("d%d ", i)
			text.WriteString(d)
			b, _ := json.Marshal(room.AnswerChunk{AnswerID: answer, Seq: i, Delta: d})
			out = append(out, domain.EventData{ID: domain.NameUUID(answer, strconv.Itoa(i)), Type: room.TypeAnswerChunk, Data: b})
		}
		return out, text.String()
	}
	appendAll := func(evs []domain.EventData) {
		t.Helper()
		if _, err := e.store.Append(t.Context(), room.Stream(1), domain.Any(), evs...); err != nil {
			t.Fatal(err)
		}
	}

	answer := uuid(2)
	appendRoom(t, e.store, 1,
		room.RoomCreated{RoomID: 1, OwnerID: "alice", Title: "Chunks"},
		room.MessagePosted{MessageID: uuid(1), UserID: "alice", Text: "hi"},
		room.AnswerStarted{AnswerID: answer, QuestionID: uuid(1)})
	first, firstText := chunks(answer, 0, 100)
	appendAll(first)
	// In another room, a summary lands mid-answer in the batch that opens
	// the answer: the room's version must still stay at the answer's start.
	appendRoom(t, e.store, 2,
		room.RoomCreated{RoomID: 2, OwnerID: "bob", Title: "Mid"},
		room.MessagePosted{MessageID: uuid(5), UserID: "bob", Text: "hi"},
		room.AnswerStarted{AnswerID: uuid(6), QuestionID: uuid(5)},
		room.AnswerChunk{AnswerID: uuid(6), Seq: 0, Delta: "before "},
		room.SummaryUpdated{Summary: "s", CoversThroughVersion: 1},
		room.AnswerChunk{AnswerID: uuid(6), Seq: 1, Delta: "after"})
	applyNew() // the answers open and get their first chunks in one batch
	checkMatchesFold(t, e, []int64{2})
	second, secondText := chunks(answer, 100, 100)
	appendAll(second)
	applyNew()
	appendRoom(t, e.store, 1, room.SummaryUpdated{Summary: "s", CoversThroughVersion: 1}) // mid-answer
	applyNew()
	if n := updates(); n != 0 {
		t.Errorf("opening an answer and 200 of its chunks made %d row updates, want 0", n)
	}
	msgs, version, err := e.log.History(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[1].Text != "" || msgs[1].Status != room.StatusStreaming || version != 2 {
		t.Errorf("history = %+v at version %d, want the open answer's row empty at its start, version 2", msgs, version)
	}
	checkMatchesFold(t, e, []int64{1})

	appendRoom(t, e.store, 1, room.AnswerCompleted{AnswerID: answer, Text: firstText + secondText, Chunks: 200})
	applyNew()
	if n := updates(); n != 2 {
		t.Errorf("the answer's end made %d row updates, want 2 (its row and the room's)", n)
	}
	msgs, version, err = e.log.History(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[1].Text != firstText+secondText || version != 204 {
		t.Errorf("history = %+v at version %d, want the answer's 200 chunks, version 204", msgs, version)
	}
	checkMatchesFold(t, e, []int64{1})
}

func TestChatLogQueries(t *testing.T) {
	t.Parallel()
	e := newChatEnv(t, 0)
	for id := int64(1); id <= 4; id++ {
		owner := "alice"
		if id == 3 {
			owner = "bob"
		}
		appendRoom(t, e.store, id, room.RoomCreated{RoomID: id, OwnerID: owner, Title: fmt.Sprintf("Room %d", id)})
	}
	appendRoom(t, e.store, 2, room.RoomDeleted{RoomID: 2, DeletedBy: "alice"})
	// Room 4: a question and a long answer, then another question.
	a := uuid(41)
	appendRoom(t, e.store, 4,
		room.MessagePosted{MessageID: uuid(40), UserID: "alice", Text: "q1"}, // v1
		room.AnswerStarted{AnswerID: a, QuestionID: uuid(40)},                // v2
		room.AnswerChunk{AnswerID: a, Delta: "a"},                            // v3
		room.AnswerCompleted{AnswerID: a, Text: "a1"},                        // v4
		room.MessagePosted{MessageID: uuid(42), UserID: "alice", Text: "q2"}, // v5
	)
	applyInBatches(t, e.log, roomEvents(t, e), 1000)

	r, ok, err := e.log.Room(t.Context(), 2)
	if err != nil || !ok || r.OwnerID != "alice" || r.Title != "Room 2" || r.DeletedAt.IsZero() || r.Version != 1 || r.CreatedAt.IsZero() {
		t.Errorf("Room(2) = %+v, %t, %v; want alice's deleted room at version 1", r, ok, err)
	}
	if _, ok, err := e.log.Room(t.Context(), 99); ok || err != nil {
		t.Errorf("Room(99) = %t, %v; want not found", ok, err)
	}
	ids := func(rs []postgres.RoomRow) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		owner string
		limit int
		want  []int64
	}{
		{"alice", 0, []int64{4, 1}},
		{"alice", 1, []int64{4}},
		{"bob", 10, []int64{3}},
		{"nobody", 10, nil},
	} {
		got, err := e.log.RoomsOf(t.Context(), tc.owner, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ids(got), tc.want); diff != "" {
			t.Errorf("RoomsOf(%s, %d) (-got +want):\n%s", tc.owner, tc.limit, diff)
		}
	}

	texts := func(ms []room.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Text)
		}
		return out
	}
	for _, tc := range []struct {
		before int64
		limit  int
		want   []string
	}{
		{0, 0, []string{"q2", "a1", "q1"}},
		{-1, 2, []string{"q2", "a1"}},
		{5, 10, []string{"a1", "q1"}}, // the Version of q2
		{4, 10, []string{"q1"}},       // the Version of a1
		{2, 10, []string{"q1"}},       // the seq of a1
		{1, 10, nil},
	} {
		got, err := e.log.Messages(t.Context(), 4, tc.before, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(texts(got), tc.want); diff != "" {
			t.Errorf("Messages(before %d, limit %d) (-got +want):\n%s", tc.before, tc.limit, diff)
		}
	}
	if msgs, v, err := e.log.History(t.Context(), 99); msgs != nil || v != domain.NoVersion || err != nil {
		t.Errorf("History(99) = %v, %d, %v; want nothing at version -1", msgs, v, err)
	}
	if msgs, v, err := e.log.History(t.Context(), 1); msgs != nil || v != 0 || err != nil {
		t.Errorf("History(1) = %v, %d, %v; want no messages at version 0", msgs, v, err)
	}
}

func TestNewChatLogChecksTheTableSuffix(t *testing.T) {
	for _, suffix := range []string{"_next", ""} {
		if _, err := postgres.NewChatLog(nil, postgres.ChatLogConfig{TableSuffix: suffix}); err != nil {
			t.Errorf("suffix %q: %v", suffix, err)
		}
	}
	for _, suffix := range []string{"; DROP TABLE rooms", "Next", strings.Repeat("x", 31)} {
		if _, err := postgres.NewChatLog(nil, postgres.ChatLogConfig{TableSuffix: suffix}); err == nil {
			t.Errorf("suffix %q was accepted", suffix)
		}
	}
}

// TestOpenAnswers: the rooms whose answer is streaming in the read model,
// with the checkpoint it reflects.
func TestOpenAnswers(t *testing.T) {
	e := newChatEnv(t, 0)
	started := func(id int64, n int) []room.Event {
		return []room.Event{
			room.RoomCreated{RoomID: id, OwnerID: "42", Title: "t"},
			room.MessagePosted{MessageID: uuid(n), UserID: "42", Text: "q"},
			room.AnswerStarted{AnswerID: uuid(n + 1), QuestionID: uuid(n), Instance: "a"},
			room.AnswerChunk{AnswerID: uuid(n + 1), Seq: 0, Delta: "x"},
		}
	}
	appendRoom(t, e.store, 1, started(1, 10)...)
	appendRoom(t, e.store, 2, append(started(2, 20), room.AnswerCompleted{AnswerID: uuid(21), Text: "x", Chunks: 1})...)
	appendRoom(t, e.store, 3, append(started(3, 30), room.AnswerCancelled{AnswerID: uuid(31), Reason: room.ReasonCancelled})...)
	r, _ := e.runner(t, e.log)
	e.catchUp(t, r)

	ids, pos, err := e.log.OpenAnswers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := e.log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != 1 || pos != cp || pos == domain.Start {
		t.Errorf("OpenAnswers = %v at %s, want [1] at the checkpoint %s", ids, pos, cp)
	}
}
