package query

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ember-profiler/ember/schema"
)

// matchOp is a label matcher's operator.
type matchOp uint8

const (
	opEqual matchOp = iota
	opNotEqual
	opRegexMatch
	opRegexNoMatch
)

func (op matchOp) String() string {
	return [...]string{"=", "!=", "=~", "!~"}[op]
}

// matcher is one `name op "value"` term of a selector.
type matcher struct {
	name  string
	op    matchOp
	value string
	re    *regexp.Regexp // anchored, for =~ and !~
}

// matches tests a label's value; a label a sample lacks has the value "",
// as in Prometheus.
func (m matcher) matches(value string) bool {
	switch m.op {
	case opEqual:
		return value == m.value
	case opNotEqual:
		return value != m.value
	case opRegexMatch:
		return m.re.MatchString(value)
	default:
		return !m.re.MatchString(value)
	}
}

// Selector is a parsed set of label matchers, all of which a sample's labels
// must satisfy. The zero Selector matches everything.
type Selector struct {
	matchers []matcher
}

// String renders the selector in the syntax ParseSelector reads.
func (s Selector) String() string {
	parts := make([]string, len(s.matchers))
	for i, m := range s.matchers {
		parts[i] = m.name + m.op.String() + strconv.Quote(m.value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// MatchesAll reports whether the selector has no matchers, so that a store
// can skip reading labels at all.
func (s Selector) MatchesAll() bool { return len(s.matchers) == 0 }

// MatchesFunc is Matches over labels that value looks up (the empty value
// for a missing name), for a store whose label sets are not maps.
func (s Selector) MatchesFunc(value func(name string) string) bool {
	for _, m := range s.matchers {
		if !m.matches(value(m.name)) {
			return false
		}
	}
	return true
}

// ParseSelector parses a Prometheus-style selector such as
// `{comm="postgres", pid!="42", exe=~".*/python3.*"}`. Operators are =, !=,
// =~ and !~; regular expressions are anchored at both ends, as in
// Prometheus; values are quoted with "", ” (Go escapes) or “ (raw). ""
// and "{}" match everything. Errors give the position (counted in bytes from
// 1) of what is wrong.
func ParseSelector(s string) (Selector, error) {
	p := selectorParser{in: s}
	p.skipSpace()
	if p.pos == len(s) {
		return Selector{}, nil
	}
	if !p.consume("{") {
		return Selector{}, p.errorf(`expected "{"`)
	}
	var sel Selector
	for {
		p.skipSpace()
		if p.consume("}") {
			break
		}
		m, err := p.matcher()
		if err != nil {
			return Selector{}, err
		}
		sel.matchers = append(sel.matchers, m)
		p.skipSpace()
		if p.consume(",") {
			continue
		}
		if p.consume("}") {
			break
		}
		return Selector{}, p.errorf(`expected "," or "}"`)
	}
	p.skipSpace()
	if p.pos != len(s) {
		return Selector{}, p.errorf(`unexpected text after "}"`)
	}
	return sel, nil
}

type selectorParser struct {
	in  string
	pos int
}

// SelectorError is a selector syntax error at a position (in bytes, from 1).
type SelectorError struct {
	Pos int
	Msg string
}

func (e *SelectorError) Error() string {
	return fmt.Sprintf("position %d: %s", e.Pos, e.Msg)
}

func (p *selectorParser) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.pos >= len(p.in) {
		msg += ", found end of input"
	} else {
		r, _ := utf8.DecodeRuneInString(p.in[p.pos:])
		msg += fmt.Sprintf(", found %q", r)
	}
	return &SelectorError{Pos: p.pos + 1, Msg: msg}
}

func (p *selectorParser) skipSpace() {
	for p.pos < len(p.in) && strings.IndexByte(" \t\r\n", p.in[p.pos]) >= 0 {
		p.pos++
	}
}

func (p *selectorParser) consume(tok string) bool {
	if strings.HasPrefix(p.in[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *selectorParser) matcher() (matcher, error) {
	var m matcher
	start := p.pos
	for p.pos < len(p.in) && schema.IsLabelChar(p.in[p.pos], p.pos == start) {
		p.pos++
	}
	if p.pos == start {
		return m, p.errorf("expected a label name")
	}
	m.name = p.in[start:p.pos]
	p.skipSpace()
	switch {
	case p.consume("=~"):
		m.op = opRegexMatch
	case p.consume("!~"):
		m.op = opRegexNoMatch
	case p.consume("!="):
		m.op = opNotEqual
	case p.consume("="):
		m.op = opEqual
	default:
		return m, p.errorf(`expected "=", "!=", "=~" or "!~"`)
	}
	p.skipSpace()
	valuePos := p.pos
	value, err := p.quoted()
	if err != nil {
		return m, err
	}
	m.value = value
	if m.op == opRegexMatch || m.op == opRegexNoMatch {
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return m, &SelectorError{Pos: valuePos + 1, Msg: fmt.Sprintf("bad regular expression for %s: %v", m.name, err)}
		}
		m.re = re
	}
	return m, nil
}

// quoted reads a "", ” or “ quoted string.
func (p *selectorParser) quoted() (string, error) {
	if p.pos >= len(p.in) {
		return "", p.errorf("expected a quoted value")
	}
	q := p.in[p.pos]
	if q != '"' && q != '\'' && q != '`' {
		return "", p.errorf("expected a quoted value")
	}
	start := p.pos
	i := p.pos + 1
	for ; i < len(p.in); i++ {
		c := p.in[i]
		if c == '\\' && q != '`' {
			i++
			continue
		}
		if c == q {
			break
		}
		if c == '\n' && q != '`' {
			break
		}
	}
	if i >= len(p.in) || p.in[i] != q {
		return "", &SelectorError{Pos: start + 1, Msg: "unterminated quoted value"}
	}
	lit := p.in[start : i+1]
	p.pos = i + 1
	if q == '`' {
		return lit[1 : len(lit)-1], nil
	}
	if q == '\'' {
		// strconv.Unquote reads '' as a single character: rewrite as "".
		body := lit[1 : len(lit)-1]
		body = strings.ReplaceAll(body, `\'`, `'`)
		body = strings.ReplaceAll(body, `"`, `\"`)
		lit = `"` + body + `"`
	}
	v, err := strconv.Unquote(lit)
	if err != nil {
		return "", &SelectorError{Pos: start + 1, Msg: fmt.Sprintf("bad escape in quoted value %s", p.in[start:i+1])}
	}
	return v, nil
}

// Matches reports whether labels (name to value; a missing name is the
// empty value, as in Prometheus) satisfy every matcher. The daemon uses it
// on live samples that never reach the store.
func (s Selector) Matches(labels map[string]string) bool {
	for _, m := range s.matchers {
		if !m.matches(labels[m.name]) {
			return false
		}
	}
	return true
}
