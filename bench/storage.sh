#!/usr/bin/env bash
# Measures the store for docs/benchmarks.md: backfills 24 hours of generated
# history (about 200 processes, tens of thousands of stacks with a Zipf tail,
# 99 Hz on 2 busy CPUs, 10 s intervals) into a fresh store, compacts it,
# and prints bytes per sample on disk (du of the directory / samples) and
# p50/p95 of 30 merged-profile queries each over 1 h and 24 h at random
# offsets.
# Run from the repository root: bench/storage.sh [directory]
# An existing directory holding a backfilled store is reused (the backfill
# takes about 15 minutes on the 2-vCPU VM); delete it to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-bench/out/storage}
mkdir -p "$dir"
dir=$(realpath "$dir")
EMBER_STORAGE_BENCH_DIR="$dir" go test ./storage -run '^TestStorageBenchmark$' -count=1 -v -timeout 60m |
  grep -v '^=== RUN\|^--- PASS\|^PASS\|^ok '
echo "du: $(du -sh "$dir" | cut -f1) in $dir"
# The store's memory without queries, in a fresh process:
EMBER_STORAGE_BENCH_DIR="$dir" go test ./storage -run '^TestStorageBenchmarkMemory$' -count=1 -v |
  grep '^memory'
# Go benchmarks over the same store, for benchstat:
EMBER_STORAGE_BENCH_DIR="$dir" go test ./storage -run '^$' -bench 'BenchmarkQuery(1h|24h)$' -benchtime 20x -count=1 |
  grep '^Benchmark'
