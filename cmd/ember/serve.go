package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/internal/mainmapping"
	"github.com/ember-profiler/ember/report"
	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage/query"
	"github.com/ember-profiler/ember/web"
)

// liveFeed hands each drain's profile to live-profile requests, so that
// /debug/pprof/profile shares the daemon's sampler instead of starting one.
type liveFeed struct {
	mu   sync.Mutex
	subs map[chan *profile.Profile]struct{}
	// stopped is closed when the daemon stops sampling: requests answer
	// with what they have rather than hold the HTTP server's shutdown.
	stopped  chan struct{}
	stopOnce sync.Once
}

func newLiveFeed() *liveFeed {
	return &liveFeed{subs: make(map[chan *profile.Profile]struct{}), stopped: make(chan struct{})}
}

// stop ends every live profile in progress, and any asked for later, at once.
func (f *liveFeed) stop() { f.stopOnce.Do(func() { close(f.stopped) }) }

// publish offers p to every waiting request. Profiles are shared and never
// modified after publishing; a request too slow to take one misses it.
func (f *liveFeed) publish(p *profile.Profile) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- p:
		default:
		}
	}
}

// Profile collects the drains of the next d whose samples match selector.
func (f *liveFeed) Profile(ctx context.Context, d time.Duration, selector string) (*profile.Profile, error) {
	sel, err := web.ParseSelector(selector)
	if err != nil {
		return nil, err
	}
	ch := make(chan *profile.Profile, 16)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}()

	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var parts []*profile.Profile
	for {
		select {
		case p := <-ch:
			if kept := keepMatching(p, sel); len(kept.Sample) > 0 {
				parts = append(parts, kept)
			}
			continue
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
		case <-f.stopped:
		}
		break
	}
	if len(parts) == 0 {
		return report.EmptyProfile(start, time.Now()), nil
	}
	merged, err := schema.Merge(parts)
	if err != nil {
		return nil, err
	}
	merged.TimeNanos, merged.DurationNanos = start.UnixNano(), time.Since(start).Nanoseconds()
	// The first drain's first mapping is no guide to what the selector kept.
	mainmapping.Place(merged)
	return merged, nil
}

// keepMatching returns a view of p with only the samples sel selects. It
// shares p's locations and functions, which are not modified.
func keepMatching(p *profile.Profile, sel query.Selector) *profile.Profile {
	view := &profile.Profile{
		SampleType:    p.SampleType,
		PeriodType:    p.PeriodType,
		Period:        p.Period,
		TimeNanos:     p.TimeNanos,
		DurationNanos: p.DurationNanos,
		Mapping:       p.Mapping,
		Location:      p.Location,
		Function:      p.Function,
	}
	for _, s := range p.Sample {
		if sel.Matches(sampleLabels(s)) {
			view.Sample = append(view.Sample, s)
		}
	}
	return view
}

// sampleLabels flattens a sample's labels as the store sees them.
func sampleLabels(s *profile.Sample) map[string]string {
	labels := make(map[string]string, len(s.Label)+1)
	for k, v := range s.Label {
		if len(v) > 0 {
			labels[k] = v[0]
		}
	}
	if pid := s.NumLabel["pid"]; len(pid) > 0 {
		labels["pid"] = strconv.FormatInt(pid[0], 10)
	}
	return labels
}

// listen opens the API's socket before sampling starts, so a taken port or a
// bad certificate fails the daemon at once.
func listen(addr, certFile, keyFile string) (net.Listener, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls-cert and tls-key: give both or neither")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if certFile == "" {
		return l, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	return tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// readToken reads the bearer token from a file: one line, surrounding space ignored.
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("auth-token-file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if len(token) < 16 {
		return "", fmt.Errorf("auth-token-file %s: the token must be at least 16 characters", path)
	}
	return token, nil
}
