#!/usr/bin/env bash
# Predicted vs measured step latency of local split runs at S = 1, 2, 4 (3 runs each): every split run's
# summary.json holds the latency model's prediction for it (from a quick profile at its start) and what it measured.
# Usage: experiments/planner_calibration/run.sh   (writes results.jsonl and results.md here)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release -q -p trainer
out="$(mktemp -d)"
: > "$here/results.jsonl"
for rep in 1 2 3; do
  for cuts in "[]" "[4]" "[2,4,6]"; do
    ./target/release/trainer fit "$here/mlp8.toml" --out "$out/run-$rep-${#cuts}" --quiet \
      --set "plan.cuts=$cuts" > "$out/summary.json"
    python3 - "$cuts" "$out/summary.json" >> "$here/results.jsonl" <<'PY'
import json, sys
cuts, path = sys.argv[1], sys.argv[2]
c = json.load(open(path))["calibration"]
print(json.dumps({"cuts": cuts, **{f"{k}_{q}": v for k in ("predicted", "measured") for q, v in c[k].items()}}))
PY
  done
done
python3 - "$here" <<'PY'
import json, statistics, sys
here = sys.argv[1]
rows = [json.loads(l) for l in open(f"{here}/results.jsonl")]
lines = ["| slices | cuts | predicted p50 | measured p50 (median of 3) | error | predicted p95 | measured p95 | error |",
         "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for cuts in ("[]", "[4]", "[2,4,6]"):
    r = [x for x in rows if x["cuts"] == cuts]
    med = lambda k: statistics.median(x[k] for x in r)
    pp50, mp50, pp95, mp95 = med("predicted_step_ms_p50"), med("measured_step_ms_p50"), med("predicted_step_ms_p95"), med("measured_step_ms_p95")
    s = 1 if cuts == "[]" else cuts.count(",") + 2
    lines.append(f"| {s} | `{cuts}` | {pp50:.1f} ms | {mp50:.1f} ms | {100*(pp50/mp50-1):+.0f} % | {pp95:.1f} ms | {mp95:.1f} ms | {100*(pp95/mp95-1):+.0f} % |")
open(f"{here}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
rm -rf "$out"
