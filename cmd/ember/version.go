package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time by release builds:
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD)" ./cmd/ember
//
// Otherwise they come from what the Go toolchain stamped into the binary.
var (
	version string
	commit  string
)

// versionLine is what `ember --version` and `ember version` print.
func versionLine(info *debug.BuildInfo, ok bool) string {
	v, c, modified := version, commit, false
	if ok {
		if v == "" && info.Main.Version != "" {
			v = info.Main.Version // a module version, or "(devel)"
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && c == "":
				c = s.Value
			case s.Key == "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	} else if modified && commit == "" {
		c += " (modified)"
	}
	return fmt.Sprintf("ember %s, commit %s, built with %s %s/%s", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func currentVersion() string { return versionLine(debug.ReadBuildInfo()) }

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Ember's version, commit and Go version",
		Args:  noArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), currentVersion())
		},
	}
}
