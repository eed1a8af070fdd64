package exporttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/pprof/profile"
	"github.com/grafana/pyroscope/api/model/labelset"
)

// PyroscopeIngest serves Pyroscope's older /ingest endpoint. Pyroscope's
// handler is not in a module the proxy serves, so this one reads what it
// reads, in its order: the name with Pyroscope's own labelset.Parse, from
// and until as Unix seconds, then the body by format and content type
// (format=pprof: a bare pprof; no format and a multipart/form-data body:
// the pprof in its "profile" part), the pprof decoded with google/pprof.
// The labels are those Pyroscope gives the series: __name__ from the
// sample types, service_name from the name, and the name's labels.
type PyroscopeIngest struct {
	Receiver
	t *testing.T
}

// Ingest is one request's query as the receiver parsed it.
type Ingest struct {
	Name        string
	From, Until time.Time
	SpyName     string
	SampleRate  int
	Multipart   bool // the profile came in a multipart form
}

func (p *PyroscopeIngest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/ingest" {
		http.NotFound(w, r)
		return
	}
	rec, err := p.parse(r)
	if err != nil {
		p.t.Errorf("pyroscope /ingest receiver: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := p.take(rec); err != nil {
		http.Error(w, err.Error(), statusOf(err))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (p *PyroscopeIngest) parse(r *http.Request) (Request, error) {
	q := r.URL.Query()
	ls, err := labelset.Parse(q.Get("name"))
	if err != nil {
		return Request{}, fmt.Errorf("name %q: %w", q.Get("name"), err)
	}
	if err := labelset.ValidateLabelSet(ls); err != nil {
		return Request{}, fmt.Errorf("name %q: %w", q.Get("name"), err)
	}
	from, err1 := strconv.ParseInt(q.Get("from"), 10, 64)
	until, err2 := strconv.ParseInt(q.Get("until"), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Request{}, fmt.Errorf("from/until, want Unix seconds: %w", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return Request{}, err
	}
	raw, multi, err := ingestProfile(q.Get("format"), r.Header.Get("Content-Type"), body)
	if err != nil {
		return Request{}, err
	}
	prof, err := profile.ParseData(raw)
	if err != nil {
		return Request{}, fmt.Errorf("the profile: %w", err)
	}
	in := Ingest{Name: q.Get("name"), From: time.Unix(from, 0), Until: time.Unix(until, 0),
		SpyName: q.Get("spyName"), Multipart: multi}
	in.SampleRate, _ = strconv.Atoi(q.Get("sampleRate"))

	labels := map[string]string{}
	for k, v := range ls.Labels() {
		labels[k] = v
	}
	labels["service_name"] = ls.ServiceName()
	labels["__name__"] = metricName(prof)
	rec := Request{Header: r.Header, TimeNanos: prof.TimeNanos, Ingest: &in}
	if bytes.HasPrefix(raw, gzipMagic) {
		rec.GzippedProfiles++
	}
	if rec.TimeNanos == 0 {
		rec.TimeNanos = from * int64(time.Second) // as Pyroscope fixes a profile without a time
	}
	for _, st := range prof.SampleType {
		rec.Types = append(rec.Types, st.Type+"/"+st.Unit)
	}
	if prof.PeriodType != nil {
		rec.Types = append(rec.Types, prof.PeriodType.Type+"/"+prof.PeriodType.Unit)
	}
	for _, smp := range prof.Sample {
		if len(smp.Label)+len(smp.NumLabel) > 0 {
			p.t.Errorf("sample labels sent to /ingest: %v %v", smp.Label, smp.NumLabel)
		}
		rec.Samples = append(rec.Samples, Sample{Labels: labels, Stack: PprofStack(smp), Count: smp.Value[0], CPU: smp.Value[1]})
	}
	return rec, nil
}

// ingestProfile picks the pprof out of the body as Pyroscope's handler
// does: format first, then the content type.
func ingestProfile(format, contentType string, body []byte) (raw []byte, multi bool, err error) {
	switch {
	case format == "pprof":
		return body, false, nil
	case format != "":
		return nil, false, fmt.Errorf("format %q: not a pprof", format)
	case strings.Contains(contentType, "multipart/form-data"):
		_, params, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, true, err
		}
		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(32 << 20)
		if err != nil {
			return nil, true, err
		}
		defer form.RemoveAll()
		files := form.File["profile"]
		if len(files) == 0 {
			return nil, true, errors.New("no profile part in the form")
		}
		f, err := files[0].Open()
		if err != nil {
			return nil, true, err
		}
		defer f.Close()
		raw, err = io.ReadAll(f)
		return raw, true, err
	}
	return nil, false, fmt.Errorf("content type %q, no format: Pyroscope would read it as folded text", contentType)
}

// metricName is Pyroscope's __name__ for a pprof sent to /ingest: its
// default sample type mapping shows "samples" as "cpu", and a type
// containing "cpu" is process_cpu.
func metricName(p *profile.Profile) string {
	for _, st := range p.SampleType {
		name := st.Type
		if name == "samples" {
			name = "cpu"
		}
		if strings.Contains(name, "cpu") {
			return "process_cpu"
		}
	}
	return "unknown"
}

// statusOf answers a Fail error as the HTTP status Pyroscope would send.
func statusOf(err error) int {
	var ce *connect.Error
	if errors.As(err, &ce) {
		switch ce.Code() {
		case connect.CodeUnavailable:
			return http.StatusServiceUnavailable
		case connect.CodeResourceExhausted:
			return http.StatusTooManyRequests
		case connect.CodeInvalidArgument:
			return http.StatusBadRequest
		}
	}
	return http.StatusInternalServerError
}

// StartPyroscopeIngest serves a PyroscopeIngest over TLS (the test
// server's own CA) or plain HTTP; wrap, if set, sits in front of it.
func StartPyroscopeIngest(t *testing.T, tlsOn bool, wrap func(http.Handler) http.Handler) (*PyroscopeIngest, *httptest.Server) {
	r := &PyroscopeIngest{t: t}
	return r, startHTTP(t, tlsOn, r, wrap)
}

func startHTTP(t *testing.T, tlsOn bool, handler http.Handler, wrap func(http.Handler) http.Handler) *httptest.Server {
	if wrap != nil {
		handler = wrap(handler)
	}
	srv := httptest.NewUnstartedServer(handler)
	if tlsOn {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}
