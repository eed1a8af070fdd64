// Package layering holds only a test: it lists the module's packages with
// `go list -deps` and fails when a stage links a later stage, or links
// machinery it does not need (the symbolizer linking the BPF loader).
package layering
