package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// scenario is one fault: inject does it to the cluster while the clients
// chat, and says what it did ("5 kill -9s").
type scenario struct {
	name   string
	inject func(ctx context.Context, c *cluster) (string, error)
}

// midStream waits until answers stream (they take a few seconds each).
func midStream(ctx context.Context) error { return sleepCtx(ctx, 1500*time.Millisecond) }

func scenarios(cfg config) []scenario {
	return []scenario{
		{"chatd kill -9 mid-stream", func(ctx context.Context, c *cluster) (string, error) {
			for i := range cfg.kills {
				if err := midStream(ctx); err != nil {
					return "", err
				}
				if err := c.kill(ctx); err != nil {
					return "", fmt.Errorf("kill %d: %w", i+1, err)
				}
			}
			return fmt.Sprintf("%d kill -9s", cfg.kills), nil
		}},
		{"PostgreSQL stopped (immediate), restarted", func(ctx context.Context, c *cluster) (string, error) {
			if err := midStream(ctx); err != nil {
				return "", err
			}
			if err := c.pg.Stop(ctx, "immediate"); err != nil {
				return "", err
			}
			if err := sleepCtx(ctx, cfg.down); err != nil {
				return "", err
			}
			return fmt.Sprintf("down %s", cfg.down), c.pg.Start(ctx)
		}},
		{"PostgreSQL crashed, async chunks in flight", func(ctx context.Context, c *cluster) (string, error) {
			if err := midStream(ctx); err != nil {
				return "", err
			}
			if err := c.pg.Crash(); err != nil {
				return "", err
			}
			if err := sleepCtx(ctx, 3*time.Second); err != nil {
				return "", err
			}
			return "SIGKILL, down 3s", c.pg.Start(ctx)
		}},
		{"Redis paused (SIGSTOP)", func(ctx context.Context, c *cluster) (string, error) {
			if err := midStream(ctx); err != nil {
				return "", err
			}
			if err := c.redis.Pause(); err != nil {
				return "", err
			}
			err := sleepCtx(ctx, cfg.down)
			if rerr := c.redis.Resume(); err == nil {
				err = rerr
			}
			return fmt.Sprintf("paused %s", cfg.down), err
		}},
		{"Redis flushed (FLUSHALL)", func(ctx context.Context, c *cluster) (string, error) {
			for range 2 {
				if err := midStream(ctx); err != nil {
					return "", err
				}
				if err := c.redis.Flush(ctx); err != nil {
					return "", err
				}
			}
			return "2 FLUSHALLs", nil
		}},
		{"Redis restarted empty", func(ctx context.Context, c *cluster) (string, error) {
			if err := midStream(ctx); err != nil {
				return "", err
			}
			c.redis.Stop()
			if err := sleepCtx(ctx, 2*time.Second); err != nil {
				return "", err
			}
			return "killed, back empty after 2s", c.redis.Restart(ctx)
		}},
	}
}

// row is one line of the table.
type row struct {
	name, done                                  string
	acked, lost, dup, open, stuck, needed, gone int
	rewritten                                   int // positions clients saw that the log no longer holds
	wrong                                       int // clients whose conversation differs from the log
	took                                        time.Duration
}

func (r row) clean() bool {
	return r.lost == 0 && r.dup == 0 && r.open == 0 && r.stuck == 0 && r.needed == 0 && r.wrong == 0
}

// runScenario has fresh rooms chat, injects the fault, lets everything
// settle, and checks the rooms against their logs.
func runScenario(ctx context.Context, cl *cluster, cfg config, sc scenario, stderr io.Writer) (row, error) {
	start := time.Now()
	r := row{name: sc.name}
	cl.restartsNeeded() // what came before is another scenario's
	tag := strings.NewReplacer(" ", "-", "(", "", ")", "", ",", "").Replace(strings.ToLower(sc.name))
	clients := make([]*client, cfg.rooms)
	for i := range clients {
		user := fmt.Sprintf("%s-%d", tag, i)
		id, err := createRoom(ctx, cl.base, user)
		if err != nil {
			return r, err
		}
		if clients[i], err = newClient(cl.base, user, id); err != nil {
			return r, err
		}
	}
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.run(cctx) })
	}
	defer func() { stop(); wg.Wait() }()

	var err error
	if r.done, err = sc.inject(ctx, cl); err != nil {
		return r, err
	}
	// Chat on a little after the fault, then stop asking and let every
	// answer end (retried, swept or recovered).
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return r, err
	}
	for _, c := range clients {
		c.quiesce()
	}
	settleBy := time.Now().Add(90 * time.Second)
	for _, c := range clients {
		for !c.settled() && time.Now().Before(settleBy) {
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return r, err
			}
		}
		if !c.settled() {
			fmt.Fprintf(stderr, "parley-chaos: %s: room %d still has a message or an answer in flight after 90s\n", sc.name, c.room)
		}
	}
	// Rooms stuck busy: one more question each must be answered.
	var pmu sync.Mutex
	var pwg sync.WaitGroup
	for _, c := range clients {
		pwg.Go(func() {
			status, err := c.probe(ctx, 60*time.Second)
			if err != nil || status == "busy" {
				pmu.Lock()
				r.stuck++
				pmu.Unlock()
				fmt.Fprintf(stderr, "parley-chaos: %s: room %d did not take a question: %s %v\n", sc.name, c.room, status, err)
			}
		})
	}
	pwg.Wait()
	r.needed = cl.restartsNeeded()

	// The log against what each client acknowledged and holds.
	for _, c := range clients {
		var t *truth
		var version int64
		var msgs []message
		var acked map[string]bool
		var seen map[int64]string
		var gone int
		for deadline := time.Now().Add(20 * time.Second); ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
			if t, err = cl.truth(ctx, c.room); err != nil {
				return r, err
			}
			version, msgs, acked, seen, gone = c.snapshot()
			// Some events have no frame (summaries): the client's version
			// may stay below the log's; the conversation must not.
			if sameConversation(msgs, t.messages()) || time.Now().After(deadline) {
				break
			}
		}
		r.acked += len(acked)
		r.gone += gone
		if held := c.goneHeld(t); len(held) > 0 {
			fmt.Fprintf(stderr, "parley-chaos: %s: room %d: resumes after versions %v got a history, though the log holds those positions\n", sc.name, c.room, held)
		}
		for cid := range acked {
			switch n := t.clientIDs[cid]; {
			case n == 0:
				r.lost++
			case n > 1:
				r.dup += n - 1
			}
		}
		if t.open {
			r.open++
		}
		for v, h := range seen {
			if th, ok := t.hashes[v]; !ok || (h != "" && th != h) {
				r.rewritten++
			}
		}
		if !sameConversation(msgs, t.messages()) {
			r.wrong++
			fmt.Fprintf(stderr, "parley-chaos: %s: room %d: the client holds %d messages at version %d, the log %d at version %d; %s\n",
				sc.name, c.room, len(msgs), version, len(t.history.Messages), t.version, firstDifference(msgs, t.messages()))
		}
	}
	r.took = time.Since(start)
	return r, nil
}

func printTable(w io.Writer, rows []row, cfg config) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "fault\tdone\tacknowledged\tlost\tduplicated\tanswers left open\trooms stuck busy\trestarts needed\tpositions rewritten\tresumes given history\tsilently wrong\t")
	for _, r := range rows {
		wrong := "never"
		if r.wrong > 0 {
			wrong = fmt.Sprintf("%d clients", r.wrong)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.name, r.done, r.acked, r.lost, r.dup, r.open, r.stuck, r.needed, r.rewritten, r.gone, wrong)
	}
	tw.Flush()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
