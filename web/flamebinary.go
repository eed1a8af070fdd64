package web

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"

	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"
)

// The flame graph's binary form (format=binary), which the UI asks for: a
// browser parsed the JSON of 100,000 nodes (3.5 MB) in 130-180 ms on this
// project's test machine, and takes these arrays as typed-array views of the
// body in well under a millisecond. It is also half the bytes to gzip.
//
// Little-endian, in order:
//
//	"EMBERFG1"            8 bytes, the magic and version
//	header length H       uint32
//	header                H bytes of JSON: the JSON answer's fields but
//	                      "nodes", plus "node_count" and "frames"
//	padding               zero bytes up to a multiple of 8 from the start
//	total                 float64 per node (exact: values stay below 2^53)
//	frame                 int32 per node, an index into the header's frames
//	line                  int32 per node
//	depth                 uint16 per node (the root is 0)
//
// A node's parent is the last node before it one level up (nodes are in
// pre-order) and its self is its total less its children's; the frames
// table names each distinct (name, file, binary) of the nodes once, as
// string indexes, so that a node costs 18 bytes rather than 36.
const flameBinaryMagic = "EMBERFG1"

// flameBinaryType is the binary form's Content-Type.
const flameBinaryType = "application/vnd.ember.flamegraph"

// flameBinaryFrames is the header's frames table: frame i is
// (Strings[Name[i]], Strings[File[i]], Strings[Binary[i]]).
type flameBinaryFrames struct {
	Name   []int32 `json:"name"`
	File   []int32 `json:"file"`
	Binary []int32 `json:"binary"`
}

// flameBinaryHeader is the binary form's JSON header: FlameGraph's fields,
// its nodes left out (the embedded struct's field is shadowed).
type flameBinaryHeader struct {
	*FlameGraph
	Nodes     *struct{}         `json:"nodes,omitempty"`
	NodeCount int               `json:"node_count"`
	Frames    flameBinaryFrames `json:"frames"`
}

// encodeFlameBinary is fg in the binary form.
func encodeFlameBinary(fg *FlameGraph) ([]byte, error) {
	nodes := fg.Nodes
	n := len(nodes.Parent)
	if len(nodes.Name) != n || len(nodes.File) != n || len(nodes.Binary) != n || len(nodes.Line) != n || len(nodes.Total) != n {
		return nil, fmt.Errorf("flame graph arrays of unequal lengths")
	}
	h := flameBinaryHeader{FlameGraph: fg, NodeCount: n}
	frameOf := make([]int32, n)
	ids := make(map[[3]int32]int32)
	depth := make([]uint16, n)
	for i := range n {
		k := [3]int32{nodes.Name[i], nodes.File[i], nodes.Binary[i]}
		id, ok := ids[k]
		if !ok {
			id = int32(len(h.Frames.Name))
			ids[k] = id
			h.Frames.Name = append(h.Frames.Name, k[0])
			h.Frames.File = append(h.Frames.File, k[1])
			h.Frames.Binary = append(h.Frames.Binary, k[2])
		}
		frameOf[i] = id
		if p := nodes.Parent[i]; p >= 0 {
			if int(p) >= i || depth[p] == math.MaxUint16 {
				return nil, fmt.Errorf("flame graph node %d: parent %d is not before it or too deep", i, p)
			}
			depth[i] = depth[p] + 1
		}
	}
	head, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	start := len(flameBinaryMagic) + 4 + len(head)
	pad := (8 - start%8) % 8
	out := make([]byte, 0, start+pad+n*18)
	out = append(out, flameBinaryMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(head)))
	out = append(out, head...)
	out = append(out, make([]byte, pad)...)
	for _, v := range nodes.Total {
		out = binary.LittleEndian.AppendUint64(out, math.Float64bits(float64(v)))
	}
	for _, v := range frameOf {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	for _, v := range nodes.Line {
		out = binary.LittleEndian.AppendUint32(out, uint32(v))
	}
	for _, v := range depth {
		out = binary.LittleEndian.AppendUint16(out, v)
	}
	return out, nil
}

// flameFormat is a flame-graph answer's encoding, gzipped for the cache
// and for clients that take gzip.
type flameFormat struct {
	contentType string
	encode      func(*FlameGraph) ([]byte, error)
}

var flameFormats = map[string]flameFormat{
	"":       {echoJSON, func(fg *FlameGraph) ([]byte, error) { return json.Marshal(fg) }},
	"json":   {echoJSON, func(fg *FlameGraph) ([]byte, error) { return json.Marshal(fg) }},
	"binary": {flameBinaryType, encodeFlameBinary},
}

const echoJSON = "application/json"

// gzipFast gzips raw at the fastest level.
func gzipFast(raw []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(raw) / 3)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level: no error
	zw.Write(raw)
	zw.Close()
	return buf.Bytes()
}

// encodeFlame is fg in format f, gzipped.
func encodeFlame(f flameFormat, fg *FlameGraph) ([]byte, error) {
	raw, err := f.encode(fg)
	if err != nil {
		return nil, &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: fmt.Errorf("encode flame graph: %w", err)}
	}
	return gzipFast(raw), nil
}

// writeFlame sends fg in format f, gzipped when the client takes it.
func writeFlame(c echo.Context, f flameFormat, fg *FlameGraph) error {
	if f.contentType == echoJSON {
		return writeJSON(c, fg)
	}
	raw, err := f.encode(fg)
	if err != nil {
		return &apiError{Status: http.StatusInternalServerError, Message: "internal error", Cause: fmt.Errorf("encode flame graph: %w", err)}
	}
	h := c.Response().Header()
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(c.Request().Header.Values("Accept-Encoding")) {
		return c.Blob(http.StatusOK, f.contentType, raw)
	}
	h.Set("Content-Encoding", "gzip")
	return c.Blob(http.StatusOK, f.contentType, gzipFast(raw))
}
