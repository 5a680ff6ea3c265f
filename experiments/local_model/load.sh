#!/usr/bin/env bash
# The local model on a step of many tiny tasks: load.toml (1,088 tasks a step) profiled three times and run twice
# after each profile; prints each profile's runtime cost per task, its predicted step p50 and the runs' measured.
#   bash experiments/local_model/load.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release -q -p trainer
t=./target/release/trainer
work="$(mktemp -d)"
echo "| profile | runtime ms a task | predicted p50 ms | measured p50 ms (runs of 30 steps) |"
echo "|---|---|---|---|"
for i in 1 2 3; do
  "$t" profile "$here/load.toml" --out "$work/p$i.json" >/dev/null 2>&1
  measured=()
  for r in 1 2; do
    "$t" fit "$here/load.toml" --set plan.profile="$work/p$i.json" --out "$work/run$i$r" >/dev/null 2>&1
    measured+=("$(python3 -c "import json; print(round(json.load(open('$work/run$i$r/summary.json'))['step_ms_p50'], 1))")")
  done
  python3 -c "
import json, statistics
p = json.load(open('$work/p$i.json'))
c = json.load(open('$work/run${i}1/summary.json'))['calibration']['predicted']['step_ms_p50']
print(f'| {$i} | {statistics.median(p[\"runtime_task_ms\"]):.3f} | {c:.1f} | ${measured[*]} |')"
done
rm -rf "$work"
