#!/usr/bin/env bash
# A/B of two builds of bench_runtime (tests/benches/runtime.rs): ROUNDS rounds, each running both builds once (the
# order alternating by round), then each figure's median over the rounds per build, its range, and new / old.
#   bash experiments/restructure/ab_runtime.sh OLD_BENCH_BIN NEW_BENCH_BIN [ROUNDS] [STEPS]
# The bench binaries are what `cargo bench -p e2e-tests --bench runtime --no-run` builds, at each commit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
old="$1" new="$2" rounds="${3:-3}" steps="${4:-10}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$here/../.."
for r in $(seq "$rounds"); do
  if (( r % 2 )); then order="old new"; else order="new old"; fi
  for k in $order; do
    bin=${!k}
    echo "round $r: $k" >&2
    "$bin" --bench --steps "$steps" --markdown "$work/$k.md" --json "$work/$k.jsonl" >"$work/$k.$r.log" 2>&1 ||
      { echo "$k failed in round $r:"; tail -5 "$work/$k.$r.log"; exit 1; }
  done
done
python3 - "$work/old.jsonl" "$work/new.jsonl" <<'PY'
import json, statistics, sys
def flat(d, p=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, p + k + "."))
        elif isinstance(v, (int, float)) and k != "steps":
            out[p + k] = float(v)
    return out
runs = {k: [flat(json.loads(l)) for l in open(f) if l.strip()] for k, f in zip(("old", "new"), sys.argv[1:])}
print("| figure | old median (range) | new median (range) | new / old |")
print("|---|---|---|---|")
for key in sorted(runs["old"][0]):
    o = [r[key] for r in runs["old"]]
    n = [r[key] for r in runs["new"]]
    mo, mn = statistics.median(o), statistics.median(n)
    ratio = mn / mo if mo else float("nan")
    print(f"| {key} | {mo:.4g} ({min(o):.4g}–{max(o):.4g}) | {mn:.4g} ({min(n):.4g}–{max(n):.4g}) | {ratio:.3f} |")
PY
