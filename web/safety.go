package web

import (
	"fmt"
	"net"
	"strings"
)

// CheckListenSafety returns a warning for the daemon to log loudly at start
// when addr (host:port, as given to ListenAndServe) is reachable from other
// hosts and either no bearer token guards it, or one does but without TLS
// (the token, and every profile, crosses the network in clear); and "" when
// it is safe: a loopback address, or any address with a token over TLS. An
// empty host (":7070"), 0.0.0.0, :: and any name but localhost count as
// reachable; names are not resolved.
func CheckListenSafety(addr string, hasToken, hasTLS bool) (warning string) {
	if hasToken && hasTLS {
		return ""
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr // let the listen itself report the malformed address
	}
	h := normalizeHost(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return ""
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return ""
	}
	where := "every interface"
	if h != "" && !net.ParseIP(h).IsUnspecified() {
		where = host
	}
	if hasToken {
		return fmt.Sprintf("the HTTP API listens on %s (%s) with an auth token but without TLS: the token and every profile "+
			"travel in clear, and anyone who sees the traffic can replay the token; set --tls-cert and --tls-key, "+
			"or listen on 127.0.0.1", addr, where)
	}
	return fmt.Sprintf("the HTTP API listens on %s (%s) without an auth token: anyone who can reach it can read every profile "+
		"and its process names, command paths and container IDs, and start live profiles; set --auth-token-file (and "+
		"--tls-cert/--tls-key), or listen on 127.0.0.1", addr, where)
}
