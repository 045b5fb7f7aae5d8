// Command parley-chaos is Parley's fault suite (make chaos): it runs chatd
// as a real process against its own private PostgreSQL and Redis, has
// resuming clients chat in many rooms, does to the dependencies and to
// chatd what production does — kill -9 of chatd, PostgreSQL stopped or
// crashed mid-stream, Redis paused, flushed or restarted empty — and
// prints one table: for each fault, the messages acknowledged, lost and
// stored twice, the answers left open, the rooms stuck busy, the chatd
// restarts the fault made necessary, and whether a resuming client ended
// with a conversation that silently differs from the log. It never
// touches the shared servers.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cli.Report(os.Stderr, "parley-chaos", err)
	os.Exit(cli.ExitCode(err))
}

const usage = `usage: parley-chaos --chatd PATH [flags]

Runs chatd (the binary at PATH) against a private PostgreSQL 15 and Redis
it starts on free ports in a temporary directory, injects each fault while
answers stream in many rooms, and prints a table. Exit status 1 when any
loss, duplicate, open answer, stuck room, needed restart or silently wrong
conversation is found; 2 for a usage error.
`

// config is parley-chaos's configuration.
type config struct {
	chatd string        // the chatd binary
	rooms int           // rooms (each with its own user and client) per fault
	kills int           // kill -9s of chatd in the kill scenario
	down  time.Duration // how long PostgreSQL stays stopped, Redis paused
	keep  bool          // keep the temporary directory (logs) at the end
	only  string        // run only the faults whose name contains it
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("parley-chaos")
	var cfg config
	fs.StringVar(&cfg.chatd, "chatd", "", "the chatd binary to run (make chaos builds bin/chatd)")
	fs.IntVar(&cfg.rooms, "rooms", 10, "rooms chatting during each fault, one client and user each")
	fs.IntVar(&cfg.kills, "kills", 5, "kill -9s of chatd, each mid-stream")
	fs.DurationVar(&cfg.down, "down", 10*time.Second, "how long PostgreSQL stays stopped and Redis paused")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the working directory (chatd's and the servers' logs)")
	fs.StringVar(&cfg.only, "only", "", "run only the faults whose name contains this text (say PostgreSQL)")
	if err := cli.Parse(fs, args, "parley-chaos", usage, stdout); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("unexpected argument %q (parley-chaos takes only flags; see parley-chaos --help)", fs.Arg(0))
	case cfg.chatd == "":
		return cli.Usagef("--chatd is required: the chatd binary to run (go build -o bin/chatd ./cmd/chatd)")
	case cfg.rooms < 1 || cfg.kills < 1 || cfg.down <= 0:
		return cli.Usagef("--rooms and --kills must be positive, --down a positive duration")
	}
	if _, err := os.Stat(cfg.chatd); err != nil {
		return fmt.Errorf("-chatd %s: %w", cfg.chatd, err)
	}

	start := time.Now()
	fmt.Fprintln(stderr, "parley-chaos: starting a private PostgreSQL and Redis, and chatd")
	cl, err := startCluster(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	failed := true // until the table is clean: keep the logs
	defer func() { cl.close(cfg.keep || failed) }()

	var rows []row
	for _, sc := range scenarios(cfg) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !strings.Contains(sc.name, cfg.only) {
			continue
		}
		fmt.Fprintf(stderr, "parley-chaos: %s …\n", sc.name)
		r, err := runScenario(ctx, cl, cfg, sc, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		rows = append(rows, r)
		fmt.Fprintf(stderr, "parley-chaos: %s: done in %s\n", sc.name, r.took.Round(time.Second))
	}
	printTable(stdout, rows, cfg)
	fmt.Fprintf(stdout, "\n%d rooms per fault, %d kill -9s, PostgreSQL down and Redis paused %s each; %s in all.\n",
		cfg.rooms, cfg.kills, cfg.down, time.Since(start).Round(time.Second))
	for _, r := range rows {
		if !r.clean() {
			return errors.New("a fault left damage (see the table)")
		}
	}
	failed = false
	return nil
}
