package redis_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/offline"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// capture is a generator that records each prompt and answers the i-th
// with answers[i] through the offline Scripted generator.
type capture struct {
	mu      sync.Mutex
	answers []string
	prompts []chat.Prompt
}

func (c *capture) Name() string { return "test/capture" }

func (c *capture) Generate(ctx context.Context, p chat.Prompt, emit func(string) error) error {
	c.mu.Lock()
	text := c.answers[len(c.prompts)%len(c.answers)]
	c.prompts = append(c.prompts, p)
	c.mu.Unlock()
	g, err := offline.NewScripted(offline.ScriptedConfig{Text: text})
	if err != nil {
		return err
	}
	return g.Generate(ctx, p, emit)
}

func (c *capture) prompt(i int) chat.Prompt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prompts[i]
}

// conversation is twelve exchanges about youth policies, in English and
// Korean, of 30 to 80 tokens each: the 200-token buffer overflows after a
// few of them.
var conversation = []struct{ q, a string }{
	{"How much is the youth monthly rent support?", "The youth monthly rent support pays up to 200,000 won a month for up to 12 months. It is for people aged 19 to 34 who live apart from their parents."},
	{"Who is eligible exactly?", "You must be 19 to 34, live alone, and your household income must be under 60 percent of the median income. Your own assets must be under 122 million won."},
	{"청년 월세 지원은 어디서 신청하나요?", "복지로 누리집이나 주소지 행정복지센터에서 신청할 수 있습니다. 임대차계약서와 월세 이체 내역이 필요합니다."},
	{"What documents do I need?", "You need the lease contract, proof of monthly rent payments for the last three months, and a copy of your bank account. The family relation certificate is checked online."},
	{"Can I get job training support too?", "Yes. The National Employment Support Programme gives up to 500,000 won a month for six months while you take part in job search activities."},
	{"청년도약계좌는 무엇인가요?", "청년도약계좌는 5년 동안 매달 최대 70만 원을 저축하면 정부 기여금과 비과세 혜택을 주는 적금 상품입니다. 만 19세에서 34세가 가입할 수 있습니다."},
	{"Is there help with transport costs?", "Some cities give young people a transport pass refund of 20 to 53 percent of their fares, through the K-Pass card, for up to 60 trips a month."},
	{"How long does the rent support review take?", "The review usually takes about one month after you apply. Payments start the month after approval and arrive on the 25th."},
	{"마음건강 지원도 있나요?", "청년마음건강 지원사업은 전문 심리상담을 10회까지 받을 수 있게 해 줍니다. 본인부담금은 소득에 따라 0에서 20퍼센트입니다."},
	{"Can I apply for rent support and the savings account together?", "Yes, the two programmes can be combined. Only other rent subsidies, such as the housing benefit, exclude the youth monthly rent support."},
	{"What if I move during the 12 months?", "Report the move within one month with the new lease. The support continues if the new home also meets the rent and deposit limits."},
	{"What was the monthly amount again?", "It is up to 200,000 won a month, paid for up to 12 months, as long as you stay eligible."},
}

// stack is a chat service with the summary-buffer memory: a Worker that
// summarises with the extractive summariser and tiktoken counts, the
// Redis read model fed by a Runner, and the capturing generator.
type stack struct {
	store   domain.EventStore
	svc     *chat.Service
	worker  *memory.Worker
	mem     *redis.Memory
	stopRun func()
	gen     *capture
	counter *tokens.Counter
	reads   *countingReader
}

// countingReader passes Loads through and keeps what they returned. Once
// mark is set, it prefixes the summary and the questions it returns with
// it, so that a prompt built from them can be told from one built from
// the stream.
type countingReader struct {
	chat.MemoryReader
	mu   sync.Mutex
	last *memory.Conversation
	errs int
	mark string
}

func (r *countingReader) Load(ctx context.Context, id int64, user string) (*memory.Conversation, error) {
	c, err := r.MemoryReader.Load(ctx, id, user)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs++
		return c, err
	}
	if r.mark != "" {
		c.Summary = r.mark + c.Summary
		for i := range c.Turns {
			c.Turns[i].Question = r.mark + c.Turns[i].Question
		}
	}
	r.last = c.Clone()
	return c, err
}

func (r *countingReader) setMark(mark string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mark = mark
}

const limit = 200

// extractive returns the tiktoken counter and the extractive summariser
// measuring with it, at their defaults.
func extractive(t *testing.T) (*tokens.Counter, *memory.Extractive) {
	t.Helper()
	counter, err := tokens.New("")
	if err != nil {
		t.Fatal(err)
	}
	ext, err := memory.NewExtractive(counter, memory.ExtractiveConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return counter, ext
}

func newStack(t *testing.T, store domain.EventStore, mem *redis.Memory, log *slog.Logger) *stack {
	t.Helper()
	counter, ext := extractive(t)
	worker, err := memory.NewWorker(memory.Config{MaxTokenLimit: limit}, memory.Deps{Store: store, Summarizer: ext, Counter: counter, Now: time.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	answers := make([]string, len(conversation))
	for i, c := range conversation {
		answers[i] = c.a
	}
	st := &stack{store: store, worker: worker, mem: mem, gen: &capture{answers: answers}, counter: counter, reads: &countingReader{MemoryReader: mem}}
	st.svc = chat.NewService(chat.Config{ShutdownGrace: time.Second, MemoryReadTimeout: 200 * time.Millisecond},
		chat.Deps{Store: store, Generator: st.gen, Now: time.Now, Random: rand.Reader, Logger: log, Memory: worker, MemoryReader: st.reads})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.svc.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return st
}

// startRunner runs the projection of mem over the store until the test
// ends or stop is called.
func (st *stack) startRunner(t *testing.T, mem *redis.Memory) *projections.Runner {
	t.Helper()
	r := &projections.Runner{Store: st.store, Projection: mem, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	st.stopRun = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runner: %v", err)
			}
		})
	}
	t.Cleanup(st.stopRun)
	return r
}

// catchUp waits until the runner has applied the room's last event. (Not
// the log's head: Postgres readers of the global log see an append only
// once every older transaction has ended, so the head can lag an append
// that has returned.)
func (st *stack) catchUp(t *testing.T, r *projections.Runner, id int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	evs, err := st.store.ReadStream(ctx, room.Stream(id), domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, evs[0].Position); err != nil {
		t.Fatalf("projection did not catch up: %v", err)
	}
}

// ask posts question i and waits for its answer and for the memory to be
// compacted.
func (st *stack) ask(t *testing.T, id int64, i int) {
	t.Helper()
	if _, err := st.svc.Post(t.Context(), id, "42", conversation[i].q, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := st.worker.Load(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		n := len(c.Turns)
		if n > 0 && !c.Turns[n-1].Open && c.Turns[n-1].Question == conversation[i].q && memory.Plan(c.Turns, st.counter, limit) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("question %d: answer or compaction missing; memory %+v", i, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (st *stack) summaries(t *testing.T, id int64) []room.SummaryUpdated {
	t.Helper()
	return summariesOf(t, st.store, id)
}

func summariesOf(t *testing.T, store domain.StreamReader, id int64) []room.SummaryUpdated {
	t.Helper()
	var out []room.SummaryUpdated
	for from := int64(0); ; {
		evs, err := store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{From: from, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Type == room.TypeSummaryUpdated {
				p, err := room.Decode(ev, false)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, p.(room.SummaryUpdated))
			}
		}
		if len(evs) < 1000 {
			return out
		}
		from = evs[len(evs)-1].Version + 1
	}
}

// summaryAt returns the latest summary recorded before the room's
// MessagePosted number i (from 0): the one question i's prompt had.
func (st *stack) summaryAt(t *testing.T, id int64, i int) string {
	t.Helper()
	evs, err := st.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	summary, posted := "", 0
	for _, ev := range evs {
		switch ev.Type {
		case room.TypeSummaryUpdated:
			p, err := room.Decode(ev, false)
			if err != nil {
				t.Fatal(err)
			}
			summary = p.(room.SummaryUpdated).Summary
		case room.TypeMessagePosted:
			if posted == i {
				return summary
			}
			posted++
		}
	}
	t.Fatalf("room %d has no question %d", id, i)
	return ""
}

func historyTokens(c memory.TokenCounter, h []chat.Turn) int {
	n := 0
	for _, t := range h {
		n += c.Count(t.Content)
	}
	return n
}

func stores(t *testing.T) map[string]func(*testing.T) domain.EventStore {
	return map[string]func(*testing.T) domain.EventStore{
		"inmem": func(*testing.T) domain.EventStore { return inmem.New(nil) },
		"postgres": func(t *testing.T) domain.EventStore {
			s := postgres.NewStore(pgtest.NewPool(t, 10), postgres.StoreConfig{})
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
}

// TestLongConversationKeepsTheBufferUnderTheLimit runs twelve exchanges
// through chat.Service with the Worker, the Redis projection and a
// generator that captures its prompts; then flushes Redis and rebuilds
// the memory from the log.
func TestLongConversationKeepsTheBufferUnderTheLimit(t *testing.T) {
	c := redistest.Client(t)
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			prefix := redistest.Prefix(t, c)
			mem := newMemory(t, c, prefix, "")
			st := newStack(t, newStore(t), mem, nil)
			runner := st.startRunner(t, mem)
			r, err := st.svc.CreateRoom(t.Context(), "42", "Youth policies")
			if err != nil {
				t.Fatal(err)
			}
			// The last question's memory is marked as it leaves Redis: its
			// prompt must show the mark (the stream, which prompts fall back
			// to, would give the same text unmarked).
			const mark = "[from redis] "
			unmarked := func(h []chat.Turn) []chat.Turn {
				h = slices.Clone(h)
				for j := range h {
					h[j].Content = strings.TrimPrefix(h[j].Content, mark)
				}
				return h
			}
			for i := range conversation {
				if i == len(conversation)-1 {
					st.reads.setMark(mark)
				}
				st.ask(t, r.ID, i)
				st.catchUp(t, runner, r.ID)
			}

			sums := st.summaries(t, r.ID)
			if len(sums) < 3 {
				t.Fatalf("%d summaries after %d exchanges, want several", len(sums), len(conversation))
			}
			for i, s := range sums {
				if i > 0 && s.CoversThroughVersion <= sums[i-1].CoversThroughVersion {
					t.Errorf("summary %d covers through %d, not after %d: a turn was summarised twice", i, s.CoversThroughVersion, sums[i-1].CoversThroughVersion)
				}
				if s.Summarizer != memory.ExtractiveName || s.Tokens != st.counter.Count(s.Summary) || s.Tokens > memory.DefaultSummaryTokens {
					t.Errorf("summary %d: %+v", i, s)
				}
			}

			// Every prompt once the buffer first overflowed: the summary so
			// far, and a buffer within the limit (not counting the marks).
			for i := range conversation {
				p := st.gen.prompt(i)
				if p.Question != conversation[i].q {
					t.Fatalf("prompt %d asks %q", i, p.Question)
				}
				if n := historyTokens(st.counter, unmarked(p.History)); n > limit {
					t.Errorf("prompt %d: history of %d tokens, over %d", i, n, limit)
				}
			}
			for i := range conversation {
				want := st.summaryAt(t, r.ID, i)
				if i == len(conversation)-1 {
					want = mark + want
				}
				if got := st.gen.prompt(i).Summary; got != want {
					t.Errorf("prompt %d's summary %q, want the one in force when it was asked, %q", i, got, want)
				}
			}
			last := st.gen.prompt(len(conversation) - 1)
			if last.Summary == mark {
				t.Fatal("the last prompt has no summary")
			}
			// The rent support recurs through the conversation: the
			// extractive summary keeps its amount, which the last question
			// asks for.
			if !strings.Contains(last.Summary, "200,000 won") {
				t.Errorf("the summary lost the rent support amount:\n%s", last.Summary)
			}
			// The last prompt's memory came from Redis (it bears the mark),
			// current (its summary, unmarked, is the stream's in force, as
			// checked above).
			st.reads.mu.Lock()
			fromRedis, errs := st.reads.last, st.reads.errs
			st.reads.mu.Unlock()
			if errs != 0 || fromRedis == nil || fromRedis.Summary != last.Summary {
				t.Fatalf("Redis reads: %d errors, last %+v", errs, fromRedis)
			}
			if len(fromRedis.Turns) == 0 {
				t.Fatal("Redis's last buffer is empty: the history check below would prove nothing")
			}
			var want []chat.Turn
			for _, tu := range fromRedis.Turns {
				want = append(want, chat.Turn{Role: chat.RoleUser, Content: tu.Question}, chat.Turn{Role: chat.RoleAssistant, Content: tu.Answer})
			}
			if diff := cmp.Diff(want, last.History); diff != "" {
				t.Errorf("last prompt's history is not Redis's buffer (-redis +prompt):\n%s", diff)
			}
			t.Logf("%d summaries; last prompt: %d-token summary, %d buffered messages of %d tokens",
				len(sums), st.counter.Count(strings.TrimPrefix(last.Summary, mark)), len(last.History), historyTokens(st.counter, unmarked(last.History)))

			// Redis is flushed; re-running the projection from zero
			// rebuilds the same keys. So does a rebuild into a shadow prefix.
			st.stopRun()
			live := dump(t, c, prefix, false)
			if n, err := mem.Clear(t.Context()); err != nil || n == 0 {
				t.Fatalf("Clear = %d, %v", n, err)
			}
			if cp, _ := mem.Checkpoint(t.Context()); !cp.IsZero() {
				t.Fatalf("checkpoint %s after Clear", cp)
			}
			st.catchUp(t, st.startRunner(t, mem), r.ID)
			if diff := cmp.Diff(live, dump(t, c, prefix, false)); diff != "" {
				t.Errorf("rebuilt memory differs from the live one (-live +rebuilt):\n%s", diff)
			}
			st.stopRun()
			shadow := redistest.Prefix(t, c)
			st.catchUp(t, st.startRunner(t, newMemory(t, c, shadow, "memory-next")), r.ID)
			if diff := cmp.Diff(live, dump(t, c, shadow, false)); diff != "" {
				t.Errorf("shadow rebuild differs from the live memory (-live +shadow):\n%s", diff)
			}
		})
	}
}

// TestRedisDownAnswersStillComplete: with Redis unreachable, answers
// complete with the memory the stream gives, and a warning is logged.
func TestRedisDownAnswersStillComplete(t *testing.T) {
	down, err := redis.NewClient("redis://127.0.0.1:1/0?max_retries=-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = down.Close() })
	mem := newMemory(t, down, "unused:", "")
	var logs domaintest.SyncBuffer
	st := newStack(t, inmem.New(nil), mem, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	r, err := st.svc.CreateRoom(t.Context(), "42", "Youth policies")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 6 {
		st.ask(t, r.ID, i)
	}
	t.Logf("six exchanges with Redis down took %s", time.Since(start).Round(time.Millisecond))
	last := st.gen.prompt(5)
	if want := st.summaryAt(t, r.ID, 5); last.Summary == "" || last.Summary != want {
		t.Errorf("last prompt's summary %q, want the stream's %q", last.Summary, want)
	}
	if n := historyTokens(st.counter, last.History); n == 0 || n > limit {
		t.Errorf("last prompt's history has %d tokens, want 1 to %d", n, limit)
	}
	if !strings.Contains(logs.String(), "memory: read model unavailable") {
		t.Errorf("no warning about the memory; logs:\n%s", logs.String())
	}
	if st.reads.errs != 6 {
		t.Errorf("%d failed reads, want 6", st.reads.errs)
	}
}

// TestConcurrentSummarisersWriteOneSummaryPerVersion runs workers of two
// "processes" on one Postgres room at once, all reading it before any
// writes: each covered version gets exactly one SummaryUpdated.
func TestConcurrentSummarisersWriteOneSummaryPerVersion(t *testing.T) {
	store := postgres.NewStore(pgtest.NewPool(t, 10), postgres.StoreConfig{})
	t.Cleanup(func() { _ = store.Close() })
	counter, ext := extractive(t)
	newWorker := func(sum memory.Summarizer) *memory.Worker {
		w, err := memory.NewWorker(memory.Config{MaxTokenLimit: limit}, memory.Deps{Store: store, Summarizer: sum, Counter: counter, Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	reader := newWorker(ext)
	// Build a long conversation without a memory, so nothing is summarised.
	gen := &capture{}
	for _, c := range conversation {
		gen.answers = append(gen.answers, c.a)
	}
	plain := chat.NewService(chat.Config{}, chat.Deps{Store: store, Generator: gen, Now: time.Now, Random: rand.Reader})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- plain.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	r, err := plain.CreateRoom(t.Context(), "42", "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := plain.Post(t.Context(), r.ID, "42", conversation[i].q, ""); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := reader.Load(t.Context(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Turns) == i+1 && !c.Turns[i].Open {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("answer %d never completed", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	const workers = 4
	var ready sync.WaitGroup
	ready.Add(workers)
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		w := newWorker(&barrier{Summarizer: ext, ready: &ready, release: release})
		wg.Go(func() { errs <- w.Compact(t.Context(), r.ID) })
	}
	go func() { ready.Wait(); close(release) }()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	sums := summariesOf(t, store, r.ID)
	seen := map[int64]int{}
	for _, s := range sums {
		seen[s.CoversThroughVersion]++
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%d summaries cover through version %d, want 1", n, v)
		}
	}
	c, err := reader.Load(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := memory.Plan(c.Turns, counter, limit); len(sums) != 1 || n != 0 {
		t.Errorf("%d summaries, want 1; %d turns still over the limit", len(sums), n)
	}
}

// barrier holds every worker's first Summarize until all have read the room.
type barrier struct {
	memory.Summarizer
	ready   *sync.WaitGroup
	release chan struct{}
	once    sync.Once
}

func (b *barrier) Summarize(ctx context.Context, prev string, turns []memory.Turn) (string, error) {
	b.once.Do(func() {
		b.ready.Done()
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	})
	return b.Summarizer.Summarize(ctx, prev, turns)
}
