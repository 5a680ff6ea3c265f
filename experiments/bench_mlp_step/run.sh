#!/usr/bin/env bash
# One SGD step of an MLP 784-1024-1024-1024-10, batch 128: Rust (models) vs hand-written numpy vs JAX jit,
# on 1 and 2 threads, side by side in the same run. Writes results.jsonl and results.md beside this script.
#   pip install "jax[cpu]" numpy   # once
#   bash experiments/bench_mlp_step/run.sh [RUNS]   # RUNS rounds in a row (default 1); the host's speed swings
#                                                  # between rounds, so the summary gives the median ratio and
#                                                  # the ratio of each implementation's fastest round
#   BENCH_REPS=N (default 50): timed steps per process
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${1:-1}"
cd "$here/../.."
cargo bench -p models --bench mlp_step --no-run 2>/dev/null
out="$here/results.jsonl"
: > "$out"
# Each process times REPS steps (default 50) after its warm-up. The three run one after the other, and the order
# rotates from round to round (rust first, then numpy first, then jax first), so that a slow spell of the host does
# not always fall on the same one.
reps="${BENCH_REPS:-50}"
bench_rust() {
  # The allocator setting of the trainer binaries (slice_worker::alloc): freed pages are kept, not faulted in again.
  MIMALLOC_PURGE_DELAY=-1 BENCH_THREADS=$1 BENCH_REPS=$reps taskset -c "$2" cargo bench -q -p models --bench mlp_step 2>/dev/null | grep '^{'
}
bench_numpy() { python3 "$here/ref_numpy.py" --threads "$1" --reps "$reps" 2>/dev/null | grep '^{'; }
bench_jax() { python3 "$here/ref_jax.py" --threads "$1" --reps "$reps" 2>/dev/null | grep '^{'; }
orders=("rust numpy jax" "numpy jax rust" "jax rust numpy")
for r in $(seq "$runs"); do
  for t in 1 2; do
    cores=$([ "$t" = 1 ] && echo 0 || echo 0-1)
    for impl in ${orders[$(( (r - 1) % 3 ))]}; do
      "bench_$impl" "$t" "$cores"
    done | python3 -c "import json, sys; [print(json.dumps({**json.loads(l), 'run': $r})) for l in sys.stdin]" >> "$out"
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
print()
# A shared host only ever adds time (a neighbour on the core, a lower clock), in spells of seconds that fall on whole
# processes: each implementation's fastest round is the nearest to its speed on a quiet host.
for t in (1, 2):
    best = {i: min(x["step_ms_median"] for x in rows if x["threads"] == t and x["impl"] == i) for i in ("rust", "numpy", "jax")}
    ref = min(best["numpy"], best["jax"])
    print(f"{t} thread(s), fastest round of each: rust {best['rust']:.2f} ms, numpy {best['numpy']:.2f}, jax {best['jax']:.2f}; "
          f"rust / faster reference {best['rust'] / ref:.3f}")
PY
cat "$here/results.md"
