#!/usr/bin/env bash
# Planning time for a 100-unit model over every slice count and memory size (goal < 1 s).
# Usage: experiments/bench_planner/run.sh   (appends results.jsonl here)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo bench -p e2e-tests --bench planner -- --json "$here/results.jsonl"
