package export

import (
	"errors"
	"fmt"
	"sort"
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

func (t Template) render(smp *profile.Sample) string {
	var b strings.Builder
	for _, p := range t.parts {
		if p.label == "" {
			b.WriteString(p.text)
		} else {
			b.WriteString(labelValue(smp, p.label))
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

func labelValue(smp *profile.Sample, name string) string {
	if v := smp.Label[name]; len(v) > 0 {
		return v[0]
	}
	if v := smp.NumLabel[name]; len(v) > 0 {
		return strconv.FormatInt(v[0], 10)
	}
	return ""
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
}

func (lp labelPolicy) exported(name string) bool {
	if name == schema.LabelPID {
		return lp.keepPID
	}
	return !droppedLabels[name]
}

// split groups p's samples into series, sorted by their labels. The
// samples are p's own, labels and all; backends copy what they send.
func (lp labelPolicy) split(p *profile.Profile) []Series {
	byKey := make(map[string]int)
	var out []Series
	var key strings.Builder
	var labels []Label
	for _, smp := range p.Sample {
		labels = labels[:0]
		labels = append(labels, Label{LabelServiceName, lp.service.render(smp)})
		for name, v := range smp.Label {
			if len(v) > 0 && v[0] != "" && lp.exported(name) {
				labels = append(labels, Label{name, v[0]})
			}
		}
		for name, v := range smp.NumLabel {
			if len(v) > 0 && lp.exported(name) {
				labels = append(labels, Label{name, strconv.FormatInt(v[0], 10)})
			}
		}
		sort.Slice(labels, func(i, j int) bool { return labels[i].Name < labels[j].Name })
		key.Reset()
		for _, l := range labels {
			key.WriteString(l.Name)
			key.WriteByte(0)
			key.WriteString(l.Value)
			key.WriteByte(0)
		}
		i, ok := byKey[key.String()]
		if !ok {
			i = len(out)
			byKey[key.String()] = i
			out = append(out, Series{Labels: append([]Label(nil), labels...)})
		}
		out[i].Samples = append(out[i].Samples, smp)
	}
	sort.Slice(out, func(i, j int) bool { return lessLabels(out[i].Labels, out[j].Labels) })
	return out
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
