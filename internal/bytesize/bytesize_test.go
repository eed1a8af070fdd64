package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]Size{
		"2GiB": 2 << 30, "512MiB": 512 << 20, "1.5GB": 1.5e9, "100000": 100000, "64 mib": 64 << 20, "1k": 1024,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("%q: got %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "2 parsecs", "1e30"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if s := Size(2 << 30).String(); s != "2GiB" {
		t.Errorf("String: %s", s)
	}
}
