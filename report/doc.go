// Package report computes what people read from a profile: call trees, flame
// graphs with their function tables, diffs and folded stacks.
//
// Each is a pure function of *profile.Profile (google/pprof), which it reads
// and does not change. The web API (package web) and `ember record` share it;
// it knows nothing of storage, HTTP or how the samples were collected.
package report
