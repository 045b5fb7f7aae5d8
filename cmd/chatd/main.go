// Command chatd is Parley's chat server: the WebSocket endpoint
// /ws/chat/{room_id}/, the REST API, health checks and metrics, over the
// event log in Postgres. Its wiring lives in cmd/internal/stack.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/cmd/internal/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	cli.Report(os.Stderr, "chatd", err)
	os.Exit(cli.ExitCode(err))
}

// run starts chatd and serves until ctx ends, then shuts down gracefully.
// Logs go to stdout as JSON; help and the version too.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errVersion) {
		fmt.Fprintln(stdout, cli.Version("chatd"))
		return nil
	}
	if err != nil {
		return err
	}
	s, err := stack.New(ctx, cfg, cfg.Logger(stdout))
	if err != nil {
		return err
	}
	return s.Serve(ctx, nil)
}
