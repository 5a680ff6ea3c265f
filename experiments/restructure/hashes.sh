#!/usr/bin/env bash
# Behaviour-unchanged check for the driver-side restructure (issue 20): runs a fixed set of runs with one build of
# `trainer` and prints one line per output — its sha256, or the sha256 of its field set where the values are timings.
# Run it at two commits and diff the two outputs: equal lines mean the restructure changed no byte a user sees.
#   bash experiments/restructure/hashes.sh target/release > hashes-new.txt
# The first argument is the folder holding the `trainer` and `slice-worker` binaries (default target/release).
# A redis-server on a free loopback port serves the Redis runs; MONITOR on it records the layer caches a
# `recompute = false` run writes (read by monitor.py), whose bytes are hashed by key (step, slice, micro-batch).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$(cd "${1:-$root/target/release}" && pwd)"
trainer="$bin/trainer"
[ -x "$trainer" ] || { echo "no trainer binary in $bin" >&2; exit 2; }
export TRAINER_DATA_DIR="${TRAINER_DATA_DIR:-$(cd "$root/.." && pwd)/shared/data}"
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --client-output-buffer-limit 'replica 0 0 0' --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis="redis://127.0.0.1:$port"
fields="$here/fields.py"

# name config sets... : one fit into $work/name, then the hashes of what it wrote.
run() {
  local name=$1 config=$2
  shift 2
  local sets=() s
  for s in "$@"; do sets+=(--set "$s"); done
  (cd "$root" && "$trainer" fit "$config" --out "$work/$name" --quiet "${sets[@]}") >"$work/$name.log" 2>&1 ||
    { echo "$name: FAILED"; sed 's/^/    /' "$work/$name.log" | tail -5; return 0; }
  local d="$work/$name"
  for f in model.safetensors optimizer.safetensors config.resolved.toml; do
    # The run folder's path and the test server's port differ between two runs of this script.
    echo "$name $f $(sed "s|$work|WORK|g; s|127.0.0.1:$port|REDIS|g" "$d/$f" | sha256sum | cut -c1-16)"
  done
  echo "$name summary.json fields $(python3 "$fields" keys "$d/summary.json")"
  if [ -f "$d/events.jsonl" ]; then
    echo "$name events.jsonl fields $(python3 "$fields" keys "$d/events.jsonl")"
    echo "$name plan.json $(python3 "$fields" plan "$d/plan.json")"
  fi
}

# The MNIST examples train by epochs; a copy without `epochs` takes `--set train.steps=20`.
sed '/^epochs/d' "$root/examples/mnist_mlp.toml" >"$work/mnist_mlp.toml"
sed '/^epochs/d' "$root/examples/mnist_lenet5.toml" >"$work/mnist_lenet5.toml"
mlp="$work/mnist_mlp.toml"
lenet="$work/mnist_lenet5.toml"
gpt=examples/shakespeare_gpt.toml
sed '/^grad_clip/d' "$root/$gpt" >"$work/gpt_noclip.toml"
for model in mlp lenet; do
  config=${!model}
  run "$model-local" "$config" train.steps=20
  for s in 2 3; do
    run "$model-s$s-memory" "$config" train.steps=20 plan.slices=$s
    run "$model-s$s-redis" "$config" train.steps=20 plan.slices=$s "runtime.store=\"$redis\""
  done
done
run gpt-local "$gpt" train.steps=20
run gpt-noclip-local "$work/gpt_noclip.toml" train.steps=20
for s in 2 3; do
  run "gpt-noclip-s$s-memory" "$work/gpt_noclip.toml" train.steps=20 plan.slices=$s
  run "gpt-noclip-s$s-redis" "$work/gpt_noclip.toml" train.steps=20 plan.slices=$s "runtime.store=\"$redis\""
done

# Stored layer caches: a LeNet-5 run with recompute = false, every SET on the server recorded by MONITOR.
python3 "$here/monitor.py" "$port" "$work/monitor.txt" &
monitor_pid=$!
sleep 0.3
run lenet-s2-cache-redis "$lenet" train.steps=3 plan.slices=2 train.microbatches=2 plan.recompute=false \
  "runtime.store=\"$redis\""
sleep 0.3
kill $monitor_pid 2>/dev/null || true
python3 "$fields" caches "$work/monitor.txt" | sed 's/^/lenet-s2-cache-redis /'

# A sweep with a fixed profile (so the planner's choices are a function of the code alone): each point's config
# hash, memory per slice and weights.
# profile.json was measured once (`trainer profile experiments/restructure/sweep_base.toml --reps 2`) and is kept.
(cd "$root" && "$trainer" sweep "$here/sweep.toml" --out "$work/sweep" --quiet) >"$work/sweep.log" 2>&1 ||
  { echo "sweep: FAILED"; tail -5 "$work/sweep.log"; }
python3 "$fields" sweep "$work/sweep"
