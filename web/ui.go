package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// uiFile is one asset of the web UI, read once when the server is made: the
// UI is small and embedded in the binary, so nothing is read per request.
type uiFile struct {
	body        []byte
	gzipped     []byte // nil when compression does not pay
	contentType string
	etag        string
	csp         string // the page's Content-Security-Policy, "" for other files
}

// uiContentTypes are the types the UI's files are served with, set here
// rather than read from the host's MIME database, which varies.
var uiContentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".json":  "application/json",
	".woff2": "font/woff2",
}

// uiCSP keeps the page to its own scripts, styles and API: profiles hold
// process names and paths, and nothing else should run beside them. %s is
// where the hashes of the page's inlined scripts go.
const uiCSP = "default-src 'none'; script-src 'self'%s; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inlineTag matches a script the page wants inlined: its first request
// then starts while the HTML is parsed, not after a round trip for the
// script (on a loaded 2-core host that round trip was 100-200 ms).
var inlineTag = regexp.MustCompile(`<script src="ui/([a-z0-9/_.-]+\.js)" data-inline></script>`)

// loadUI reads every file of fsys, keyed by its slash path.
func loadUI(fsys fs.FS) (map[string]*uiFile, error) {
	bodies := make(map[string][]byte)
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		bodies[name] = body
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("web: read UI files: %w", err)
	}
	if bodies["index.html"] == nil {
		return nil, fmt.Errorf("web: Options.UI has no index.html")
	}
	index, hashes, err := inlineScripts(bodies["index.html"], bodies)
	if err != nil {
		return nil, err
	}
	bodies["index.html"] = index
	files := make(map[string]*uiFile)
	for name, body := range bodies {
		ctype, ok := uiContentTypes[path.Ext(name)]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		f := &uiFile{body: body, contentType: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if strings.HasPrefix(ctype, "text/html") {
			f.csp = fmt.Sprintf(uiCSP, hashes)
		}
		if !strings.HasPrefix(ctype, "image/png") && !strings.HasPrefix(ctype, "font/") && len(body) >= 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level: no error
			zw.Write(body)
			zw.Close()
			if buf.Len() < len(body) {
				f.gzipped = buf.Bytes()
			}
		}
		files[name] = f
	}
	return files, nil
}

// inlineScripts puts the scripts that html's inlineTags name into it, and
// returns it with the CSP sources (" 'sha256-...'") that allow them.
func inlineScripts(html []byte, bodies map[string][]byte) ([]byte, string, error) {
	var hashes strings.Builder
	var missing error
	out := inlineTag.ReplaceAllFunc(html, func(tag []byte) []byte {
		name := string(inlineTag.FindSubmatch(tag)[1])
		script, ok := bodies[name]
		if !ok || bytes.Contains(script, []byte("</script")) {
			missing = fmt.Errorf("web: index.html inlines %s, which is missing or holds </script", name)
			return tag
		}
		sum := sha256.Sum256(script)
		fmt.Fprintf(&hashes, " 'sha256-%s'", base64.StdEncoding.EncodeToString(sum[:]))
		return slices.Concat([]byte("<script>"), script, []byte("</script>"))
	})
	return out, hashes.String(), missing
}

// isUIPath reports whether a request is for the UI's static shell, which
// needs no token: it holds no data, and a browser cannot send a bearer
// token with a page load. The API calls the page makes do send it.
func (s *Server) isUIPath(p string) bool {
	return s.ui != nil && (p == "/" || strings.HasPrefix(p, "/ui/"))
}

// uiAsset serves the UI: / is index.html, /ui/NAME the file NAME.
// Assets are revalidated on every load (no-cache with an ETag), so an
// upgraded daemon's UI shows at once and an unchanged one costs a 304.
func (s *Server) uiAsset(c echo.Context) error {
	name := "index.html"
	if c.Path() != "/" {
		name = c.Param("*")
	}
	f, ok := s.ui[name]
	if !ok {
		return &apiError{Status: http.StatusNotFound, Message: "no such UI file: " + name}
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Add("Vary", "Accept-Encoding")
	if f.csp != "" {
		h.Set("Content-Security-Policy", f.csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
	}
	if etagMatches(c.Request().Header.Get("If-None-Match"), f.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	if f.gzipped != nil && acceptsGzip(c.Request().Header.Values("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		return c.Blob(http.StatusOK, f.contentType, f.gzipped)
	}
	return c.Blob(http.StatusOK, f.contentType, f.body)
}

// etagMatches reads If-None-Match: a list of entity tags, or "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
