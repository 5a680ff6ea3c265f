#!/usr/bin/env bash
# One SGD step of an MLP 784-1024-1024-1024-10, batch 128: Rust (models) vs hand-written numpy vs JAX jit,
# on 1 and 2 threads, side by side in the same run. Writes results.jsonl and results.md beside this script.
#   pip install "jax[cpu]" numpy   # once
#   bash experiments/bench_mlp_step/run.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo bench -p models --bench mlp_step --no-run 2>/dev/null
out="$here/results.jsonl"
: > "$out"
for t in 1 2; do
  cores=$([ "$t" = 1 ] && echo 0 || echo 0-1)
  # The allocator setting of the trainer binaries (slice_worker::alloc): freed pages are kept, not faulted in again.
  MIMALLOC_PURGE_DELAY=-1 BENCH_THREADS=$t taskset -c "$cores" cargo bench -q -p models --bench mlp_step 2>/dev/null | grep '^{' >> "$out"
  python3 "$here/ref_numpy.py" --threads "$t" 2>/dev/null | grep '^{' >> "$out"
  python3 "$here/ref_jax.py" --threads "$t" 2>/dev/null | grep '^{' >> "$out"
done
python3 - "$out" > "$here/results.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| threads | rust ms | numpy ms | jax ms | rust / numpy | rust / jax | rust / faster reference |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for t in (1, 2):
    r = {x["impl"]: x["step_ms_median"] for x in rows if x["threads"] == t}
    best = min(r["numpy"], r["jax"])
    print(f"| {t} | {r['rust']:.2f} | {r['numpy']:.2f} | {r['jax']:.2f} | {r['rust']/r['numpy']:.2f} | {r['rust']/r['jax']:.2f} | {r['rust']/best:.2f} |")
PY
cat "$here/results.md"
