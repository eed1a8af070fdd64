package export

import (
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/encoding"
)

// fastGzip is gRPC's "gzip" compressor made with klauspost/compress, which
// compresses an OTLP request in about half the CPU time of the standard
// library's flate that gRPC's own uses, for the same format: any receiver
// that takes gzip reads it. Its stateless mode took a little less CPU than
// its fastest level on whole requests, made 44% of the bytes rather than
// 46%, and keeps no window between requests. Registering it replaces
// gRPC's in this process (Ember has no other gRPC client); it is done
// once, before the first request (see newOTLP).
type fastGzip struct {
	writers, readers sync.Pool
}

var registerFastGzip sync.Once

func (c *fastGzip) Name() string { return "gzip" }

func (c *fastGzip) Compress(w io.Writer) (io.WriteCloser, error) {
	if z, ok := c.writers.Get().(*gzipWriter); ok {
		z.Reset(w)
		return z, nil
	}
	zw, err := gzip.NewWriterLevel(w, gzip.StatelessCompression)
	if err != nil {
		return nil, err
	}
	return &gzipWriter{Writer: zw, pool: &c.writers}, nil
}

// gzipWriter goes back to its pool when closed.
type gzipWriter struct {
	*gzip.Writer
	pool *sync.Pool
}

func (z *gzipWriter) Close() error {
	defer z.pool.Put(z)
	return z.Writer.Close()
}

func (c *fastGzip) Decompress(r io.Reader) (io.Reader, error) {
	z, ok := c.readers.Get().(*gzipReader)
	if !ok {
		z = &gzipReader{pool: &c.readers}
		if err := z.Reader.Reset(r); err != nil {
			return nil, err
		}
		return z, nil
	}
	if err := z.Reader.Reset(r); err != nil {
		c.readers.Put(z)
		return nil, err
	}
	return z, nil
}

// gzipReader goes back to its pool at the end of its stream.
type gzipReader struct {
	gzip.Reader
	pool *sync.Pool
}

func (z *gzipReader) Read(p []byte) (int, error) {
	n, err := z.Reader.Read(p)
	if err == io.EOF {
		z.pool.Put(z)
	}
	return n, err
}

var _ encoding.Compressor = (*fastGzip)(nil)
