package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ember-profiler/ember/export"
)

// exporters are the daemon's --export targets: each follows the store on
// its own goroutine, woken after each interval is stored.
type exporters struct {
	list   []*export.Exporter
	shared *export.SharedHistory // their reads of the store, shared
	log    *slog.Logger
	wg     sync.WaitGroup
}

// parseExportTargets parses --export values and refuses two targets with
// one name: the name keys the cursor and the metrics.
func parseExportTargets(values []string) ([]export.Target, error) {
	var targets []export.Target
	seen := map[string]bool{}
	for _, v := range values {
		t, err := export.ParseTarget(v)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("export: two targets named %q: give each a name=", t.Name)
		}
		seen[t.Name] = true
		targets = append(targets, t)
	}
	return targets, nil
}

func newExporters(values []string, history export.History, reg prometheus.Registerer, log *slog.Logger) (*exporters, error) {
	targets, err := parseExportTargets(values)
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	metrics := export.NewMetrics(reg)
	e := &exporters{log: log, shared: export.Share(history)}
	for _, t := range targets {
		ex, err := export.New(t, export.Options{History: e.shared, Metrics: metrics, Logger: log})
		if err != nil {
			e.close()
			return nil, err
		}
		e.list = append(e.list, ex)
		log.Info("exporting profiles", slog.String("sink", t.Name), slog.String("target", t.String()))
	}
	return e, nil
}

// stored hands the exporters the interval just stored and wakes them.
func (e *exporters) stored(p *profile.Profile, hostLabels map[string]string) {
	if e == nil {
		return
	}
	e.shared.Stored(p, hostLabels)
	for _, ex := range e.list {
		ex.Wake()
	}
}

// start runs the exporters until ctx ends.
func (e *exporters) start(ctx context.Context) {
	if e == nil {
		return
	}
	for _, ex := range e.list {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			if err := ex.Run(ctx); err != nil {
				e.log.Error("an exporter stopped; the store keeps its intervals for the next start",
					slog.String("sink", ex.Name()), slog.Any("err", err))
			}
		}()
	}
}

// finish waits for the exporters to stop, then sends what the last
// intervals stored left, once each, within timeout.
func (e *exporters) finish(timeout time.Duration) {
	if e == nil {
		return
	}
	e.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, ex := range e.list {
		wg.Go(func() {
			if err := ex.Flush(ctx); err != nil {
				e.log.Info("not every interval was exported before stopping; the next start sends them",
					slog.String("sink", ex.Name()), slog.Any("err", err))
			}
		})
	}
	wg.Wait()
}

func (e *exporters) close() {
	if e == nil {
		return
	}
	for _, ex := range e.list {
		ex.Close()
	}
}

// statuses is /readyz's sinks.
func (e *exporters) statuses() any {
	out := make([]export.Status, 0, len(e.list))
	for _, ex := range e.list {
		out = append(out, ex.Status())
	}
	return out
}
