package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/parleychat/parley/cmd/internal/chatdenv"
	"github.com/parleychat/parley/cmd/internal/cli"
)

// Config is chatd's configuration: see cmd/internal/chatdenv, which
// `chatctl checkconfig` shares.
type Config = chatdenv.Config

const chatdUsage = `usage: chatd [flags]

chatd serves Parley's chat WebSocket and REST API. Its configuration comes
from PARLEY_* variables (see README.md; ` + "`chatctl checkconfig`" + ` checks them
without starting chatd); flags override some of them.`

// errVersion is parseConfig's answer to --version: print it and stop.
var errVersion = fmt.Errorf("version asked for")

// parseConfig reads the environment, then the flags over it, and checks
// the result. -h prints the help to stdout (flag.ErrHelp), --version asks
// for the version (errVersion); a command line that cannot run is a usage
// error (exit status 2); every problem with the configuration is reported,
// one per line, in a single error.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (Config, error) {
	cfg, problems := chatdenv.FromEnv(getenv)
	fs := cli.NewFlagSet("chatd")
	addr := fs.String("addr", "", "listen `address` (default $PARLEY_HTTP_ADDR, else :8080)")
	database := fs.String("database", "", "Postgres `URL` (default $PARLEY_DATABASE_URL, else the local development database)")
	instance := fs.String("instance", "", "this process's `name` in the log; unique per replica (default $PARLEY_INSTANCE, else host:port)")
	projections := fs.Bool("projections", true, "run the ChatLog and memory projections in this process (default $PARLEY_PROJECTIONS, else true)")
	version := fs.Bool("version", false, "print chatd's version and exit")
	if err := cli.Parse(fs, args, "chatd", chatdUsage, stdout); err != nil {
		return Config{}, err
	}
	if *version {
		return Config{}, errVersion
	}
	if fs.NArg() > 0 {
		return Config{}, cli.Usagef("unexpected argument %q (chatd takes only flags; see chatd --help)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "addr":
			cfg.HTTPAddr = *addr
		case "database":
			cfg.DatabaseURL = *database
		case "instance":
			cfg.Instance = *instance
		case "projections":
			cfg.Projections = *projections
		}
	})
	problems = append(problems, cfg.Check()...)
	return cfg, chatdenv.Invalid(problems)
}
