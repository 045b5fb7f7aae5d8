package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
)

// stamped wraps a generator so that every delta starts with the time it
// was emitted, in nanoseconds since epoch (monotonic), and a '|': clients
// in this process subtract it from the time the chunk frame arrives.
type stamped struct {
	inner chat.Generator
	epoch time.Time
}

func (s stamped) Name() string { return s.inner.Name() }

func (s stamped) Generate(ctx context.Context, p chat.Prompt, emit func(string) error) error {
	return s.inner.Generate(ctx, p, func(d string) error {
		return emit(strconv.FormatInt(int64(time.Since(s.epoch)), 10) + "|" + d)
	})
}

// emitted parses the stamp stamped put in front of a delta.
func emitted(delta string) (time.Duration, error) {
	i := strings.IndexByte(delta, '|')
	if i < 0 {
		return 0, fmt.Errorf("chunk %q carries no emit stamp", delta)
	}
	n, err := strconv.ParseInt(delta[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("chunk %q: emit stamp: %w", delta, err)
	}
	return time.Duration(n), nil
}

// streamResult is one side of the streaming figure.
type streamResult struct {
	name            string
	rate            float64         // chunk frames received per second, median of rounds
	lat             []time.Duration // emit → receive of every chunk in the windows, sorted
	answers         int
	appends         []time.Duration // the Service's appends (through the hub's tap) during the rounds, sorted
	eventsPerAppend float64
	toSubscription  []time.Duration // append start → the hub's log subscription, every event, sorted
	ping            []time.Duration // SELECT 1 round trips during the rounds, sorted
	busy, self      float64         // CPU cores in use: the machine's, this process's (median of rounds)
	perStatement    float64         // Postgres appends per append statement (Postgres side only)
}

type streamResults struct{ persisted, relay streamResult }

// streamClient is one room's client.
type streamClient struct {
	ws   *websocket.Conn
	asks int // questions asked so far; numbers the client_id
}

// benchStreaming opens a client per room on both stacks, then runs
// interleaved rounds in which every client of one stack asks, reads the
// streamed answer, and asks again until the round's time is up.
func benchStreaming(ctx context.Context, env *chatEnv, c chatConfig, rounds int, stacks ...*chatStack) (streamResults, error) {
	clients := make([][]*streamClient, len(stacks))
	defer func() {
		for _, cs := range clients {
			for _, cl := range cs {
				if cl != nil {
					_ = cl.ws.Close()
				}
			}
		}
	}()
	for i, s := range stacks {
		env.logf("streaming: creating %d rooms and connecting their clients (%s)", c.rooms, s.name)
		clients[i] = make([]*streamClient, c.rooms)
		err := parallel(c.rooms, 16, func(j int) error {
			user := fmt.Sprintf("%s-%d", s.name, j)
			ws, err := env.openRoom(ctx, s, user)
			if err != nil {
				return err
			}
			clients[i][j] = &streamClient{ws: ws}
			return nil
		})
		if err != nil {
			return streamResults{}, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	period := time.Duration(float64(time.Second) / c.rate)
	per := c.duration / time.Duration(rounds)
	warm := min(2*time.Second, per)
	for i, s := range stacks {
		env.logf("streaming: warm-up %s (%s)", warm, s.name)
		if _, err := streamRound(ctx, clients[i], env.epoch, warm, period); err != nil {
			return streamResults{}, fmt.Errorf("%s warm-up: %w", s.name, err)
		}
	}
	results := make([]streamResult, len(stacks))
	rates := make([][]float64, len(stacks))
	busy := make([][]float64, len(stacks))
	self := make([][]float64, len(stacks))
	var stmts, appends uint64
	for r := range rounds {
		for k := range stacks {
			i := (k + r) % len(stacks) // alternate which side goes first
			stacks[i].appends.record(true)
			stacks[i].probe.record(true)
			stopPing := pingPostgres(ctx, env.pool)
			cpu0, st0 := readCPU(), env.pg.AppendStats()
			res, err := streamRound(ctx, clients[i], env.epoch, per, period)
			cpu1, st1 := readCPU(), env.pg.AppendStats()
			results[i].ping = append(results[i].ping, stopPing()...)
			b, sf := cpu1.since(cpu0)
			busy[i], self[i] = append(busy[i], b), append(self[i], sf)
			if stacks[i].persisted {
				stmts += st1.Statements - st0.Statements
				appends += st1.Appends - st0.Appends
			}
			stacks[i].appends.record(false)
			stacks[i].probe.record(false)
			if err != nil {
				return streamResults{}, fmt.Errorf("%s round %d: %w", stacks[i].name, r+1, err)
			}
			rates[i] = append(rates[i], res.rate)
			results[i].lat = append(results[i].lat, res.lat...)
			results[i].answers += res.answers
			env.logf("streaming: round %d/%d %s: %.0f chunks/s, p99 %s", r+1, rounds, stacks[i].name, res.rate, pct(sortedCopy(res.lat), 99))
		}
	}
	for i, s := range stacks {
		results[i].name = s.name
		results[i].rate = median(rates[i])
		results[i].busy, results[i].self = median(busy[i]), median(self[i])
		if s.persisted && stmts > 0 {
			results[i].perStatement = float64(appends) / float64(stmts)
		}
		slices.Sort(results[i].lat)
		slices.Sort(results[i].ping)
		a := s.appends
		a.mu.Lock()
		results[i].appends = sortedCopy(a.durs)
		if len(a.durs) > 0 {
			results[i].eventsPerAppend = float64(a.events) / float64(len(a.durs))
		}
		a.mu.Unlock()
		s.probe.mu.Lock()
		results[i].toSubscription = sortedCopy(s.probe.lags)
		s.probe.mu.Unlock()
	}
	return streamResults{persisted: results[0], relay: results[1]}, nil
}

func sortedCopy(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}

// openRoom creates a room owned by user on s and connects its client,
// which reads the history frame.
func (e *chatEnv) openRoom(ctx context.Context, s *chatStack, user string) (*websocket.Conn, error) {
	info, err := s.svc.CreateRoom(ctx, user, "Bench "+user)
	if err != nil {
		return nil, err
	}
	tok, err := e.token(user)
	if err != nil {
		return nil, err
	}
	ws, err := dial(ctx, s.base+strconv.FormatInt(info.ID, 10)+"/", tok)
	if err != nil {
		return nil, err
	}
	data, err := readFirst(ws, 30*time.Second)
	if err == nil && !strings.HasPrefix(string(data), `{"type":"history"`) {
		err = fmt.Errorf("first frame %.80s, want the history", data)
	}
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	return ws, nil
}

// roundResult is what one round of one side measured.
type roundResult struct {
	rate    float64
	lat     []time.Duration
	answers int
}

// serverFrame is the part of a server frame the clients look at.
type serverFrame struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Code    string `json:"code"`
}

// streamRound runs every client for d: ask, read the chunks until the
// answer frame, ask again. Client i asks first i/len(clients) of a token
// period after the start, so the rooms' tokens do not all fall due at the
// same instant. Chunks that arrive after d are not counted, but each
// client reads its last answer to the end, so the next round starts quiet.
func streamRound(ctx context.Context, clients []*streamClient, epoch time.Time, d, period time.Duration) (roundResult, error) {
	var (
		wg       sync.WaitGroup
		chunks   atomic.Int64
		answers  atomic.Int64
		mu       sync.Mutex
		firstErr error
		lats     = make([][]time.Duration, len(clients))
	)
	stop := context.AfterFunc(ctx, func() { // unblock the readers
		for _, cl := range clients {
			_ = cl.ws.Close()
		}
	})
	defer stop()
	start := time.Now()
	end := start.Add(d)
	for i, cl := range clients {
		wg.Go(func() {
			if err := sleepCtx(ctx, time.Duration(i)*period/time.Duration(len(clients))); err != nil {
				return
			}
			for time.Now().Before(end) {
				l, err := cl.ask(end, epoch)
				lats[i] = append(lats[i], l...)
				chunks.Add(int64(len(l)))
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				answers.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return roundResult{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return roundResult{}, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return roundResult{rate: float64(chunks.Load()) / d.Seconds(), lat: all, answers: int(answers.Load())}, nil
}

// ask posts a question and reads the answer's frames until it ends,
// returning the latency of each chunk received before end.
func (cl *streamClient) ask(end, epoch time.Time) ([]time.Duration, error) {
	cl.asks++
	_ = cl.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	clientID := domain.NameUUID(domain.UUID{}, "parley-bench question "+strconv.Itoa(cl.asks)).String() // a UUID, as the protocol wants
	if err := cl.ws.WriteJSON(map[string]string{"type": "message", "message": benchQuestion, "client_id": clientID}); err != nil {
		return nil, fmt.Errorf("send question: %w", err)
	}
	var lat []time.Duration
	for {
		_ = cl.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := cl.ws.ReadMessage()
		recv := time.Since(epoch)
		if err != nil {
			if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				return lat, fmt.Errorf("server closed the socket: %d %s", ce.Code, ce.Text)
			}
			return lat, fmt.Errorf("read: %w", err)
		}
		inWindow := time.Now().Before(end)
		var f serverFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return lat, fmt.Errorf("frame %.80s: %w", data, err)
		}
		switch f.Type {
		case "message": // our question, echoed from the log
		case "chunk":
			if !inWindow {
				continue
			}
			at, err := emitted(f.Message)
			if err != nil {
				return lat, err
			}
			lat = append(lat, recv-at)
		case "answer":
			return lat, nil
		case "error":
			return lat, fmt.Errorf("server refused the question: %s: %s", f.Code, f.Message)
		default:
			return lat, fmt.Errorf("unexpected frame %.120s", data)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parallel calls f(i) for i in [0, n) on at most workers goroutines and
// returns the first error; after one, no further calls start.
func parallel(n, workers int, f func(i int) error) error {
	var (
		next     atomic.Int64
		failed   atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(workers, n) {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// pingPostgres runs SELECT 1 on its own connection every 5ms until the
// returned function is called, which returns the round trips, unsorted.
// On a machine PostgreSQL shares with the server, they show how long any
// round trip to it may take under the load of the moment: the floor of
// an append's latency.
func pingPostgres(ctx context.Context, pool *pgxpool.Pool) func() []time.Duration {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan []time.Duration, 1)
	go func() { // owned: the returned function waits for it
		var rtt []time.Duration
		defer func() { done <- rtt }()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return
		}
		defer conn.Release()
		for {
			start := time.Now()
			var one int
			if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
				return // ctx ended
			}
			rtt = append(rtt, time.Since(start))
			if sleepCtx(ctx, 5*time.Millisecond) != nil {
				return
			}
		}
	}()
	return func() []time.Duration { cancel(); return <-done }
}

// cpuSample is the machine's busy CPU time (from /proc/stat) and this
// process's (getrusage) at one instant.
type cpuSample struct {
	at         time.Time
	busy, self time.Duration
}

// readCPU samples both; where /proc/stat cannot be read the machine's
// figure stays zero.
func readCPU() cpuSample {
	c := cpuSample{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		c.busy = statBusy(line)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return c
}

// statBusy returns the busy time of /proc/stat's "cpu" line: user, nice,
// system, irq, softirq and steal. Idle and iowait are not busy; guest and
// guest_nice, which follow steal, are counted in user and nice already.
func statBusy(line string) time.Duration {
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest guest_nice
	if len(f) < 2 {
		return 0
	}
	var busy int64
	for i, x := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseInt(x, 10, 64)
		if i != 3 && i != 4 { // not idle, not iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// since returns the cores in use between o and c: the machine's and this
// process's.
func (c cpuSample) since(o cpuSample) (busy, self float64) {
	d := float64(c.at.Sub(o.at))
	return float64(c.busy-o.busy) / d, float64(c.self-o.self) / d
}
