package web

import (
	"bytes"
	"io"
	"math/rand"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestGzipBehind: what goes in comes out, though the writer reuses its
// buffer at once after each write, as the store's encoder does.
func TestGzipBehind(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var want bytes.Buffer
	var out bytes.Buffer
	g := newGzipBehind(&out)
	buf := make([]byte, 0, 1<<20)
	for range 40 {
		buf = buf[:r.Intn(1<<20)]
		for i := range buf {
			buf[i] = byte('a' + r.Intn(4))
		}
		want.Write(buf)
		if _, err := g.Write(buf); err != nil {
			t.Fatal(err)
		}
		for i := range buf {
			buf[i] = 0 // must not reach the output
		}
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if g.written != int64(want.Len()) {
		t.Errorf("written %d, want %d", g.written, want.Len())
	}
	zr, err := gzip.NewReader(&out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("decompressed %d bytes that differ from the %d written", len(got), want.Len())
	}
}
