package export

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/schema"
)

// A stored interval is one profile of the whole host, its samples labelled
// by process. Backends want one series per service and label set, so an
// interval is split by the labels that are exported.

// LabelServiceName is the label backends group by (Pyroscope's service_name,
// OTLP's service.name).
const LabelServiceName = "service_name"

// A Template makes a service name from a sample's labels: text with {label}
// placeholders, e.g. "{comm}" or "{container}/{comm}". A placeholder whose
// label is missing or empty is left out; an empty result is "unknown".
type Template struct {
	parts []templatePart
}

type templatePart struct {
	text  string
	label string // a placeholder when set
}

// ParseTemplate parses a service name template.
func ParseTemplate(s string) (Template, error) {
	var t Template
	for s != "" {
		open := strings.IndexByte(s, '{')
		if open < 0 {
			t.parts = append(t.parts, templatePart{text: s})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{text: s[:open]})
		}
		end := strings.IndexByte(s[open:], '}')
		if end < 0 {
			return Template{}, fmt.Errorf("%q: { without }", s)
		}
		name := s[open+1 : open+end]
		if !schema.ValidLabelName(name) {
			return Template{}, fmt.Errorf("%q: {%s} is not a label name", s, name)
		}
		t.parts = append(t.parts, templatePart{label: name})
		s = s[open+end+1:]
	}
	if len(t.parts) == 0 {
		return Template{}, errors.New("empty")
	}
	return t, nil
}

func (t Template) render(smp *profile.Sample) string { return string(t.appendRender(nil, smp)) }

// appendRender appends the service name of smp to b.
func (t Template) appendRender(b []byte, smp *profile.Sample) []byte {
	start := len(b)
	for _, p := range t.parts {
		if p.label == "" {
			b = append(b, p.text...)
		} else {
			b = appendLabelValue(b, smp, p.label)
		}
	}
	if len(b) == start {
		b = append(b, "unknown"...)
	}
	return b
}

func appendLabelValue(b []byte, smp *profile.Sample, name string) []byte {
	if v := smp.Label[name]; len(v) > 0 {
		return append(b, v[0]...)
	}
	if v := smp.NumLabel[name]; len(v) > 0 {
		return strconv.AppendInt(b, v[0], 10)
	}
	return b
}

// A Label is one exported label.
type Label struct{ Name, Value string }

// A Series is the samples of an interval that share exported labels.
type Series struct {
	Labels  []Label // sorted by name, service_name among them
	Samples []*profile.Sample
}

// Get returns the value of a label of the series.
func (s Series) Get(name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// droppedLabels are not exported: tid is never stored; a cgroup path is long
// and says what container and service already say.
var droppedLabels = map[string]bool{schema.LabelTID: true, schema.LabelCgroup: true}

// labelPolicy says which labels a target exports.
type labelPolicy struct {
	service Template
	keepPID bool
	// key is the same for policies that export the same labels.
	key string
}

func newLabelPolicy(serviceName string, keepPID bool) (labelPolicy, error) {
	service, err := ParseTemplate(serviceName)
	return labelPolicy{service: service, keepPID: keepPID, key: fmt.Sprintf("%q pid=%t", serviceName, keepPID)}, err
}

func (lp labelPolicy) exported(name string) bool {
	if name == schema.LabelPID {
		return lp.keepPID
	}
	return !droppedLabels[name]
}

// split groups p's samples into series, sorted by their labels. The
// samples are p's own, labels and all; backends copy what they send, and
// exporters with the same policy share the result (SharedHistory.split).
// The samples of one process usually follow one another with the same
// label maps, so a sample's key is built without allocating, and a
// label's value is copied only for a new series.
func (lp labelPolicy) split(p *profile.Profile) []Series {
	byKey := make(map[string]int)
	var out []Series
	var key, service []byte
	var labels []splitLabel
	for _, smp := range p.Sample {
		service = lp.service.appendRender(service[:0], smp)
		labels = append(labels[:0], splitLabel{name: LabelServiceName, service: true})
		for name, v := range smp.Label {
			if len(v) > 0 && v[0] != "" && lp.exported(name) {
				labels = append(labels, splitLabel{name: name, value: v[0]})
			}
		}
		for name, v := range smp.NumLabel {
			if len(v) > 0 && lp.exported(name) {
				labels = append(labels, splitLabel{name: name, num: v[0], isNum: true})
			}
		}
		slices.SortFunc(labels, func(a, b splitLabel) int { return strings.Compare(a.name, b.name) })
		key = key[:0]
		for _, l := range labels {
			key = append(key, l.name...)
			key = append(key, 0)
			key = l.appendValue(key, service)
			key = append(key, 0)
		}
		i, ok := byKey[string(key)]
		if !ok {
			i = len(out)
			byKey[string(key)] = i
			kept := make([]Label, len(labels))
			for j, l := range labels {
				kept[j] = Label{l.name, string(l.appendValue(nil, service))}
			}
			out = append(out, Series{Labels: kept})
		}
		out[i].Samples = append(out[i].Samples, smp)
	}
	slices.SortFunc(out, func(a, b Series) int {
		switch {
		case lessLabels(a.Labels, b.Labels):
			return -1
		case lessLabels(b.Labels, a.Labels):
			return 1
		}
		return 0
	})
	return out
}

// A splitLabel is a label of one sample while split looks for its series:
// its value stays where it is until a new series copies it.
type splitLabel struct {
	name, value    string
	num            int64
	isNum, service bool
}

func (l splitLabel) appendValue(b, service []byte) []byte {
	switch {
	case l.service:
		return append(b, service...)
	case l.isNum:
		return strconv.AppendInt(b, l.num, 10)
	}
	return append(b, l.value...)
}

func lessLabels(a, b []Label) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i].Name != b[i].Name {
				return a[i].Name < b[i].Name
			}
			return a[i].Value < b[i].Value
		}
	}
	return len(a) < len(b)
}
