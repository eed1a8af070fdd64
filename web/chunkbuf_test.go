package web

import (
	"bytes"
	"math/rand"
	"testing"
)

func TestChunkBuffer(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var b chunkBuffer
	var want bytes.Buffer
	for _, n := range []int{0, 1, chunkBytes - 1, 1, chunkBytes, 3*chunkBytes + 7, 100} {
		p := make([]byte, n)
		r.Read(p)
		if k, err := b.Write(p); k != n || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
		}
		want.Write(p)
	}
	var got bytes.Buffer
	if n, err := b.WriteTo(&got); err != nil || n != int64(want.Len()) || b.Len() != want.Len() {
		t.Fatalf("WriteTo = %d, %v; Len %d; want %d", n, err, b.Len(), want.Len())
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Error("chunkBuffer changed the bytes")
	}
	for _, c := range b.chunks {
		if cap(c) != chunkBytes {
			t.Errorf("a chunk of capacity %d, want %d", cap(c), chunkBytes)
		}
	}
}
