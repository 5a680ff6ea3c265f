#!/usr/bin/env bash
# Recovery from lost tasks (issue 22): the config of the issue's "Why" (why.toml) on a local Redis, fault-free and
# at two fault mixes, three fault seeds each, every setting but the fault rates at its default; then the in-process
# run for the bytes. Prints one line per run: steady-state step p50 (steps 6-25), the runtime's counters, and
# whether the weights equal the in-process run's.
# Then the same through the Lambda emulator (tests/benches/recovery.rs → emulator.md).
# Usage: experiments/recovery/run.sh   (needs redis-server; builds the release trainer and slice-worker)
set -euo pipefail
cd "$(dirname "$0")/../.."
export TRAINER_DATA_DIR="${TRAINER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
cargo build --release -q -p trainer -p slice-worker
port=$((20000 + RANDOM % 20000))
redis-server --port "$port" --save "" --appendonly no --daemonize yes --pidfile "/tmp/recovery-$port.pid" >/dev/null
trap 'kill "$(cat /tmp/recovery-'"$port"'.pid)" 2>/dev/null || true' EXIT
sleep 0.5
tmp=$(mktemp -d)
target/release/trainer fit experiments/recovery/why.toml --out "$tmp/mono" --quiet --set plan.slices=1 >/dev/null
for seed in 1 2 3; do
  for mix in "fault-free 0 0 0" "heavy 0.2 0.2 0" "light 0.02 0.05 0.01"; do
    set -- $mix
    out="$tmp/$1-$seed"
    target/release/trainer fit experiments/recovery/why.toml --out "$out" --quiet \
      --set runtime.store="\"redis://127.0.0.1:$port\"" --set runtime.seed=$seed \
      --set runtime.fault_rate=$2 --set runtime.duplicate_rate=$3 --set runtime.stall_rate=$4 >"$out.json"
    python3 - "$out" "$tmp/mono" "$1" "$seed" <<'PY'
import json, statistics, sys, filecmp
out, mono, mix, seed = sys.argv[1:]
s = json.load(open(out + ".json")); r = s["runtime"]
steps = [json.loads(l)["wall_ms"] for l in open(out + "/metrics.jsonl")][5:]
tasks = r["tasks_ran"] + r["tasks_skipped"]
same = filecmp.cmp(out + "/model.safetensors", mono + "/model.safetensors", shallow=False)
print(f"{mix:10} seed {seed}: steady p50 {statistics.median(steps):6.1f} ms, train {s['train_s']:5.2f} s, "
      f"crashes {r['crashes']}, late {r['late_retries']}, copies {r['speculative_copies']}, "
      f"orphans {r['orphans_started']}, false alarms {r['false_alarms']}, tasks {tasks}, "
      f"fired twice {r['fired_twice']}, bytes equal {same}")
PY
  done
done
rm -rf "$tmp"
# Through Lambda's interfaces: trainer → the Lambda emulator → slice-worker processes → Redis (RECOVERY_SEEDS=1,2,3
# by default; the table goes to experiments/recovery/emulator.md).
cargo bench -q -p e2e-tests --bench recovery -- "$PWD/experiments/recovery"
