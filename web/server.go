// Package web is Ember's HTTP API: pprof downloads and live profiles for
// `go tool pprof`, flame graphs, diffs, CPU series and labels as JSON for the
// UI, Prometheus metrics, and health checks.
//
// # Neighbours
//
// It sits between storage and the UI and links neither storage nor
// collector, nor Badger. Its seam is two small interfaces defined here: Store
// (the history: merged profiles, CPU series, label names and values) and
// LiveProfiler (the sampler's next N seconds). FromStorage makes a Store of
// the store's read side (Querier, in the Badger-free types of
// storage/query, which storage.Store implements); cmd/ember wires it and the
// daemon's sampling loop in. Selectors travel as unparsed strings; the
// adapter parses them (query.ParseSelector) and wraps a failure in
// ErrBadSelector, which the API answers with a 400 naming the parameter;
// likewise ErrUnknownLabel. Package report computes call trees, flame
// graphs and diffs; this one bounds, caches and encodes them. The daemon
// passes its Prometheus registry in Options.Registry and a readiness check
// in Options.Ready, then runs ListenAndServe(ctx, addr, cert, key) and logs
// CheckListenSafety's warning, if any, at start.
//
// # Endpoints
//
// All are GET. Times (from, to, base_from, base_to) are RFC 3339, Unix
// seconds or milliseconds (told apart by magnitude: 1e11 and above is
// milliseconds), "now", or relative to now: -15m, -24h, -7d, -2w, now-1h.
// Defaults: to=now, from=to-1h; to must be after from, and the range at
// most Limits.MaxRange (31 days). query is a label selector such as
// {comm="nginx",pid!="1"} ("" or {} for everything).
//
//	/api/v1/profile?from&to&query&type   merged pprof, gzipped protobuf, as an attachment;
//	                                     type (cpu, offcpu) is the sample type it opens with
//	/debug/pprof/profile?seconds&query   live profile of the next seconds (default 30, max 300)
//	/api/v1/flamegraph?from&to&query&max_nodes&sample_type&group_by&max_other
//	                                     call tree as JSON, see FlameGraph (max_nodes default 8192, 2..131072);
//	                                     group_by=comm puts each comm's stacks under a node of its own;
//	                                     max_other=0.1 grows the budget until (other) holds at most 10%
//	/api/v1/diff?from&to&query&base_from&base_to&base_query&order_by&limit&sample_type
//	                                     per-function comparison, see Diff
//	/api/v1/series?from&to&query&step&group_by&limit&type
//	                                     CPU cores over time (type=offcpu: threads off
//	                                     the CPU), see SeriesResponse
//	/api/v1/source?from&to&query&function&binary&sample_type
//	                                     one function's cost per source line, see SourceLines
//	/api/v1/labels?from&to               label names, see LabelNamesResponse
//	/api/v1/labels/{name}/values?from&to label values; 404 for a name no sample in the range has
//	/metrics                             Prometheus: the daemon's registry and ember_http_*
//	/healthz                             200 while the process serves (needs no token)
//	/ and /ui/NAME                       the web UI, when Options.UI is set (needs no token)
//	/readyz                              200 when Options.Ready says so, else 503
//
// sample_type (or type) picks a profile value ("cpu", the default,
// "samples", "offcpu", "waits").
// step is a duration (15s, 1m) or seconds, at least 1s and at most
// Limits.MaxPoints (query.MaxSeriesPoints, 10,000) points over the range;
// by default about 240 points. A series answer holds at most
// query.MaxSeriesValues (250,000) points in all, which may lower limit:
// the groups left out are summed into one series, "other". The diff's base defaults to the same selector over the window of
// the same length just before from; given only base_from or base_to, the
// other follows from the target's length.
//
// # Safe by default
//
// Every error is a JSON body {"error": "...", "parameter": "..."}, the
// parameter named when one is at fault, and is logged once, here (5xx at
// error level, the rest at debug). The server sets read, header, write and
// idle timeouts; bounds query strings (414 past 8 KiB), time ranges, node
// budgets, points, series, diff frames and live-profile seconds; gives each
// query Limits.RequestTimeout (503 past it); answers 429 with Retry-After
// past Limits.MaxConcurrentQueries expensive queries (profile, flamegraph,
// diff, series) or Limits.MaxLiveProfiles live profiles; accepts no request
// bodies; requires the bearer token, compared in constant time, when
// Options.AuthToken is set (everywhere but /healthz); rejects Host headers a
// DNS-rebinding page would send on connections to a loopback address; and
// recovers panics into a 500.
//
// # Cache and UI
//
// Flame graphs of ranges that ended more than Limits.FlameCacheSettle ago
// cannot change, so their gzipped answers are kept in an LRU bounded by
// Limits.FlameCacheBytes. With Options.UI set, the web UI's static files
// are served at / and /ui/ without the token; the page sends it with its
// API calls.
package web

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ember-profiler/ember/storage/query"
)

// Options configure a Server. Store is required; the rest have defaults.
type Options struct {
	// Store answers every query over history.
	Store Store
	// Live serves /debug/pprof/profile; nil answers it with 503.
	Live LiveProfiler
	// Ready reports whether the store is open and the daemon can answer
	// queries, for /readyz; nil means always ready.
	Ready func() error
	// Sinks, if set, says the state of each exporter (a JSON value), shown
	// in /readyz as "sinks". An exporter behind does not make the daemon
	// unready: the store keeps what waits.
	Sinks func() any
	// Registry is served on /metrics and receives the API's own metrics;
	// the daemon registers its collectors on it. Nil makes a new one.
	Registry *prometheus.Registry
	// AuthToken, when not empty, is required as "Authorization: Bearer
	// <token>" on every endpoint except /healthz and the UI's static files,
	// which hold no data (the page asks for the token and sends it with
	// every API call).
	AuthToken string
	// AllowedHosts are extra Host header names (without port) accepted on
	// loopback connections, besides localhost, *.localhost, IP literals and
	// the address given to ListenAndServe.
	AllowedHosts []string
	// Logger receives one record per failed request; nil uses slog.Default().
	Logger *slog.Logger
	// Limits bound what one request may cost; zero fields take defaults.
	Limits Limits
	// Now is the clock for "now" and relative times; nil uses time.Now.
	Now func() time.Time
	// UI holds the web UI's files (index.html at its root), served at / and
	// /ui/; nil serves no UI. cmd/ember passes ui.FS.
	UI fs.FS
	// RaiseQuery, if set, is called on the goroutine that runs an expensive
	// query, and the function it returns when the query ends: the daemon
	// raises the thread's priority so that a loaded host, when a profile is
	// most wanted, still answers in a second.
	RaiseQuery func() (restore func())
	// HostCPUs is the profiled host's CPU count, which series answers
	// carry so that a UI can tell impossible values; 0 uses runtime.NumCPU.
	HostCPUs int
}

// Limits bound what one request may cost. A zero field takes the default
// given beside it.
type Limits struct {
	MaxRange             time.Duration // longest from..to: 31 days
	MaxQueryBytes        int           // longest raw query string: 8 KiB (414 past it)
	RequestTimeout       time.Duration // time each query may take: 30 s (503 past it)
	MaxConcurrentQueries int           // expensive queries at once: half the CPUs, at least 2
	QueueWait            time.Duration // how long a query waits for a slot before its 429: 2 s; negative: not at all
	MaxLiveProfiles      int           // live profiles at once: 2 (429 past it)
	MaxLiveSeconds       int           // longest live profile: 300 s
	DefaultMaxNodes      int           // flame graph node budget: 8192
	MaxNodes             int           // largest max_nodes a client may ask, and how far max_other may grow a budget: 131,072
	MaxPoints            int           // most points per series: query.MaxSeriesPoints (10,000), which it may not exceed
	MaxSeries            int           // most series per response: 1,000
	MaxDiffFrames        int           // most frames a diff may return: 10,000
	FlameCacheBytes      int           // gzipped flame graphs kept for ranges in the past: 32 MiB; negative: none
	FlameCacheSettle     time.Duration // how far in the past a range must end to be cached: 2 min (longer than the daemon's interval)
	FlameCacheTTL        time.Duration // how long a cached flame graph is kept: 1 h
	MaxSourceBytes       int           // largest source file whose text the source view shows: 4 MiB; negative: none

	ReadHeaderTimeout time.Duration // 5 s
	ReadTimeout       time.Duration // 10 s
	WriteTimeout      time.Duration // RequestTimeout + 10 s; live profiles extend their own
	IdleTimeout       time.Duration // 2 min
	ShutdownTimeout   time.Duration // grace for in-flight requests at shutdown: 10 s
}

const defaultLiveSeconds = 30

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defDur(&l.MaxRange, 31*24*time.Hour)
	def(&l.MaxSourceBytes, 4<<20)
	def(&l.MaxQueryBytes, 8<<10)
	defDur(&l.RequestTimeout, 30*time.Second)
	// Each query can keep a CPU busy; half of them leaves the rest to the
	// sampler and the host's own work.
	def(&l.MaxConcurrentQueries, max(2, runtime.GOMAXPROCS(0)/2))
	defDur(&l.QueueWait, 2*time.Second)
	def(&l.MaxLiveProfiles, 2)
	def(&l.MaxLiveSeconds, 300)
	def(&l.DefaultMaxNodes, 8192)
	def(&l.MaxNodes, 1<<17) // a recorded busy hour needs 112,692 nodes for (other) at 10%: docs/benchmarks.md
	def(&l.MaxPoints, query.MaxSeriesPoints)
	def(&l.MaxSeries, 1000)
	def(&l.MaxDiffFrames, 10_000)
	def(&l.FlameCacheBytes, 32<<20)
	defDur(&l.FlameCacheSettle, 2*time.Minute)
	defDur(&l.FlameCacheTTL, time.Hour)
	defDur(&l.ReadHeaderTimeout, 5*time.Second)
	defDur(&l.ReadTimeout, 10*time.Second)
	defDur(&l.WriteTimeout, l.RequestTimeout+10*time.Second)
	defDur(&l.IdleTimeout, 2*time.Minute)
	defDur(&l.ShutdownTimeout, 10*time.Second)
	return l
}

func (l Limits) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxRange", int64(l.MaxRange)}, {"MaxQueryBytes", int64(l.MaxQueryBytes)},
		{"RequestTimeout", int64(l.RequestTimeout)}, {"MaxConcurrentQueries", int64(l.MaxConcurrentQueries)},
		{"MaxLiveProfiles", int64(l.MaxLiveProfiles)}, {"MaxLiveSeconds", int64(l.MaxLiveSeconds)},
		{"DefaultMaxNodes", int64(l.DefaultMaxNodes)}, {"MaxNodes", int64(l.MaxNodes)},
		{"MaxPoints", int64(l.MaxPoints)}, {"MaxSeries", int64(l.MaxSeries)},
		{"MaxDiffFrames", int64(l.MaxDiffFrames)},
		{"FlameCacheSettle", int64(l.FlameCacheSettle)}, {"FlameCacheTTL", int64(l.FlameCacheTTL)},
		{"ReadHeaderTimeout", int64(l.ReadHeaderTimeout)}, {"ReadTimeout", int64(l.ReadTimeout)},
		{"WriteTimeout", int64(l.WriteTimeout)}, {"IdleTimeout", int64(l.IdleTimeout)},
		{"ShutdownTimeout", int64(l.ShutdownTimeout)},
	} {
		if f.v < 0 {
			return fmt.Errorf("web: Limits.%s is negative", f.name)
		}
	}
	if l.MaxPoints > query.MaxSeriesPoints {
		return fmt.Errorf("web: Limits.MaxPoints %d is above the store's %d points per series", l.MaxPoints, query.MaxSeriesPoints)
	}
	if l.DefaultMaxNodes < minNodes || l.DefaultMaxNodes > l.MaxNodes {
		return fmt.Errorf("web: Limits.DefaultMaxNodes %d is outside [%d, MaxNodes %d]", l.DefaultMaxNodes, minNodes, l.MaxNodes)
	}
	return nil
}

// Server is the HTTP API. Make one with New; serve it with Serve or
// ListenAndServe, or mount Handler in a server of your own.
type Server struct {
	store    Store
	live     LiveProfiler
	ready    func() error
	sinks    func() any
	registry *prometheus.Registry
	limits   Limits
	log      *slog.Logger
	now      func() time.Time
	metrics  *httpMetrics
	// raiseQuery is Options.RaiseQuery.
	raiseQuery func() (restore func())
	hostCPUs   int

	tokenHash [sha256.Size]byte // of Options.AuthToken; compared in constant time
	hasToken  bool

	ui     map[string]*uiFile // by path under /ui/; nil without a UI
	flames *flameCache        // nil when disabled

	queries chan struct{} // semaphore of expensive queries
	lives   chan struct{} // semaphore of live profiles

	hostsMu sync.RWMutex
	hosts   map[string]bool // extra allowed Host names on loopback

	handler http.Handler
}

// New checks opts and builds the API's routes and metrics.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("web: Options.Store is nil")
	}
	limits := opts.Limits.withDefaults()
	if err := limits.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		store:      opts.Store,
		live:       opts.Live,
		ready:      opts.Ready,
		sinks:      opts.Sinks,
		registry:   opts.Registry,
		limits:     limits,
		log:        opts.Logger,
		now:        opts.Now,
		raiseQuery: opts.RaiseQuery,
		hostCPUs:   cmp.Or(opts.HostCPUs, runtime.NumCPU()),
		queries:    make(chan struct{}, limits.MaxConcurrentQueries),
		lives:      make(chan struct{}, limits.MaxLiveProfiles),
		hosts:      make(map[string]bool),
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if opts.AuthToken != "" {
		s.tokenHash = sha256.Sum256([]byte(opts.AuthToken))
		s.hasToken = true
	}
	for _, h := range opts.AllowedHosts {
		s.hosts[normalizeHost(h)] = true
	}
	if opts.UI != nil {
		files, err := loadUI(opts.UI)
		if err != nil {
			return nil, err
		}
		s.ui = files
	}
	if limits.FlameCacheBytes > 0 {
		s.flames = newFlameCache(limits.FlameCacheBytes, limits.FlameCacheTTL)
	}
	m, err := newHTTPMetrics(s.registry, s.flames)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.handler = s.routes()
	return s, nil
}

// routes builds the echo router. The checks run after routing, so that
// metrics and logs know the route; echo runs them for unknown paths and
// methods too (before its 404 and 405), so those are checked (size, host,
// token) like known ones.
func (s *Server) routes() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.observe, s.recoverPanic)
	e.Use(s.checkRequest, s.checkHost, s.checkToken)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	// A scraper's deadline is short: on a loaded host /metrics runs raised too.
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError),
	})), s.raised)
	e.GET("/debug/pprof/profile", s.liveProfile)
	// The views the UI waits for: their encoding runs raised too.
	e.GET("/api/v1/profile", s.profile, s.raised)
	e.GET("/api/v1/flamegraph", s.flamegraph, s.raised)
	e.GET("/api/v1/diff", s.diff, s.raised)
	e.GET("/api/v1/series", s.series, s.raised)
	e.GET("/api/v1/source", s.source, s.raised)
	e.GET("/api/v1/labels", s.labelNames)
	e.GET("/api/v1/labels/:name/values", s.labelValues)
	if s.ui != nil {
		e.GET("/", s.uiAsset)
		e.GET("/ui/*", s.uiAsset)
	}
	return e
}

// Handler is the API as an http.Handler, for tests and for mounting in a
// server of one's own (which must then set its own timeouts).
func (s *Server) Handler() http.Handler { return s.handler }

// httpServer is an http.Server with the limits' timeouts.
func (s *Server) httpServer(base context.Context) *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.limits.ReadHeaderTimeout,
		ReadTimeout:       s.limits.ReadTimeout,
		WriteTimeout:      s.limits.WriteTimeout,
		IdleTimeout:       s.limits.IdleTimeout,
		MaxHeaderBytes:    64 << 10, // room for an oversized query to reach checkRequest's JSON 414
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Serve answers HTTP on l until ctx ends, then shuts down gracefully: it
// stops accepting, gives in-flight requests Limits.ShutdownTimeout to
// finish, then cancels them and closes their connections. It closes l. It
// returns nil after a shutdown that ctx asked for.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return s.serve(ctx, l, "", "")
}

// ListenAndServe listens on addr (host:port) and serves until ctx ends, as
// Serve does; with certFile and keyFile it serves HTTPS. The host part of
// addr is accepted as a Host header on loopback connections.
func (s *Server) ListenAndServe(ctx context.Context, addr, certFile, keyFile string) error {
	if (certFile == "") != (keyFile == "") {
		return errors.New("web: a TLS certificate needs its key and a key its certificate")
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		s.allowHost(host)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.serve(ctx, l, certFile, keyFile)
}

func (s *Server) serve(ctx context.Context, l net.Listener, certFile, keyFile string) error {
	// Requests outlive ctx by the shutdown grace; then base is canceled so
	// that long queries and live profiles stop.
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := s.httpServer(base)

	served := make(chan error, 1)
	go func() {
		if certFile != "" {
			served <- srv.ServeTLS(l, certFile, keyFile)
		} else {
			served <- srv.Serve(l)
		}
	}()
	select {
	case err := <-served:
		return fmt.Errorf("serve http on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	grace, cancelGrace := context.WithTimeout(context.Background(), s.limits.ShutdownTimeout)
	defer cancelGrace()
	err := srv.Shutdown(grace)
	if err != nil {
		cancelBase()
		err = srv.Close()
	}
	if serveErr := <-served; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", l.Addr(), serveErr)
	}
	return err
}

func (s *Server) allowHost(h string) {
	s.hostsMu.Lock()
	s.hosts[normalizeHost(h)] = true
	s.hostsMu.Unlock()
}

func (s *Server) hostAllowed(h string) bool {
	s.hostsMu.RLock()
	defer s.hostsMu.RUnlock()
	return s.hosts[h]
}
