package web

import (
	"io"

	"github.com/klauspost/compress/gzip"
)

// gzipBehind gzips what is written to it, at the fastest level, on a
// goroutine of its own: the writer (the store encoding a day's profile, over
// 30 MiB) and the compressor then run on two cores instead of one after the
// other. Writes copy their bytes; Close must be called, and returns the
// compressor's first error.
type gzipBehind struct {
	chunks  chan []byte
	free    chan []byte
	done    chan error
	written int64 // uncompressed bytes
}

func newGzipBehind(dst io.Writer) *gzipBehind {
	g := &gzipBehind{chunks: make(chan []byte, 2), free: make(chan []byte, 4), done: make(chan error, 1)}
	go func() {
		zw, _ := gzip.NewWriterLevel(dst, gzip.BestSpeed) // a valid level: no error
		var err error
		for chunk := range g.chunks {
			if err == nil {
				_, err = zw.Write(chunk)
			}
			select {
			case g.free <- chunk[:0]:
			default:
			}
		}
		if err == nil {
			err = zw.Close()
		}
		g.done <- err
	}()
	return g
}

func (g *gzipBehind) Write(p []byte) (int, error) {
	var chunk []byte
	select {
	case chunk = <-g.free:
	default:
	}
	g.chunks <- append(chunk, p...)
	g.written += int64(len(p))
	return len(p), nil
}

func (g *gzipBehind) Close() error {
	close(g.chunks)
	return <-g.done
}
