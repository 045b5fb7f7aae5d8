package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// streamConfig holds the stream benchmark's flags.
type streamConfig struct {
	rooms       int           // rooms of the main figure, one client each
	rate        float64       // tokens per second per answer, main figure
	window      time.Duration // measured time of a main round
	sweepRate   float64       // tokens per second per answer in the sweep
	sweep       []int         // room counts of the sweep, ascending
	sweepWindow time.Duration // measured time of a sweep round
	tokens      int           // tokens per answer
	ttft        time.Duration // the model's time to its first token
	profile     string        // directory for chatd's CPU profiles, when set
	keepDB      bool          // leave the scratch database, for EXPLAIN and the like
}

func (c *streamConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.rooms, "rooms", 200, "stream: rooms answering at once in the main figure, one WebSocket client each")
	fs.Float64Var(&c.rate, "rate", 10, "stream: the model's tokens per second per answer in the main figure")
	fs.DurationVar(&c.window, "window", 15*time.Second, "stream: measured time of each main round (after the rooms have started)")
	fs.Float64Var(&c.sweepRate, "sweep-rate", 50, "stream: the model's tokens per second per answer in the sweep")
	fs.Func("sweep", "stream: room counts of the sweep, comma-separated, ascending; it stops at the first failing one (default 10,25,50,100,150,200,300; \"none\" skips it)", func(s string) error {
		c.sweep = nil
		if s == "none" {
			return nil
		}
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("%q is not a room count", f)
			}
			c.sweep = append(c.sweep, n)
		}
		return nil
	})
	fs.DurationVar(&c.sweepWindow, "sweep-window", 10*time.Second, "stream: measured time of each sweep round")
	fs.IntVar(&c.tokens, "answer-tokens", 100, "stream: tokens per answer (3 to 6 characters each)")
	fs.DurationVar(&c.ttft, "ttft", 100*time.Millisecond, "stream: the model's time to its first token")
	fs.StringVar(&c.profile, "profile", "", "stream: write chatd's CPU profiles of the first main round (each side) into this directory")
	fs.BoolVar(&c.keepDB, "keep-db", false, "stream, connect: keep the scratch database when done (its name is printed), to profile its statements")
	c.sweep = []int{10, 25, 50, 100, 150, 200, 300}
}

func (c streamConfig) validate() error {
	var errs []error
	if c.rooms < 1 {
		errs = append(errs, fmt.Errorf("-rooms %d: need at least 1", c.rooms))
	}
	if !(c.rate > 0 && c.rate <= 1000) || !(c.sweepRate > 0 && c.sweepRate <= 1000) {
		errs = append(errs, fmt.Errorf("-rate %v, -sweep-rate %v: need tokens per second in (0, 1000]", c.rate, c.sweepRate))
	}
	if c.window < time.Second || c.sweepWindow < time.Second {
		errs = append(errs, fmt.Errorf("-window %s, -sweep-window %s: need at least 1s", c.window, c.sweepWindow))
	}
	if c.tokens < 1 {
		errs = append(errs, fmt.Errorf("-answer-tokens %d: need at least 1", c.tokens))
	}
	if !slices.IsSorted(c.sweep) {
		errs = append(errs, fmt.Errorf("-sweep %v: list room counts in ascending order", c.sweep))
	}
	return errors.Join(errs...)
}

// side is one chatd and its rooms' clients.
type side struct {
	name    string
	chatd   *chatdProc
	clients []*roomClient
	broken  []bool // the client's socket failed; it reconnects before the next round
	failed  bool   // the sweep has found its first failing point
}

// roundResult is what one round measured, over the tokens the model
// emitted in its window.
type roundResult struct {
	side            string
	rooms           int
	rate            float64
	window          time.Duration
	emitted         int // tokens emitted in the window
	delivered       int // of them, received by their client
	lost, dups      int
	reordered       int
	corrupt         int // chunks whose text was not the model's
	answers, failed int // answers asked in the window; of them, not completed
	notices         int // answers chatd said had no sources
	clientErr       error
	lat             []time.Duration // token emit → client receive, sorted
	firstChunk      []time.Duration // question → first chunk, sorted
	modelFirst      []time.Duration // the model's request → its first token, sorted
	beforeModel     []time.Duration // question → the model's request, sorted
	overhead        []time.Duration // question → first chunk, less the model's own first-token time, sorted
	use             cost
	chunks          chunkStats
}

// healthy: p99 under the bar and nothing lost, duplicated, reordered,
// corrupted or failed.
func (r roundResult) healthy(bar time.Duration) bool {
	return r.clientErr == nil && r.delivered == r.emitted && r.lost == 0 && r.dups == 0 && r.reordered == 0 &&
		r.corrupt == 0 && r.failed == 0 && len(r.lat) > 0 && quantile(r.lat, 99) < bar
}

// round runs rooms clients of s for one round: each starts at its place in
// a stagger of up to an answer's length, then asks, reads the answer and
// asks again until the window ends; the window opens a second after the
// last client started, and every answer is read to its end.
func (e *streamEnv) round(ctx context.Context, s *side, rooms int, rate float64, window time.Duration, tokens int, ttft time.Duration, profile string) (roundResult, error) {
	res := roundResult{side: s.name, rooms: rooms, rate: rate, window: window}
	if err := e.repair(ctx, s, rooms); err != nil {
		return res, err
	}
	period := time.Duration(float64(time.Second) / rate)
	stagger := min(ttft+time.Duration(tokens)*period, 5*time.Second)
	start := time.Now()
	t0 := start.Add(stagger + time.Second)
	t1 := t0.Add(window)

	var (
		wg      sync.WaitGroup
		recs    collector[*answerRecord]
		errMu   sync.Mutex
		use     cost
		meterEr error
	)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, cl := range s.clients[:rooms] {
		wg.Go(func() {
			if sleepUntil(rctx, start.Add(time.Duration(i)*stagger/time.Duration(rooms))) != nil {
				return
			}
			for time.Now().Before(t1) && rctx.Err() == nil {
				rec, err := cl.ask(e.model, tokens, period, ttft)
				recs.add(rec)
				if err != nil {
					errMu.Lock()
					s.broken[i] = true
					if res.clientErr == nil {
						res.clientErr = err
					}
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Go(func() {
		if sleepUntil(rctx, t0) != nil {
			return
		}
		w, err := e.meter.begin(rctx, s.chatd, 50*time.Millisecond)
		if err != nil {
			meterEr = err
			return
		}
		if profile != "" {
			wg.Go(func() {
				if err := s.chatd.profile(rctx, window, profile); err != nil {
					e.logf("%v", err)
				}
			})
		}
		if sleepUntil(rctx, t1) != nil {
			return
		}
		use, meterEr = w.end(rctx)
	})
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if meterEr != nil {
		return res, meterEr
	}
	res.use = use
	res.tally(recs.all(), e.model, t0, t1)
	if s.name == sidePersisted || s.name == sidePlaintext {
		var err error
		if res.chunks, err = countChunks(ctx, s.chatd.db.pool, t0, t1); err != nil {
			return res, err
		}
		if s.name == sidePersisted {
			// A sealed chunk's delta ends are sealed with its text (their
			// lengths would tell it): every token the model emitted in the
			// window is one delta appended in it.
			res.chunks.deltas = int64(res.emitted)
		}
	}
	return res, nil
}

// tally counts the tokens the model emitted in [t0, t1) and how they
// arrived.
func (r *roundResult) tally(recs []*answerRecord, m *modelServer, t0, t1 time.Time) {
	w0, w1 := int64(t0.Sub(m.epoch)), int64(t1.Sub(m.epoch))
	for _, a := range recs {
		p := a.plan
		if a.askedAt >= w0 && a.askedAt < w1 {
			r.answers++
			if a.outcome != "answer" {
				r.failed++
			}
			if a.notice {
				r.notices++
			}
			req, first := p.requested.Load(), p.emitted[0].Load()
			if a.firstChunk > 0 && req > 0 && first > 0 {
				r.firstChunk = append(r.firstChunk, time.Duration(a.firstChunk-a.askedAt))
				r.modelFirst = append(r.modelFirst, time.Duration(first-req))
				r.beforeModel = append(r.beforeModel, time.Duration(req-a.askedAt))
				r.overhead = append(r.overhead, time.Duration(a.firstChunk-a.askedAt-(first-req)))
			}
		}
		r.corrupt += a.corrupt
		for i := range p.tokens {
			at := p.emitted[i].Load()
			if at == 0 || at < w0 || at >= w1 {
				continue
			}
			r.emitted++
			if a.recv[i] == 0 {
				r.lost++
				continue
			}
			r.delivered++
			r.lat = append(r.lat, time.Duration(a.recv[i]-at))
		}
		r.dups += a.dups
		r.reordered += a.reordered
	}
	for _, d := range [][]time.Duration{r.lat, r.firstChunk, r.modelFirst, r.beforeModel, r.overhead} {
		slices.Sort(d)
	}
}

// chunkStats is how answers' chunks were written in a window: their
// AnswerChunk events, the deltas they carry, the appends that wrote them
// (one per stream and transaction) and the statements (transactions).
type chunkStats struct {
	events, deltas, appends, statements int64
}

func countChunks(ctx context.Context, pool *pgxpool.Pool, t0, t1 time.Time) (chunkStats, error) {
	var c chunkStats
	err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(coalesce(json_array_length(data->'ends'), 0) + 1), 0),
			count(DISTINCT (stream, txid)), count(DISTINCT txid)
		FROM events WHERE type = 'AnswerChunk' AND recorded_at >= $1 AND recorded_at < $2`, t0, t1).
		Scan(&c.events, &c.deltas, &c.appends, &c.statements)
	if err != nil {
		return c, fmt.Errorf("count the chunks written: %w", err)
	}
	return c, nil
}

// repair reconnects the clients whose sockets failed in an earlier round.
func (e *streamEnv) repair(ctx context.Context, s *side, rooms int) error {
	for i, cl := range s.clients[:rooms] {
		if !s.broken[i] {
			continue
		}
		cl.close()
		tok, err := e.token(cl.user)
		if err != nil {
			return err
		}
		url := "ws" + strings.TrimPrefix(s.chatd.base, "http") + "/ws/chat/" + strconv.FormatInt(cl.id, 10) + "/"
		ws, err := dial(ctx, url, tok)
		if err != nil {
			return fmt.Errorf("%s: reconnect room %d: %w", s.name, cl.id, err)
		}
		if _, err := readFirst(ws, time.Minute); err != nil {
			_ = ws.Close()
			return fmt.Errorf("%s: reconnect room %d: %w", s.name, cl.id, err)
		}
		cl.ws, s.broken[i] = ws, false
		cl.startReading(e.model)
	}
	return nil
}

// openSide starts a chatd for name and creates n rooms on it, each with
// its owner's client connected.
func (e *streamEnv) openSide(ctx context.Context, name string, n int) (*side, error) {
	c, err := e.startChatd(ctx, name)
	if err != nil {
		return nil, err
	}
	s := &side{name: name, chatd: c, clients: make([]*roomClient, n), broken: make([]bool, n)}
	e.logf("creating %d rooms and connecting their clients (%s)", n, name)
	err = parallel(n, 16, func(i int) error {
		user := fmt.Sprintf("bench-%s-%d", name, i)
		tok, err := e.token(user)
		if err != nil {
			return err
		}
		s.clients[i], err = createRoom(ctx, c, e.model, name, i, user, tok)
		return err
	})
	if err != nil {
		for _, cl := range s.clients {
			if cl != nil {
				cl.close()
			}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func (s *side) close() {
	for _, cl := range s.clients {
		cl.close()
	}
}

// statementStat is one statement's share of PostgreSQL's time
// (pg_stat_statements).
type statementStat struct {
	query      string
	calls      int64
	total, per time.Duration
	rows       float64 // per call
}

func (e *streamEnv) resetStatements(ctx context.Context) {
	_, _ = e.pool.Exec(ctx, `SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)`)
}

// statements returns the database's statements that took the most time
// since resetStatements, at most n.
func (e *streamEnv) statements(ctx context.Context, n int) []statementStat {
	rows, err := e.pool.Query(ctx, `SELECT regexp_replace(query, '\s+', ' ', 'g'), calls, total_exec_time, rows
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT $1`, n)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []statementStat
	for rows.Next() {
		var s statementStat
		var total float64
		var nrows int64
		if rows.Scan(&s.query, &s.calls, &total, &nrows) != nil {
			return out
		}
		s.total = time.Duration(total * float64(time.Millisecond))
		if s.calls > 0 {
			s.per = s.total / time.Duration(s.calls)
			s.rows = float64(nrows) / float64(s.calls)
		}
		out = append(out, s)
	}
	return out
}

func sleepUntil(ctx context.Context, t time.Time) error {
	return sleepCtx(ctx, time.Until(t))
}

// profilePath is where the CPU profile of a round goes.
func profilePath(dir, name string) string { return filepath.Join(dir, "chatd-"+name+".pprof") }
