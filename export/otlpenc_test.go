package export

import (
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/profiles/v1development"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/ember-profiler/ember/storage"
)

// encoderInterval is testInterval with what the store can also hand over:
// host labels, a container, a build ID, inlined lines, a location outside
// the profile's table, a sample without a stack and one with a zero value.
func encoderInterval(start time.Time, seed int) *profile.Profile {
	p := testInterval(start, seed)
	p.Mapping[0].BuildID = "abc123"
	p.Location[0].Line = append(p.Location[0].Line, profile.Line{Function: p.Function[4], Line: 7, Column: 3})
	for i, smp := range p.Sample {
		smp.Label["host"] = []string{"web-1"}
		smp.Label["dc"] = []string{""}
		if i%2 == 0 {
			smp.Label["container"] = []string{"c0ffee"}
		}
	}
	stray := &profile.Location{ID: 999, Mapping: p.Mapping[1], Address: 0x4ff000,
		Line: []profile.Line{{Function: &profile.Function{ID: 77, Name: "stray", Filename: "stray.c", StartLine: 5}, Line: 9}}}
	p.Sample = append(p.Sample,
		&profile.Sample{Location: []*profile.Location{stray, p.Location[1]}, Value: []int64{0, 1e6},
			Label: map[string][]string{"comm": {"app-a"}, "exe": {"/usr/bin/app-a"}, "host": {"web-1"}}, NumLabel: map[string][]int64{"pid": {100}}},
		&profile.Sample{Value: []int64{1, 1e7},
			Label: map[string][]string{"comm": {"idle"}, "host": {"web-1"}}, NumLabel: map[string][]int64{"pid": {0}}})
	return p
}

// The hand-written request decodes to the request the generated types
// build, field for field, and is the same bytes as their deterministic
// marshalling; the encoder's reused buffers leave nothing behind.
func TestOTLPEncoderMatchesGenerated(t *testing.T) {
	tmpl, err := ParseTemplate("{comm}")
	if err != nil {
		t.Fatal(err)
	}
	var enc otlpEncoder
	for _, c := range []struct {
		name    string
		keepPID bool
		seed    int
	}{{"pid", true, 0}, {"no pid", false, 1}, {"pid again", true, 2}} {
		t.Run(c.name, func(t *testing.T) {
			p := encoderInterval(t0.Add(time.Duration(c.seed)*10*time.Second), c.seed)
			lp := labelPolicy{service: tmpl, keepPID: c.keepPID}
			ref := storage.IntervalRef{Key: p.TimeNanos}
			iv := &interval{ref: ref, p: p, series: lp.split(p)}
			var dict otlpDictionary
			want := otlpRequest(iv, &dict)

			raw, resources := enc.encode(iv)
			var got collectorpb.ExportProfilesServiceRequest
			if err := proto.Unmarshal(raw, &got); err != nil {
				t.Fatalf("the encoder's bytes do not decode: %v", err)
			}
			if !proto.Equal(want, &got) {
				t.Fatalf("decoded request differs from the generated one:\n%s", firstDifference(want, &got))
			}
			if resources != len(want.ResourceProfiles) {
				t.Errorf("%d resources reported, the request has %d", resources, len(want.ResourceProfiles))
			}
			wantRaw, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != string(wantRaw) {
				t.Errorf("bytes differ from the generated marshalling (%d and %d bytes)", len(raw), len(wantRaw))
			}
			enc.release(false)
		})
	}
}

func BenchmarkOTLPEncode(b *testing.B) {
	tmpl, _ := ParseTemplate("{comm}")
	p := encoderInterval(t0, 3)
	iv := &interval{ref: storage.IntervalRef{Key: p.TimeNanos}, p: p, series: labelPolicy{service: tmpl}.split(p)}
	b.Run("hand", func(b *testing.B) {
		var enc otlpEncoder
		for b.Loop() {
			enc.encode(iv)
			enc.release(false)
		}
	})
	b.Run("generated", func(b *testing.B) {
		var dict otlpDictionary
		for b.Loop() {
			proto.Marshal(otlpRequest(iv, &dict))
			dict.release()
		}
	})
}

// firstDifference shows where two messages' text forms part.
func firstDifference(want, got proto.Message) string {
	opts := prototext.MarshalOptions{Multiline: true}
	w := strings.Split(opts.Format(want), "\n")
	g := strings.Split(opts.Format(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		if i >= len(w) || i >= len(g) || w[i] != g[i] {
			lo := max(0, i-3)
			return "want:\n" + strings.Join(w[lo:min(len(w), i+3)], "\n") + "\ngot:\n" + strings.Join(g[lo:min(len(g), i+3)], "\n")
		}
	}
	return "(same text)"
}
