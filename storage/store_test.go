package storage

import (
	"context"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	s := openTest(t, Options{})
	g := smallGenerator()
	host := map[string]string{"host": "web-1"}
	ps := appendRange(t, s, g, t0.Add(5*time.Second), 10*time.Second, 30, host)
	got, err := s.Query(context.Background(), ProfileQuery{From: t0, To: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := got.CheckValid(); err != nil {
		t.Fatalf("CheckValid: %v", err)
	}
	want := mergeCanonical(t, ps, host)
	if c := canonical(got, nil); c != want {
		t.Errorf("query differs from profile.Merge of the inputs:\n got %.2000s\nwant %.2000s", c, want)
	}
}
