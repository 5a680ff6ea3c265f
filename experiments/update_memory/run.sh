#!/usr/bin/env bash
# The sharded update under memory_cap_mb = 512: MLP 784-4096-4096-4096-10, AdamW, M = 4, planned, then trained
# through the Lambda emulator (functions of the planner's memory; an instance past it is killed); measured peak RSS
# per function against the planner's prediction, bytes against the in-process run, bytes per step for K = 1, 2, 4.
# Writes results.md here. Usage: experiments/update_memory/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
export TRAINER_DATA_DIR="${TRAINER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
cargo build --release -q -p trainer -p slice-worker
cargo bench -q -p e2e-tests --bench update_memory -- "$here"
