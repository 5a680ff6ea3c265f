#!/usr/bin/env bash
# Runtime benchmark of the distributed-runtime issue: store throughput vs redis-benchmark, scheduling overhead per
# task, and the S = 4, M = 8 split step vs the monolithic step plus the transfer floor. Starts its own redis-server.
# Usage: experiments/bench_runtime/run.sh [STEPS] [REPS]   (writes results.md and appends results.jsonl here)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo bench -p e2e-tests --bench runtime -- --steps "${1:-20}" --reps "${2:-5}" \
  --markdown "$here/results.md" --json "$here/results.jsonl"
