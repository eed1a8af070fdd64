package web

import "io"

// chunkBytes is the size of a chunkBuffer's pieces.
const chunkBytes = 1 << 20

// chunkBuffer holds what is written to it in pieces of chunkBytes. A
// growing bytes.Buffer copies itself at each doubling and may hold twice
// what it has been given, and a day's gzipped profile is over 16 MB: this
// holds what it was given, and a chunk more at most.
type chunkBuffer struct {
	chunks [][]byte
	n      int
}

func (b *chunkBuffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(b.chunks) == 0 || len(b.chunks[len(b.chunks)-1]) == chunkBytes {
			b.chunks = append(b.chunks, make([]byte, 0, chunkBytes))
		}
		last := &b.chunks[len(b.chunks)-1]
		k := min(len(p), chunkBytes-len(*last))
		*last = append(*last, p[:k]...)
		p = p[k:]
	}
	b.n += n
	return n, nil
}

// Len is how many bytes it holds.
func (b *chunkBuffer) Len() int { return b.n }

// WriteTo writes what it holds to w.
func (b *chunkBuffer) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, c := range b.chunks {
		n, err := w.Write(c)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
