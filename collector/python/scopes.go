package python

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// CPython before 3.11 keeps no qualified name in its code objects, only
// co_name. The scope finder derives it from the source, as the compiler
// does: each def, class, lambda and comprehension is found with the line
// its code object starts on (a decorated one's first decorator) and named
// from the scopes around it. What it cannot tell for sure is marked
// ambiguous, so that frames keep co_name rather than a wrong scope.

// fileScopes are the qualified names of one source file's code objects.
type fileScopes struct {
	byStart map[scopeStart]scopeName
	bytes   int64 // an estimate of the memory it holds
}

type scopeStart struct {
	line int32
	name string // co_name
}

type scopeName struct {
	qualname  string
	ambiguous bool // two code objects here would differ
}

var errUnsure = errors.New("a construct the scope finder does not follow")

// parseScopes finds the qualified names of src's code objects.
func parseScopes(src []byte) (*fileScopes, error) {
	if !utf8.Valid(src) {
		return nil, errNotUTF8
	}
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf")) // a BOM is no part of the first line's statement
	lines, err := logicalLines(src)
	if err != nil {
		return nil, err
	}
	fs := &fileScopes{byStart: make(map[scopeStart]scopeName)}
	if err := fs.walk(lines); err != nil {
		return nil, err
	}
	return fs, nil
}

var errNotUTF8 = errors.New("not UTF-8")

// lookup is the qualified name of the code object named name whose first
// line is line.
func (fs *fileScopes) lookup(line int64, name string) (string, QualnameFallback) {
	n, ok := fs.byStart[scopeStart{int32(line), name}]
	switch {
	case !ok:
		return "", FallbackNoMatch
	case n.ambiguous:
		return "", FallbackAmbiguous
	}
	return n.qualname, FallbackNone
}

// A scope is a def's or class's body, or the module.
type scope struct {
	indent int
	prefix string // of its children's qualified names
	// unsure: the names of its children cannot be written (a non-ASCII
	// name, which CPython normalizes).
	unsure bool
	// globals declared in it: a def of one of those names is named
	// without the prefix.
	globals map[string]bool
}

func (fs *fileScopes) add(line int32, name, qualname string, unsure bool) {
	k := scopeStart{line, name}
	if n, ok := fs.byStart[k]; ok {
		if n.qualname != qualname || unsure {
			fs.byStart[k] = scopeName{ambiguous: true}
		}
		return
	}
	fs.byStart[k] = scopeName{qualname: qualname, ambiguous: unsure}
	fs.bytes += int64(len(name)+len(qualname)) + 64
}

// walk follows the statements: blocks by their indentation, def and class
// headers, and the expressions of every line.
func (fs *fileScopes) walk(lines []logicalLine) error {
	stack := []*scope{{indent: -1}}
	decorated := int32(0) // the first decorator's line, before a def or class
	var hidden [][2]int32 // lines of logical lines with f-strings that hide code
	defer func() { fs.hide(hidden) }()
	for _, ll := range lines {
		for _, t := range ll.tokens {
			if t.hidesCode {
				hidden = append(hidden, [2]int32{ll.tokens[0].line, ll.tokens[len(ll.tokens)-1].line})
				break
			}
		}
		for len(stack) > 1 && stack[len(stack)-1].indent >= ll.indent {
			stack = stack[:len(stack)-1]
		}
		cur := stack[len(stack)-1]
		e := expr{fs: fs, toks: ll.tokens}
		t := ll.tokens
		if lambdas(t) > maxLambdasPerLine {
			// Each lambda's end is looked for ahead of it: bound the cost.
			return fmt.Errorf("line %d: over %d lambdas in one statement: %w", t[0].line, maxLambdasPerLine, errUnsure)
		}
		if t[0].isOp("@") {
			if decorated == 0 {
				decorated = t[0].line
			}
			if err := e.scan(1, len(t), cur.prefix, cur.unsure); err != nil {
				return err
			}
			continue
		}
		k := 0
		if t[0].isName("async") && len(t) > 1 && t[1].isName("def") {
			k = 1
		}
		if len(t) > k+1 && (t[k].isName("def") || t[k].isName("class")) && t[k+1].kind == tokenName {
			child, err := fs.header(&e, cur, decorated, k, ll.indent)
			if err != nil {
				return err
			}
			if child != nil {
				stack = append(stack, child)
			}
			decorated = 0
			continue
		}
		if decorated != 0 {
			return fmt.Errorf("line %d: a decorator before no def or class: %w", decorated, errUnsure)
		}
		if t[0].isName("global") {
			for _, g := range t[1:] {
				if g.kind == tokenName {
					if cur.globals == nil {
						cur.globals = make(map[string]bool)
					}
					cur.globals[g.text] = true
				} else if !g.isOp(",") {
					break
				}
			}
		}
		if err := e.scan(0, len(t), cur.prefix, cur.unsure); err != nil {
			return err
		}
	}
	return nil
}

// header reads a def or class header (its keyword at k) in scope cur and
// returns its body's scope, or nil when the body is on the header's line.
func (fs *fileScopes) header(e *expr, cur *scope, decorated int32, k, indent int) (*scope, error) {
	t := e.toks
	name := t[k+1].text
	first := t[0].line
	if decorated != 0 {
		first = decorated
	}
	qualname := cur.prefix + name
	if cur.globals[name] {
		qualname = name // CPython names a def declared global in its scope so
	}
	unsure := cur.unsure || !isASCII(name)
	fs.add(first, name, qualname, unsure)
	// Parameters, bases, decorators and annotations are the scope's around.
	j := k + 2
	if j < len(t) && t[j].isOp("(") {
		if err := e.scan(j+1, int(t[j].match), cur.prefix, cur.unsure); err != nil {
			return nil, err
		}
		j = int(t[j].match) + 1
	}
	colon := -1
	for m := j; m < len(t) && colon < 0; m++ {
		switch {
		case t[m].opens():
			m = int(t[m].match)
		case t[m].isName("lambda"):
			return nil, fmt.Errorf("line %d: a lambda in a return annotation: %w", t[m].line, errUnsure)
		case t[m].isOp(":"):
			colon = m
		}
	}
	if colon < 0 {
		return nil, fmt.Errorf("line %d: no colon ends the header of %s: %w", t[k].line, name, errUnsure)
	}
	if err := e.scan(j, colon, cur.prefix, cur.unsure); err != nil {
		return nil, err
	}
	body := &scope{indent: indent, prefix: qualname + ".<locals>.", unsure: unsure}
	if t[k].isName("class") {
		body.prefix = qualname + "."
	}
	if colon+1 < len(t) {
		return nil, e.scan(colon+1, len(t), body.prefix, body.unsure)
	}
	return body, nil
}

// hide makes ambiguous the lambdas and comprehensions that start on the
// given lines: a code object of an f-string's field there (which CPython
// before 3.9 may place on its statement's first line) would be taken for
// them.
func (fs *fileScopes) hide(lines [][2]int32) {
	if len(lines) == 0 {
		return
	}
	hidden := make(map[int32]bool)
	for _, l := range lines {
		for n := l[0]; n <= l[1]; n++ {
			hidden[n] = true
		}
	}
	for k := range fs.byStart {
		if strings.HasPrefix(k.name, "<") && hidden[k.line] {
			fs.byStart[k] = scopeName{ambiguous: true}
		}
	}
}

const maxLambdasPerLine = 256

func lambdas(t []token) int {
	n := 0
	for i := range t {
		if t[i].isName("lambda") {
			n++
		}
	}
	return n
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// expr finds the lambdas and comprehensions of one logical line.
type expr struct {
	fs   *fileScopes
	toks []token
}

// scan registers the lambdas and comprehensions of toks[lo:hi], one
// bracket level, whose code runs in the scope of the given prefix.
func (e *expr) scan(lo, hi int, prefix string, unsure bool) error {
	t := e.toks
	for i := lo; i < hi; i++ {
		switch {
		case t[i].opens():
			end := int(t[i].match)
			var err error
			if name := e.comprehension(i); name != "" {
				err = e.scanComprehension(i, name, prefix, unsure)
			} else {
				err = e.scan(i+1, end, prefix, unsure)
			}
			if err != nil {
				return err
			}
			i = end
		case t[i].isName("lambda"):
			colon := e.lambdaColon(i+1, hi)
			if colon < 0 {
				return fmt.Errorf("line %d: a lambda without its colon: %w", t[i].line, errUnsure)
			}
			// Defaults are evaluated where the lambda is made.
			if err := e.scan(i+1, colon, prefix, unsure); err != nil {
				return err
			}
			end := e.lambdaEnd(colon+1, hi)
			e.fs.add(t[i].line, "<lambda>", prefix+"<lambda>", unsure)
			if err := e.scan(colon+1, end, prefix+"<lambda>.<locals>.", unsure); err != nil {
				return err
			}
			i = end - 1
		}
	}
	return nil
}

// next returns the index of the first token in toks[lo:hi] at this
// bracket level that ok accepts, or hi.
func (e *expr) next(lo, hi int, ok func(*token) bool) int {
	for i := lo; i < hi; i++ {
		if ok(&e.toks[i]) {
			return i
		}
		if e.toks[i].opens() {
			i = int(e.toks[i].match)
		}
	}
	return hi
}

// lambdaColon is the colon that ends the parameters of a lambda whose
// parameters start at lo: lambdas in defaults take theirs first.
func (e *expr) lambdaColon(lo, hi int) int {
	pending := 0
	i := e.next(lo, hi, func(t *token) bool {
		switch {
		case t.isName("lambda"):
			pending++
		case t.isOp(":"):
			if pending == 0 {
				return true
			}
			pending--
		}
		return false
	})
	if i == hi {
		return -1
	}
	return i
}

// lambdaEnd is where a lambda's body that starts at lo ends: at a comma,
// a semicolon, a colon not its own (a dict's), or a comprehension's for.
func (e *expr) lambdaEnd(lo, hi int) int {
	pending := 0
	return e.next(lo, hi, func(t *token) bool {
		switch {
		case t.isName("lambda"):
			pending++
		case t.isOp(":"):
			if pending == 0 {
				return true
			}
			pending--
		case pending > 0:
			// In a nested lambda's parameters: commas part them.
		case t.isOp(",") || t.isOp(";") || t.isName("for") || t.isName("async"):
			return true
		}
		return false
	})
}

// comprehension is the code object name of the comprehension the bracket
// at i opens, or "" when it opens none: a bracket whose own level holds a
// for is one.
func (e *expr) comprehension(i int) string {
	t := e.toks
	end := int(t[i].match)
	f := e.next(i+1, end, func(t *token) bool { return t.isName("for") })
	if f == end {
		return ""
	}
	switch t[i].text {
	case "[":
		return "<listcomp>"
	case "(":
		return "<genexpr>"
	}
	pending := 0
	dict := e.next(i+1, f, func(t *token) bool {
		switch {
		case t.isName("lambda"):
			pending++
		case t.isOp(":"):
			if pending == 0 {
				return true
			}
			pending--
		}
		return false
	})
	if dict < f {
		return "<dictcomp>"
	}
	return "<setcomp>"
}

// scanComprehension registers the comprehension the bracket at i opens
// and scans its parts: the first iterable is evaluated in the scope
// around it, the rest in its own.
func (e *expr) scanComprehension(i int, name, prefix string, unsure bool) error {
	t := e.toks
	end := int(t[i].match)
	// Its first line is the bracket's, or for a call's only argument
	// its first token's: both are taken, and would they disagree with
	// another construct there, the name is ambiguous.
	e.fs.add(t[i].line, name, prefix+name, unsure)
	if i+1 < end && t[i+1].line != t[i].line {
		e.fs.add(t[i+1].line, name, prefix+name, unsure)
	}
	inner := prefix + name + "." // a comprehension's children are not "<locals>"
	f := e.next(i+1, end, func(t *token) bool { return t.isName("for") })
	elemEnd := f
	if f > i+1 && t[f-1].isName("async") {
		elemEnd = f - 1
	}
	in := e.next(f+1, end, func(t *token) bool { return t.isName("in") })
	if in == end {
		return fmt.Errorf("line %d: a comprehension's for without in: %w", t[f].line, errUnsure)
	}
	iterEnd := e.next(in+1, end, func(t *token) bool {
		return t.isName("for") || t.isName("async") || t.isName("if")
	})
	if err := e.scan(i+1, elemEnd, inner, unsure); err != nil {
		return err
	}
	if err := e.scan(f+1, in, inner, unsure); err != nil {
		return err
	}
	if err := e.scan(in+1, iterEnd, prefix, unsure); err != nil {
		return err
	}
	return e.scan(iterEnd, end, inner, unsure)
}
