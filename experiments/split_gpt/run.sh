#!/usr/bin/env bash
# examples/shakespeare_gpt.toml as configured (AdamW, warm-up + cosine, grad_clip 1.0), 100 steps: in process, then
# split into three slices (local invoker, in-memory store, the planner's update shards), then three slices with
# three update shards each on a local Redis. Each split run's weights must equal the in-process run's byte for byte.
# Writes results.md here. Usage: experiments/split_gpt/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
export TRAINER_DATA_DIR="${TRAINER_DATA_DIR:-$(cd .. && pwd)/shared/data}"
cargo build --release -q -p trainer
trainer=target/release/trainer
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --save '' --appendonly no --daemonize yes --pidfile "$work/redis.pid" >/dev/null
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5
base=(--set train.steps=100 --quiet)
declare -A sets=(
  [in-process]=""
  [split-S3]="--set plan.slices=3"
  [split-S3-K3-redis]="--set plan.slices=3 --set plan.update_shards=3 --set runtime.store=\"redis://127.0.0.1:$port\""
)
{
  echo "## examples/shakespeare_gpt.toml, 100 steps, split against in process"
  echo
  echo "Command: \`experiments/split_gpt/run.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "| run | settings | shape (plan.json) | tasks ran | wall s | final train loss | weights equal in-process |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} > "$here/results.md"
for name in in-process split-S3 split-S3-K3-redis; do
  t0=$(date +%s.%N)
  eval "$trainer fit examples/shakespeare_gpt.toml --out $work/$name ${base[*]} ${sets[$name]}" > /dev/null
  t1=$(date +%s.%N)
  loss=$(grep grad_norm "$work/$name/metrics.jsonl" | tail -n 1 | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["loss"], 4))')
  shape=$(python3 - "$work/$name" <<'PY'
import json, os, sys
d = sys.argv[1]
if not os.path.exists(f"{d}/plan.json"):
    print("one process | -")
else:
    p = json.load(open(f"{d}/plan.json"))
    s = json.load(open(f"{d}/summary.json"))
    print(f"slices {p['slices']}, update shards {p['shards']} | {s['runtime']['tasks_ran']}")
PY
)
  same=$(cmp -s "$work/in-process/model.safetensors" "$work/$name/model.safetensors" && echo yes || echo NO)
  printf '| %s | `%s` | %s | %.1f | %s | %s |\n' "$name" "${sets[$name]:-(as configured)}" "$shape" "$(echo "$t1 - $t0" | bc)" "$loss" "$same" >> "$here/results.md"
done
cat "$here/results.md"
