// Command chatd is Parley's chat server: the WebSocket endpoint
// /ws/chat/{room_id}/, the REST API, health checks and metrics, over the
// event log in Postgres. Its wiring lives in cmd/internal/stack.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleychat/parley/cmd/internal/stack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

// run starts chatd and serves until ctx ends, then shuts down gracefully.
// Logs go to stdout as JSON.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := stack.ParseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	s, err := stack.New(ctx, cfg, cfg.Logger(stdout))
	if err != nil {
		return err
	}
	return s.Serve(ctx, nil)
}
