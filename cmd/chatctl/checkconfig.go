package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/parleychat/parley/cmd/internal/chatdenv"
	"github.com/parleychat/parley/cmd/internal/cli"
)

const checkconfigUsage = `usage: chatctl checkconfig

Checks chatd's configuration, the PARLEY_* variables of this environment,
as chatd reads them at start (cmd/internal/chatdenv), without starting it
or connecting to anything. Prints the settings chatd would use, without
its secrets, and exits 0; or lists every problem, one a line, and exits 1.
`

// runCheckConfig implements `chatctl checkconfig`.
func runCheckConfig(_ context.Context, e runEnv, args []string) error {
	fs := cli.NewFlagSet("checkconfig")
	if err := cli.Parse(fs, args, "chatctl checkconfig", checkconfigUsage, e.stdout); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("checkconfig takes no arguments (got %q); it reads the environment", fs.Args())
	}
	cfg, problems := chatdenv.FromEnv(e.getenv)
	problems = append(problems, cfg.Check()...)
	if err := chatdenv.Invalid(problems); err != nil {
		return fmt.Errorf("chatd would not start: %w", err)
	}
	fmt.Fprintln(e.stdout, "chatd's configuration is valid:")
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, a := range cfg.LogValue().Group() {
		fmt.Fprintf(tw, "  %s\t%v\n", a.Key, a.Value)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if cfg.DevSecret {
		fmt.Fprintln(e.stderr, "warning: PARLEY_JWT_SECRET is not set: chatd would sign and accept tokens with the public development secret; set it (32+ bytes) or PARLEY_JWKS_URL outside development")
	}
	return nil
}
