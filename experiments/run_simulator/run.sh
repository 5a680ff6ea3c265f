#!/usr/bin/env bash
# The run simulator against emulated runs with 8, 16 and 32 functions allowed at once (../sweeps_emulated/fleet_run*;
# the warm-up constants were read off the 8-function run, the 16 and 32 are held out), then its fleet-scale
# benchmark (10,000 functions at once x 20 steps). Keeps each run's step times, summary and events (gzipped) under
# measured/, writes compare.md and appends bench.jsonl here.
#   sudo bash experiments/run_simulator/run.sh     (root: the emulator's cgroups and namespaces; ~10 min + build)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
keep="$(mktemp -d)"
for n in 8 16 32; do
  SWEEP_OUT="$keep/fleet_run$n/sweep" bash experiments/sweeps_emulated/run.sh "fleet_run$n"
  m="$here/measured/fleet_run$n"
  rm -rf "$m"
  cp "$keep/fleet_run$n/sweep/results.json" -t "$(mkdir -p "$m" && echo "$m")"
  for p in "$keep/fleet_run$n/sweep/points"/s*; do
    mkdir -p "$m/points/$(basename "$p")/emulator"
    cp "$p/metrics.jsonl" "$p/summary.json" "$m/points/$(basename "$p")/"
    gzip -c "$p/events.jsonl" > "$m/points/$(basename "$p")/events.jsonl.gz"
    gzip -c "$p/emulator/events.jsonl" > "$m/points/$(basename "$p")/emulator/events.jsonl.gz"
  done
done
python3 "$here/compare.py" "$here"/measured/fleet_run{8,16,32} | tee "$here/compare.md"
cargo bench -q -p e2e-tests --bench run_simulator -- --json "$here/bench.jsonl"
rm -rf "$keep"
