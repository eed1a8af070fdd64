package web

import (
	"context"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ember-profiler/ember/report"
)

// SourceLines is the JSON of /api/v1/source: the range, then the fields
// of report.SourceLines.
type SourceLines struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	*report.SourceLines
	// Text is the source around the function's lines, when its file is on
	// the host; otherwise NoText says why.
	Text   *SourceText `json:"text,omitempty"`
	NoText string      `json:"no_text,omitempty"`
}

// GET /api/v1/source?from=&to=&query=&function=&binary=&sample_type=
//
// One function's cost per source line (binary: its binary's file name,
// optional), from the lines the profile holds, and the text of those lines
// when the file the profile names for it is a source file on the host (a
// client names a function, never a file).
func (s *Server) source(c echo.Context) error {
	q := c.QueryParams()
	from, to, err := timeRange(q, "from", "to", s.now(), s.limits.MaxRange)
	if err != nil {
		return err
	}
	fn, binary, sel, sampleType := q.Get("function"), q.Get("binary"), q.Get("query"), q.Get("sample_type")
	if fn == "" {
		return badParam("function", "function: want a function name")
	}
	src, err := runQuery(s, c, func(ctx context.Context) (*report.SourceLines, error) {
		p, err := s.store.Profile(ctx, from, to, sel)
		if err != nil {
			return nil, err
		}
		out, err := report.NewSourceLines(ctx, p, sampleType, fn, binary)
		return out, reportError(err)
	})
	if err != nil {
		return storeError(err, "query", "")
	}
	out := SourceLines{From: from.UTC(), To: to.UTC(), SourceLines: src}
	if len(src.Lines) > 0 {
		text, err := readSourceText(src.File, src.Lines, int64(s.limits.MaxSourceBytes))
		if err != nil {
			out.NoText = err.Error()
		}
		out.Text = text
	}
	return writeJSON(c, out)
}
