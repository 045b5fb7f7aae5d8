// Command chatctl is Parley's operators' and users' CLI: schema
// migrations, development tokens, a terminal chat client, replay and
// export of conversations, audit of the hash chains, document ingestion,
// running and rebuilding the projections, and checking chatd's
// configuration (see usage).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parleychat/parley/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	cli.Report(os.Stderr, "chatctl", err)
	os.Exit(cli.ExitCode(err))
}

// exitError is an error with chatctl's exit status for it (1 is the
// default): cli.ExitError, shared with chatd.
type exitError = cli.ExitError

func exitCode(err error) int { return cli.ExitCode(err) }

// runEnv is what every command gets of the process.
type runEnv struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one of chatctl's commands, or a group of them (subs).
type command struct {
	name    string
	args    string // the synopsis after the name
	summary string
	run     func(ctx context.Context, e runEnv, args []string) error
	subs    []command
	more    string // a group's help, after its commands
}

// commands are chatctl's commands, in the order help lists them.
func commands() []command {
	return []command{
		{name: "migrate", args: "up|status", summary: "apply or list the schema migrations", subs: migrateCommands()},
		{name: "token", args: "--user ID", summary: "mint an access token for a user", run: func(ctx context.Context, e runEnv, args []string) error {
			return runToken(ctx, args, e.getenv, e.stdout, e.stderr)
		}},
		{name: "chat", args: "(--room ID | --create TITLE)", summary: "talk to a room over the WebSocket", run: func(ctx context.Context, e runEnv, args []string) error {
			return runChat(ctx, args, e.getenv, e.stdin, e.stdout, e.stderr)
		}},
		{name: "replay", args: "--room N", summary: "print a room's conversation as it happened, or as it stood at a moment", run: func(ctx context.Context, e runEnv, args []string) error {
			return runReplay(ctx, args, e.getenv, e.stdout, e.stderr)
		}},
		{name: "export", args: "(--room N | --user ID)", summary: "export a room's or a user's rooms' full history, with sources and retrievals", run: func(ctx context.Context, e runEnv, args []string) error {
			return runExport(ctx, args, e.getenv, e.stdout, e.stderr)
		}},
		{name: "erase", args: "(--room N | --user ID) --reason TEXT", summary: "erase a room or a user's rooms for good (crypto-shredding)", run: runErase},
		{name: "keys", args: "rotate", summary: "rewrap the rooms' data keys with a new data key", subs: keysCommands()},
		{name: "audit", args: "verify|head|keygen", summary: "verify rooms' hash chains, export signed chain heads", subs: auditCommands(), more: auditHelp},
		{name: "ingest", args: "<path>...", summary: "add or update documents in the retrieval index", run: func(ctx context.Context, e runEnv, args []string) error {
			return runIngest(ctx, args, e.getenv, e.stdout, e.stderr)
		}},
		{name: "projections", args: "run|status|rebuild|drop-old", summary: "run, check, rebuild the read models", subs: projectionCommands(), more: projectionsHelp},
		{name: "checkconfig", summary: "check chatd's configuration (its PARLEY_* environment) without starting it", run: runCheckConfig},
		{name: "version", summary: "print chatctl's version", run: runVersion},
	}
}

const chatctlHelp = `Environment (every command that reads it says so in its help):
  PARLEY_DATABASE_URL   Postgres URL (default: the local development database)
  PARLEY_EVENT_STORE    postgres (default) or kurrentdb, as chatd's; with PARLEY_KURRENTDB_URL

Run "chatctl help <command>" or "chatctl <command> --help" for a command's flags.`

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := runEnv{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(ctx, e, args[1:])
	}
	return dispatch(ctx, e, "chatctl", commands(), chatctlHelp, args)
}

// dispatch runs the command of cmds that args name. "help [command...]",
// -h and --help print help on stdout; `help x` is `x --help`.
func dispatch(ctx context.Context, e runEnv, path string, cmds []command, more string, args []string) error {
	if len(args) == 0 {
		printCommands(e.stderr, path, cmds, more)
		return cli.Usagef("%s: say which command", path)
	}
	switch args[0] {
	case "help":
		if len(args) == 1 {
			printCommands(e.stdout, path, cmds, more)
			return nil
		}
		return dispatch(ctx, e, path, cmds, more, append(append([]string(nil), args[1:]...), "--help"))
	case "-h", "-help", "--help":
		printCommands(e.stdout, path, cmds, more)
		return nil
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		if c.subs != nil {
			return dispatch(ctx, e, path+" "+c.name, c.subs, c.more, args[1:])
		}
		return c.run(ctx, e, args[1:])
	}
	var names []string
	for _, c := range cmds {
		names = append(names, c.name)
	}
	return cli.Usagef("%s: unknown command %q (want %s; see %s --help)", path, args[0], strings.Join(names, ", "), path)
}

// printCommands writes a group's help.
func printCommands(w io.Writer, path string, cmds []command, more string) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", path)
	width := 0
	line := func(c command) string { return strings.TrimSpace(c.name + " " + c.args) }
	for _, c := range cmds {
		width = max(width, len(line(c)))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, line(c), c.summary)
	}
	if more != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(more, "\n"))
	}
}

// runVersion prints chatctl's version.
func runVersion(ctx context.Context, e runEnv, args []string) error {
	fs := cli.NewFlagSet("version")
	if err := cli.Parse(fs, args, "chatctl version", "usage: chatctl version\n\nPrints chatctl's version: the module's, the VCS revision it was built from and the Go version.", e.stdout); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("chatctl version takes no arguments (got %q)", fs.Args())
	}
	fmt.Fprintln(e.stdout, cli.Version("chatctl"))
	return nil
}

// helpOK turns the help that cli.Parse printed into success.
func helpOK(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
