package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
)

// Pyroscope's older /ingest endpoint, as its Go client (pyroscope-go)
// calls it: a POST per profile, the service and labels in the query's
// name ("service{label=value,...}", parsed by Pyroscope's labelset.Parse),
// from and until in Unix seconds, and the pprof in the "profile" part of a
// multipart/form-data body. No format parameter: Pyroscope's handler takes
// format=pprof to mean a bare pprof body, and reads the multipart form
// only without one. Pyroscope derives __name__ (process_cpu) from the
// sample types, and sets service_name from the name.
const (
	ingestPath      = "/ingest"
	ingestFormField = "profile"
	ingestFileName  = "profile.pprof"
	ingestSpyName   = "ember"
)

// pyroscopeIngest sends an interval as one /ingest request per series.
// /ingest takes no ID: a request resent after its answer was lost is
// stored twice.
type pyroscopeIngest struct {
	client   *http.Client
	idle     func()
	endpoint url.URL
	pprof    pprofWriter
	body     bytes.Buffer
}

func newPyroscopeIngest(t Target, creds credentials, tlsCfg *tls.Config) *pyroscopeIngest {
	client, idle := newHTTPClient(t, creds, tlsCfg)
	endpoint := *t.URL
	endpoint.Path = path.Join("/", endpoint.Path, ingestPath)
	endpoint.RawQuery = ""
	return &pyroscopeIngest{client: client, idle: idle, endpoint: endpoint, pprof: pprofWriter{gzip: t.Gzip}}
}

func (p *pyroscopeIngest) send(ctx context.Context, iv *interval, done func(profiles, bytes int)) error {
	p.pprof.enc.reset(iv.p)
	defer p.pprof.enc.release()
	from := time.Unix(0, iv.p.TimeNanos)
	until := from.Add(time.Duration(iv.p.DurationNanos))
	var sampleRate int64
	if iv.p.Period > 0 {
		sampleRate = (int64(time.Second) + iv.p.Period/2) / iv.p.Period
	}
	for iv.sent < len(iv.series) {
		s := iv.series[iv.sent]
		p.pprof.startRequest()
		raw, err := p.pprof.encode(s)
		if err != nil {
			return fmt.Errorf("encode the profile of %s: %w", s.Get(LabelServiceName), err)
		}
		q := url.Values{}
		q.Set("name", ingestName(s.Labels))
		q.Set("from", strconv.FormatInt(from.Unix(), 10))
		q.Set("until", strconv.FormatInt(until.Unix(), 10))
		q.Set("spyName", ingestSpyName)
		if sampleRate > 0 {
			q.Set("sampleRate", strconv.FormatInt(sampleRate, 10))
		}
		if err := p.post(ctx, q, raw); err != nil {
			if iv.refuse(1, err) {
				continue
			}
			return err
		}
		iv.sent++
		done(1, len(raw))
	}
	return nil
}

func (p *pyroscopeIngest) post(ctx context.Context, q url.Values, profile []byte) error {
	p.body.Reset()
	mw := multipart.NewWriter(&p.body)
	part, err := mw.CreateFormFile(ingestFormField, ingestFileName)
	if err == nil {
		_, err = part.Write(profile)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return fmt.Errorf("write the form: %w", err)
	}
	u := p.endpoint
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(p.body.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := p.client.Do(req)
	if err != nil {
		// The query holds a series' labels: noise in an error shown in
		// /readyz and the logs, beside the endpoint that says enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = p.endpoint.String()
		}
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is kept
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("/ingest answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	return connect.NewError(httpStatusCode(resp.StatusCode), err)
}

// httpStatusCode names an HTTP status as the Connect code classify reads.
// 400, 413 and 422 (Pyroscope's answer when its distributor refuses the
// profile, e.g. too old) are refusals for good: the interval is skipped.
func httpStatusCode(status int) connect.Code {
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return connect.CodeInvalidArgument
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return connect.CodeDeadlineExceeded
	case http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	}
	return connect.CodeInternal
}

func (p *pyroscopeIngest) close() error {
	p.idle()
	return nil
}

// ingestName writes a series' labels as /ingest's name: the service name,
// then the other labels in braces. Pyroscope's parser has no escapes and
// checks the characters of names, so what it would refuse or cut is
// replaced by "_": in the service name anything but letters, digits and
// "_.-/", in label names anything but letters, digits and "_.", in values
// "," and "}".
func ingestName(labels []Label) string {
	var b strings.Builder
	service := ""
	for _, l := range labels {
		if l.Name == LabelServiceName {
			service = l.Value
		}
	}
	writeReplacing(&b, service, func(r rune) bool { return labelNameRune(r) || r == '-' || r == '/' })
	if b.Len() == 0 {
		b.WriteString("unknown")
	}
	b.WriteByte('{')
	first := true
	for _, l := range labels {
		value := strings.TrimSpace(l.Value)
		if l.Name == LabelServiceName || value == "" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeReplacing(&b, l.Name, labelNameRune)
		b.WriteByte('=')
		writeReplacing(&b, value, func(r rune) bool { return r != ',' && r != '}' })
	}
	b.WriteByte('}')
	return b.String()
}

func labelNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.'
}

func writeReplacing(b *strings.Builder, s string, keep func(rune) bool) {
	for _, r := range s {
		if !keep(r) {
			r = '_'
		}
		b.WriteRune(r)
	}
}
