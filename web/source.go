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
}

// GET /api/v1/source?from=&to=&query=&function=&binary=&sample_type=
//
// One function's cost per source line (binary: its binary's file name,
// optional), from the lines the profile holds. Source text is not served:
// the API reads no file of the host on a client's say.
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
	return writeJSON(c, SourceLines{From: from.UTC(), To: to.UTC(), SourceLines: src})
}
