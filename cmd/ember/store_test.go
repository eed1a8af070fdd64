package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ember-profiler/ember/storage"
)

// TestOpenStoreWaitsForDiskSpace: a store that does not open for lack of
// space is retried, logged once, instead of the daemon exiting into a
// restart loop; a stop while waiting ends the wait.
func TestOpenStoreWaitsForDiskSpace(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()
	tries := 0
	open := func(opts storage.Options) (*storage.Store, error) {
		tries++
		if tries <= 3 {
			return nil, fmt.Errorf("storage: open: %w: 1 bytes free", storage.ErrDiskFull)
		}
		return storage.Open(opts)
	}
	store, err := openStore(context.Background(), storage.Options{Dir: dir, Logger: log}, log, time.Millisecond, open)
	if err != nil || store == nil {
		t.Fatalf("openStore: %v, %v", store, err)
	}
	store.Close()
	if tries != 4 || strings.Count(logs.String(), "too full to open") != 1 || !strings.Contains(logs.String(), "disk space is back") {
		t.Errorf("%d tries; logs:\n%s\nwant 4 tries, the wait logged once and its end", tries, logs.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	full := func(storage.Options) (*storage.Store, error) {
		cancel()
		return nil, storage.ErrDiskFull
	}
	store, err = openStore(ctx, storage.Options{Dir: dir}, log, time.Hour, full)
	if store != nil || err != nil {
		t.Errorf("stopped while waiting: %v, %v; want nil, nil", store, err)
	}

	// Other errors are not waited on.
	_, err = openStore(context.Background(), storage.Options{Dir: dir}, log, time.Hour,
		func(storage.Options) (*storage.Store, error) { return nil, storage.ErrDamaged })
	if err != storage.ErrDamaged {
		t.Errorf("damaged store: %v", err)
	}
}

func runStoreCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestStoreCheckCommand(t *testing.T) {
	dir := t.TempDir()
	s, err := storage.Open(storage.Options{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	out, err := runStoreCommand(t, "store", "check", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "history:     empty") || !strings.HasSuffix(out, "ok\n") {
		t.Errorf("check of an empty store: %v\n%s", err, out)
	}
	repaired := filepath.Join(t.TempDir(), "repaired")
	out, err = runStoreCommand(t, "store", "repair", "--data-dir", dir, "--to", repaired)
	if err != nil || !strings.Contains(out, "tables kept: ") || !strings.HasSuffix(out, "ok\n") {
		t.Errorf("repair of an empty store: %v\n%s", err, out)
	}
	if err := os.RemoveAll(filepath.Join(dir, "badger")); err != nil {
		t.Fatal(err)
	}
	out, err = runStoreCommand(t, "store", "check", "--data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "damaged") || strings.Contains(out, "ok") {
		t.Errorf("check of a store without its database: %v\n%s", err, out)
	}
}
