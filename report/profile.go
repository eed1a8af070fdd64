package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

// sampleIndex finds the value index of sampleType in p; "" picks the
// profile's default, which pprof takes to be the last when unset (for
// Ember's profiles, cpu nanoseconds).
func sampleIndex(p *profile.Profile, sampleType string) (int, error) {
	want := sampleType
	if want == "" {
		want = p.DefaultSampleType
	}
	for i, st := range p.SampleType {
		if st.Type == want {
			return i, nil
		}
	}
	if sampleType == "" {
		return len(p.SampleType) - 1, nil
	}
	types := make([]string, len(p.SampleType))
	for i, st := range p.SampleType {
		types[i] = st.Type
	}
	return 0, &SampleTypeError{Type: sampleType, Have: types}
}

// SampleTypeError is a sample type the profile does not have.
type SampleTypeError struct {
	Type string   // the type asked for
	Have []string // the profile's types, in order
}

func (e *SampleTypeError) Error() string {
	return fmt.Sprintf("sample type %q is not in the profile, which has %s", e.Type, strings.Join(e.Have, ", "))
}

// orEmpty is p, or an empty profile with Ember's sample types when p is nil
// or has none, as a store may return for a range without samples.
func orEmpty(p *profile.Profile) *profile.Profile {
	if p == nil || len(p.SampleType) == 0 {
		return EmptyProfile(time.Time{}, time.Time{})
	}
	return p
}

// EmptyProfile is a profile without samples over [from, to), with Ember's
// sample types: what a range without samples is, still valid pprof.
func EmptyProfile(from, to time.Time) *profile.Profile {
	return &profile.Profile{
		SampleType:    schema.CPUSampleTypes(),
		PeriodType:    schema.PeriodType.ValueType(),
		TimeNanos:     from.UnixNano(),
		DurationNanos: to.Sub(from).Nanoseconds(),
	}
}
