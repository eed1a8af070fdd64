package web

import (
	"strings"
	"testing"
)

func TestCheckListenSafety(t *testing.T) {
	for _, tc := range []struct {
		addr             string
		hasToken, hasTLS bool
		warn             string // a word the warning holds; "" for none
	}{
		{"127.0.0.1:7070", false, false, ""},
		{"127.0.0.2:7070", false, false, ""},
		{"[::1]:7070", false, false, ""},
		{"localhost:7070", false, false, ""},
		{"localhost:7070", true, false, ""},
		{":7070", false, false, "without an auth token"},
		{"0.0.0.0:7070", false, false, "without an auth token"},
		{"[::]:7070", false, false, "without an auth token"},
		{"10.0.0.5:7070", false, false, "without an auth token"},
		{"profiler.example:7070", false, false, "without an auth token"},
		{"10.0.0.5:7070", false, true, "without an auth token"},
		// A token without TLS travels in clear.
		{"0.0.0.0:7070", true, false, "without TLS"},
		{"10.0.0.5:7070", true, false, "without TLS"},
		{":7070", true, false, "without TLS"},
		{"0.0.0.0:7070", true, true, ""},
		{"10.0.0.5:7070", true, true, ""},
	} {
		w := CheckListenSafety(tc.addr, tc.hasToken, tc.hasTLS)
		if (w != "") != (tc.warn != "") || !strings.Contains(w, tc.warn) {
			t.Errorf("CheckListenSafety(%q, token %v, TLS %v) = %q, want a warning saying %q", tc.addr, tc.hasToken, tc.hasTLS, w, tc.warn)
		}
	}
}
