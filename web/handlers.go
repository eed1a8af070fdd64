package web

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"

	"github.com/ember-profiler/ember/report"
	"github.com/ember-profiler/ember/schema"
)

// raised runs a request's handler under Options.RaiseQuery: encoding and
// compressing a large answer is part of what a user waits for.
func (s *Server) raised(next echo.HandlerFunc) echo.HandlerFunc {
	if s.raiseQuery == nil {
		return next
	}
	return func(c echo.Context) error {
		defer s.raiseQuery()()
		return next(c)
	}
}

// bounded runs fn, the costly part of a request, under a concurrency bound
// (sem; nil for none) and a time limit. Past the bound it waits up to
// queueWait for a slot, then answers 429. Past the time limit it answers at
// once, but fn's goroutine keeps its slot until fn returns, so a store that
// ignores its context still cannot run more than the bound. fn must not
// touch the response.
func bounded[T any](s *Server, c echo.Context, sem chan struct{}, kind string, queueWait, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	var zero T
	if sem != nil {
		if err := s.acquire(c.Request().Context(), sem, kind, queueWait); err != nil {
			return zero, err
		}
		s.metrics.inFlight.WithLabelValues(kind).Inc()
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), timeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		if s.raiseQuery != nil {
			defer s.raiseQuery()()
		}
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: panicError(p)}
			}
			if sem != nil {
				<-sem
				s.metrics.inFlight.WithLabelValues(kind).Dec()
			}
			done <- r
		}()
		r.v, r.err = fn(ctx)
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// acquire takes a slot of sem, waiting up to queueWait (not at all if it
// is negative) for one to free; then it answers 429.
func (s *Server) acquire(ctx context.Context, sem chan struct{}, kind string, queueWait time.Duration) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	if queueWait > 0 {
		timer := time.NewTimer(queueWait)
		defer timer.Stop()
		select {
		case sem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
	s.metrics.rejected.WithLabelValues(kind).Inc()
	return &apiError{Status: http.StatusTooManyRequests, RetryAfter: 1,
		Message: fmt.Sprintf("too many %s requests at once (limit %d); retry shortly", kind, cap(sem))}
}

// runQuery runs an expensive store query: bounded by MaxConcurrentQueries
// (after QueueWait) and RequestTimeout.
func runQuery[T any](s *Server, c echo.Context, fn func(context.Context) (T, error)) (T, error) {
	return bounded(s, c, s.queries, kindQuery, s.limits.QueueWait, s.limits.RequestTimeout, fn)
}

// GET /api/v1/profile?from=&to=&query=&type=
//
// The merged profile of a range and selector as gzipped pprof protobuf, the
// body `go tool pprof URL` reads. type (cpu, offcpu) is the sample type it
// opens with, where the profile holds it.
func (s *Server) profile(c echo.Context) error {
	q := c.QueryParams()
	from, to, err := timeRange(q, "from", "to", s.now(), s.limits.MaxRange)
	if err != nil {
		return err
	}
	sampleType, err := typeParam(q, "type")
	if err != nil {
		return err
	}
	sel := q.Get("query")
	gz, err := runQuery(s, c, func(ctx context.Context) (*chunkBuffer, error) {
		var buf chunkBuffer
		zw := newGzipBehind(&buf)
		err := s.store.WriteProfile(ctx, from, to, sel, sampleType, zw)
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		if zw.written == 0 { // a store may write nothing for a range without samples
			return nil, err
		}
		return &buf, err
	})
	if err != nil {
		return storeError(err, "query", "")
	}
	name := fmt.Sprintf("ember-%s-%s.pb.gz", from.UTC().Format("20060102T150405Z"), to.UTC().Format("20060102T150405Z"))
	if gz == nil {
		raw, err := encodeProfile(report.EmptyProfile(from, to))
		if err != nil {
			return err
		}
		empty, err := gzipBytes(raw)
		if err != nil {
			return err
		}
		return sendProfile(c, bytes.NewReader(empty), len(empty), name)
	}
	return sendProfile(c, gz, gz.Len(), name)
}

// GET /debug/pprof/profile?seconds=N&query=
//
// A fresh whole-host profile of the next N seconds (default 30), the URL
// net/http/pprof made familiar.
func (s *Server) liveProfile(c echo.Context) error {
	if s.live == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Message: "live profiles are not available from this server"}
	}
	q := c.QueryParams()
	seconds, err := intParam(q, "seconds", defaultLiveSeconds, 1, s.limits.MaxLiveSeconds)
	if err != nil {
		return err
	}
	d := time.Duration(seconds) * time.Second
	// The server's write timeout is shorter than a long profile: extend it for
	// this response only. (Not every ResponseWriter supports deadlines; the
	// ones in tests do not, and need none.)
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(d + s.limits.WriteTimeout))
	sel := q.Get("query")
	p, err := bounded(s, c, s.lives, kindLive, -1, d+s.limits.RequestTimeout, func(ctx context.Context) (*profile.Profile, error) {
		return s.live.Profile(ctx, d, sel)
	})
	if err != nil {
		return storeError(err, "query", "")
	}
	now := s.now()
	if p == nil {
		p = report.EmptyProfile(now.Add(-d), now)
	}
	raw, err := encodeProfile(p)
	if err != nil {
		return err
	}
	gz, err := gzipBytes(raw)
	if err != nil {
		return err
	}
	return sendProfile(c, bytes.NewReader(gz), len(gz), fmt.Sprintf("ember-live-%s-%ds.pb.gz", now.UTC().Format("20060102T150405Z"), seconds))
}

func encodeProfile(p *profile.Profile) ([]byte, error) {
	var buf bytes.Buffer
	if err := p.WriteUncompressed(&buf); err != nil {
		return nil, &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: fmt.Errorf("encode profile: %w", err)}
	}
	return buf.Bytes(), nil
}

// gzipBytes gzips an encoded profile, as pprof files are. The fastest
// level: a day's profile is tens of megabytes, and pprof's own default
// level took longer than the query.
func gzipBytes(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(raw)/4 + 512)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level: no error
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sendProfile sends a gzipped profile whole, once it is complete, so that
// an error is a clean 500 rather than a truncated body.
func sendProfile(c echo.Context, gz io.WriterTo, size int, filename string) error {
	h := c.Response().Header()
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filename))
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set(echo.HeaderContentLength, strconv.Itoa(size))
	c.Response().WriteHeader(http.StatusOK)
	_, err := gz.WriteTo(c.Response())
	return err
}

// gzipMinBytes is the smallest JSON answer worth compressing.
const gzipMinBytes = 4 << 10

// writeJSON sends v as a 200, gzipped at the fastest level when it is large
// and the client accepts gzip: flame-graph JSON compresses several-fold for
// a few milliseconds. (echo's Gzip middleware would pull in a dependency
// for its rate limiter's sake.)
func writeJSON(c echo.Context, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: fmt.Errorf("encode JSON: %w", err)}
	}
	h := c.Response().Header()
	h.Add("Vary", "Accept-Encoding")
	if len(body) < gzipMinBytes || !acceptsGzip(c.Request().Header.Values("Accept-Encoding")) {
		return c.JSONBlob(http.StatusOK, body)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level: no error
	if _, err := zw.Write(body); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	h.Set("Content-Encoding", "gzip")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, buf.Bytes())
}

// acceptsGzip reads Accept-Encoding loosely: gzip listed, and not with q=0.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				q := strings.ReplaceAll(params, " ", "")
				return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
			}
		}
	}
	return false
}

// GET /api/v1/flamegraph?from=&to=&query=&max_nodes=&sample_type=&group_by=&max_other=
//
// The merged call tree as compact JSON (see FlameGraph), its first level
// the values of label group_by when given. max_other (a share, 0 to 1)
// grows the node budget past max_nodes, up to Limits.MaxNodes, until the
// pruned "(other)" boxes hold at most that share.
func (s *Server) flamegraph(c echo.Context) error {
	q := c.QueryParams()
	from, to, err := timeRange(q, "from", "to", s.now(), s.limits.MaxRange)
	if err != nil {
		return err
	}
	maxNodes, err := intParam(q, "max_nodes", s.limits.DefaultMaxNodes, minNodes, s.limits.MaxNodes)
	if err != nil {
		return err
	}
	sel, sampleType, groupBy := q.Get("query"), q.Get("sample_type"), q.Get("group_by")
	if sampleType == "" { // type, as /api/v1/profile and /api/v1/series name it
		sampleType = q.Get("type")
	}
	if groupBy != "" {
		if err := labelNameParam("group_by", groupBy); err != nil {
			return err
		}
	}
	maxOther, err := shareParam(q, "max_other")
	if err != nil {
		return err
	}
	formatName := q.Get("format")
	format, ok := flameFormats[formatName]
	if !ok {
		return badParam("format", "format: %q is neither json nor binary", formatName)
	}
	key := newFlameKey(from, to, sel, sampleType, maxNodes)
	key.groupBy, key.maxOther, key.format = groupBy, maxOther, format.contentType
	// A range that ended a while ago no longer changes: its answer can be kept.
	cacheable := s.flames != nil && !to.After(s.now().Add(-s.limits.FlameCacheSettle))
	if cacheable {
		if body, ok := s.flames.get(key, time.Now()); ok {
			s.metrics.cache.WithLabelValues("hit").Inc()
			return writeGzipped(c, format.contentType, body)
		}
		s.metrics.cache.WithLabelValues("miss").Inc()
	} else {
		s.metrics.cache.WithLabelValues("bypass").Inc()
	}
	fg, err := runQuery(s, c, func(ctx context.Context) (*FlameGraph, error) {
		opts := report.FlameOptions{SampleType: sampleType, MaxNodes: maxNodes, GroupBy: groupBy,
			MaxOtherShare: maxOther, NodeCap: s.limits.MaxNodes}
		if st, ok := s.store.(Stacker); ok {
			// Half the time limit for reading: on a host too busy to read
			// the whole range, the newest part of it beats a 503.
			readBy := time.Now().Add(s.limits.RequestTimeout / 2)
			stacks, err := st.FlameStacks(ctx, from, to, readBy, sel, groupBy)
			if err == nil {
				covered, reason := stacks.CoveredFrom, stacks.StoppedBy
				graph, err := report.NewFlameGraphFromStacks(ctx, stacks, opts)
				if err != nil {
					return nil, reportError(err)
				}
				return &FlameGraph{FlameGraph: graph, CoveredFrom: covered, PartialReason: reason}, nil
			}
			if !errors.Is(err, errNoStacks) {
				return nil, err
			}
		}
		profileOf := s.store.Profile
		if lp, ok := s.store.(LabelledProfiler); ok && groupBy != "" {
			profileOf = lp.LabelledProfile
		}
		p, err := profileOf(ctx, from, to, sel)
		if err != nil {
			return nil, err
		}
		graph, err := report.NewFlameGraphWith(ctx, p, opts)
		if err != nil {
			return nil, reportError(err)
		}
		return &FlameGraph{FlameGraph: graph}, nil
	})
	if err != nil {
		return storeError(err, "query", "")
	}
	fg.From, fg.To = from.UTC(), to.UTC()
	if !fg.CoveredFrom.IsZero() {
		fg.Partial, fg.CoveredFrom = true, fg.CoveredFrom.UTC()
		s.log.Warn("flame graph answered in part: the store stopped reading at its time limit or its bound on stacks",
			"from", fg.From, "to", fg.To, "covered_from", fg.CoveredFrom, "reason", fg.PartialReason)
		if fg.PartialReason != "stacks" {
			return writeFlame(c, format, fg) // kept out of the cache: next time may read it all
		}
		// The bound on stacks stops at the same place for the same blocks
		// (until compaction merges them): cached like a whole answer
	}
	if !cacheable {
		return writeFlame(c, format, fg)
	}
	body, err := encodeFlame(format, fg)
	if err != nil {
		return err
	}
	s.flames.put(key, body, time.Now())
	return writeGzipped(c, format.contentType, body)
}

// writeGzipped sends a gzipped body of contentType as a 200, unpacked for
// a client that does not take gzip.
func writeGzipped(c echo.Context, contentType string, gzipped []byte) error {
	h := c.Response().Header()
	h.Add("Vary", "Accept-Encoding")
	if acceptsGzip(c.Request().Header.Values("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		return c.Blob(http.StatusOK, contentType, gzipped)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gzipped))
	if err != nil {
		return &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: fmt.Errorf("read cached answer: %w", err)}
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		return &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: fmt.Errorf("read cached answer: %w", err)}
	}
	return c.Blob(http.StatusOK, contentType, body)
}

// GET /api/v1/diff?from=&to=&query=&base_from=&base_to=&base_query=&order_by=&limit=&sample_type=
//
// Two profiles compared per function (see Diff). The base defaults to the
// same selector over the window of the same length just before from.
func (s *Server) diff(c echo.Context) error {
	q := c.QueryParams()
	now := s.now()
	from, to, err := timeRange(q, "from", "to", now, s.limits.MaxRange)
	if err != nil {
		return err
	}
	baseFrom, baseTo, err := baseRange(q, from, to, now, s.limits.MaxRange)
	if err != nil {
		return err
	}
	sel := q.Get("query")
	baseSel := sel
	if q.Has("base_query") {
		baseSel = q.Get("base_query")
	}
	orderBy := cmp.Or(q.Get("order_by"), "self")
	if orderBy != "self" && orderBy != "total" {
		return badParam("order_by", "order_by: %q is neither self nor total", orderBy)
	}
	limit, err := intParam(q, "limit", min(1000, s.limits.MaxDiffFrames), 1, s.limits.MaxDiffFrames)
	if err != nil {
		return err
	}
	sampleType := q.Get("sample_type")
	d, err := runQuery(s, c, func(ctx context.Context) (*Diff, error) {
		if ws, ok := s.store.(WholeStacker); ok {
			d, err := s.stacksDiff(ctx, ws, from, to, sel, baseFrom, baseTo, baseSel, report.DiffOptions{SampleType: sampleType, OrderBy: orderBy, Limit: limit})
			if !errors.Is(err, errNoStacks) {
				return d, err
			}
		}
		target, err := s.store.Profile(ctx, from, to, sel)
		if err != nil {
			return nil, err
		}
		base, err := s.store.Profile(ctx, baseFrom, baseTo, baseSel)
		if err != nil {
			return nil, storeError(err, "base_query", "") // name the base's selector, not query
		}
		d, err := report.NewDiff(ctx, target, base, report.DiffOptions{SampleType: sampleType, OrderBy: orderBy, Limit: limit})
		if err != nil {
			return nil, reportError(err)
		}
		return &Diff{Diff: d}, nil
	})
	if err != nil {
		return storeError(err, "query", "")
	}
	d.From, d.To, d.BaseFrom, d.BaseTo = from.UTC(), to.UTC(), baseFrom.UTC(), baseTo.UTC()
	return writeJSON(c, d)
}

// stacksDiff is a diff from the store's stacks: without building the two
// profiles, and naming the live hour's stacks from the store's cache.
func (s *Server) stacksDiff(ctx context.Context, ws WholeStacker, from, to time.Time, sel string, baseFrom, baseTo time.Time, baseSel string, o report.DiffOptions) (*Diff, error) {
	target, err := ws.WholeStacks(ctx, from, to, sel)
	if err != nil {
		return nil, err
	}
	base, err := ws.WholeStacks(ctx, baseFrom, baseTo, baseSel)
	if err != nil {
		if errors.Is(err, errNoStacks) {
			return nil, err
		}
		return nil, storeError(err, "base_query", "") // name the base's selector, not query
	}
	d, err := report.NewDiffFromStacks(ctx, target, base, o)
	if err != nil {
		return nil, reportError(err)
	}
	return &Diff{Diff: d}, nil
}

// baseRange reads base_from and base_to for a diff; a missing one is set
// from the other and the target's length, and both missing mean the window
// just before the target.
func baseRange(q map[string][]string, from, to, now time.Time, maxRange time.Duration) (time.Time, time.Time, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	length := to.Sub(from)
	bf, bt := get("base_from"), get("base_to")
	switch {
	case bf == "" && bt == "":
		return from.Add(-length), from, nil
	case bf == "":
		end, err := parseTime(bt, now)
		if err != nil {
			return end, end, badParam("base_to", "base_to: %v", err)
		}
		return end.Add(-length), end, nil
	case bt == "":
		start, err := parseTime(bf, now)
		if err != nil {
			return start, start, badParam("base_from", "base_from: %v", err)
		}
		return start, start.Add(length), nil
	default:
		return timeRange(q, "base_from", "base_to", now, maxRange)
	}
}

// GET /api/v1/labels?from=&to=
func (s *Server) labelNames(c echo.Context) error {
	q := c.QueryParams()
	from, to, err := timeRange(q, "from", "to", s.now(), s.limits.MaxRange)
	if err != nil {
		return err
	}
	names, err := bounded(s, c, nil, kindQuery, 0, s.limits.RequestTimeout, func(ctx context.Context) ([]string, error) {
		return s.store.LabelNames(ctx, from, to)
	})
	if err != nil {
		return storeError(err, "", "")
	}
	names = sortedCopy(names)
	return writeJSON(c, LabelNamesResponse{From: from.UTC(), To: to.UTC(), Names: names})
}

// LabelNamesResponse is the JSON of /api/v1/labels.
type LabelNamesResponse struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Names []string  `json:"names"`
}

// GET /api/v1/labels/{name}/values?from=&to=
//
// A name that no sample in the range carries (so one /api/v1/labels does not
// list) is a 404 naming the parameter "name".
func (s *Server) labelValues(c echo.Context) error {
	name := c.Param("name")
	if err := labelNameParam("name", name); err != nil {
		return err
	}
	q := c.QueryParams()
	from, to, err := timeRange(q, "from", "to", s.now(), s.limits.MaxRange)
	if err != nil {
		return err
	}
	values, err := bounded(s, c, nil, kindQuery, 0, s.limits.RequestTimeout, func(ctx context.Context) ([]string, error) {
		return s.store.LabelValues(ctx, name, from, to)
	})
	if err != nil {
		ae := storeError(err, "", "name")
		if ae.Parameter == "name" {
			ae.Status = http.StatusNotFound
		}
		return ae
	}
	if len(values) == 0 {
		return &apiError{Status: http.StatusNotFound, Parameter: "name",
			Message: fmt.Sprintf("name: no sample between from and to has the label %q", name)}
	}
	return writeJSON(c, LabelValuesResponse{From: from.UTC(), To: to.UTC(), Name: name, Values: sortedCopy(values)})
}

// LabelValuesResponse is the JSON of /api/v1/labels/{name}/values.
type LabelValuesResponse struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Name   string    `json:"name"`
	Values []string  `json:"values"`
}

func sortedCopy(in []string) []string {
	out := append([]string{}, in...)
	slices.Sort(out)
	return slices.Compact(out)
}

// GET /healthz: the process is alive. Never needs the token.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// GET /readyz: the store is open and queries can be answered; with
// exporters, their state as "sinks".
func (s *Server) readyz(c echo.Context) error {
	if s.ready != nil {
		if err := s.ready(); err != nil {
			return &apiError{Status: http.StatusServiceUnavailable, Message: "not ready: " + err.Error(), Cause: err}
		}
	}
	body := map[string]any{"status": "ready"}
	if s.sinks != nil {
		body["sinks"] = s.sinks()
	}
	return c.JSON(http.StatusOK, body)
}

// typeParam reads a sample type's name (cpu, offcpu, samples, waits,
// wall): one schema knows, or "".
func typeParam(q url.Values, name string) (string, error) {
	v := q.Get(name)
	if v == "" {
		return "", nil
	}
	var names []string
	for _, k := range schema.Known {
		if k.Type == v {
			return v, nil
		}
		names = append(names, k.Type)
	}
	return "", badParam(name, "%s: %q is not a sample type (%s)", name, v, strings.Join(names, ", "))
}
