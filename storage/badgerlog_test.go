package storage

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestBadgerCacheHintsAreDebug: Badger's rating of its caches is not
// logged as a warning; Badger's other warnings are.
func TestBadgerCacheHintsAreDebug(t *testing.T) {
	var out bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	l.Warningf("%s might be too small. Metrics: %s\n", "Block cache", "hit: 1") // as db.go's monitorCache
	l.Warningf("Cache life expectancy (in seconds): %s\n", "...")
	if out.Len() != 0 {
		t.Errorf("cache hints logged at warn: %s", out.String())
	}
	l.Warningf("Truncate Needed. File %s size: %d Endoffset: %d", "000001.vlog", 10, 5)
	if !strings.Contains(out.String(), "level=WARN") || !strings.Contains(out.String(), "Truncate Needed") {
		t.Errorf("a real warning was not logged at warn: %q", out.String())
	}
}
