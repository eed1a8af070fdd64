package web

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http/httptest"
	"slices"
	"testing"
)

// decodeFlameBinary reads the binary form back into the JSON's shape, as
// the UI's api.js does: parents from depths, self from totals.
func decodeFlameBinary(t *testing.T, body []byte) FlameGraph {
	t.Helper()
	if !bytes.HasPrefix(body, []byte(flameBinaryMagic)) {
		t.Fatalf("body starts %q, want %q", body[:min(len(body), 8)], flameBinaryMagic)
	}
	h := int(binary.LittleEndian.Uint32(body[8:]))
	var head struct {
		FlameGraph
		NodeCount int               `json:"node_count"`
		Frames    flameBinaryFrames `json:"frames"`
	}
	if err := json.Unmarshal(body[12:12+h], &head); err != nil {
		t.Fatalf("header: %v", err)
	}
	fg := head.FlameGraph
	if len(fg.Nodes.Parent) != 0 {
		t.Errorf("the header holds %d nodes; want them in the arrays only", len(fg.Nodes.Parent))
	}
	n, off := head.NodeCount, 12+h
	off += (8 - off%8) % 8
	if want := off + 18*n; len(body) != want {
		t.Fatalf("body is %d bytes, want %d for %d nodes", len(body), want, n)
	}
	nodes := &fg.Nodes
	depth := make([]int, n)
	for i := range n {
		nodes.Total = append(nodes.Total, int64(math.Float64frombits(binary.LittleEndian.Uint64(body[off+8*i:]))))
		f := binary.LittleEndian.Uint32(body[off+8*n+4*i:])
		nodes.Name = append(nodes.Name, head.Frames.Name[f])
		nodes.File = append(nodes.File, head.Frames.File[f])
		nodes.Binary = append(nodes.Binary, head.Frames.Binary[f])
		nodes.Line = append(nodes.Line, int32(binary.LittleEndian.Uint32(body[off+12*n+4*i:])))
		depth[i] = int(binary.LittleEndian.Uint16(body[off+16*n+2*i:]))
	}
	var open []int32 // open[d] is the last node at depth d
	for i := range n {
		open = append(open[:depth[i]], int32(i))
		parent := int32(-1)
		if depth[i] > 0 {
			parent = open[depth[i]-1]
		}
		nodes.Parent = append(nodes.Parent, parent)
	}
	nodes.Self = slices.Clone(nodes.Total)
	for i := 1; i < n; i++ {
		nodes.Self[nodes.Parent[i]] -= nodes.Total[i]
	}
	return fg
}

func gunzip(t *testing.T, rec *httptest.ResponseRecorder) []byte {
	t.Helper()
	if rec.Header().Get("Content-Encoding") != "gzip" {
		return rec.Body.Bytes()
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// TestFlameGraphBinary: format=binary holds the JSON answer's graph, node
// for node, gzipped or not, live or from the cache.
func TestFlameGraphBinary(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, target := range []string{"/api/v1/flamegraph?group_by=comm&max_nodes=5", "/api/v1/flamegraph?from=-3h&to=-2h"} {
		want := decode[FlameGraph](t, ts.get(target))
		if len(want.Nodes.Parent) < 3 {
			t.Fatalf("%s: %d nodes; the fixture should give more", target, len(want.Nodes.Parent))
		}
		for _, enc := range []string{"identity", "gzip", "gzip"} { // the second gzip may come from the cache
			rec := ts.get(target+"&format=binary", "Accept-Encoding: "+enc)
			if rec.Code != 200 || rec.Header().Get("Content-Type") != flameBinaryType {
				t.Fatalf("%s as %s: status %d, type %q; body %s", target, enc, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			got := decodeFlameBinary(t, gunzip(t, rec))
			wantJSON, _ := json.Marshal(want)
			gotJSON, _ := json.Marshal(got)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("%s as %s: binary decodes to\n%s\nwant the JSON answer\n%s", target, enc, gotJSON, wantJSON)
			}
		}
	}
	wantError(t, ts.get("/api/v1/flamegraph?format=xml"), 400, "format")
}
