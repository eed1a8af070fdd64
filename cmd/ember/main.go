// Command ember is Ember's single binary: a whole-host eBPF CPU profiler.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "ember: %v\n", err)
		var usage *usageError
		// Cobra reports an unknown subcommand as a plain error.
		if errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command ") {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks a bad command line, which exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func newRootCommand() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "ember",
		Short:         "Ember profiles every CPU of this host with eBPF",
		Version:       currentVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			level := defaultLogLevel(cmd)
			if logLevel != "" {
				if err := level.UnmarshalText([]byte(logLevel)); err != nil {
					return &usageError{fmt.Errorf("--log-level: %w", err)}
				}
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
			return nil
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.PersistentFlags().StringVar(&logLevel, "log-level", "", "log level: debug, info, warn or error (default info for daemon, warn otherwise)")
	root.AddCommand(newRecordCommand(), newDaemonCommand(), newVersionCommand(), newStoreCommand())
	return root
}

// defaultLogLevel is info for the daemon, whose log is all an operator sees
// of it (where it listens, when it stops, what retention removed; nothing
// per interval), and warn for record, whose summary line says the rest.
func defaultLogLevel(cmd *cobra.Command) slog.Level {
	if cmd.Name() == "daemon" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// noArgs refuses arguments as a mistake on the command line.
func noArgs(cmd *cobra.Command, args []string) error {
	if err := cobra.NoArgs(cmd, args); err != nil {
		return &usageError{err}
	}
	return nil
}
