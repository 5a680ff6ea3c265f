#!/usr/bin/env bash
# Dilation holds: one plan (the 8-unit MLP of experiments/sweeps, S = 4, M = 8, 1,024 MB per slice, 100 steps) trained on the emulator at
# time dilations D (default "4 16": the smallest this 2-core host admits for it, and 4 x that), each with shaped
# per-instance bandwidth and the store in its own cgroup. Undilated step p50 / p95 and GB-seconds per step should
# agree across D. Writes results.jsonl and results.md here; runs go to runs/emulator-dilation-<time>/.
#   sudo bash experiments/emulator_dilation/run.sh [D ...]     (root: cgroups, namespaces, tc)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=experiments/emulator_dilation
dilations=("${@:-4 16}")
read -r -a dilations <<< "${dilations[*]}"
steps=${STEPS:-100}
cargo build --release -q -p trainer -p slice-worker
T=$PWD/target/release/trainer
out=$PWD/runs/emulator-dilation-$(date +%s)
mkdir -p "$out"
cp target/release/slice-worker "$out/bootstrap"
(cd "$out" && python3 -m zipfile -c bootstrap.zip bootstrap)
export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator
ex=experiments/sweeps/mlp8.toml
: > "$here/results.jsonl"
# The in-process run at the same M: the bytes every emulated run must end with.
"$T" fit "$ex" --set train.steps=$steps --set train.microbatches=8 --out "$out/inprocess" --quiet > /dev/null

for D in "${dilations[@]}"; do
  "$T" emulate --listen 127.0.0.1:0 --dir "$out/emulator-D$D" --dilation "$D" --shape-network --store \
    2> "$out/emulate-D$D.log" > "$out/emulate-D$D.out" &
  emulate_pid=$!
  trap 'kill -INT $emulate_pid 2>/dev/null' EXIT
  until grep -q "^Lambda emulator on" "$out/emulate-D$D.log"; do sleep 0.2; done
  until grep -q "^store " "$out/emulate-D$D.out"; do sleep 0.2; done
  url=$(sed -n 's/^Lambda emulator on \([^ ]*\).*/\1/p' "$out/emulate-D$D.log")
  store=$(sed -n 's/^store //p' "$out/emulate-D$D.out")
  echo "D = $D: emulator $url, store $store"
  sets=(--set train.steps=$steps --set train.microbatches=8 --set plan.slices=4 --set runtime.invoker=lambda
        --set "runtime.store=\"$store\"" --set "lambda.endpoint_url=\"$url\"" --set lambda.memory_mb=1024
        --set lambda.architecture=x86_64 --set lambda.region=us-east-1
        --set "lambda.role_arn=\"arn:aws:iam::000000000000:role/trainer\"" --set "emulator.dilation=$D")
  "$T" deploy "$ex" "${sets[@]}" --zip "$out/bootstrap.zip" >> "$out/D$D.log" 2>&1
  # CPU the emulated world does not account for: the driver's (user + system, from bash's `time`) and the emulator
  # process's own (its instances and store are in cgroups of their own, not counted in it).
  emu_cpu_before=$(awk '{print $14 + $15}' /proc/$emulate_pid/stat)
  start=$(date +%s%3N)
  TIMEFORMAT='%U %S'
  { time "$T" fit "$ex" "${sets[@]}" --out "$out/D$D" --quiet > /dev/null 2>> "$out/D$D.log" ; } 2> "$out/D$D.driver-cpu"
  end=$(date +%s%3N)
  emu_cpu_after=$(awk '{print $14 + $15}' /proc/$emulate_pid/stat)
  echo "$(( (emu_cpu_after - emu_cpu_before) * 1000 / $(getconf CLK_TCK) ))" > "$out/D$D.emulator-cpu-ms"
  "$T" deploy "$ex" "${sets[@]}" --destroy >> "$out/D$D.log" 2>&1
  kill -INT $emulate_pid; wait $emulate_pid || true
  if cmp -s "$out/D$D/model.safetensors" "$out/inprocess/model.safetensors"; then same=true; else same=false; fi
  python3 - "$D" "$out" "$start" "$end" "$same" >> "$here/results.jsonl" <<'PY'
import json, sys
D, out, start, end, same = sys.argv[1:]
summary = json.load(open(f"{out}/D{D}/summary.json"))
records = [json.loads(l) for l in open(f"{out}/emulator-D{D}/events.jsonl")]
mine = [r for r in records if int(start) <= r["start_unix_ms"] <= int(end)]
steps = summary["steps"]
user, system = map(float, open(f"{out}/D{D}.driver-cpu").read().split())
emulator_cpu_ms = float(open(f"{out}/D{D}.emulator-cpu-ms").read())
gb_s = sum(r["billed_ms"] / 1000 * r["memory_mb"] / 1024 for r in mine)
print(json.dumps({
    "dilation": float(D), "steps": steps, "bytes_equal_in_process": same == "true",
    "step_ms_p50": summary["step_ms_p50"], "step_ms_p95": summary["step_ms_p95"],
    "gb_s_per_step": gb_s / steps, "invocations": len(mine), "cold_starts": sum(r["cold"] for r in mine),
    "cpu_ms_per_step": sum(r["cpu_ms"] for r in mine) / steps,
    "throttled_ms_per_step": sum(r["throttled_ms"] for r in mine) / steps,
    "wall_s": (int(end) - int(start)) / 1000,
    "driver_cpu_s": user + system, "emulator_cpu_s": emulator_cpu_ms / 1000,
}))
PY
  tail -1 "$here/results.jsonl"
done
python3 - "$here" <<'PY'
import json, sys
here = sys.argv[1]
rows = [json.loads(l) for l in open(f"{here}/results.jsonl")]
base = rows[0]
with open(f"{here}/results.md", "w") as f:
    f.write("| D | steps | bytes = in-process | step p50 ms | step p95 ms | GB-s / step | CPU ms / step | "
            "throttled ms / step | cold starts | wall s | p50 / p95 / GB-s vs first D |\n")
    f.write("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    for r in rows:
        f.write(f"| {r['dilation']:g} | {r['steps']} | {r['bytes_equal_in_process']} | {r['step_ms_p50']:.1f} | "
                f"{r['step_ms_p95']:.1f} | {r['gb_s_per_step']:.4f} | {r['cpu_ms_per_step']:.0f} | "
                f"{r['throttled_ms_per_step']:.0f} | {r['cold_starts']} | {r['wall_s']:.0f} | "
                f"{r['step_ms_p50'] / base['step_ms_p50']:.3f} / {r['step_ms_p95'] / base['step_ms_p95']:.3f} / "
                f"{r['gb_s_per_step'] / base['gb_s_per_step']:.3f} |\n")
print(open(f"{here}/results.md").read())
PY
