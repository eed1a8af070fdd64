package web

import "testing"

func TestCheckListenSafety(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		hasToken bool
		warn     bool
	}{
		{"127.0.0.1:7070", false, false},
		{"127.0.0.2:7070", false, false},
		{"[::1]:7070", false, false},
		{"localhost:7070", false, false},
		{":7070", false, true},
		{"0.0.0.0:7070", false, true},
		{"[::]:7070", false, true},
		{"10.0.0.5:7070", false, true},
		{"profiler.example:7070", false, true},
		{"0.0.0.0:7070", true, false},
		{"10.0.0.5:7070", true, false},
	} {
		w := CheckListenSafety(tc.addr, tc.hasToken)
		if (w != "") != tc.warn {
			t.Errorf("CheckListenSafety(%q, %v) = %q, want a warning: %v", tc.addr, tc.hasToken, w, tc.warn)
		}
	}
}
