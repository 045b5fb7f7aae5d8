// Package cli is what Parley's command lines share, so that chatd and
// chatctl behave like one program: help on standard output and exit
// status 0; a command line that cannot run reported once, on standard
// error, with exit status 2; flags shown as --flag; defaults that come
// from the environment shown as the variable's name, never its value (it
// may hold a password); and the version from the binary's build
// information.
//
// It is a thin layer over the standard flag package, which already
// parses both -flag and --flag, rather than a framework: each command
// keeps its own flag.FlagSet and usage text.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// ExitError is an error with the exit status its command ends with.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the error.
func (e *ExitError) Unwrap() error { return e.Err }

// Exit status of a command line that cannot run.
const ExitUsage = 2

// Usage wraps err as a command line that cannot run (exit status 2).
func Usage(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// Usagef is Usage of a formatted error.
func Usagef(format string, a ...any) error { return Usage(fmt.Errorf(format, a...)) }

// ExitCode is the exit status err asks for: 0 for nil and for
// flag.ErrHelp (help was asked for, and given), an ExitError's code, and
// 1 for any other error.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

// Report writes err once to w, as program's last word, with a pointer to
// help for usage errors; it writes nothing for nil or flag.ErrHelp.
func Report(w io.Writer, program string, err error) {
	if ExitCode(err) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %v\n", program, err)
	var ue *ExitError
	if errors.As(err, &ue) && ue.Code == ExitUsage && !strings.Contains(err.Error(), "--help") {
		fmt.Fprintf(w, "(run `%s --help` for usage)\n", program)
	}
}

// NewFlagSet returns a flag set that prints nothing itself: Parse reports
// its errors and prints its help.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// Parse parses args with fs. On -h or --help it writes usage and the
// flags to stdout and returns flag.ErrHelp (exit status 0); a flag it
// cannot parse is a usage error naming cmd's help.
func Parse(fs *flag.FlagSet, args []string, cmd, usage string, stdout io.Writer) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		PrintUsage(stdout, fs, usage)
		return flag.ErrHelp
	case err != nil:
		msg := dashes.ReplaceAllString(err.Error(), "$1--$2")
		if _, sub, ok := strings.Cut(cmd, " "); ok { // the program names itself when it reports
			msg = sub + ": " + msg
		}
		return Usagef("%s (see %s --help)", msg, cmd)
	}
	return nil
}

// dashes finds the flag package's "-name" in its errors, to say --name.
var dashes = regexp.MustCompile(`(: |flag |for )-([A-Za-z])`)

// ParseInterleaved is Parse for commands whose flags may come before,
// between or after their positional arguments; it returns the positional
// ones.
func ParseInterleaved(fs *flag.FlagSet, args []string, cmd, usage string, stdout io.Writer) ([]string, error) {
	var pos []string
	for {
		if err := Parse(fs, args, cmd, usage, stdout); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// PrintUsage writes usage, then fs's flags, to w.
func PrintUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, strings.TrimRight(usage, "\n")+"\n")
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprint(w, "\nflags:\n")
		PrintFlags(w, fs)
	}
}

// PrintFlags writes fs's flags to w, sorted, as --name, with their
// argument's name (a `quoted` word of the usage, or the flag's type) and
// default, unless the usage says its default itself. A default that comes
// from the environment is written into the usage that way, as the
// variable's name: flags never hold values read from the environment as
// their defaults, which may be secrets.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n        " + strings.ReplaceAll(usage, "\n", "\n        ")
		if !isZeroDefault(f) && !strings.Contains(usage, "(default ") {
			line += " (default " + f.DefValue + ")"
		}
		fmt.Fprintln(w, line)
	})
}

// isZeroDefault reports whether f's default is its type's zero value.
func isZeroDefault(f *flag.Flag) bool {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return true
	}
	return false
}
