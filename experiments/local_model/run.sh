#!/usr/bin/env bash
# Quick-profile stability (issue 26): for each sample count, two profiles of wide_mlp.toml one after the other, each
# planned for this machine (the local platform, S = 4 fixed): their predicted step p50 and how far apart they are,
# with each profile's wall time; then one run of the config measured against the first prediction of each count.
#   bash experiments/local_model/run.sh      (writes results.md here)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release -q -p trainer
t=./target/release/trainer
work="$(mktemp -d)"
cfg="$here/wide_mlp.toml"
p50() { "$t" plan "$cfg" --set plan.profile="$1" --set platform.kind=local --json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["predicted"]["step_ms_p50"])'; }
{
  echo "| samples (--reps) | profile A s | profile B s | p50 A ms | p50 B ms | B ÷ A |"
  echo "|---|---|---|---|---|---|"
  for reps in 3 7 15; do
    s0=$(date +%s.%N); "$t" profile "$cfg" --reps "$reps" --out "$work/a$reps.json" >/dev/null 2>&1; s1=$(date +%s.%N)
    "$t" profile "$cfg" --reps "$reps" --out "$work/b$reps.json" >/dev/null 2>&1; s2=$(date +%s.%N)
    a=$(p50 "$work/a$reps.json"); b=$(p50 "$work/b$reps.json")
    python3 -c "print(f'| $reps | {$s1-$s0:.1f} | {$s2-$s1:.1f} | {$a:.1f} | {$b:.1f} | {$b/$a:.3f} |')"
  done
  "$t" fit "$cfg" --set plan.profile="$work/a7.json" --out "$work/run" >/dev/null 2>&1
  python3 -c "
import json; s = json.load(open('$work/run/summary.json'))
print(); print(f'Measured (one run of 20 steps, the local invoker): step p50 {s[\"step_ms_p50\"]:.1f} ms, p95 {s[\"step_ms_p95\"]:.1f} ms.')"
  echo; echo "command: bash experiments/local_model/run.sh; date: $(date -u +%Y-%m-%dT%H:%M:%SZ); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} | tee "$here/results.md"
rm -rf "$work"
