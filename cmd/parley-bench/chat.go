package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/adapters/offline"
	"github.com/parleychat/parley/adapters/wsapi"
)

// chatConfig holds the chat benchmark's flags.
type chatConfig struct {
	rooms    int           // rooms streaming at once, one client each
	rate     float64       // generator tokens per second in each room
	duration time.Duration // measured streaming time per side
	conns    int           // idle connections of the memory figure
	dials    int           // connects per side of the history latency
	commit   string        // how answer chunks are committed: async or sync, as chatd's PARLEY_CHUNK_COMMIT
	progress io.Writer     // where progress lines go (stderr)
}

func (c *chatConfig) register(fs *flag.FlagSet) {
	fs.IntVar(&c.rooms, "rooms", 200, "chat: rooms streaming answers at once, one WebSocket client each")
	fs.Float64Var(&c.rate, "rate", 50, "chat: generator tokens per second in each room")
	fs.DurationVar(&c.duration, "chat-duration", 10*time.Second, "chat: measured streaming time per side, split into -rounds interleaved rounds after a warm-up")
	fs.IntVar(&c.conns, "conns", 5000, "chat: idle connections of the memory-per-connection figure")
	fs.IntVar(&c.dials, "dials", 200, "chat: connects per side of the connect-to-history latency")
	fs.StringVar(&c.commit, "chunk-commit", "async", "chat: how answer chunks are committed, async or sync (chatd's PARLEY_CHUNK_COMMIT)")
}

func (c chatConfig) validate() error {
	var errs []error
	if c.commit != "async" && c.commit != "sync" {
		errs = append(errs, fmt.Errorf("-chunk-commit %q: want async or sync", c.commit))
	}
	if c.rooms < 1 {
		errs = append(errs, fmt.Errorf("-rooms %d: need at least 1", c.rooms))
	}
	if !(c.rate > 0 && c.rate <= 10000) {
		errs = append(errs, fmt.Errorf("-rate %v: need tokens per second in (0, 10000]", c.rate))
	}
	if c.duration <= 0 {
		errs = append(errs, fmt.Errorf("-chat-duration %s: must be positive", c.duration))
	}
	if c.conns < 1 {
		errs = append(errs, fmt.Errorf("-conns %d: need at least 1", c.conns))
	}
	if c.dials < 1 {
		errs = append(errs, fmt.Errorf("-dials %d: need at least 1", c.dials))
	}
	return errors.Join(errs...)
}

// The chat benchmark's fixed shape.
const (
	// connsPerUser is how many idle sockets each user of the memory figure
	// opens (to their own room), well below the gateway's per-user cap.
	connsPerUser = 5
	// historyTurns is the questions (and answers) of the history room.
	historyTurns = 100
	// benchQuestion is what every client asks.
	benchQuestion = "How much is the youth housing allowance, and who can get it?"
)

// benchAnswer is the scripted answer: 163 tokens, a realistic reply.
const benchAnswer = "The youth housing allowance pays up to 200,000 won a month towards rent for up to twelve months. " +
	"You can apply if you are between 19 and 34, live apart from your parents, rent a home with a deposit of at most " +
	"50 million won and a monthly rent of at most 600,000 won, and your own household income is at most 60% of the " +
	"median income while your parents' household income is at most 100% of it. Apply online at Bokjiro or at the " +
	"community service centre of your neighbourhood with your lease, proof of income and a bank account in your name. " +
	"The allowance is paid on the 25th of each month, and it stops when you move in with your parents again or when " +
	"your income rises above the limit, so report such changes within a month."

// benchChat measures the chat gateway over real loopback WebSockets:
// chunk latency and throughput with the Postgres store beside an in-memory
// relay, connect-to-history latency beside a bare upgrader sending a frame
// of the same size, and server memory per idle connection beside a bare
// upgrader holding each socket with one reader.
func benchChat(ctx context.Context, cfg config, out io.Writer) error {
	c := cfg.chat
	if err := raiseFileLimit(uint64(c.conns + 4*c.rooms + 512)); err != nil {
		return err
	}
	env, err := newChatEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.close()
	scripted, err := offline.NewScripted(offline.ScriptedConfig{Text: benchAnswer, Rate: c.rate})
	if err != nil {
		return err
	}
	gen := stamped{inner: scripted, epoch: env.epoch}
	// chatd's configuration: history from the ChatLog read model, then the
	// stream's tail.
	persisted, err := env.newStack(ctx, "persisted", env.pg, wsapi.ProjectedHistory{Base: env.chatlog.History, Stream: env.pg}, gen)
	if err != nil {
		return err
	}
	// Persistence switched off: the same service and gateway over an
	// in-memory store, which writes nothing durable.
	relay, err := env.newStack(ctx, "relay", env.mem, wsapi.ProjectedHistory{Stream: env.mem}, gen)
	if err != nil {
		return err
	}

	var settings []string
	for _, name := range []string{"server_version", "fsync", "synchronous_commit"} {
		var v string
		if err := env.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return err
		}
		settings = append(settings, name+"="+v)
	}
	commit := "answer chunks committed with synchronous_commit=off, everything else synchronously (chatd's default, PARLEY_CHUNK_COMMIT=async)"
	if c.commit == "sync" {
		commit = "every append committed synchronously (PARLEY_CHUNK_COMMIT=sync)"
	}
	fmt.Fprintf(out, "\n== chat over WebSocket (loopback, gorilla/websocket, jwtauth HS256; Postgres: %s)\n   persisted: hash-chained appends, %s\n", strings.Join(settings, ", "), commit)

	// 1. Streaming.
	fmt.Fprintf(out, "   (1) %d rooms streaming %d-token answers at %g tokens/s, one client each; %d rounds of %s per side, interleaved, after a warm-up\n\n",
		c.rooms, len(offline.SplitTokens(benchAnswer)), c.rate, cfg.rounds, (c.duration / time.Duration(cfg.rounds)).Round(time.Millisecond))
	st, err := benchStreaming(ctx, env, c, cfg.rounds, persisted, relay)
	if err != nil {
		return fmt.Errorf("streaming: %w", err)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\tchunks/s\tanswers\temit→recv p50\tp99\tappend p50\tp99\tevents/append\tappends/statement\tappend→subscription p50\tp99\tSELECT 1 p50\tp99\tCPU machine\tthis process\t")
	for _, r := range []streamResult{st.persisted, st.relay} {
		perStmt := "-"
		if r.perStatement > 0 {
			perStmt = fmt.Sprintf("%.1f", r.perStatement)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%d\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t\n", r.name, r.rate, r.answers, pct(r.lat, 50), pct(r.lat, 99),
			pct(r.appends, 50), pct(r.appends, 99), r.eventsPerAppend, perStmt, pct(r.toSubscription, 50), pct(r.toSubscription, 99),
			pct(r.ping, 50), pct(r.ping, 99), r.busy, r.self)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "   persisted: Postgres event store, ChatLog projection following (as chatd); relay: in-memory store, nothing durable.")
	fmt.Fprintln(out, "   emit→recv: generator emit to client read; append: the Service's appends as it times them, through the hub's tap, so they include")
	fmt.Fprintln(out, "   the tap's hand-off of chunks to this process's sockets (and, persisted, the hash chain); append→subscription: append start (RecordedAt)")
	fmt.Fprintln(out, "   to the hub's log subscription handing the event over, which chunks do not wait for (they reach sockets through the tap)")
	fmt.Fprintln(out, "   SELECT 1: a bare round trip to Postgres every 5 ms during the rounds, the floor under any append; CPU: cores in use (median of rounds)")
	diff := quantile(st.persisted.lat, 99) - quantile(st.relay.lat, 99)
	fmt.Fprintf(out, "   persisted p99 − relay p99 = %s; target ≤ 5 ms (%s); chunks/s ratio persisted/relay %.2f\n",
		ms(diff), verdict(diff <= 5*time.Millisecond), st.persisted.rate/st.relay.rate)

	// 2. Connect to history.
	hr, err := benchHistory(ctx, env, c, persisted)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	fmt.Fprintf(out, "\n   (2) connect → history frame, room of %d messages (%d chunks), frame %d bytes (the newest %d messages); %d connects per side, alternating\n\n",
		2*historyTurns, hr.chunks, hr.frameBytes, min(2*historyTurns, wsapi.DefaultHistoryMessages), c.dials)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tp50\tp99\t")
	fmt.Fprintf(tw, "gateway (jwt, room check, ChatLog + stream tail)\t%s\t%s\t\n", pct(hr.gateway, 50), pct(hr.gateway, 99))
	fmt.Fprintf(tw, "baseline (upgrade, send a fixed frame)\t%s\t%s\t\n", pct(hr.baseline, 50), pct(hr.baseline, 99))
	if err := tw.Flush(); err != nil {
		return err
	}
	p50 := quantile(hr.gateway, 50)
	fmt.Fprintf(out, "   gateway p50 %s = %.2f× baseline; target p50 ≤ 5 ms (%s)\n",
		ms(p50), float64(p50)/float64(quantile(hr.baseline, 50)), verdict(p50 <= 5*time.Millisecond))

	// 3. Memory per idle connection.
	fmt.Fprintf(out, "\n   (3) server memory per idle connection, %d connections from a child process (after history), Go heap+stacks after GC\n\n", c.conns)
	mr, err := benchMemory(ctx, env, c, persisted)
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
	fmt.Fprintf(out, "   gateway %s = %.2f× baseline; target ≤ 32 KiB (%s)\n\n",
		kib(total), total/(mr.baseline.heap+mr.baseline.stack), verdict(total <= 32<<10))
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
