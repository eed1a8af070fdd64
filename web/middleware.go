package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// observe counts and times every request by route and status. It is the
// outermost middleware, so it writes errors itself (c.Error) to see their
// status.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		route := routeOf(c)
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(c.Response().Status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		return nil
	}
}

// routeOf is the route pattern a request matched, a bounded label for
// metrics and logs.
func routeOf(c echo.Context) string {
	switch p := c.Path(); p {
	case "", "/*":
		return "unmatched"
	default:
		return p
	}
}

// recoverPanic turns a panic in a handler into a 500, so no panic reaches a
// client or takes the daemon down; handleError logs it with its stack.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler { // net/http's way to abort a response on purpose
					panic(r)
				}
				err = panicError(r)
			}
		}()
		return next(c)
	}
}

func panicError(r any) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Message: "internal error",
		Cause: fmt.Errorf("panic: %v\n%s", r, debug.Stack())}
}

// checkRequest bounds the request itself: the query string's size and
// syntax, and no body (every endpoint is a GET, so nothing is ever read or
// decompressed from a client).
func (s *Server) checkRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store") // profiles name processes and paths: keep them out of caches
		if n := len(req.URL.RawQuery); n > s.limits.MaxQueryBytes {
			return &apiError{Status: http.StatusRequestURITooLong,
				Message: fmt.Sprintf("the query string is %d bytes, longer than the limit of %d", n, s.limits.MaxQueryBytes)}
		}
		if _, err := url.ParseQuery(req.URL.RawQuery); err != nil {
			return &apiError{Status: http.StatusBadRequest, Message: "malformed query string: " + err.Error()}
		}
		if req.ContentLength != 0 {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Message: "request bodies are not accepted"}
		}
		return next(c)
	}
}

// checkHost defends loopback connections against DNS rebinding: a page on
// evil.example whose name is re-pointed at 127.0.0.1 can make a browser
// send requests here, but with "Host: evil.example". On a connection that
// arrived on a loopback address, the Host must be localhost (or a
// *.localhost name, which browsers pin to loopback), an IP literal, the
// address given to ListenAndServe, or one of Options.AllowedHosts.
// Connections on other addresses are for AuthToken to guard.
func (s *Server) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		local, _ := req.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if local == nil || !isLoopbackAddr(local) {
			return next(c)
		}
		host := hostWithoutPort(req.Host)
		if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") ||
			net.ParseIP(host) != nil || s.hostAllowed(host) {
			return next(c)
		}
		return &apiError{Status: http.StatusForbidden, Message: fmt.Sprintf(
			"Host %q is not accepted on a loopback address (protection against DNS rebinding): use localhost or 127.0.0.1, or allow the name in the daemon's configuration",
			req.Host)}
	}
}

// checkToken requires the bearer token, when one is set, everywhere but
// /healthz. Comparing SHA-256 digests in constant time leaks neither the
// token's bytes nor its length through timing.
func (s *Server) checkToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if !s.hasToken || req.URL.Path == "/healthz" || s.isUIPath(req.URL.Path) {
			return next(c)
		}
		auth := req.Header.Get("Authorization")
		scheme, token, _ := strings.Cut(auth, " ")
		given := sha256.Sum256([]byte(strings.TrimSpace(token)))
		ok := subtle.ConstantTimeCompare(given[:], s.tokenHash[:]) == 1
		if !strings.EqualFold(scheme, "Bearer") || !ok {
			return &apiError{Status: http.StatusUnauthorized, Message: "missing or wrong bearer token"}
		}
		return next(c)
	}
}

// hostWithoutPort is the lower-case host name of a Host header, without
// port, brackets or a trailing dot.
func hostWithoutPort(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return normalizeHost(host)
}

func normalizeHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func isLoopbackAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	default:
		host := hostWithoutPort(a.String())
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
}
