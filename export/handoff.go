package export

import (
	"context"
	"strconv"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
	"github.com/ember-profiler/ember/storage"
)

// Reading an interval back costs more than sending it, and the daemon has
// just had it in memory. So the daemon hands over each profile it stores
// (Stored), and exporters that are caught up send it from memory; an
// exporter behind (an outage, a restart) reads from the store as before.
// The profile handed over is the one given to the store: what it adds or
// leaves out on the way in (host labels, the labels it keeps, the sample
// types in schema order, zero samples) is done to a view of it here, so
// that the series split and sent are those of the stored interval. Only
// frame addresses may differ: the store shows a mapping at the address
// where it was first seen.

// Stored offers the profile the daemon has just stored with hostLabels.
// It is kept, as the store would return it, until the next one, for the
// exporters' ReadInterval. It does not write to p, which others may read.
func (s *SharedHistory) Stored(p *profile.Profile, hostLabels map[string]string) {
	// The store keys an interval by its start, unless another interval
	// has that key: then the newest is not this one, and it is read back.
	var fresh sharedInterval
	if newest, ok := s.History.NewestInterval(); ok && newest == p.TimeNanos {
		if view, ok := storedView(p, hostLabels); ok {
			fresh = sharedInterval{p.TimeNanos, view}
		}
	}
	s.freshMu.Lock()
	defer s.freshMu.Unlock()
	s.fresh = fresh
}

// readFresh returns the interval handed over by Stored, if it is ref's.
func (s *SharedHistory) readFresh(ref storage.IntervalRef) *profile.Profile {
	s.freshMu.Lock()
	defer s.freshMu.Unlock()
	if s.fresh.p != nil && s.fresh.key == ref.Key {
		return s.fresh.p
	}
	return nil
}

// ReadInterval returns the interval handed over, or one of the recent
// ones read, or reads it from the store.
func (s *SharedHistory) ReadInterval(ctx context.Context, ref storage.IntervalRef) (*profile.Profile, error) {
	if p := s.readFresh(ref); p != nil {
		return p, nil
	}
	return s.readRecent(ctx, ref)
}

// storedView is p as the store returns it (storage.Store.ReadInterval),
// sharing p's locations; ok is false for a profile the store would refuse.
func storedView(p *profile.Profile, hostLabels map[string]string) (*profile.Profile, bool) {
	if p.TimeNanos <= 0 || schema.CheckSampleTypes(p.SampleType) != nil {
		return nil, false
	}
	// Values move to the store's order: that of schema.Known.
	var have [len(schema.Known)]int // 1 + the index in p's values; 0: absent
	for i, st := range p.SampleType {
		have[schema.Index(schema.Of(st))] = i + 1
	}
	var types []schema.SampleType
	var order []int
	inOrder := true
	for k, i := range have {
		if i != 0 {
			inOrder = inOrder && i == len(order)+1
			types = append(types, schema.Known[k])
			order = append(order, i-1)
		}
	}
	if len(types) == 0 {
		return nil, false
	}
	view := &profile.Profile{
		SampleType: schema.ValueTypes(types...), PeriodType: schema.PeriodType.ValueType(),
		TimeNanos: p.TimeNanos, DurationNanos: p.DurationNanos,
		Location: p.Location, Function: p.Function, Mapping: p.Mapping,
	}
	if len(types) != 2 || have[schema.SamplesIndex] == 0 || have[schema.CPUIndex] == 0 {
		if have[schema.CPUIndex] != 0 {
			view.DefaultSampleType = schema.CPU.Type
		}
	}
	if schema.Of(p.PeriodType) == schema.PeriodType && p.Period > 0 {
		view.Period = p.Period
	}
	labels := labelViews{host: hostLabels, byKey: map[string]labelView{}}
	samples := make([]profile.Sample, 0, len(p.Sample))
	var values []int64
	if !inOrder {
		values = make([]int64, 0, len(p.Sample)*len(order))
	}
	for _, smp := range p.Sample {
		nonZero := false
		for _, v := range smp.Value {
			nonZero = nonZero || v != 0
		}
		if !nonZero {
			continue // the store keeps no sample without a value
		}
		v := smp.Value
		if !inOrder {
			start := len(values)
			for _, i := range order {
				values = append(values, smp.Value[i])
			}
			v = values[start:len(values):len(values)]
		}
		l := labels.of(smp)
		samples = append(samples, profile.Sample{Location: smp.Location, Value: v, Label: l.str, NumLabel: l.num})
	}
	view.Sample = make([]*profile.Sample, len(samples))
	for i := range samples {
		view.Sample[i] = &samples[i]
	}
	return view, true
}

// labelViews makes a sample's labels as the store keeps them: the host's,
// the stored string labels and the pid, shared by the samples that have
// the same ones (usually all of one process).
type labelViews struct {
	host  map[string]string
	byKey map[string]labelView
	key   []byte
}

type labelView struct {
	str map[string][]string
	num map[string][]int64
}

func (lv *labelViews) of(smp *profile.Sample) labelView {
	key := lv.key[:0]
	for _, name := range schema.StoredStringLabels {
		key = append(key, first(smp.Label[name])...)
		key = append(key, 0)
	}
	pid, pidText, hasPID := storedPID(smp)
	key = append(key, pidText...)
	lv.key = key
	if l, ok := lv.byKey[string(key)]; ok {
		return l
	}
	l := labelView{str: make(map[string][]string, len(lv.host)+len(schema.StoredStringLabels))}
	for name, value := range lv.host {
		l.str[name] = []string{value}
	}
	for _, name := range schema.StoredStringLabels {
		if v := first(smp.Label[name]); v != "" {
			l.str[name] = []string{v}
		}
	}
	switch {
	case hasPID:
		l.num = map[string][]int64{schema.LabelPID: {pid}}
	case pidText != "":
		l.str[schema.LabelPID] = []string{pidText}
	}
	lv.byKey[string(key)] = l
	return l
}

// storedPID is the pid as the store returns it: a number, or (a string
// label that is not one) text; text is also the number's, for a key.
func storedPID(smp *profile.Sample) (pid int64, text string, isNumber bool) {
	if v := smp.NumLabel[schema.LabelPID]; len(v) > 0 {
		return v[0], strconv.FormatInt(v[0], 10), true
	}
	text = first(smp.Label[schema.LabelPID])
	pid, err := strconv.ParseInt(text, 10, 64)
	return pid, text, text != "" && err == nil
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
