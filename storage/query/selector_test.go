package query

import (
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	ls := map[string]string{"comm": "postgres", "exe": "/usr/bin/python3.12", "pid": "42"}
	tests := []struct {
		in    string
		match bool
	}{
		{``, true},
		{`{}`, true},
		{` { } `, true},
		{`{comm="postgres"}`, true},
		{`{comm="postgre"}`, false},
		{`{comm!="postgres"}`, false},
		{`{pid!="43"}`, true},
		{`{exe=~".*/python3.*"}`, true},
		{`{exe=~"python3"}`, false}, // anchored
		{`{exe!~".*python.*"}`, false},
		{`{exe!~"nginx"}`, true},
		{`{comm="postgres", pid!="42"}`, false},
		{`{comm="postgres",pid="42",}`, true},
		{`{container=""}`, true}, // a missing label is ""
		{`{container!=""}`, false},
		{`{comm='postgres'}`, true},
		{"{exe=~`/usr/bin/python3\\.12`}", true},
		{`{comm="post\u0067res"}`, true},
		{`{comm=~"post|gres"}`, false},
		{`{comm=~"postgres|nginx"}`, true},
	}
	for _, tt := range tests {
		sel, err := ParseSelector(tt.in)
		if err != nil {
			t.Errorf("ParseSelector(%q): %v", tt.in, err)
			continue
		}
		if got := sel.MatchesFunc(func(name string) string { return ls[name] }); got != tt.match {
			t.Errorf("ParseSelector(%q).MatchesFunc over %v = %v, want %v", tt.in, ls, got, tt.match)
		}
		if got := sel.Matches(ls); got != tt.match {
			t.Errorf("ParseSelector(%q).Matches(%v) = %v, want %v", tt.in, ls, got, tt.match)
		}
		// String renders something that parses to the same selector.
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("ParseSelector(%q).String() = %q, which parses to %v, %v", tt.in, sel.String(), again, err)
		}
	}
}

func TestParseSelectorErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{`comm="x"`, `position 1: expected "{"`},
		{`{comm "x"}`, `position 7: expected "=", "!=", "=~" or "!~", found '"'`},
		{`{comm=x}`, `position 7: expected a quoted value, found 'x'`},
		{`{comm="x"`, `position 10: expected "," or "}", found end of input`},
		{`{comm="x}`, `position 7: unterminated quoted value`},
		{`{1comm="x"}`, `position 2: expected a label name, found '1'`},
		{`{comm=~"("}`, `position 8: bad regular expression for comm`},
		{`{comm="x"} y`, `position 12: unexpected text after "}"`},
		{`{comm="\q"}`, `position 7: bad escape`},
		{`{comm="x" pid="1"}`, `position 11: expected "," or "}", found 'p'`},
		{`{,}`, `position 2: expected a label name`},
	}
	for _, tt := range tests {
		_, err := ParseSelector(tt.in)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseSelector(%q) = %v, want an error starting %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{``, `{}`, `{comm="postgres", pid!="42", exe=~".*/python3.*"}`, `{a!~'b\'c'}`,
		"{x=`raw`}", `{comm="x"`, `{comm=~"("}`, `{container=""}`} {
		f.Add(s)
	}
	ls := map[string]string{"comm": "postgres", "pid": "42"}
	f.Fuzz(func(t *testing.T, in string) {
		sel, err := ParseSelector(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "position ") {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		sel.Matches(ls)
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("String() of %q = %q does not parse: %v", in, sel.String(), err)
		}
		if again.String() != sel.String() {
			t.Fatalf("round trip of %q: %q then %q", in, sel.String(), again.String())
		}
	})
}
