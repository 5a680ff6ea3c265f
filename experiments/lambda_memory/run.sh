#!/usr/bin/env bash
# Peak RSS of each Lambda worker (one function per slice, through the emulator) against the planner's predicted
# peak memory per slice, S = 1, 2, 4. Writes results.md and results.jsonl here.
# Usage: experiments/lambda_memory/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
export TRAINER_DATA_DIR="${TRAINER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
cargo build --release -q -p trainer -p slice-worker
cargo bench -q -p e2e-tests --bench lambda_memory -- "$here"
