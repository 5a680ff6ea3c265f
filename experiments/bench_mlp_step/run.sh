#!/usr/bin/env bash
# One SGD step of an MLP 784-1024-1024-1024-10, batch 128: Rust (models) vs hand-written numpy vs JAX jit,
# on 1 and 2 threads, side by side in the same run. Writes results.jsonl and results.md beside this script.
#   pip install "jax[cpu]" numpy   # once
#   bash experiments/bench_mlp_step/run.sh [RUNS]   # RUNS rounds in a row (default 1); the references swing
#                                                  # between rounds, so the summary gives the median ratio
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-1}"
cd "$here/../.."
cargo bench -p models --bench mlp_step --no-run 2>/dev/null
out="$here/results.jsonl"
: > "$out"
for r in $(seq "$runs"); do
  for t in 1 2; do
    cores=$([ "$t" = 1 ] && echo 0 || echo 0-1)
    # The allocator setting of the trainer binaries (slice_worker::alloc): freed pages are kept, not faulted in again.
    {
      MIMALLOC_PURGE_DELAY=-1 BENCH_THREADS=$t taskset -c "$cores" cargo bench -q -p models --bench mlp_step 2>/dev/null | grep '^{'
      python3 "$here/ref_numpy.py" --threads "$t" 2>/dev/null | grep '^{'
      python3 "$here/ref_jax.py" --threads "$t" 2>/dev/null | grep '^{'
    } | python3 -c "import json, sys; [print(json.dumps({**json.loads(l), 'run': $r})) for l in sys.stdin]" >> "$out"
  done
done
python3 - "$out" "$runs" "$(git rev-parse --short HEAD)" > "$here/results.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs, commit = int(sys.argv[2]), sys.argv[3]
print(f"{runs} run(s) of `bash experiments/bench_mlp_step/run.sh {runs}` at commit {commit}; step ms, medians of each process's steps.")
print()
print("| run | threads | rust ms | numpy ms | jax ms | rust / numpy | rust / jax | rust / faster reference |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
ratios = {1: [], 2: []}
for r in range(1, runs + 1):
    for t in (1, 2):
        v = {x["impl"]: x["step_ms_median"] for x in rows if x["threads"] == t and x["run"] == r}
        best = min(v["numpy"], v["jax"])
        ratios[t].append(v["rust"] / best)
        print(f"| {r} | {t} | {v['rust']:.2f} | {v['numpy']:.2f} | {v['jax']:.2f} | {v['rust']/v['numpy']:.2f} | {v['rust']/v['jax']:.2f} | {v['rust']/best:.2f} |")
print()
for t in (1, 2):
    q = ratios[t]
    print(f"{t} thread(s): rust / faster reference median {statistics.median(q):.3f}, range {min(q):.2f}–{max(q):.2f}, "
          f"{sum(x <= 0.9 for x in q)} of {len(q)} runs ≤ 0.9")
PY
cat "$here/results.md"
