package web

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"now", testNow},
		{"-15m", testNow.Add(-15 * time.Minute)},
		{"-24h", testNow.Add(-24 * time.Hour)},
		{"-1h30m", testNow.Add(-90 * time.Minute)},
		{"-7d", testNow.Add(-7 * 24 * time.Hour)},
		{"-2w", testNow.Add(-14 * 24 * time.Hour)},
		{"-90", testNow.Add(-90 * time.Second)},
		{"now-15m", testNow.Add(-15 * time.Minute)},
		{"1764064800", time.Unix(1764064800, 0)},
		{"1764064800.25", time.Unix(1764064800, 250_000_000)},
		{"1764064800123", time.UnixMilli(1764064800123)},
		{"99999999999", time.Unix(99999999999, 0)},     // just below the threshold: seconds
		{"100000000000", time.UnixMilli(100000000000)}, // at it: milliseconds
		{"0", time.Unix(0, 0)},
		{"2026-11-25T10:00:00Z", time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)},
		{"2026-11-25T11:00:00.5+01:00", time.Date(2026, 11, 25, 10, 0, 0, 500_000_000, time.UTC)},
	} {
		got, err := parseTime(tc.in, testNow)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "yesterday", "-", "-5x", "-0s", "--5m", "-1.5d", "1e9", "12:00",
		"2026-11-25", "-99999999d", "-36500d", "0000-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "-999999999999h", "+5m", "0x10", "99999999999999999999999"} {
		if got, err := parseTime(in, testNow); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"30s", 30 * time.Second}, {"1m", time.Minute}, {"60", time.Minute}, {"0.5", 500 * time.Millisecond},
		{"1d", 24 * time.Hour}, {"1w", 7 * 24 * time.Hour},
	} {
		if got, err := parseDuration(tc.in); err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "0s", "-1s", "d", "1.5w", "abc", "1..2", "100000000h"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestTimeRange(t *testing.T) {
	const maxRange = 31 * 24 * time.Hour
	for _, tc := range []struct {
		query            string
		from, to         time.Time
		errParam, errHas string
	}{
		{query: "", from: testNow.Add(-time.Hour), to: testNow},
		{query: "to=-1h", from: testNow.Add(-2 * time.Hour), to: testNow.Add(-time.Hour)},
		{query: "from=-7d", from: testNow.Add(-7 * 24 * time.Hour), to: testNow},
		{query: "from=-31d", from: testNow.Add(-31 * 24 * time.Hour), to: testNow},
		{query: "from=-32d", errParam: "from", errHas: "longer than the limit of 31d"},
		{query: "from=-1h&to=-2h", errParam: "to", errHas: "to is before from"},
		{query: "from=now&to=now", errParam: "to", errHas: "empty"},
		{query: "from=soon", errParam: "from", errHas: `"soon"`},
		{query: "to=later", errParam: "to", errHas: `"later"`},
	} {
		q, _ := url.ParseQuery(tc.query)
		from, to, err := timeRange(q, "from", "to", testNow, maxRange)
		if tc.errParam != "" {
			ae, ok := err.(*apiError)
			if !ok || ae.Parameter != tc.errParam || ae.Status != 400 || !strings.Contains(ae.Message, tc.errHas) {
				t.Errorf("timeRange(%q) error %v, want a 400 naming %q and saying %q", tc.query, err, tc.errParam, tc.errHas)
			}
			continue
		}
		if err != nil || !from.Equal(tc.from) || !to.Equal(tc.to) {
			t.Errorf("timeRange(%q) = %v, %v, %v; want %v, %v", tc.query, from, to, err, tc.from, tc.to)
		}
	}
}

// FuzzParseTime checks that no input panics the time parser and that what
// it accepts lies in time.Time's sane range.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"now", "-15m", "-7d", "now-2w", "1764064800", "1764064800123", "1764064800.5",
		"2026-11-25T10:00:00Z", "-1h30m", "9999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s, testNow)
		if err == nil && (got.Before(time.Unix(0, 0)) || got.Year() > 9999) {
			t.Errorf("parseTime(%q) = %v", s, got)
		}
		if d, err := parseDuration(s); err == nil && (d <= 0 || d > maxRelative) {
			t.Errorf("parseDuration(%q) = %v", s, d)
		}
	})
}
