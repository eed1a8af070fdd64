package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/ember-profiler/ember/storage"
)

func newStoreCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Inspect the daemon's profile store",
		Args:  noArgs,
	}
	cmd.AddCommand(newStoreCheckCommand(), newStoreRepairCommand())
	return cmd
}

func newStoreCheckCommand() *cobra.Command {
	dataDir := defaultDaemonConfig().DataDir
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a stopped daemon's store without changing it",
		Long: `Reads the store under --data-dir without changing anything: its marker, Badger's
MANIFEST, every table's index and block checksums, the dictionary and the block
index, and the whole history. Prints what it holds; exits 1 with what is damaged
if anything is. Stop the daemon first, or check a copy (cp -a). See
docs/storage.md for what to do with a damaged store.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := storage.Check(cmd.Context(), dataDir, slog.Default())
			if err != nil {
				return err
			}
			printCheckReport(cmd.OutOrStdout(), dataDir, rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the daemon's data directory")
	return cmd
}

func newStoreRepairCommand() *cobra.Command {
	dataDir := defaultDaemonConfig().DataDir
	var to string
	cmd := &cobra.Command{
		Use:   "repair",
		Short: "Copy what reads of a damaged store into a new one",
		Long: `Copies every table of the store under --data-dir whose index and blocks read,
with its write-ahead and value logs, into a new store in --to, under a new
MANIFEST; drops the blocks that then do not read back whole; and checks the
result. The store under --data-dir is never changed. Start the daemon with
--data-dir set to the new store once it looks right. See docs/storage.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return &usageError{errors.New("--to: give a new directory for the repaired store")}
			}
			rep, err := storage.Repair(cmd.Context(), dataDir, to, slog.Default())
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "tables kept: %d; left out: %d\n", rep.TablesKept, len(rep.TablesSkipped))
			for _, t := range rep.TablesSkipped {
				fmt.Fprintf(w, "  left out %s\n", t)
			}
			fmt.Fprintf(w, "blocks dropped as unreadable: %d\n", rep.BlocksDropped)
			if err != nil {
				return err
			}
			printCheckReport(w, to, rep.Check)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "the damaged store's data directory (read only)")
	cmd.Flags().StringVar(&to, "to", "", "a new directory for the repaired store")
	return cmd
}

func printCheckReport(w io.Writer, dir string, rep storage.CheckReport) {
	fmt.Fprintf(w, "store:       %s (%.1f MiB)\n", dir, float64(rep.DiskBytes)/(1<<20))
	fmt.Fprintf(w, "tables:      %d, index and block checksums good\n", rep.Tables)
	logs := fmt.Sprintf("value logs:  %d; write-ahead logs: %d", rep.ValueLogs, rep.WriteAheadLogs)
	if rep.WriteAheadReplayed {
		logs += " (not closed cleanly: replayed in a scratch copy, as the next start replays them)"
	}
	fmt.Fprintln(w, logs)
	fmt.Fprintf(w, "dictionary:  %d stacks, %d label sets\n", rep.Stacks, rep.LabelSets)
	fmt.Fprintf(w, "blocks:      %d raw, %d per minute, %d per 10 minutes, %d per hour\n",
		rep.BlocksPerLevel[0], rep.BlocksPerLevel[1], rep.BlocksPerLevel[2], rep.BlocksPerLevel[3])
	if rep.Oldest.IsZero() {
		fmt.Fprintln(w, "history:     empty")
	} else {
		fmt.Fprintf(w, "history:     %d intervals, %d samples, %s to %s\n", rep.Intervals, rep.Samples,
			rep.Oldest.UTC().Format(time.RFC3339), rep.Newest.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(w, "ok")
}

// openStore opens the store, waiting while the disk is too full for it to
// open: exiting would turn systemd's Restart=on-failure into a crash loop.
// It returns nil and no error if ctx ends while waiting.
func openStore(ctx context.Context, opts storage.Options, log *slog.Logger, retryEvery time.Duration,
	open func(storage.Options) (*storage.Store, error)) (*storage.Store, error) {
	waiting := false
	for {
		store, err := open(opts)
		if !errors.Is(err, storage.ErrDiskFull) {
			if err == nil && waiting {
				log.Info("disk space is back: store opened", slog.String("data_dir", opts.Dir))
			}
			return store, err
		}
		if !waiting {
			log.Error("the disk is too full to open the store: waiting for space, retrying every "+
				retryEvery.String()+"; nothing is sampled meanwhile", slog.String("data_dir", opts.Dir), slog.Any("err", err))
			waiting = true
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(retryEvery):
		}
	}
}
