package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/domaintest"
)

func TestContract(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore {
		return audit.NewChainingStore(inmem.New(nil), audit.ChainOptions{})
	})
}

// TestContractSmallCache runs the contract with a cache of one stream, so
// most appends miss it.
func TestContractSmallCache(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore {
		return audit.NewChainingStore(inmem.New(nil), audit.ChainOptions{CacheSize: 1})
	})
}

// countingStore counts the reads that reach the inner store.
type countingStore struct {
	domain.EventStore
	reads atomic.Int64
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	c.reads.Add(1)
	return c.EventStore.ReadStream(ctx, stream, opts)
}

var at = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// event returns an event with chat-like metadata.
func event(t *testing.T, typ, data string) domain.EventData {
	t.Helper()
	meta, err := json.Marshal(domain.Metadata{CorrelationID: "c1", UserID: "42", OccurredAt: at})
	if err != nil {
		t.Fatal(err)
	}
	return domain.EventData{ID: domaintest.NewID(t), Type: typ, Data: json.RawMessage(data), Metadata: meta}
}

func readAll(t *testing.T, s domain.StreamReader, stream string) []domain.RecordedEvent {
	t.Helper()
	evs, err := s.ReadStream(t.Context(), stream, domain.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", stream, err)
	}
	return evs
}

func mustVerify(t *testing.T, r domain.StreamReader, stream string, anchors ...audit.Head) audit.Result {
	t.Helper()
	res, err := audit.VerifyStream(t.Context(), r, stream, anchors...)
	if err != nil {
		t.Fatalf("VerifyStream(%s): %v", stream, err)
	}
	return res
}

// TestChainAcrossExpectations appends with every kind of expectation and
// checks the links: each event's prev_hash is the previous event's hash,
// the first's is zeros, and the writer's metadata is kept as it was.
func TestChainAcrossExpectations(t *testing.T) {
	inner := inmem.New(nil)
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	ctx := t.Context()
	const stream = "room-7"
	steps := []domain.ExpectedVersion{domain.NoStream(), domain.Exact(0), domain.Any(), domain.StreamExists(), domain.Exact(3)}
	var sent []domain.EventData
	for i, exp := range steps {
		ev := event(t, "MessagePosted", fmt.Sprintf(`{"text":"message %d"}`, i))
		res, err := s.Append(ctx, stream, exp, ev)
		if err != nil {
			t.Fatalf("append %d at %s: %v", i, exp, err)
		}
		if res.Version != int64(i) {
			t.Fatalf("append %d at %s: version %d", i, exp, res.Version)
		}
		sent = append(sent, ev)
	}
	evs := readAll(t, inner, stream)
	prev := strings.Repeat("0", 64)
	for i, ev := range evs {
		var m domain.Metadata
		if err := json.Unmarshal(ev.Metadata, &m); err != nil {
			t.Fatalf("event %d metadata %s: %v", i, ev.Metadata, err)
		}
		if m.PrevHash != prev {
			t.Errorf("event %d prev_hash = %s, want %s", i, m.PrevHash, prev)
		}
		base, _, _, ok := domain.SplitChainFields(ev.Metadata)
		if !ok || string(base) != string(sent[i].Metadata) {
			t.Errorf("event %d metadata without the chain = %s, %v; want the writer's %s", i, base, ok, sent[i].Metadata)
		}
		prev = m.Hash
	}
	res := mustVerify(t, inner, stream)
	want := audit.Result{Stream: stream, Events: 5, Head: audit.Head{Version: 4, Hash: prev}}
	if diff := cmp.Diff(res, want); diff != "" {
		t.Errorf("VerifyStream (-got +want):\n%s", diff)
	}
}

// TestRetriesKeepTheOriginal: a retried append (the same IDs) returns the
// original result and leaves the stored events, hashes included, as they
// were, for every expectation.
func TestRetriesKeepTheOriginal(t *testing.T) {
	for _, tc := range []struct {
		name string
		exp  domain.ExpectedVersion
	}{
		{"no stream", domain.NoStream()},
		{"exact", domain.Exact(1)},
		{"any", domain.Any()},
		{"stream exists", domain.StreamExists()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := inmem.New(nil)
			s := audit.NewChainingStore(inner, audit.ChainOptions{})
			const stream = "room-1"
			if !tc.exp.IsNoStream() {
				if _, err := s.Append(t.Context(), stream, domain.NoStream(), event(t, "RoomCreated", `{}`), event(t, "MessagePosted", `{}`)); err != nil {
					t.Fatal(err)
				}
			}
			evs := []domain.EventData{event(t, "AnswerChunk", `{"seq":0}`), event(t, "AnswerChunk", `{"seq":1}`)}
			first, err := s.Append(t.Context(), stream, tc.exp, evs...)
			if err != nil {
				t.Fatal(err)
			}
			before := readAll(t, inner, stream)
			// Others append after it; the retry still finds the original.
			if _, err := s.Append(t.Context(), stream, domain.Any(), event(t, "AnswerCompleted", `{}`)); err != nil {
				t.Fatal(err)
			}
			again, err := s.Append(t.Context(), stream, tc.exp, evs...)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if again != first {
				t.Errorf("retry = %+v, want the original %+v", again, first)
			}
			after := readAll(t, inner, stream)
			if diff := cmp.Diff(after[:len(before)], before); diff != "" {
				t.Errorf("the retry changed stored events (-got +want):\n%s", diff)
			}
			if len(after) != len(before)+1 {
				t.Errorf("stream has %d events, want %d", len(after), len(before)+1)
			}
			if res := mustVerify(t, inner, stream); !res.OK() {
				t.Errorf("chain broken after the retry: %v", res.FirstBroken)
			}
			// A partial overlap is still a conflict, naming the caller's expectation.
			_, err = s.Append(t.Context(), stream, tc.exp, evs[1], event(t, "AnswerChunk", `{"seq":2}`))
			var ce *domain.ConflictError
			if !errors.As(err, &ce) || ce.Expected != tc.exp {
				t.Errorf("partial overlap: err = %v, want a conflict expecting %s", err, tc.exp)
			}
		})
	}
}

// TestSameIDOtherContent: two writers race to end one answer with events
// sharing an ID (as the chat service's endings do). The store keeps the
// winner; the loser's append returns the winner's result. The next
// append must chain from what is stored, not from what the loser sent.
func TestSameIDOtherContent(t *testing.T) {
	inner := inmem.New(nil)
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	ctx := t.Context()
	const stream = "room-3"
	if _, err := s.Append(ctx, stream, domain.NoStream(), event(t, "RoomCreated", `{}`)); err != nil {
		t.Fatal(err)
	}
	endID := domaintest.NewID(t)
	completed := event(t, "AnswerCompleted", `{"text":"done"}`)
	completed.ID = endID
	cancelled := event(t, "AnswerCancelled", `{}`)
	cancelled.ID = endID
	r1, err := s.Append(ctx, stream, domain.Exact(0), cancelled)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Append(ctx, stream, domain.Exact(0), completed)
	if err != nil || r2 != r1 {
		t.Fatalf("the losing ending = %+v, %v; want the winner's result %+v", r2, err, r1)
	}
	if _, err := s.Append(ctx, stream, domain.Exact(1), event(t, "MessagePosted", `{}`)); err != nil {
		t.Fatal(err)
	}
	if res := mustVerify(t, inner, stream); !res.OK() || res.Events != 3 {
		t.Errorf("VerifyStream = %+v, want 3 events and no break", res)
	}
}

// TestCacheSavesReads: after a caller reads the stream (as the chat
// service does before each command), an append at the version read costs
// no read; without it, one.
func TestCacheSavesReads(t *testing.T) {
	inner := &countingStore{EventStore: inmem.New(nil)}
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	ctx := t.Context()
	const stream = "room-9"
	if _, err := s.Append(ctx, stream, domain.NoStream(), event(t, "RoomCreated", `{}`)); err != nil {
		t.Fatal(err)
	}
	if n := inner.reads.Load(); n != 0 {
		t.Errorf("NoStream append read %d times, want 0", n)
	}
	if _, err := s.Append(ctx, stream, domain.Exact(0), event(t, "MessagePosted", `{}`)); err != nil {
		t.Fatal(err)
	}
	if n := inner.reads.Load(); n != 1 {
		t.Errorf("append after an unread version read %d times, want 1", n)
	}
	readAll(t, s, stream) // the caller's own read
	inner.reads.Store(0)
	if _, err := s.Append(ctx, stream, domain.Exact(1), event(t, "AnswerStarted", `{}`)); err != nil {
		t.Fatal(err)
	}
	if n := inner.reads.Load(); n != 0 {
		t.Errorf("append after a read version read %d times, want 0", n)
	}
}

// TestReadOfSomeTypes: a read that keeps only some types
// (ReadStreamOptions.Types) passes through, and the hash of the newest
// event it shows is remembered as that version's, not the stream's last:
// appends after it chain right, and read only when that event is not the
// last.
func TestReadOfSomeTypes(t *testing.T) {
	inner := &countingStore{EventStore: inmem.New(nil)}
	ctx := t.Context()
	const stream = "room-9"
	w := audit.NewChainingStore(inner, audit.ChainOptions{})
	if _, err := w.Append(ctx, stream, domain.NoStream(), event(t, "RoomCreated", `{}`), event(t, "AnswerChunk", `{}`)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		types []string
		reads int64 // by the append after the read
	}{
		{"an older event", []string{"RoomCreated"}, 1},
		{"the last event", []string{"AnswerChunk"}, 0},
	}
	for i, tc := range tests {
		s := audit.NewChainingStore(inner, audit.ChainOptions{}) // nothing cached
		evs, err := s.ReadStream(ctx, stream, domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1, Types: tc.types})
		if err != nil || len(evs) != 1 || evs[0].Type != tc.types[0] {
			t.Fatalf("%s: read of types %v = %d events, %v", tc.name, tc.types, len(evs), err)
		}
		inner.reads.Store(0)
		if _, err := s.Append(ctx, stream, domain.Exact(int64(1+i)), event(t, "AnswerChunk", `{}`)); err != nil {
			t.Fatalf("%s: append after it: %v", tc.name, err)
		}
		if n := inner.reads.Load(); n != tc.reads {
			t.Errorf("%s: the append after a read of types %v read %d times, want %d", tc.name, tc.types, n, tc.reads)
		}
	}
	if res := mustVerify(t, inner, stream); !res.OK() || res.Events != 4 {
		t.Errorf("VerifyStream = %+v, want 4 events, unbroken", res)
	}
}

// TestUnchainedPast: events written before the chain store are hashed as
// they are; the first chained event links to them, so changing one of
// them afterwards breaks the chain there.
func TestUnchainedPast(t *testing.T) {
	inner := inmem.New(nil)
	ctx := t.Context()
	const stream = "room-5"
	if _, err := inner.Append(ctx, stream, domain.NoStream(), event(t, "RoomCreated", `{}`), event(t, "MessagePosted", `{"text":"old"}`)); err != nil {
		t.Fatal(err)
	}
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	if _, err := s.Append(ctx, stream, domain.Exact(1), event(t, "AnswerStarted", `{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, domain.Any(), event(t, "AnswerCompleted", `{}`)); err != nil {
		t.Fatal(err)
	}
	res := mustVerify(t, inner, stream)
	if !res.OK() || res.Unchained != 2 || res.Events != 4 {
		t.Fatalf("VerifyStream = %+v, want 4 events, 2 unchained, no break", res)
	}
	evs := readAll(t, inner, stream)
	evs[1].Data = json.RawMessage(`{"text":"rewritten"}`)
	got := mustVerify(t, domaintest.FixedStream{Stream: stream, Events: evs}, stream)
	if got.FirstBroken == nil || got.FirstBroken.Version != 2 || got.FirstBroken.Kind != audit.BreakLink {
		t.Errorf("after changing unchained version 1: %+v, want a link break at version 2", got.FirstBroken)
	}
}

func TestRejectsMetadataTheChainCannotCarry(t *testing.T) {
	s := audit.NewChainingStore(inmem.New(nil), audit.ChainOptions{})
	for _, meta := range []string{`[1,2]`, `"text"`, `7`, `{"hash":"x"}`, `{"h\u0061sh":"x"}`, `{"a":1,"b":{"c":2}`, `{"a":1,"prev_hash":"` + strings.Repeat("0", 64) + `"}`} {
		ev := event(t, "MessagePosted", `{}`)
		ev.Metadata = json.RawMessage(meta)
		_, err := s.Append(t.Context(), "room-1", domain.Any(), ev)
		var ie *domain.InvalidEventError
		if !errors.As(err, &ie) || ie.Field != "metadata" {
			t.Errorf("metadata %s: err = %v, want an *InvalidEventError for the metadata", meta, err)
		}
	}
}

// TestAcceptsMetadataWithSpaceAround: empty, null and objects with white
// space around them carry the chain, and it verifies.
func TestAcceptsMetadataWithSpaceAround(t *testing.T) {
	inner := inmem.New(nil)
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	metas := []string{``, ` null `, " \t{\"a\":1}\r\n", `{ }`}
	for _, meta := range metas {
		ev := event(t, "MessagePosted", `{}`)
		ev.Metadata = json.RawMessage(meta)
		if _, err := s.Append(t.Context(), "room-1", domain.Any(), ev); err != nil {
			t.Errorf("metadata %q: %v", meta, err)
		}
	}
	if res := mustVerify(t, inner, "room-1"); !res.OK() || res.Events != len(metas) || res.Unchained != 0 {
		t.Errorf("VerifyStream = %+v, want %d chained events, no break", res, len(metas))
	}
}

// TestConcurrentAnyAppends: writers racing with Any on few streams all
// succeed and leave intact chains.
func TestConcurrentAnyAppends(t *testing.T) {
	inner := inmem.New(nil)
	s := audit.NewChainingStore(inner, audit.ChainOptions{})
	const writers, each = 8, 25
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for i := range each {
				stream := fmt.Sprintf("room-%d", 1+(w+i)%3)
				if _, err := s.Append(t.Context(), stream, domain.Any(), event(t, "MessagePosted", fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	total := 0
	for r := 1; r <= 3; r++ {
		res := mustVerify(t, inner, fmt.Sprintf("room-%d", r))
		if !res.OK() {
			t.Errorf("room-%d: %v", r, res.FirstBroken)
		}
		total += res.Events
	}
	if total != writers*each {
		t.Errorf("%d events stored, want %d", total, writers*each)
	}
}

// TestTrustedTypesNeedNoRead: after an append made only of trusted types
// the next append chains from the cached hash without reading, and the
// chain still verifies; other types are not cached from what was sent.
func TestTrustedTypesNeedNoRead(t *testing.T) {
	mem := inmem.New(nil)
	inner := &countingStore{EventStore: mem}
	s := audit.NewChainingStore(inner, audit.ChainOptions{TrustTypes: []string{"AnswerChunk"}})
	ctx := t.Context()
	steps := []struct {
		typ       string
		wantReads int // total reads of the inner store after the step
	}{
		{"AnswerStarted", 0}, // NoStream: chains from Genesis
		{"AnswerChunk", 1},   // reads version 0: AnswerStarted was not trusted
		{"AnswerChunk", 1},   // the previous chunk's hash is cached
		{"AnswerChunk", 1},
		{"AnswerCompleted", 1},
		{"AnswerChunk", 2}, // AnswerCompleted was not cached from what was sent
	}
	for i, st := range steps {
		exp := domain.Exact(int64(i) - 1)
		if i == 0 {
			exp = domain.NoStream()
		}
		if _, err := s.Append(ctx, "room-7", exp, event(t, st.typ, `{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if got := inner.reads.Load(); got != int64(st.wantReads) {
			t.Errorf("after step %d (%s): %d reads, want %d", i, st.typ, got, st.wantReads)
		}
	}
	res, err := audit.VerifyStream(ctx, mem, "room-7")
	if err != nil || res.FirstBroken != nil || res.Events != len(steps) {
		t.Fatalf("verify: %+v, %v", res, err)
	}
}

// TestStreamThatWentBack: trusted chunks up to version 3 are cached, then
// the database loses versions 2 and 3. The next append at version 3
// conflicts and forgets the cached head, so once the stream has grown
// back to version 3 with other events, the chain links to those, not to
// the lost ones.
func TestStreamThatWentBack(t *testing.T) {
	ctx := t.Context()
	before := inmem.New(nil)
	inner := domaintest.NewSwapStore(before)
	s := audit.NewChainingStore(inner, audit.ChainOptions{TrustTypes: []string{"AnswerChunk"}})
	if _, err := s.Append(ctx, "room-7", domain.NoStream(), event(t, "AnswerStarted", `{}`)); err != nil {
		t.Fatal(err)
	}
	for v := range 3 {
		if _, err := s.Append(ctx, "room-7", domain.Exact(int64(v)), event(t, "AnswerChunk", fmt.Sprintf(`{"seq":%d}`, v))); err != nil {
			t.Fatal(err)
		}
	}
	// The crash: versions 0 and 1 survive.
	after, err := domaintest.Truncated(ctx, before, "room-7", 2, inmem.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	inner.Set(after)
	_, err = s.Append(ctx, "room-7", domain.Exact(3), event(t, "AnswerChunk", `{"seq":3}`))
	var ce *domain.ConflictError
	if !errors.As(err, &ce) || ce.Actual != 1 {
		t.Fatalf("append at 3 after the loss: %v, want a conflict at version 1", err)
	}
	other := audit.NewChainingStore(after, audit.ChainOptions{}) // another writer
	for v := 1; v < 3; v++ {
		if _, err := other.Append(ctx, "room-7", domain.Exact(int64(v)), event(t, "AnswerFailed", fmt.Sprintf(`{"n":%d}`, v))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "room-7", domain.Exact(3), event(t, "AnswerChunk", `{"seq":9}`)); err != nil {
		t.Fatal(err)
	}
	if res := mustVerify(t, after, "room-7"); res.FirstBroken != nil || res.Events != 5 {
		t.Errorf("verify after the loss: %+v, want 5 events and no break", res)
	}
}
