#!/usr/bin/env bash
# The examples trained on the Lambda emulator with the planner's memory per slice, 20 steps each: the weights must
# equal the in-process run's at the same number of micro-batches, and the emulated bill per step is set beside the
# planner's prediction. Writes results.md and results.jsonl here; runs go to runs/emulator-examples-<time>/.
#   sudo bash experiments/emulator_examples/run.sh            (root: the emulator's cgroups)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/emulator_examples
cargo build --release -q -p trainer -p slice-worker
T=$PWD/target/release/trainer
out=$PWD/runs/emulator-examples-$(date +%s)
mkdir -p "$out"
cp target/release/slice-worker "$out/bootstrap"
(cd "$out" && python3 -m zipfile -c bootstrap.zip bootstrap)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile "$out/redis.pid" \
  --logfile "$out/redis.log"
"$T" emulate --listen 127.0.0.1:0 --dir "$out/emulator" 2> "$out/emulate.log" > "$out/emulate.out" &
emulate_pid=$!
trap 'kill -INT $emulate_pid 2>/dev/null; kill "$(cat "$out/redis.pid")" 2>/dev/null' EXIT
until grep -q "^Lambda emulator on" "$out/emulate.log"; do sleep 0.2; done
url=$(sed -n 's/^Lambda emulator on \([^ ]*\).*/\1/p' "$out/emulate.log")
export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator
echo "emulator $url, redis $port, runs in $out"

# name example split-setting
cases=(
  "mnist_mlp-S1 mnist_mlp plan.cuts=[]"
  "mnist_mlp-S2 mnist_mlp plan.slices=2"
  "mnist_mlp-S3 mnist_mlp plan.slices=3"
  "mnist_lenet5-cuts2 mnist_lenet5 plan.cuts=[2]"
  "mnist_lenet5-cuts1234 mnist_lenet5 plan.cuts=[1,2,3,4]"
  "shakespeare_gpt-S1 shakespeare_gpt plan.cuts=[]"
  "shakespeare_gpt-S3 shakespeare_gpt plan.slices=3"
)
: > "$here/results.jsonl"
for c in "${cases[@]}"; do
  read -r name example split <<< "$c"
  ex=examples/$example.toml
  profile=$out/profile-$example.json
  common=(--set train.steps=20 --set "train.microbatches=auto" --set runtime.invoker=lambda
          --set "runtime.store=\"redis://127.0.0.1:$port\"" --set "lambda.endpoint_url=\"$url\""
          --set lambda.architecture=x86_64 --set lambda.region=us-east-1 --set "lambda.role_arn=\"arn:aws:iam::000000000000:role/trainer\""
          --set "$split")
  if [ ! -f "$profile" ]; then
    # Profiled on this machine and this Redis by the local invoker (a Lambda config needs the profile first).
    "$T" profile "$ex" --set train.steps=20 --set "runtime.store=\"redis://127.0.0.1:$port\"" --set "$split" --out "$profile" \
      2>> "$out/$name.log"
  fi
  sets=("${common[@]}" --set "plan.profile=\"$profile\"")
  "$T" plan "$ex" "${sets[@]}" --json > "$out/$name.plan.json" 2>> "$out/$name.log"
  "$T" deploy "$ex" "${sets[@]}" --zip "$out/bootstrap.zip" >> "$out/$name.log" 2>&1
  m=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['microbatches'])" "$out/$name.plan.json")
  start=$(date +%s%3N)
  "$T" fit "$ex" "${sets[@]}" --out "$out/$name" --quiet > /dev/null 2>> "$out/$name.log"
  end=$(date +%s%3N)
  "$T" fit "$ex" --set train.steps=20 --set "train.microbatches=$m" --out "$out/$name-inprocess" --quiet \
    > /dev/null 2>> "$out/$name.log"
  if cmp -s "$out/$name/model.safetensors" "$out/$name-inprocess/model.safetensors"; then same=true; else same=false; fi
  python3 - "$name" "$out" "$start" "$end" "$same" "$m" >> "$here/results.jsonl" <<'PY'
import json, sys
name, out, start, end, same, m = sys.argv[1:]
plan = json.load(open(f"{out}/{name}.plan.json"))
summary = json.load(open(f"{out}/{name}/summary.json"))
records = [json.loads(l) for l in open(f"{out}/emulator/events.jsonl")]
mine = [r for r in records if int(start) <= r["start_unix_ms"] <= int(end)]
gb_s = sum(r["billed_ms"] / 1000 * r["memory_mb"] / 1024 for r in mine)
usd_gb_s, usd_req = 0.0000166667, 0.0000002
steps = summary["steps"]
pred = plan["predicted"]
print(json.dumps({
    "case": name, "microbatches": int(m),
    "memory_mb": [s["memory_mb"] for s in plan["slices"]],
    "bytes_equal_in_process": same == "true",
    "emulated_usd_per_step": (gb_s * usd_gb_s + len(mine) * usd_req) / steps,
    "predicted_usd_per_step": pred["gb_seconds"] * usd_gb_s + pred["requests"] * usd_req,
    "emulated_gb_s_per_step": gb_s / steps, "predicted_gb_s_per_step": pred["gb_seconds"],
    "emulated_requests_per_step": len(mine) / steps, "predicted_requests_per_step": pred["requests"],
    "cold_starts": sum(r["cold"] for r in mine),
    "measured_step_ms_p50": summary["step_ms_p50"], "predicted_step_ms_p50": pred["step_ms_p50"],
}))
PY
  tail -1 "$here/results.jsonl"
  "$T" deploy "$ex" "${sets[@]}" --destroy >> "$out/$name.log" 2>&1
done
python3 - "$here" <<'PY'
import json, sys
here = sys.argv[1]
rows = [json.loads(l) for l in open(f"{here}/results.jsonl")]
with open(f"{here}/results.md", "w") as f:
    f.write("| case | M | memory per slice (MB) | bytes = in-process | emulated $/step | predicted $/step | ratio | "
            "GB-s/step emu / pred | requests/step emu / pred | cold starts | step p50 ms emu / pred |\n")
    f.write("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    for r in rows:
        f.write(f"| {r['case']} | {r['microbatches']} | {r['memory_mb']} | {r['bytes_equal_in_process']} | "
                f"{r['emulated_usd_per_step']:.3e} | {r['predicted_usd_per_step']:.3e} | "
                f"{r['emulated_usd_per_step'] / r['predicted_usd_per_step']:.2f} | "
                f"{r['emulated_gb_s_per_step']:.3f} / {r['predicted_gb_s_per_step']:.3f} | "
                f"{r['emulated_requests_per_step']:.1f} / {r['predicted_requests_per_step']:.1f} | {r['cold_starts']} | "
                f"{r['measured_step_ms_p50']:.0f} / {r['predicted_step_ms_p50']:.0f} |\n")
print(open(f"{here}/results.md").read())
PY
