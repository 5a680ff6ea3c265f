#!/usr/bin/env bash
# Fan-out (issue 25): how long an update takes to start the next step's M forwards, on the Lambda emulator with
# Lambda's 25 ms invoke latency ([platform] invoke_ms), at M in {8, 32, 128, 256}. One slice (its update fires every
# next-step forward), 128 MB functions, M of them at once, at the dilation 256 of them need on this host. Two
# fan-out settings side by side in the same emulator: the tree (runtime.fanout_width = 32, the default) and flat
# (fanout_width = 1024: every invoke from the update itself, at most 64 in flight — the worker's client limit); the
# sequential starts this replaced cost M invoke latencies by construction (each Event call is answered after the
# latency). Per run: for each steady step, the time from the update's end to the last forward's start (undilated),
# in invoke latencies; the most tasks running at once; bytes against the in-process run.
# Writes results.jsonl and results.md here; runs go to runs/fanout-<time>/.
#   sudo bash experiments/fanout/run.sh [M ...]      (root: cgroups for the instances and the store)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/fanout
read -r -a ms <<< "${*:-8 32 128 256}"
steps=${STEPS:-8}
D=${DILATION:-12}
cargo build --release -q -p trainer -p slice-worker
T=$PWD/target/release/trainer
out=$PWD/runs/fanout-$(date +%s)
mkdir -p "$out"
cp target/release/slice-worker "$out/bootstrap"
(cd "$out" && python3 -m zipfile -c bootstrap.zip bootstrap)
export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator
cfg=$here/fanout.toml
# KEEP=1 appends to results.jsonl; MODEL_SETS adds --set overrides for the model (M = 256 with the default model
# would hold more memory than this host admits: 256 instances at its planned 75 MB peak).
[ "${KEEP:-0}" = 1 ] || : > "$here/results.jsonl"
read -r -a model_sets <<< "${MODEL_SETS:-}"
"$T" emulate --listen 127.0.0.1:0 --dir "$out/emulator" --dilation "$D" --store \
  2> "$out/emulate.log" > "$out/emulate.out" &
emulate_pid=$!
trap 'kill -INT $emulate_pid 2>/dev/null' EXIT
until grep -q "^Lambda emulator on" "$out/emulate.log"; do sleep 0.2; done
until grep -q "^store " "$out/emulate.out"; do sleep 0.2; done
url=$(sed -n 's/^Lambda emulator on \([^ ]*\).*/\1/p' "$out/emulate.log")
store=$(sed -n 's/^store //p' "$out/emulate.out")
echo "emulator $url at D = $D, store $store"
for M in "${ms[@]}"; do
  base=(--set train.steps=$steps --set train.microbatches=$M --set train.batch_size=$((2 * M)) "${model_sets[@]}")
  "$T" fit "$cfg" "${base[@]}" --out "$out/inprocess-m$M" --quiet > /dev/null
  for width in 32 1024; do
    name="m$M-w$width"
    sets=("${base[@]}" --set "plan.cuts=[]" --set runtime.invoker=lambda --set runtime.concurrency=$M
          --set runtime.fanout_width=$width --set "runtime.store=\"$store\"" --set "lambda.endpoint_url=\"$url\""
          --set lambda.memory_mb=128 --set lambda.architecture=x86_64 --set lambda.region=us-east-1
          --set "lambda.role_arn=\"arn:aws:iam::000000000000:role/trainer\"" --set "emulator.dilation=$D")
    "$T" deploy "$cfg" "${sets[@]}" --zip "$out/bootstrap.zip" >> "$out/$name.log" 2>&1
    start=$(date +%s)
    "$T" fit "$cfg" "${sets[@]}" --out "$out/$name" --quiet > /dev/null 2>> "$out/$name.log"
    end=$(date +%s)
    "$T" deploy "$cfg" "${sets[@]}" --destroy >> "$out/$name.log" 2>&1
    if cmp -s "$out/$name/model.safetensors" "$out/inprocess-m$M/model.safetensors"; then same=true; else same=false; fi
    python3 - "$out/$name" "$M" "$width" "$D" "$same" "$((end - start))" >> "$here/results.jsonl" <<'PY'
import json, re, statistics, sys
run, M, width, D, same, wall = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], int(sys.argv[6])
events = [json.loads(l) for l in open(f"{run}/events.jsonl")]
def parse(t):
    kind, args = t[0], [int(x) for x in re.findall(r"\d+", t)]
    return kind, args
steps = max(parse(e["task"])[1][0] for e in events)
gaps, concurrent = [], []
for step in range(3, steps + 1):
    upd = [e for e in events if parse(e["task"]) == ("U", [step - 1, 0, 0]) and e["status"] == "ran"]
    fwd = [e for e in events if parse(e["task"])[0] == "F" and parse(e["task"])[1][0] == step and e["attempt"] == 1]
    if not upd or len({parse(e["task"])[1][2] for e in fwd}) < M:
        continue
    # Events carry durations undilated and start times on this host's clock.
    end = min(e["start_unix_ms"] + e["run_ms"] * D for e in upd)
    gaps.append((max(e["start_unix_ms"] for e in fwd) - end) / D)
    spans = [(e["start_unix_ms"], e["start_unix_ms"] + e["run_ms"] * D) for e in events if parse(e["task"])[1][0] == step]
    points = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda p: (p[0], p[1]))
    now = most = 0
    for _, d in points:
        now += d
        most = max(most, now)
    concurrent.append(most)
summary = json.load(open(f"{run}/summary.json"))
print(json.dumps({
    "microbatches": M, "fanout_width": width, "model": json.load(open(f"{run}/../inprocess-m{M}/summary.json")).get("params"), "dilation": D, "steady_steps": len(gaps),
    "start_gap_ms_p50": statistics.median(gaps) if gaps else None,
    "start_gap_ms_max": max(gaps) if gaps else None,
    "start_gap_in_invoke_latencies_p50": statistics.median(gaps) / 25.0 if gaps else None,
    "most_tasks_at_once": max(concurrent) if concurrent else None,
    "relayed": sum(e.get("relayed", 0) for e in events),
    "step_ms_p50": summary["step_ms_p50"],
    "bytes_equal": same == "true", "wall_s": wall,
}))
PY
    tail -1 "$here/results.jsonl"
  done
done
