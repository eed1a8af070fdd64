// Package ui is Ember's web page: a timeline of CPU use, a label filter, and
// flame graph, top table, sandwich and diff views over the HTTP API of
// package web. It is plain JavaScript modules and CSS served as they are
// (no build step), embedded in the binary; cmd/ember hands FS to
// web.Options.UI. The flame graph renderer is our own, on canvas.
//
// The browser tests (browser_test.go) run it in headless Chromium against
// web.New over a real store with known data.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the UI's files, index.html at the root.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // "static" is embedded above: cannot fail
	}
	return sub
}
