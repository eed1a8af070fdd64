package web

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ember-profiler/ember/report"
)

// SourceText is the text of a function's lines and a few around them,
// from its source file when that is on the host.
type SourceText struct {
	First int64    `json:"first"` // the line number of Lines[0]
	Lines []string `json:"lines"`
}

// sourceContext is how many lines around a function's the text shows, and
// maxSourceLines the most lines it shows.
const (
	sourceContext  = 5
	maxSourceLines = 2000
	maxLineBytes   = 4 << 10
)

// sourceExtensions are the files whose text the source view may read: the
// file a profile names comes from a binary's debug information, which
// whoever built it chose, so only what looks like source code is read.
var sourceExtensions = map[string]bool{
	".c": true, ".h": true, ".cc": true, ".cpp": true, ".cxx": true, ".hh": true, ".hpp": true, ".hxx": true,
	".inc": true, ".s": true, ".S": true, ".asm": true, ".go": true, ".rs": true, ".zig": true, ".py": true,
	".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".java": true, ".kt": true, ".scala": true,
	".rb": true, ".swift": true, ".m": true, ".mm": true, ".cs": true, ".php": true, ".lua": true, ".pl": true,
}

// readSourceText reads the lines of file around lines, or says why not.
// It reads only regular files with a source file's extension, of at most
// maxBytes.
func readSourceText(file string, lines []report.SourceLine, maxBytes int64) (*SourceText, error) {
	switch {
	case maxBytes < 0:
		return nil, errors.New("source text is turned off")
	case file == "":
		return nil, errors.New("the profile names no file")
	case !filepath.IsAbs(file):
		return nil, fmt.Errorf("%s is not an absolute path", file)
	case !sourceExtensions[filepath.Ext(file)]:
		return nil, fmt.Errorf("%s is not a source file", filepath.Base(file))
	}
	var lo, hi int64
	for _, l := range lines {
		if l.Line <= 0 {
			continue
		}
		if lo == 0 || l.Line < lo {
			lo = l.Line
		}
		hi = max(hi, l.Line)
	}
	if lo == 0 {
		return nil, errors.New("the profile has no line numbers")
	}
	first, last := max(1, lo-sourceContext), hi+sourceContext
	last = min(last, first+maxSourceLines-1)
	f, err := os.Open(filepath.Clean(file))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not on this host", file)
		}
		return nil, fmt.Errorf("%s cannot be read", file)
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s cannot be read", file)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", file)
	case st.Size() > maxBytes:
		return nil, fmt.Errorf("%s is larger than %d bytes", file, maxBytes)
	}
	out := &SourceText{First: first}
	r := bufio.NewReader(f)
	for n := int64(1); n <= last; n++ {
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			break // the file is shorter than the profile says: show what there is
		}
		if n >= first {
			line = strings.TrimRight(line, "\r\n")
			if len(line) > maxLineBytes {
				line = line[:maxLineBytes]
			}
			out.Lines = append(out.Lines, strings.ToValidUTF8(line, "\uFFFD"))
		}
		if err != nil {
			break
		}
	}
	if len(out.Lines) == 0 {
		return nil, fmt.Errorf("%s has fewer lines than the profile says", file)
	}
	return out, nil
}
