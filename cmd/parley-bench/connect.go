package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/wsapi"
)

// connectConfig holds the connect benchmark's flags.
type connectConfig struct {
	conns int // idle connections of the memory figure
	dials int // connects per side of the history latency
	turns int // questions (and answers) of the history room
}

func (c *connectConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.conns, "conns", 5000, "connect: idle connections of the memory-per-connection figure")
	fs.IntVar(&c.dials, "dials", 200, "connect: connects per side of the connect-to-history latency")
	fs.IntVar(&c.turns, "history-turns", 100, "connect: questions (and answers) of the history room")
}

func (c connectConfig) validate() error {
	var errs []error
	if c.conns < 1 {
		errs = append(errs, fmt.Errorf("-conns %d: need at least 1", c.conns))
	}
	if c.dials < 1 {
		errs = append(errs, fmt.Errorf("-dials %d: need at least 1", c.dials))
	}
	if c.turns < 1 {
		errs = append(errs, fmt.Errorf("-history-turns %d: need at least 1", c.turns))
	}
	return errors.Join(errs...)
}

// The connect benchmark's fixed shape.
const (
	// connsPerUser is how many idle sockets each user of the memory figure
	// opens (to their own room), well below the gateway's per-user cap.
	connsPerUser = 5
	// historyTokens is the tokens of each of its answers.
	historyTokens = 160
)

// benchConnect measures connecting to chatd (a child process, as in the
// stream benchmark): connect → history frame for a room of 200 messages
// beside a bare upgrader sending a frame of the same bytes, and chatd's
// memory per idle connection beside a bare upgrader holding each socket
// with one reader.
func benchConnect(ctx context.Context, cfg config, out io.Writer) error {
	c := cfg.connect
	if err := raiseFileLimit(uint64(c.conns + 1024)); err != nil {
		return err
	}
	env, err := newStreamEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.close()
	chatd, err := env.startChatd(ctx, sidePersisted)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== connect: chatd (a child process, chatd's own wiring and defaults) over loopback WebSockets, jwtauth HS256\n")

	hr, err := env.benchHistory(ctx, c, chatd)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	// The same with the encryption of conversation text off: what opening
	// the history's text costs.
	plainChatd, err := env.startChatd(ctx, sidePlaintext)
	if err != nil {
		return err
	}
	plain, err := env.benchHistory(ctx, c, plainChatd)
	if err != nil {
		return fmt.Errorf("history, encryption off: %w", err)
	}
	if err := plainChatd.stop(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n   (1) connect → history frame, room of %d messages, frame %d bytes (the newest %d messages); %d connects per side, alternating\n\n",
		2*c.turns, hr.frameBytes, min(2*c.turns, wsapi.DefaultHistoryMessages), c.dials)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tp50\tp99\t")
	fmt.Fprintf(tw, "chatd (jwt, room check, ChatLog + stream tail), text decrypted\t%s\t%s\t\n", pct(hr.gateway, 50), pct(hr.gateway, 99))
	fmt.Fprintf(tw, "chatd, encryption off\t%s\t%s\t\n", pct(plain.gateway, 50), pct(plain.gateway, 99))
	fmt.Fprintf(tw, "baseline (upgrade, send a fixed frame)\t%s\t%s\t\n", pct(hr.baseline, 50), pct(hr.baseline, 99))
	if err := tw.Flush(); err != nil {
		return err
	}
	p50 := quantile(hr.gateway, 50)
	fmt.Fprintf(out, "   chatd p50 %s = %.2f× baseline, %.2f× with encryption off; target p50 ≤ 5 ms (%s)\n",
		ms(p50), float64(p50)/float64(quantile(hr.baseline, 50)), float64(p50)/float64(quantile(plain.gateway, 50)), verdict(p50 <= 5*time.Millisecond))

	fmt.Fprintf(out, "\n   (2) server memory per idle connection, %d connections from a child process (after history), Go heap+stacks after GC\n\n", c.conns)
	mr, err := env.benchMemory(ctx, c, chatd)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\theap/conn\tstacks/conn\tgoroutines/conn\theap+stacks/conn\t")
	for _, r := range []memResult{mr.gateway, mr.baseline} {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t\n", r.name, kib(r.heap), kib(r.stack), r.goroutines, kib(r.heap+r.stack))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	total := mr.gateway.heap + mr.gateway.stack
	fmt.Fprintf(out, "   chatd %s = %.2f× baseline; target ≤ 32 KiB (%s)\n\n",
		kib(total), total/(mr.baseline.heap+mr.baseline.stack), verdict(total <= 32<<10))
	return nil
}

// historyResult is the connect-to-history figure.
type historyResult struct {
	frameBytes int
	gateway    []time.Duration // sorted
	baseline   []time.Duration // sorted
}

// benchHistory fills a room with c.turns questions and answers
// (unpaced), waits for the ChatLog to hold them, and times dial → history
// frame against chatd and against a bare server sending a frame of the
// same bytes, alternating one connect each.
func (e *streamEnv) benchHistory(ctx context.Context, c connectConfig, chatd *chatdProc) (historyResult, error) {
	var res historyResult
	tok, err := e.token("history-owner")
	if err != nil {
		return res, err
	}
	cl, err := createRoom(ctx, chatd, e.model, "history", 0, "history-owner", tok)
	if err != nil {
		return res, err
	}
	e.logf("connect: filling a room with %d questions and answers", c.turns)
	for range c.turns {
		rec, err := cl.ask(e.model, historyTokens, 0, 0)
		if err == nil && rec.outcome != "answer" {
			err = fmt.Errorf("the answer ended with %s", rec.outcome)
		}
		if err != nil {
			cl.close()
			return res, err
		}
	}
	cl.close()
	if err := projected(ctx, chatd.db.pool, []int64{cl.id}); err != nil {
		return res, err
	}
	url := "ws" + strings.TrimPrefix(chatd.base, "http") + "/ws/chat/" + strconv.FormatInt(cl.id, 10) + "/"
	connect := func(url string) (time.Duration, []byte, error) {
		t0 := time.Now()
		ws, err := dial(ctx, url, tok)
		if err != nil {
			return 0, nil, err
		}
		defer ws.Close()
		data, err := readFirst(ws, 30*time.Second)
		return time.Since(t0), data, err
	}
	var frame []byte
	for range 5 { // warm-up, and the frame the baseline sends
		if _, frame, err = connect(url); err != nil {
			return res, err
		}
	}
	var h struct {
		Type     string            `json:"type"`
		Messages []json.RawMessage `json:"messages"`
	}
	// chatd caps the frame: users get the newest messages of a long room.
	want := min(2*c.turns, wsapi.DefaultHistoryMessages)
	if err := json.Unmarshal(frame, &h); err != nil || h.Type != "history" || len(h.Messages) != want {
		return res, fmt.Errorf("the room's first frame is not a history of %d messages (%d, %v): %.100s", want, len(h.Messages), err, frame)
	}
	res.frameBytes = len(frame)
	bare, err := newBareServer(frame)
	if err != nil {
		return res, err
	}
	defer bare.stop()
	for range 5 {
		if _, _, err := connect(bare.url); err != nil {
			return res, err
		}
	}
	e.logf("connect: %d connects per side", c.dials)
	for i := range c.dials {
		for k := range 2 {
			if (i+k)%2 == 0 {
				d, data, err := connect(url)
				if err != nil {
					return res, fmt.Errorf("chatd: %w", err)
				}
				if len(data) != len(frame) {
					return res, fmt.Errorf("chatd: history frame of %d bytes, want %d", len(data), len(frame))
				}
				res.gateway = append(res.gateway, d)
			} else {
				d, _, err := connect(bare.url)
				if err != nil {
					return res, fmt.Errorf("baseline: %w", err)
				}
				res.baseline = append(res.baseline, d)
			}
		}
	}
	slices.Sort(res.gateway)
	slices.Sort(res.baseline)
	return res, nil
}

// projected waits until the ChatLog holds every event of the rooms, so
// that connects meet a steady server.
func projected(ctx context.Context, pool *pgxpool.Pool, rooms []int64) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		var behind int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::bigint[]) AS u(id)
			WHERE coalesce((SELECT last_version FROM rooms WHERE id = u.id), -1)
			    < (SELECT max(version) FROM events WHERE stream = 'room-' || u.id)`, rooms).Scan(&behind)
		if err != nil {
			return fmt.Errorf("wait for the ChatLog: %w", err)
		}
		if behind == 0 {
			return nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("wait for the ChatLog: %d rooms behind: %w", behind, err)
		}
	}
}

// memResult is one side of the memory figure, per connection.
type memResult struct {
	name                    string
	heap, stack, goroutines float64
}

type memResults struct{ gateway, baseline memResult }

// benchMemory opens c.conns idle sockets from a child process, first to
// chatd (connsPerUser sockets per user, each user to their own room), then
// to a bare upgrader, and reports how much the server process grew per
// socket.
func (e *streamEnv) benchMemory(ctx context.Context, c connectConfig, chatd *chatdProc) (memResults, error) {
	exe, err := os.Executable()
	if err != nil {
		return memResults{}, fmt.Errorf("find the benchmark's binary to run the clients: %w", err)
	}
	dir, err := os.MkdirTemp("", "parley-bench-")
	if err != nil {
		return memResults{}, err
	}
	defer os.RemoveAll(dir)

	users := (c.conns + connsPerUser - 1) / connsPerUser
	e.logf("connect: creating %d rooms", users)
	targets := make([]string, users)
	ids := make([]int64, users)
	err = parallel(users, 8, func(i int) error {
		user := fmt.Sprintf("idle-%d", i)
		tok, err := e.token(user)
		if err != nil {
			return err
		}
		cl, err := createRoom(ctx, chatd, e.model, "idle", i, user, tok)
		if err != nil {
			return err
		}
		cl.close()
		ids[i] = cl.id
		targets[i] = "ws" + strings.TrimPrefix(chatd.base, "http") + "/ws/chat/" + strconv.FormatInt(cl.id, 10) + "/\t" + tok
		return nil
	})
	if err != nil {
		return memResults{}, err
	}
	if err := projected(ctx, chatd.db.pool, ids); err != nil {
		return memResults{}, err
	}
	gwTargets := filepath.Join(dir, "gateway")
	if err := os.WriteFile(gwTargets, []byte(strings.Join(targets, "\n")), 0o600); err != nil {
		return memResults{}, err
	}
	var res memResults
	e.logf("connect: %d connections to chatd", c.conns)
	if res.gateway, err = measureConns(ctx, exe, gwTargets, c.conns, chatd.memSnap); err != nil {
		return res, fmt.Errorf("chatd: %w", err)
	}
	res.gateway.name = "chatd"

	bare, err := newBareServer([]byte(`{"type":"history","messages":[],"version":0}`))
	if err != nil {
		return res, err
	}
	defer bare.stop()
	bareTargets := filepath.Join(dir, "baseline")
	if err := os.WriteFile(bareTargets, []byte(bare.url+"\t"), 0o600); err != nil {
		return res, err
	}
	e.logf("connect: %d connections to the bare upgrader", c.conns)
	if res.baseline, err = measureConns(ctx, exe, bareTargets, c.conns, func(context.Context) (memSnap, error) { return snapshot(), nil }); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	res.baseline.name = "baseline (bare upgrader, 1 reader)"
	return res, nil
}
