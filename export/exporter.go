package export

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/storage"
)

// History is the store as an exporter reads it (*storage.Store).
type History interface {
	IntervalsAfter(after int64, max int) (refs []storage.IntervalRef, backlog int)
	NewestInterval() (key int64, ok bool)
	ReadInterval(ctx context.Context, ref storage.IntervalRef) (*profile.Profile, error)
	Cursor(name string) (key int64, ok bool, err error)
	SetCursor(name string, key int64) error
}

var _ History = (*storage.Store)(nil)

// Options are what every exporter of a daemon shares.
type Options struct {
	History History
	Metrics *Metrics // nil: not counted
	Logger  *slog.Logger
	// Poll is how often the store is looked at without a Wake (a safety
	// net; the daemon wakes exporters after each interval it stores).
	// Default 10 s.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait between tries of one
	// interval, doubling from the first to the second, with jitter.
	// Defaults 1 s and 2 min.
	MinBackoff, MaxBackoff time.Duration
}

// An interval on its way to a backend.
type interval struct {
	ref    storage.IntervalRef
	p      *profile.Profile
	series []Series
	// sent is how many series the backend has answered for, taken or
	// refused, for a backend that sends an interval in several requests: a
	// retry resumes there.
	sent int
	// refused counts the series the backend refused for good, refusal the
	// first such answer. One refused series must not cost the others of
	// the interval (Pyroscope refuses by series: a label value too long, a
	// profile too large).
	refused int
	refusal error
}

// refuse notes that the backend refused n series for good with err, if
// err says so, and reports whether it did: the caller then goes on with
// the next series instead of retrying.
func (iv *interval) refuse(n int, err error) bool {
	if _, permanent := classify(err); !permanent {
		return false
	}
	iv.refused += n
	if iv.refusal == nil {
		iv.refusal = err
	}
	iv.sent += n
	return true
}

// A backend sends intervals to one kind of server.
type backend interface {
	// send delivers iv's series from iv.sent on, advancing iv.sent, and
	// reports each request it completes to done (profiles, bytes). A
	// request refused for good is noted with iv.refuse and passed over.
	send(ctx context.Context, iv *interval, done func(profiles, bytes int)) error
	close() error
}

// An Exporter delivers the stored intervals to one target, at least once
// and in order, from its cursor in the store.
type Exporter struct {
	target  Target
	backend backend
	policy  labelPolicy
	opts    Options
	log     *slog.Logger
	metrics *sinkMetrics
	wake    chan struct{}

	mu     sync.Mutex
	status Status
}

// Status is an exporter's state, for /readyz.
type Status struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	// State is "starting", "caught_up", "sending" (a backlog is being
	// sent) or "retrying" (the backend refused or did not answer).
	State           string    `json:"state"`
	BacklogInterval int       `json:"backlog_intervals"`
	LagSeconds      float64   `json:"lag_seconds"`
	LastSent        time.Time `json:"last_sent,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
	LastErrorReason string    `json:"last_error_reason,omitempty"`
	LastErrorAt     time.Time `json:"last_error_at,omitzero"`
}

// New prepares an exporter for t: it reads the target's files, sets up its
// client without connecting, and places its cursor if it has none.
func New(t Target, opts Options) (*Exporter, error) {
	if opts.History == nil {
		return nil, errors.New("export: no history")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(opts.MinBackoff, 2*time.Minute)
	}
	policy, err := newLabelPolicy(t.ServiceName, t.KeepPID)
	if err != nil {
		return nil, fmt.Errorf("export %s: service-name: %w", t.Name, err)
	}
	creds, err := t.credentials()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", t.Name, err)
	}
	tlsCfg, err := t.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", t.Name, err)
	}
	var b backend
	switch t.Kind {
	case KindPyroscope:
		b = newPyroscope(t, creds, tlsCfg)
	case KindPyroscopeIngest:
		b = newPyroscopeIngest(t, creds, tlsCfg)
	case KindOTLP:
		b, err = newOTLP(t, creds, tlsCfg, opts.Logger.With(slog.String("sink", t.Name)))
	default:
		err = fmt.Errorf("unknown kind %q", t.Kind)
	}
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", t.Name, err)
	}
	e := &Exporter{target: t, backend: b, policy: policy, opts: opts,
		log: opts.Logger.With(slog.String("sink", t.Name)), metrics: opts.Metrics.forSink(t.Name),
		wake: make(chan struct{}, 1)}
	e.status = Status{Name: t.Name, Target: t.String(), State: "starting"}
	// The cursor is placed now, before the daemon stores anything more.
	if _, err := e.startCursor(); err != nil {
		b.close()
		return nil, fmt.Errorf("export %s: %w", t.Name, err)
	}
	return e, nil
}

// Name is the exporter's name, the sink label of its metrics.
func (e *Exporter) Name() string { return e.target.Name }

// Wake tells the exporter that an interval was stored. It never blocks.
func (e *Exporter) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Status returns the exporter's state.
func (e *Exporter) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Cursor is the key of the last interval the exporter has delivered (or
// passed over), as persisted in the store.
func (e *Exporter) Cursor() (key int64, ok bool, err error) {
	return e.opts.History.Cursor(e.target.cursorName())
}

// Close releases the exporter's connections.
func (e *Exporter) Close() error { return e.backend.close() }

// intervalsPerRead bounds the refs listed at a time; the intervals
// themselves are read one at a time, so memory holds one.
const intervalsPerRead = 16

// Run sends stored intervals until ctx ends, waiting for the backend as
// long as it takes: the store holds what is not sent yet. It returns
// only when ctx ends, or when the store fails.
func (e *Exporter) Run(ctx context.Context) error {
	cursor, err := e.startCursor()
	if err != nil {
		return err
	}
	for {
		refs, _ := e.opts.History.IntervalsAfter(cursor, intervalsPerRead)
		e.refresh(cursor)
		if len(refs) == 0 {
			e.setState("caught_up")
			select {
			case <-ctx.Done():
				return nil
			case <-e.wake:
			case <-time.After(e.opts.Poll):
			}
			continue
		}
		for _, ref := range refs {
			if err := e.deliver(ctx, ref, true); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if err := e.opts.History.SetCursor(e.target.cursorName(), ref.Key); err != nil {
				return fmt.Errorf("export %s: %w", e.target.Name, err)
			}
			cursor = ref.Key
			e.refresh(cursor)
		}
	}
}

// Flush sends what is stored beyond the cursor once, without retrying,
// until ctx ends: at shutdown, after the last interval was stored.
func (e *Exporter) Flush(ctx context.Context) error {
	cursor, err := e.startCursor()
	if err != nil {
		return err
	}
	for {
		refs, _ := e.opts.History.IntervalsAfter(cursor, intervalsPerRead)
		if len(refs) == 0 {
			e.refresh(cursor)
			return nil
		}
		for _, ref := range refs {
			if err := e.deliver(ctx, ref, false); err != nil {
				return err
			}
			if err := e.opts.History.SetCursor(e.target.cursorName(), ref.Key); err != nil {
				return err
			}
			cursor = ref.Key
		}
	}
}

// startCursor is the stored cursor; a new target starts at the newest
// stored interval, so that adding a backend does not send it the whole
// retention at once, unless it asks for the history.
func (e *Exporter) startCursor() (int64, error) {
	name := e.target.cursorName()
	cursor, ok, err := e.opts.History.Cursor(name)
	if err != nil || ok {
		return cursor, err
	}
	// Kept at once, even at 0 (an empty store): a restart must not
	// move a cursor that has not sent anything yet.
	start, _ := e.opts.History.NewestInterval()
	if e.target.History {
		start = 0
	}
	return start, e.opts.History.SetCursor(name, start)
}

// deliver sends one interval, retrying with backoff until it is taken or
// ctx ends (retry false: one try). An interval the backend refuses for
// good, or that retention removed meanwhile, is counted and passed over.
func (e *Exporter) deliver(ctx context.Context, ref storage.IntervalRef, retry bool) error {
	var iv *interval
	for attempt := 0; ; attempt++ {
		err := ctx.Err()
		if err == nil && iv == nil {
			var p *profile.Profile
			p, err = e.opts.History.ReadInterval(ctx, ref)
			if errors.Is(err, storage.ErrIntervalGone) {
				e.metrics.skipped("expired")
				return nil
			}
			if err == nil {
				iv = &interval{ref: ref, p: p, series: e.series(p)}
			} else {
				err = fmt.Errorf("%w: %w", errStore, err)
			}
		}
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, e.target.Timeout)
			err = e.backend.send(rctx, iv, e.metrics.sent)
			cancel()
		}
		if err == nil && iv.refused > 0 {
			e.metrics.refused(iv.refused)
			e.metrics.failed("rejected")
			e.failed(iv.refusal, "rejected", attempt == 0)
			if iv.refused == len(iv.series) {
				e.metrics.skipped("rejected")
				e.log.Error("the backend refused an interval for good; it is not sent again",
					slog.Time("interval", ref.Start()), slog.String("reason", "rejected"), slog.Any("err", iv.refusal))
				return nil
			}
			e.log.Warn("the backend refused some profiles of an interval for good; the rest were sent",
				slog.Time("interval", ref.Start()), slog.Int("refused", iv.refused), slog.Int("profiles", len(iv.series)),
				slog.Any("err", iv.refusal))
		}
		if err == nil {
			e.metrics.intervalSent()
			e.sent(attempt > 0)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		reason, permanent := classify(err)
		e.metrics.failed(reason)
		e.failed(err, reason, attempt == 0)
		if permanent {
			e.metrics.skipped(reason)
			e.log.Error("the backend refused an interval for good; it is not sent again",
				slog.Time("interval", ref.Start()), slog.String("reason", reason), slog.Any("err", err))
			return nil
		}
		if !retry {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.backoff(attempt)):
		}
		cursor, _, _ := e.opts.History.Cursor(e.target.cursorName())
		e.refresh(cursor)
	}
}

// series splits p by the target's labels, once for all the exporters of
// a shared history that export the same labels.
func (e *Exporter) series(p *profile.Profile) []Series {
	if shared, ok := e.opts.History.(*SharedHistory); ok {
		return shared.split(p, e.policy)
	}
	return e.policy.split(p)
}

// backoff is the wait before try attempt+2: exponential, capped, with
// jitter over its upper half so that a fleet does not retry in step.
func (e *Exporter) backoff(attempt int) time.Duration {
	d := e.opts.MaxBackoff
	if attempt < 30 {
		d = min(d, e.opts.MinBackoff<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// refresh updates the backlog and lag from the cursor.
func (e *Exporter) refresh(cursor int64) {
	_, backlog := e.opts.History.IntervalsAfter(cursor, 0)
	var lag float64
	if newest, ok := e.opts.History.NewestInterval(); ok && backlog > 0 {
		lag = time.Duration(newest - cursor).Seconds()
		if cursor == 0 {
			lag = 0 // nothing sent yet: no meaningful distance
		}
	}
	e.metrics.progress(backlog, lag)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status.BacklogInterval, e.status.LagSeconds = backlog, lag
	if backlog > 0 && e.status.State != "retrying" {
		e.status.State = "sending"
	}
}

func (e *Exporter) setState(state string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status.State = state
}

func (e *Exporter) sent(recovered bool) {
	e.mu.Lock()
	wasRetrying := e.status.State == "retrying"
	e.status.State, e.status.LastSent = "sending", time.Now()
	e.mu.Unlock()
	if recovered || wasRetrying {
		e.log.Info("the backend takes profiles again")
	}
}

func (e *Exporter) failed(err error, reason string, first bool) {
	e.mu.Lock()
	wasRetrying := e.status.State == "retrying"
	e.status.State = "retrying"
	e.status.LastError, e.status.LastErrorReason, e.status.LastErrorAt = err.Error(), reason, time.Now()
	e.mu.Unlock()
	if first && !wasRetrying {
		e.log.Warn("the backend did not take an interval; retrying with backoff, the store keeps what waits",
			slog.String("target", e.target.String()), slog.String("reason", reason), slog.Any("err", err))
	}
}
