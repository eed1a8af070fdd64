// Package export delivers the stored history to fleet backends: Grafana
// Pyroscope (push.v1.PusherService/Push, or its older /ingest endpoint) and
// OTLP profiles over gRPC.
//
// It reads the local store, not the pipeline: each exporter follows its own
// cursor, persisted in the store, through the intervals in the order they
// were stored, sends each one until the backend takes it, and only then moves
// the cursor. A backend that is down or slow costs nothing upstream; what it
// missed is sent from the store when it returns, as far as retention reaches.
// It sits after storage and beside web; cmd/ember wires it in.
package export
