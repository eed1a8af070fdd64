package web

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/ember-profiler/ember/report"
	"github.com/ember-profiler/ember/web/internal/httpload"

	"github.com/ember-profiler/ember/internal/profiletest"
)

// hostProfile is a whole-host-like profile: samples stacks random walks
// through a call graph of funcs functions (each calling 4 others, the first
// of them most often) from 16 entry points, 8 to 40 frames deep, so that
// stacks share prefixes as real ones do.
func hostProfile(seed uint64, samples, funcs int) *profile.Profile {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	callees := make([][]int, funcs)
	for i := range callees {
		for range 4 {
			callees[i] = append(callees[i], rng.IntN(funcs))
		}
	}
	b := profiletest.NewBuilder()
	for range samples {
		depth := 8 + rng.IntN(33)
		stack := make([]string, depth)
		f := rng.IntN(16)
		for i := depth - 1; i >= 0; i-- { // root first, into a leaf-first slice
			stack[i] = "pkg.Function" + strconv.Itoa(f)
			f = callees[f][skewed(rng)]
		}
		b.Add(int64(1+rng.IntN(20))*10_101_010, stack...)
	}
	return b.P
}

// skewed picks a callee: the first 60% of the time, then 25, 10, 5%.
func skewed(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 60:
		return 0
	case r < 85:
		return 1
	case r < 95:
		return 2
	default:
		return 3
	}
}

// staticStore answers every profile query with one profile.
type staticStore struct {
	fakeStore
	p *profile.Profile
}

func (s *staticStore) Profile(ctx context.Context, from, to time.Time, sel string) (*profile.Profile, error) {
	return s.p, nil
}

// BenchmarkFlamegraphConcurrent measures flame-graph queries over HTTP on
// loopback, several at once, against a store that returns a prepared
// 20,000-sample profile at once (about 200,000 call-tree nodes): the cost is
// the API's (tree, pruning to 8192 nodes, JSON) and HTTP's. Past the
// default limit of concurrent queries (2 on a 2-CPU host) requests queue
// for up to 2 s, then get a 429, counted in 429/op; latencies are of the
// 200s and include the queueing.
//
//	go test -run '^$' -bench FlamegraphConcurrent -benchtime 100x ./web
func BenchmarkFlamegraphConcurrent(b *testing.B) {
	store := &staticStore{fakeStore: *newFakeStore(), p: hostProfile(7, 20_000, 3000)}
	full, err := report.NewFlameGraph(context.Background(), store.p, "", report.MinNodes)
	if err != nil {
		b.Fatal(err)
	}
	// Pruned to the root and one "(other)": every other node is counted as pruned.
	b.Logf("profile: %d samples, %d call-tree nodes", len(store.p.Sample), 1+full.Pruned.Nodes)
	ts := newTestServer(b, func(o *Options) { o.Store = store })
	base := serveBench(b, ts)
	for _, concurrency := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("c=%d", concurrency), func(b *testing.B) {
			res, err := httpload.Run(context.Background(), httpload.Config{
				URL: base + "/api/v1/flamegraph?from=-24h", Concurrency: concurrency, Requests: b.N,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(res.P50)/1e6, "p50-ms")
			b.ReportMetric(float64(res.P95)/1e6, "p95-ms")
			b.ReportMetric(float64(res.P99)/1e6, "p99-ms")
			b.ReportMetric(float64(res.Errors["429"])/float64(b.N), "429/op")
			b.ReportMetric(float64(res.BytesPerOK), "resp-bytes")
			for status, n := range res.Errors {
				if status != "429" {
					b.Errorf("%d responses with status %s", n, status)
				}
			}
			b.Logf("%s", res)
		})
	}
}

func serveBench(b *testing.B, ts *testServer) string {
	b.Helper()
	l, err := netListenLoopback()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, l) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return "http://" + l.Addr().String()
}
