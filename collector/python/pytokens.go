package python

import (
	"bytes"
	"errors"
	"fmt"
)

// Just enough of Python's tokenizer for the scope finder (scopes.go): it
// splits a source into logical lines with their indentation, and each
// into names, operators, strings and numbers, so that a "def" in a string
// or a comment is never taken for one, and brackets, continuations and
// tabs join and indent lines as CPython's tokenizer does.

type tokenKind uint8

const (
	tokenName tokenKind = iota
	tokenOp
	tokenString
	tokenNumber
)

type token struct {
	kind tokenKind
	text string // names and operators only
	line int32
	// match is, for an opening bracket, the index of its closing one in
	// the logical line.
	match int32
	// hidesCode: an f-string whose fields may hold lambdas or
	// comprehensions, which the finder does not look into.
	hidesCode bool
}

func (t *token) is(kind tokenKind, text string) bool { return t.kind == kind && t.text == text }
func (t *token) isName(text string) bool             { return t.is(tokenName, text) }
func (t *token) isOp(text string) bool               { return t.is(tokenOp, text) }

func (t *token) opens() bool {
	return t.kind == tokenOp && (t.text == "(" || t.text == "[" || t.text == "{")
}

type logicalLine struct {
	indent int // in columns, a tab to the next multiple of 8
	tokens []token
}

var errUnterminated = errors.New("unterminated string")

// Operators of two and three characters, so that "==" or ":=" is not read
// as "=" or ":", which end a lambda.
var longOps = []string{
	"**=", "//=", ">>=", "<<=", "...", "==", "!=", "<=", ">=", ":=", "->", "**", "//", "<<", ">>",
	"+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=",
}

// logicalLines tokenizes src.
func logicalLines(src []byte) ([]logicalLine, error) {
	var (
		out     []logicalLine
		cur     []token
		opens   []int32 // open brackets' indices in cur
		indent  int
		line    int32 = 1
		newLine       = true // at the start of a physical line between logical lines
	)
	emit := func() {
		if len(cur) > 0 {
			out = append(out, logicalLine{indent: indent, tokens: cur})
		}
		cur = nil
	}
	for i := 0; i < len(src); {
		if newLine {
			col := 0
			for ; i < len(src); i++ {
				switch src[i] {
				case ' ':
					col++
					continue
				case '\t':
					col = (col/8 + 1) * 8
					continue
				case '\f':
					col = 0
					continue
				}
				break
			}
			indent, newLine = col, false
			continue
		}
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\f':
			i++
		case c == '\n' || c == '\r':
			if c == '\r' && i+1 < len(src) && src[i+1] == '\n' {
				i++
			}
			i++
			line++
			if len(opens) == 0 {
				emit()
				newLine = true
			}
		case c == '#':
			for i < len(src) && src[i] != '\n' && src[i] != '\r' {
				i++
			}
		case c == '\\':
			n := 1
			if i+2 < len(src) && src[i+1] == '\r' && src[i+2] == '\n' {
				n = 2
			} else if i+1 >= len(src) || (src[i+1] != '\n' && src[i+1] != '\r') {
				return nil, fmt.Errorf("line %d: backslash outside a string", line)
			}
			i += 1 + n
			line++
		case isQuote(c) || (isPrefix(c) && stringAhead(src, i)):
			start, from := line, i
			var err error
			if i, line, err = skipString(src, i, line); err != nil {
				return nil, fmt.Errorf("line %d: %w", start, err)
			}
			cur = append(cur, token{kind: tokenString, line: start, hidesCode: fStringHidesCode(src[from:i])})
		case isNameStart(c):
			j := i + 1
			for j < len(src) && isNameChar(src[j]) {
				j++
			}
			cur = append(cur, token{kind: tokenName, text: string(src[i:j]), line: line})
			i = j
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			i = skipNumber(src, i)
			cur = append(cur, token{kind: tokenNumber, line: line})
		default:
			op := string(c)
			for _, l := range longOps {
				if len(src)-i >= len(l) && string(src[i:i+len(l)]) == l {
					op = l
					break
				}
			}
			t := token{kind: tokenOp, text: op, line: line}
			switch op {
			case "(", "[", "{":
				opens = append(opens, int32(len(cur)))
			case ")", "]", "}":
				if len(opens) == 0 {
					return nil, fmt.Errorf("line %d: unbalanced %q", line, op)
				}
				o := opens[len(opens)-1]
				opens = opens[:len(opens)-1]
				if want := map[string]string{"(": ")", "[": "]", "{": "}"}[cur[o].text]; want != op {
					return nil, fmt.Errorf("line %d: %q closes %q", line, op, cur[o].text)
				}
				cur[o].match = int32(len(cur))
			}
			cur = append(cur, t)
			i += len(op)
		}
	}
	if len(opens) > 0 {
		return nil, fmt.Errorf("line %d: unclosed bracket at the end", line)
	}
	emit()
	return out, nil
}

func isQuote(c byte) bool  { return c == '"' || c == '\'' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isPrefix(c byte) bool { return c|0x20 == 'r' || c|0x20 == 'b' || c|0x20 == 'u' || c|0x20 == 'f' }

// Identifiers may hold any non-ASCII letter: every byte of a UTF-8
// sequence is taken as part of one.
func isNameStart(c byte) bool {
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}
func isNameChar(c byte) bool { return isNameStart(c) || isDigit(c) }

// stringAhead reports whether a string prefix (one or two of r, b, u, f)
// starts a string at i.
func stringAhead(src []byte, i int) bool {
	for n := 0; n < 2 && i < len(src) && isPrefix(src[i]); n++ {
		i++
		if i < len(src) && isQuote(src[i]) {
			return true
		}
	}
	return false
}

// fStringHidesCode reports whether the string s (prefix included) is an
// f-string whose fields may make code objects.
func fStringHidesCode(s []byte) bool {
	q := bytes.IndexAny(s, `"'`)
	if q < 0 || bytes.IndexAny(s[:q], "fF") < 0 || !bytes.Contains(s, []byte("{")) {
		return false
	}
	return bytes.Contains(s, []byte("lambda")) || bytes.Contains(s, []byte("for"))
}

// skipString returns the index after the string starting at i (prefix
// included) and the line it ends on. A backslash keeps the next character
// from ending the string, raw strings included.
func skipString(src []byte, i int, line int32) (int, int32, error) {
	for !isQuote(src[i]) {
		i++
	}
	q := src[i]
	triple := i+2 < len(src) && src[i+1] == q && src[i+2] == q
	if triple {
		i += 3
	} else {
		i++
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\\':
			if i+2 < len(src) && src[i+1] == '\r' && src[i+2] == '\n' {
				i++
			}
			if i+1 < len(src) && src[i+1] == '\n' {
				line++
			}
			i += 2
			continue
		case c == '\n' || (c == '\r' && (i+1 == len(src) || src[i+1] != '\n')):
			if !triple {
				return 0, 0, errUnterminated
			}
			line++
		case c == q && !triple:
			return i + 1, line, nil
		case c == q && i+2 < len(src) && src[i+1] == q && src[i+2] == q:
			return i + 3, line, nil
		}
		i++
	}
	return 0, 0, errUnterminated
}

// skipNumber returns the index after the number at i: "1if x" is 1, if,
// x, as CPython reads it.
func skipNumber(src []byte, i int) int {
	if src[i] == '0' && i+1 < len(src) && (src[i+1]|0x20 == 'b' || src[i+1]|0x20 == 'o' || src[i+1]|0x20 == 'x') {
		i += 2 // 0x, 0o, 0b: hex digits, no exponent
		for i < len(src) && (isDigit(src[i]) || src[i] == '_' || (src[i]|0x20 >= 'a' && src[i]|0x20 <= 'f')) {
			i++
		}
		return i
	}
	for i < len(src) && (isDigit(src[i]) || src[i] == '_' || src[i] == '.') {
		i++
	}
	if i < len(src) && src[i]|0x20 == 'e' {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			for i = j; i < len(src) && (isDigit(src[i]) || src[i] == '_'); i++ {
			}
		}
	}
	if i < len(src) && src[i]|0x20 == 'j' {
		i++
	}
	return i
}
