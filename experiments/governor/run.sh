#!/usr/bin/env bash
# The account governor (issue 25): three runs on one emulated account with a concurrency limit of 8 — A of high
# priority needing 4 at once (M = 4), B and C of normal priority needing 8 each (M = 8) — on the Lambda emulator at
# dilation D (default 4: 8 instances of 1,024 MB beside the store fit this 2-core host at D = 4). First A alone (its
# reference step time), then A, B and C at once; then a run killed mid-way, and how long its slots take to come back.
# Per run: steady step p50, step rate over the window all three ran, the governor's counts (admitted, queued,
# granted, queue time), throttles the emulator answered, and bytes against the in-process twin. Writes results.md
# here; runs go to runs/governor-<time>/.
#   sudo bash experiments/governor/run.sh       (root: cgroups for the instances and the store)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/governor
D=${DILATION:-4}
steps=${STEPS:-40}
cargo build --release -q -p trainer -p slice-worker
T=$PWD/target/release/trainer
out=$PWD/runs/governor-$(date +%s)
mkdir -p "$out"
cp target/release/slice-worker "$out/bootstrap"
(cd "$out" && python3 -m zipfile -c bootstrap.zip bootstrap)
export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator
cfg=$here/governor.toml
"$T" emulate --listen 127.0.0.1:0 --dir "$out/emulator" --dilation "$D" --store --account-concurrency 8 \
  2> "$out/emulate.log" > "$out/emulate.out" &
emulate_pid=$!
trap 'kill -INT $emulate_pid 2>/dev/null' EXIT
until grep -q "^Lambda emulator on" "$out/emulate.log"; do sleep 0.2; done
until grep -q "^store " "$out/emulate.out"; do sleep 0.2; done
url=$(sed -n 's/^Lambda emulator on \([^ ]*\).*/\1/p' "$out/emulate.log")
store=$(sed -n 's/^store //p' "$out/emulate.out")
host=$(echo "$store" | sed -E 's#redis://([^:/]+):([0-9]+).*#\1#'); port=$(echo "$store" | sed -E 's#redis://([^:/]+):([0-9]+).*#\2#')
echo "emulator $url at D = $D, store $store, account limit 8"
common=(--set train.steps=$steps --set plan.slices=2 --set runtime.invoker=lambda --set "runtime.store=\"$store\""
        --set "lambda.endpoint_url=\"$url\"" --set lambda.memory_mb=1024 --set lambda.architecture=x86_64
        --set lambda.region=us-east-1 --set "lambda.role_arn=\"arn:aws:iam::000000000000:role/trainer\""
        --set "emulator.dilation=$D" --set runtime.concurrency=8 --set qos.lease_s=10)
a=(--set train.microbatches=4 --set train.seed=1 --set qos.priority=\"high\")
b=(--set train.microbatches=8 --set train.seed=2)
c=(--set train.microbatches=8 --set train.seed=3)
"$T" deploy "$cfg" "${common[@]}" --zip "$out/bootstrap.zip" >> "$out/deploy.log" 2>&1
for run in a b c; do
  unset -n extra 2>/dev/null || true
  declare -n extra=$run
  "$T" fit "$cfg" --set train.steps=$steps "${extra[@]}" --out "$out/inprocess-$run" --quiet > /dev/null
done
"$T" fit "$cfg" "${common[@]}" "${a[@]}" --out "$out/a-alone" --quiet > /dev/null 2>> "$out/a-alone.log"
pids=()
for run in a b c; do
  unset -n extra 2>/dev/null || true
  declare -n extra=$run
  "$T" fit "$cfg" "${common[@]}" "${extra[@]}" --out "$out/$run-shared" --quiet > /dev/null 2>> "$out/$run-shared.log" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
# A run killed mid-way: its slots come back within the lease (10 s undilated, x D here).
"$T" fit "$cfg" "${common[@]}" "${b[@]}" --set train.steps=400 --out "$out/killed" --quiet > /dev/null 2>&1 &
victim=$!
sleep $((5 * D))
held_before=$(redis-cli -h "$host" -p "$port" ZCARD '{trainer-qos}:slots')
kill -9 $victim; killed_at=$(date +%s%3N)
until [ "$(redis-cli -h "$host" -p "$port" EVAL "return redis.call('ZCOUNT', KEYS[1], '('..tostring(redis.call('TIME')[1]*1000), '+inf')" 1 '{trainer-qos}:slots')" = 0 ]; do sleep 0.1; done
back_ms=$(( $(date +%s%3N) - killed_at ))
"$T" deploy "$cfg" "${common[@]}" --destroy >> "$out/deploy.log" 2>&1
python3 - "$out" "$D" "$held_before" "$back_ms" > "$here/results.md" <<'PY'
import json, statistics, sys, filecmp
out, D, held_before, back_ms = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def metrics(run):
    return [json.loads(l) for l in open(f"{out}/{run}/metrics.jsonl")]
def steady(run):
    m = metrics(run)[5:]
    return statistics.median(x["wall_ms"] for x in m)
alone = steady("a-alone")
print(f"# The account governor on the emulator (D = {D:g}, account limit 8)\n")
print("| run | priority | M | steady step p50 ms | vs alone | steps/s (undilated) | admitted | queued | granted | queue ms | bytes = in-process |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
rates = {}
for run, prio, m in [("a-alone", "high", 4), ("a-shared", "high", 4), ("b-shared", "normal", 8), ("c-shared", "normal", 8)]:
    s = json.load(open(f"{out}/{run}/summary.json"))
    q = s["runtime"].get("qos", {})
    p50 = steady(run)
    rate = 1000.0 / statistics.mean(x["wall_ms"] for x in metrics(run))
    rates[run] = rate
    same = filecmp.cmp(f"{out}/{run}/model.safetensors", f"{out}/inprocess-{run[0]}/model.safetensors", shallow=False)
    print(f"| {run} | {prio} | {m} | {p50:.0f} | {p50/alone:.2f} | {rate:.2f} | {q.get('admitted')} | {q.get('queued')} | {q.get('granted')} | {q.get('queue_wait_ms')} | {same} |")
print(f"\nB / C step rate: {rates['b-shared']/rates['c-shared']:.2f}")
print(f"\nKilled run: {held_before} slots held at the kill; all back {back_ms} ms later (lease 10 s x D = {10*D:g} s).")
print("\nNo chain dropped: every run's tasks reported once (late retries are tasks that never reported; the copies are")
print("speculative copies of stragglers, all of them false alarms):\n")
print("| run | tasks ran | late retries | speculative copies (false alarms) | fired twice | first-step cold starts | warm pool (wanted / up) |")
print("|---|---|---|---|---|---|---|")
for run in ["a-alone", "a-shared", "b-shared", "c-shared"]:
    r = json.load(open(f"{out}/{run}/summary.json"))["runtime"]
    w = (r.get("warm_pool") or {}).get("functions", [{}])[0]
    print(f"| {run} | {r['tasks_ran']} | {r['late_retries']} | {r['speculative_copies']} ({r['false_alarms']}) | {r['fired_twice']} | {r['first_step_cold_starts']} | {w.get('wanted')} / {w.get('instances')} |")
PY
cat "$here/results.md"
