package storage

import (
	"math/rand/v2"
	"testing"
)

// TestStackLen: the count namePaths sizes its paths by is the number of
// locations decodeStack reads, for IDs of every encoded length.
func TestStackLen(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 200 {
		var enc []byte
		for range n {
			enc = appendUvarint(enc, uint64(r.Uint32()>>r.IntN(32)))
		}
		ids, err := decodeStack(nil, string(enc))
		if err != nil {
			t.Fatal(err)
		}
		if got := stackLen(string(enc)); got != len(ids) || got != n {
			t.Fatalf("stackLen %d, decodeStack %d, encoded %d", got, len(ids), n)
		}
	}
}
