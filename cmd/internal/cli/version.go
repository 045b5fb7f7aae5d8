package cli

import (
	"fmt"
	"runtime/debug"
)

// Version describes the running binary for --version: the module's
// version, the VCS revision it was built from and whether the work tree
// had changes not committed then, and the Go version, such as
//
//	chatd v0.3.1 (revision 3f2a9c1d0b7e, modified) go1.26.8
//
// Go stamps the revision when it builds inside a repository with VCS
// stamping on (the default for go build, not for go run or go test, nor
// with GOFLAGS=-buildvcs=false); without it the line says so.
func Version(program string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return program + " (no build information)"
	}
	return formatVersion(program, info)
}

// formatVersion is Version over given build information.
func formatVersion(program string, info *debug.BuildInfo) string {
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := "revision unknown: built without VCS stamping"
	if r := settings["vcs.revision"]; r != "" {
		rev = "revision " + r[:min(len(r), 12)]
		if t := settings["vcs.time"]; t != "" {
			rev += " of " + t
		}
		if settings["vcs.modified"] == "true" {
			rev += ", modified"
		}
	}
	return fmt.Sprintf("%s %s (%s) %s", program, version, rev, info.GoVersion)
}
