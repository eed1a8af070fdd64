package export

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Kinds of backend.
const (
	KindPyroscope       = "pyroscope"
	KindPyroscopeIngest = "pyroscope-ingest" // the older /ingest endpoint
	KindOTLP            = "otlp"
)

// A Target is one backend as the user named it:
//
//	pyroscope=https://host:4040[,option=value...]
//	pyroscope-ingest=https://host:4040[,option=value...]
//	otlp=host:4317[,option=value...]   (TLS; http://host:4317 for plaintext)
//
// Options: name, tenant, token-file, basic-auth-file (user:password),
// ca-file, service-name, pid (true/false), timeout, gzip (true/false),
// history (true/false).
// Secrets are only ever read from files, so they never sit in a process
// listing, a config dump or a log line.
type Target struct {
	Kind string
	// URL is the endpoint: for Pyroscope the base URL (either API), for OTLP the
	// scheme (http or https) and host:port.
	URL *url.URL
	// Name labels the sink's metrics and keys its cursor; default the kind.
	Name string
	// Tenant is sent as X-Scope-OrgID.
	Tenant        string
	TokenFile     string // bearer token
	BasicAuthFile string // "user:password"
	CAFile        string // PEM roots to trust instead of the system's
	// ServiceName is the template of service_name (see ParseTemplate).
	ServiceName string
	// KeepPID exports the pid label; off by default, a pid a series
	// is more than backends want.
	KeepPID bool
	// Timeout bounds one request.
	Timeout time.Duration
	Gzip    bool
	// History makes a new target start at the oldest stored interval
	// rather than the newest: the host's retained history is sent too.
	History bool
}

// DefaultServiceName is the service_name template unless a target sets one.
const DefaultServiceName = "{comm}"

// DefaultTimeout bounds one request unless a target sets it.
const DefaultTimeout = 30 * time.Second

// ParseTarget parses "kind=endpoint[,option=value...]".
func ParseTarget(s string) (Target, error) {
	kind, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Target{}, fmt.Errorf("%q: want kind=endpoint (pyroscope=https://host:4040, pyroscope-ingest=https://host:4040, otlp=host:4317)", s)
	}
	parts := strings.Split(rest, ",")
	t := Target{Kind: kind, Name: kind, ServiceName: DefaultServiceName, Timeout: DefaultTimeout, Gzip: true}
	var err error
	switch kind {
	case KindPyroscope, KindPyroscopeIngest:
		t.URL, err = url.Parse(parts[0])
		if err == nil && (t.URL.Scheme != "http" && t.URL.Scheme != "https" || t.URL.Host == "") {
			err = errors.New("want http:// or https:// and a host")
		}
	case KindOTLP:
		t.URL, err = parseOTLPEndpoint(parts[0])
	default:
		return Target{}, fmt.Errorf("%q: unknown kind %q (pyroscope, pyroscope-ingest or otlp)", s, kind)
	}
	if err != nil {
		return Target{}, fmt.Errorf("%s endpoint %q: %w", kind, redactURL(parts[0]), err)
	}
	for _, opt := range parts[1:] {
		if err := t.setOption(opt); err != nil {
			return Target{}, fmt.Errorf("%s: %w", kind, err)
		}
	}
	if t.TokenFile != "" && t.BasicAuthFile != "" {
		return Target{}, fmt.Errorf("%s: token-file and basic-auth-file: give one", kind)
	}
	if _, err := ParseTemplate(t.ServiceName); err != nil {
		return Target{}, fmt.Errorf("%s: service-name: %w", kind, err)
	}
	return t, nil
}

func (t *Target) setOption(opt string) error {
	key, value, ok := strings.Cut(opt, "=")
	if !ok || value == "" {
		return fmt.Errorf("option %q: want key=value", key)
	}
	var err error
	switch key {
	case "name":
		t.Name = value
	case "tenant":
		t.Tenant = value
	case "token-file":
		t.TokenFile = value
	case "basic-auth-file":
		t.BasicAuthFile = value
	case "ca-file":
		t.CAFile = value
	case "service-name":
		t.ServiceName = value
	case "pid":
		t.KeepPID, err = strconv.ParseBool(value)
	case "gzip":
		t.Gzip, err = strconv.ParseBool(value)
	case "history":
		t.History, err = strconv.ParseBool(value)
	case "timeout":
		t.Timeout, err = time.ParseDuration(value)
		if err == nil && t.Timeout <= 0 {
			err = errors.New("must be positive")
		}
	default:
		return fmt.Errorf("unknown option %q (name, tenant, token-file, basic-auth-file, ca-file, service-name, pid, timeout, gzip, history)", key)
	}
	if err != nil {
		return fmt.Errorf("option %s: %w", key, err)
	}
	return nil
}

// parseOTLPEndpoint takes host:port (TLS), https://host:port or
// http://host:port (plaintext, as OTel SDKs read an http scheme).
func parseOTLPEndpoint(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("want host:port, http://host:port or https://host:port")
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return nil, fmt.Errorf("want host:port: %w", err)
	}
	return u, nil
}

// String names the target for logs and /readyz, without credentials.
func (t Target) String() string { return t.Kind + "=" + t.URL.Redacted() }

// cursorName keys the target's cursor in the store: by kind and endpoint,
// so that reordering the targets keeps each one's place.
func (t Target) cursorName() string { return "export/" + t.Name + "/" + t.URL.Redacted() }

func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}
