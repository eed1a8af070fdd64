package web

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ember-profiler/ember/schema"
)

// unixMillisThreshold tells Unix seconds from milliseconds: 1e11 seconds is
// the year 5138, 1e11 milliseconds is March 1973, so anything at or above it
// is milliseconds.
const unixMillisThreshold = 1e11

// maxRelative bounds relative times and steps, so that arithmetic on them
// cannot overflow time.Duration (about 292 years).
const maxRelative = 100 * 365 * 24 * time.Hour

// defaultRange is how far back from goes when only to (or nothing) is given.
const defaultRange = time.Hour

// parseTime reads a time parameter: RFC 3339, Unix seconds or milliseconds
// (told apart by magnitude, fractions allowed), "now", or a time relative to
// now such as "-15m", "-24h", "-7d", "-2w" (also written "now-15m").
func parseTime(s string, now time.Time) (time.Time, error) {
	t, err := parseAnyTime(strings.TrimSpace(s), now)
	if err == nil && (t.Before(time.Unix(0, 0)) || t.Year() > 9999) {
		return time.Time{}, fmt.Errorf("%q is outside the years 1970 to 9999", s)
	}
	return t, err
}

func parseAnyTime(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "now-"):
		s = s[len("now"):]
	}
	if strings.HasPrefix(s, "-") {
		d, err := parseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("cannot parse %q as a relative time: %w", s, err)
		}
		return now.Add(-d), nil
	}
	if t, ok := parseUnix(s); ok {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q as a time: want RFC 3339, Unix seconds or milliseconds, now, or a relative time such as -15m or -7d", s)
}

// parseUnix reads Unix seconds or milliseconds; ok is false for anything
// that is not a non-negative decimal number.
func parseUnix(s string) (time.Time, bool) {
	if s == "" || !strings.ContainsAny(s[:1], "0123456789") {
		return time.Time{}, false
	}
	intPart, fracPart, _ := strings.Cut(s, ".")
	if strings.Trim(intPart, "0123456789") != "" || strings.Trim(fracPart, "0123456789") != "" {
		return time.Time{}, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v > math.MaxInt64/1e6 { // beyond any millisecond time time.Time can add up
		return time.Time{}, false
	}
	if v >= unixMillisThreshold {
		whole := int64(v)
		return time.UnixMilli(whole).Add(time.Duration((v - float64(whole)) * 1e6)), true
	}
	sec, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nanos int64
	if fracPart != "" {
		frac := (fracPart + "000000000")[:9]
		nanos, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(sec, nanos), true
}

// parseDuration reads a positive duration: Go syntax ("90s", "1h30m"), a
// whole number of days or weeks ("7d", "2w"), or plain seconds ("60",
// "0.5"). It is bounded by maxRelative.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	switch {
	case s == "":
		return 0, fmt.Errorf("empty duration")
	case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w"):
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("want a whole number before %q", s[len(s)-1:])
		}
		unit := 24 * time.Hour
		if strings.HasSuffix(s, "w") {
			unit *= 7
		}
		if n > uint64(maxRelative/unit) {
			return 0, fmt.Errorf("longer than %d days", maxRelative/(24*time.Hour))
		}
		d = time.Duration(n) * unit
	case strings.Trim(s, "0123456789.") == "":
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("not a number of seconds")
		}
		if secs > maxRelative.Seconds() {
			return 0, fmt.Errorf("longer than %d days", maxRelative/(24*time.Hour))
		}
		d = time.Duration(secs * float64(time.Second))
	default:
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("want a duration such as 30s, 15m, 24h or 7d")
		}
		if d > maxRelative {
			return 0, fmt.Errorf("longer than %d days", maxRelative/(24*time.Hour))
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("not positive")
	}
	return d, nil
}

// timeRange reads a from/to pair of parameters with the defaults to=now and
// from=to-1h, and checks it against the order and the maximum range.
func timeRange(q url.Values, fromName, toName string, now time.Time, maxRange time.Duration) (from, to time.Time, err error) {
	to = now
	if s := q.Get(toName); s != "" {
		if to, err = parseTime(s, now); err != nil {
			return from, to, badParam(toName, "%s: %v", toName, err)
		}
	}
	from = to.Add(-defaultRange)
	if s := q.Get(fromName); s != "" {
		if from, err = parseTime(s, now); err != nil {
			return from, to, badParam(fromName, "%s: %v", fromName, err)
		}
	}
	switch {
	case to.Before(from):
		return from, to, badParam(toName, "%s is before %s", toName, fromName)
	case to.Equal(from):
		return from, to, badParam(toName, "%s equals %s: the range is empty", toName, fromName)
	case to.Sub(from) > maxRange:
		return from, to, badParam(fromName, "the range from %s to %s is %s, longer than the limit of %s",
			fromName, toName, formatDuration(to.Sub(from)), formatDuration(maxRange))
	}
	return from, to, nil
}

// intParam reads an optional integer parameter in [lo, hi], def when absent.
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, badParam(name, "%s: %q is not a whole number", name, s)
	}
	if n < lo || n > hi {
		return 0, badParam(name, "%s: %d is outside [%d, %d]", name, n, lo, hi)
	}
	return n, nil
}

// shareParam reads an optional share in [0, 1], 0 when absent.
func shareParam(q url.Values, name string) (float64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v >= 0 && v <= 1) {
		return 0, badParam(name, "%s: %q is not a share between 0 and 1", name, s)
	}
	return v, nil
}

// labelNameParam checks a label name given as parameter param.
func labelNameParam(param, name string) error {
	if len(name) > schema.MaxLabelNameBytes || !schema.ValidLabelName(name) {
		return badParam(param, "%s: %q is not a label name (want letters, digits and _, not starting with a digit)", param, name)
	}
	return nil
}

// formatDuration prints whole days as "31d", which time.Duration cannot.
func formatDuration(d time.Duration) string {
	day := 24 * time.Hour
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
