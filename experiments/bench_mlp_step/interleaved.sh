#!/usr/bin/env bash
# The MLP step of models vs numpy vs JAX jit, alternating in bursts on the same cores (interleaved.py says why and
# how), on 1 and 2 threads. Writes interleaved.jsonl (the JSON lines), interleaved.log (every burst's step times)
# and interleaved.md beside this script.
#   pip install "jax[cpu]" numpy   # once
#   bash experiments/bench_mlp_step/interleaved.sh [ROUNDS]   # rounds per thread count (default 40)
#   BENCH_ISA=avx2 bash experiments/bench_mlp_step/interleaved.sh [ROUNDS]
#     all three on their AVX2 code on an AVX-512 host: models built without its `avx512` feature (in its own target
#     folder), OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE), XLA limited to AVX2 (--xla_cpu_max_isa); writes
#     interleaved_avx2.* instead. For comparing with hosts that have AVX2 only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rounds="${1:-40}"
isa="${BENCH_ISA:-native}"
cd "$here/../.."
case "$isa" in
  native) build=(cargo bench -p models --bench mlp_step --no-run); name=interleaved ;;
  avx2)
    build=(env CARGO_TARGET_DIR=target/avx2 cargo bench -p models --no-default-features --bench mlp_step --no-run)
    name=interleaved_avx2
    export OPENBLAS_CORETYPE=Haswell XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_max_isa=AVX2" ;;
  *) echo "interleaved.sh: BENCH_ISA must be native or avx2, not '$isa'" >&2; exit 2 ;;
esac
bin="$("${build[@]}" 2>&1 | sed -n 's/.*Executable .*(\(.*mlp_step-[0-9a-f]*\)).*/\1/p' | tail -1)"
[ -x "$bin" ] || { echo "interleaved.sh: could not find the mlp_step bench binary" >&2; exit 1; }
out="$here/$name.jsonl"
: > "$out"
: > "$here/$name.log"
for t in 1 2; do
  python3 "$here/interleaved.py" --threads "$t" --rust "$bin" --rounds "$rounds" >> "$out" 2>> "$here/$name.log"
done
python3 - "$out" "$rounds" "$(git rev-parse --short HEAD)" "$isa" > "$here/$name.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds, commit, isa = sys.argv[2], sys.argv[3], sys.argv[4]
env = "BENCH_ISA=avx2 " if isa == "avx2" else ""
print(f"`{env}bash experiments/bench_mlp_step/interleaved.sh {rounds}` at commit {commit}: {rounds} rounds per thread count, "
      "each a burst of every implementation in turn; step ms, median over the rounds of each burst's median (min–max).")
print()
print("| threads | rust ms | numpy ms | jax ms | rust / faster reference, per round: median (p10–p90) | rounds ≤ 0.9 |")
print("| --- | --- | --- | --- | --- | --- |")
for t in (1, 2):
    v = {r["impl"]: r for r in rows if r.get("threads") == t and "impl" in r}
    s = next(r for r in rows if r.get("threads") == t and "summary" in r)
    cell = lambda i: f"{v[i]['step_ms_median']:.2f} ({v[i]['step_ms_min']:.1f}–{v[i]['step_ms_max']:.1f})"
    print(f"| {t} | {cell('rust')} | {cell('numpy')} | {cell('jax')} | **{s['median']:.3f}** ({s['p10']:.2f}–{s['p90']:.2f}) "
          f"| {s['rounds_at_most_0.9']} of {s['rounds']} |")
PY
cat "$here/$name.md"
