// Command chatctl is Parley's operators' and users' CLI: schema
// migrations, development tokens, a terminal chat client, replay and
// export of conversations, audit of the hash chains, document ingestion,
// and running and rebuilding the projections (see usage).
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatctl:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status (1 is the default).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// parseFailure turns a failed parse of command's flags into its exit: none
// for --help, status 2 with a pointer to the help otherwise.
func parseFailure(command string, err error, stderr io.Writer) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "(see chatctl %s --help)\n", command)
	}
	return &exitError{code: 2, err: err}
}

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}

const usage = `usage: chatctl <command> [flags]

commands:
  migrate up        apply pending schema migrations
  migrate status    list migrations and whether they are applied
  token             mint an access token for a user (chatctl token --help)
  chat              talk to a room over the WebSocket (chatctl chat --help)
  replay            print a room's conversation as it happened, or as it stood at a moment (--help)
  export            export a room's or a user's rooms' full history, with sources and retrievals (--help)
  audit             verify rooms' hash chains, export signed chain heads (chatctl audit help)
  ingest <path>...  add or update documents in the retrieval index (ingest -h for more)
  projections       run, status, rebuild, drop-old (chatctl projections help)

Environment:
  PARLEY_DATABASE_URL   Postgres URL (default postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable)
`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: fmt.Errorf("no command given")}
	}
	switch args[0] {
	case "migrate":
		return runMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], getenv, stdout, stderr)
	case "chat":
		return runChat(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "replay":
		return runReplay(ctx, args[1:], getenv, stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		return runAudit(ctx, args[1:], getenv, stdout, stderr)
	case "ingest":
		return runIngest(ctx, args[1:], getenv, stdout, stderr)
	case "projections":
		return runProjections(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2, err: fmt.Errorf("unknown command %q", args[0])}
	}
}
