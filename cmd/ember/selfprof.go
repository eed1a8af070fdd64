//go:build selfprof

package main

import (
	"log/slog"
	"net/http"
	_ "net/http/pprof" // the point of this build: Ember's own profiles
)

// A build with -tags selfprof serves Go's pprof endpoints of Ember itself
// on 127.0.0.1:6061, for bench/daemon-heap.sh. Started from init so that
// every subcommand has it; never part of a normal build.
func init() {
	go func() {
		if err := http.ListenAndServe("127.0.0.1:6061", nil); err != nil {
			slog.Warn("self-profiling endpoint", slog.Any("err", err))
		}
	}()
}
