package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets of the stream benchmark (issue 15).
const (
	targetP99        = 25 * time.Millisecond // 200 × 10 tok/s
	targetOverhead   = 100 * time.Millisecond
	targetCPUPerTok  = 0.35 // ms, chatd + PostgreSQL + Redis
	sweepBar         = 50 * time.Millisecond
	targetSweepRate  = 10000 // tok/s with p99 < sweepBar, nothing lost
	statementsToShow = 8
)

// benchStream measures the path users run: chatd's own wiring in a child
// process, answering through langchaingo's OpenAI client from the model
// server over HTTP, with retrieval over the sample corpus, projections and
// memory on; R clients over WebSocket. Beside it, in the same run and
// interleaved, the same chatd over the in-memory store (relay-only).
func benchStream(ctx context.Context, cfg config, out io.Writer) error {
	c := cfg.stream
	most := c.rooms
	if len(c.sweep) > 0 {
		most = max(most, c.sweep[len(c.sweep)-1])
	}
	if err := raiseFileLimit(uint64(2*most + 1024)); err != nil {
		return err
	}
	load := loadAverage()
	env, err := newStreamEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.close()
	var sides []*side
	for _, name := range []string{sidePersisted, sidePlaintext, sideRelay} {
		s, err := env.openSide(ctx, name, most)
		if err != nil {
			return err
		}
		defer s.close()
		sides = append(sides, s)
	}
	settings, err := env.settings(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== stream: the path users run (load average at start: %s)\n", load)
	fmt.Fprintf(out, "   chatd: a child process built by chatd's own wiring (cmd/internal/stack) on its defaults: Postgres event store with\n")
	fmt.Fprintf(out, "   PARLEY_CHUNK_COMMIT=async, audit chain, ChatLog and Redis memory projections, summaries, retrieval over the sample corpus\n")
	fmt.Fprintf(out, "   (%d chunks; %s); PARLEY_LLM_PROVIDER=openai pointed at this process's model server\n", env.chunks, env.retrieval)
	fmt.Fprintf(out, "   (SSE chat completions; answers of %d tokens of 3–6 characters, first token %s after the request, then paced).\n", c.tokens, c.ttft)
	fmt.Fprintf(out, "   plaintext: the same chatd with the encryption of conversation text off, on a database of its own (each side's chatd follows only its own log).\n")
	fmt.Fprintf(out, "   relay: the same chatd over the in-memory store, projections off (nothing durable). Clients: one WebSocket per room,\n")
	fmt.Fprintf(out, "   ask → read the streamed answer → ask again. Latency = client receive − model emit, every token. Redis: a private server.\n")
	fmt.Fprintf(out, "   PostgreSQL: %s\n", settings)

	// 1. The main figure.
	fmt.Fprintf(out, "\n   (1) %d rooms × %g tok/s = %.0f tok/s; median of %d rounds of %s per side, interleaved\n\n", c.rooms, c.rate, float64(c.rooms)*c.rate, cfg.rounds, c.window)
	env.resetStatements(ctx)
	main := map[string][]roundResult{}
	for r := range cfg.rounds {
		for k := range sides {
			s := sides[(k+r)%len(sides)]
			prof := ""
			if c.profile != "" && r == 0 {
				prof = profilePath(c.profile, s.name)
			}
			env.logf("stream: round %d/%d, %s, %d rooms × %g tok/s", r+1, cfg.rounds, s.name, c.rooms, c.rate)
			res, err := env.round(ctx, s, c.rooms, c.rate, c.window, c.tokens, c.ttft, prof)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", s.name, r+1, err)
			}
			env.logf("stream: %s", res.summary())
			main[s.name] = append(main[s.name], res)
		}
	}
	stmts := env.statements(ctx, statementsToShow)
	defer func() {
		fmt.Fprintf(out, "   the model served %d answers, %d query rewrites and %d summaries (and %d requests it did not expect)\n",
			env.model.answers.Load(), env.model.rewrites.Load(), env.model.summaries.Load(), env.model.unknown.Load())
	}()
	if err := printMain(out, main[sidePersisted], main[sideRelay]); err != nil {
		return err
	}
	if err := printEncryption(out, main[sidePersisted], main[sidePlaintext]); err != nil {
		return err
	}
	printStatements(out, stmts)
	if c.profile != "" {
		fmt.Fprintf(out, "   chatd's CPU profiles of the first round: %s, %s (go tool pprof -top <file>)\n", profilePath(c.profile, sidePersisted), profilePath(c.profile, sideRelay))
	}

	defer func() {
		for _, s := range sides {
			fmt.Fprintf(out, "   chatd (%s) logged these warnings and errors: %s\n", s.name, s.chatd.logSummary())
		}
	}()

	// 2. The sweep.
	if len(c.sweep) == 0 {
		return nil
	}
	fmt.Fprintf(out, "\n   (2) sweep at %g tok/s per room, one round of %s per point and side, up to the first failing point (p99 ≥ %s or anything lost)\n\n", c.sweepRate, c.sweepWindow, sweepBar)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rooms\ttok/s\tside\tdelivered/emitted\tp50\tp99\tmax\tlost/dup/reord\tfailed\tCPU ms/tok\tchatd cores\tPG cores\tdeltas/append\tverdict\t")
	best := map[string]float64{}
	for _, n := range c.sweep {
		for _, s := range sides {
			if s.failed || s.name == sidePlaintext {
				continue // the encryption's cost is the main figure's
			}
			env.logf("stream: sweep, %s, %d rooms × %g tok/s", s.name, n, c.sweepRate)
			res, err := env.round(ctx, s, n, c.sweepRate, c.sweepWindow, c.tokens, c.ttft, "")
			if err != nil {
				return fmt.Errorf("%s sweep at %d rooms: %w", s.name, n, err)
			}
			env.logf("stream: %s", res.summary())
			ok := res.healthy(sweepBar)
			v := "healthy"
			if !ok {
				s.failed, v = true, "FAILS"
				if res.clientErr != nil {
					v += ": " + truncate(res.clientErr.Error(), 60)
				}
			} else {
				best[s.name] = float64(n) * c.sweepRate
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%s\t%d/%d\t%s\t%s\t%s\t%d/%d/%d\t%d\t%.3f\t%.2f\t%.2f\t%.2f\t%s\t\n", n, float64(n)*c.sweepRate, s.name,
				res.delivered, res.emitted, pct(res.lat, 50), pct(res.lat, 99), pctMax(res.lat), res.lost, res.dups, res.reordered, res.failed,
				res.cpuPerToken(), cores(res.use.chatd, res.use.wall), cores(res.use.pgBackends+res.use.pgShared, res.use.wall), res.chunks.perAppend(), v)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "   highest healthy rate: persisted %.0f tok/s, relay %.0f tok/s (persisted/relay %.2f); target ≥ %d tok/s (%s)\n\n",
		best[sidePersisted], best[sideRelay], ratio(best[sidePersisted], best[sideRelay]), targetSweepRate, verdict(best[sidePersisted] >= targetSweepRate))
	return nil
}

// summary is a round's progress line.
func (r roundResult) summary() string {
	s := fmt.Sprintf("%s: %d/%d tokens delivered, p50 %s p99 %s max %s, lost %d dup %d reordered %d, %d answers (%d failed), CPU %.3f ms/token",
		r.side, r.delivered, r.emitted, pct(r.lat, 50), pct(r.lat, 99), pctMax(r.lat), r.lost, r.dups, r.reordered, r.answers, r.failed, r.cpuPerToken())
	if r.clientErr != nil {
		s += "; a client failed: " + r.clientErr.Error()
	}
	return s
}

// cpuPerToken is chatd's, PostgreSQL's and Redis's CPU time per delivered
// token, in milliseconds.
func (r roundResult) cpuPerToken() float64 {
	return perToken(r.use.chatd+r.use.pgBackends+r.use.pgShared+r.use.redis, r.delivered)
}

func perToken(d time.Duration, tokens int) float64 {
	if tokens == 0 {
		return 0
	}
	return float64(d) / float64(time.Millisecond) / float64(tokens)
}

func cores(d, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(d) / float64(wall)
}

func (c chunkStats) perAppend() float64 {
	if c.appends == 0 {
		return 0
	}
	return float64(c.deltas) / float64(c.appends)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// med is the median over rounds of f.
func med(rs []roundResult, f func(roundResult) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

func qms(p int) func(roundResult) float64 {
	return func(r roundResult) float64 { return msf(quantile(r.lat, p)) }
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pctMax(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return "-"
	}
	return ms(sorted[len(sorted)-1])
}

// printMain prints the main figure: medians of the rounds of each side.
func printMain(out io.Writer, p, r []roundResult) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(roundResult) float64, format string, withRatio bool) {
		a, b := med(p, f), med(r, f)
		rt := ""
		if withRatio {
			rt = fmt.Sprintf("%.2f", ratio(a, b))
		}
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%s\t\n", name, a, b, rt)
	}
	fmt.Fprintln(tw, "(medians of rounds)\tpersisted\trelay\tpersisted/relay\t")
	row("token latency p50 (ms)", qms(50), "%.1f", true)
	row("token latency p99 (ms)", qms(99), "%.1f", true)
	row("token latency max (ms)", qms(100), "%.1f", true)
	row("tokens emitted per s", func(x roundResult) float64 { return float64(x.emitted) / x.window.Seconds() }, "%.0f", true)
	row("tokens delivered per s", func(x roundResult) float64 { return float64(x.delivered) / x.window.Seconds() }, "%.0f", true)
	row("answers per round (failed; without sources)", func(x roundResult) float64 { return float64(x.answers) }, "%.0f", false)
	row("question → first chunk p50 (ms)", func(x roundResult) float64 { return msf(quantile(x.firstChunk, 50)) }, "%.1f", true)
	row("question → first chunk p99 (ms)", func(x roundResult) float64 { return msf(quantile(x.firstChunk, 99)) }, "%.1f", true)
	row("  the model's own first token p50 (ms)", func(x roundResult) float64 { return msf(quantile(x.modelFirst, 50)) }, "%.1f", false)
	row("  question → model request p99 (ms)", func(x roundResult) float64 { return msf(quantile(x.beforeModel, 99)) }, "%.1f", true)
	row("  first chunk beyond the model's first token p99 (ms)", func(x roundResult) float64 { return msf(quantile(x.overhead, 99)) }, "%.1f", true)
	row("CPU ms per delivered token: chatd", func(x roundResult) float64 { return perToken(x.use.chatd, x.delivered) }, "%.3f", true)
	row("  PostgreSQL backends", func(x roundResult) float64 { return perToken(x.use.pgBackends, x.delivered) }, "%.3f", false)
	row("  PostgreSQL shared (WAL writer, bgwriter, checkpointer)", func(x roundResult) float64 { return perToken(x.use.pgShared, x.delivered) }, "%.3f", false)
	row("  Redis", func(x roundResult) float64 { return perToken(x.use.redis, x.delivered) }, "%.3f", false)
	row("  chatd + PostgreSQL + Redis", roundResult.cpuPerToken, "%.3f", true)
	row("cores: chatd", func(x roundResult) float64 { return cores(x.use.chatd, x.use.wall) }, "%.2f", true)
	row("  PostgreSQL (backends + shared)", func(x roundResult) float64 { return cores(x.use.pgBackends+x.use.pgShared, x.use.wall) }, "%.2f", false)
	row("  Redis", func(x roundResult) float64 { return cores(x.use.redis, x.use.wall) }, "%.2f", false)
	row("  this process (clients, model)", func(x roundResult) float64 { return cores(x.use.bench, x.use.wall) }, "%.2f", false)
	row("  the machine (all processes)", func(x roundResult) float64 { return cores(x.use.machine, x.use.wall) }, "%.2f", false)
	row("PostgreSQL commits per s", func(x roundResult) float64 { return float64(x.use.commits) / x.use.wall.Seconds() }, "%.0f", false)
	for _, k := range []string{"append", "log read", "exact bound", "stream read", "chatlog", "notify", "other"} {
		row("active backends: "+k, func(x roundResult) float64 { return x.use.active[k] }, "%.2f", false)
	}
	row("chunk events per delivered token", func(x roundResult) float64 { return ratio(float64(x.chunks.events), float64(x.delivered)) }, "%.2f", false)
	row("deltas per chunk append", func(x roundResult) float64 { return x.chunks.perAppend() }, "%.2f", false)
	row("appends per statement (chunk appends)", func(x roundResult) float64 { return ratio(float64(x.chunks.appends), float64(x.chunks.statements)) }, "%.2f", false)
	if err := tw.Flush(); err != nil {
		return err
	}
	var bad, answers, failed, notices int
	for _, x := range slices.Concat(p, r) {
		bad += x.lost + x.dups + x.reordered + x.corrupt
		answers, failed, notices = answers+x.answers, failed+x.failed, notices+x.notices
	}
	waits := map[string]float64{}
	for _, x := range p {
		for k, v := range x.use.waits {
			waits[k] += v / float64(len(p))
		}
	}
	fmt.Fprintf(out, "   tokens lost, duplicated, reordered or corrupted, all rounds and sides: %d; answers %d, failed %d, without sources %d\n", bad, answers, failed, notices)
	fmt.Fprintf(out, "   persisted backends by wait (mean active): %s\n", topWaits(waits, 6))
	lost := 0
	for _, x := range p {
		lost += x.emitted - x.delivered
	}
	p99 := time.Duration(med(p, qms(99)) * float64(time.Millisecond))
	over := time.Duration(med(p, func(x roundResult) float64 { return msf(quantile(x.overhead, 99)) }) * float64(time.Millisecond))
	cpu := med(p, roundResult.cpuPerToken)
	fmt.Fprintf(out, "   targets (persisted): every emitted token delivered (%s); p99 ≤ %s: %s (%s); first chunk p99 beyond the model's first token ≤ %s: %s (%s); CPU ≤ %.2f ms/token: %.3f (%s)\n",
		verdict(lost == 0 && bad == 0), targetP99, ms(p99), verdict(p99 <= targetP99), targetOverhead, ms(over), verdict(over <= targetOverhead),
		targetCPUPerTok, cpu, verdict(cpu <= targetCPUPerTok))
	return nil
}

func topWaits(w map[string]float64, n int) string {
	keys := slices.SortedFunc(maps.Keys(w), func(a, b string) int {
		switch {
		case w[a] > w[b]:
			return -1
		case w[a] < w[b]:
			return 1
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys[:min(n, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, w[k]))
	}
	return strings.Join(parts, ", ")
}

func printStatements(out io.Writer, stmts []statementStat) {
	if len(stmts) == 0 {
		return
	}
	fmt.Fprintf(out, "\n   PostgreSQL's busiest statements over the persisted rounds (pg_stat_statements, by total time):\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   total\tcalls\tmean\trows/call\tstatement")
	for _, s := range stmts {
		fmt.Fprintf(tw, "   %.2fs\t%d\t%s\t%.1f\t%s\n", s.total.Seconds(), s.calls, ms(s.per), s.rows, truncate(s.query, 90))
	}
	_ = tw.Flush()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// loadAverage is /proc/loadavg's first three figures.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// printEncryption prints what the encryption of conversation text costs:
// the medians of the rounds of chatd as it runs beside the same chatd with
// encryption off, measured in the same run, interleaved.
func printEncryption(out io.Writer, sealed, plain []roundResult) error {
	fmt.Fprintf(out, "\n   encryption of conversation text (per-room AES-256-GCM, domain/privacy): on (persisted) and off (plaintext)\n\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "(medians of rounds)\tencryption on\tencryption off\ton/off\t")
	row := func(name string, f func(roundResult) float64, format string) {
		a, b := med(sealed, f), med(plain, f)
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%.2f\t\n", name, a, b, ratio(a, b))
	}
	row("chunk (token) latency p50 (ms)", qms(50), "%.1f")
	row("chunk (token) latency p99 (ms)", qms(99), "%.1f")
	row("tokens delivered per s", func(x roundResult) float64 { return float64(x.delivered) / x.window.Seconds() }, "%.0f")
	row("chunk events per s", func(x roundResult) float64 { return float64(x.chunks.events) / x.window.Seconds() }, "%.0f")
	row("question → first chunk p99 (ms)", func(x roundResult) float64 { return msf(quantile(x.firstChunk, 99)) }, "%.1f")
	row("CPU ms per delivered token: chatd", func(x roundResult) float64 { return perToken(x.use.chatd, x.delivered) }, "%.3f")
	row("  chatd + PostgreSQL + Redis", roundResult.cpuPerToken, "%.3f")
	return tw.Flush()
}
