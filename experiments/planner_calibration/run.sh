#!/usr/bin/env bash
# Predicted vs measured step latency of local split runs at S = 1, 2, 4 (3 runs each), twice:
#  quick     — every split run's summary.json holds the latency model's prediction for it, from a quick profile
#              at its start (what a user gets by default);
#  corrected — the runs plan from `trainer profile --events RUN` (a full profile corrected by the first quick run
#              at the same S: its tasks' CPU time against the model's), given as plan.profile.
# Usage: experiments/planner_calibration/run.sh   (writes results.jsonl and results.md here)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
cargo build --release -q -p trainer
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
: > "$here/results.jsonl"
record() { # mode cuts summary.json
  python3 - "$1" "$2" "$3" >> "$here/results.jsonl" <<'PY'
import json, sys
mode, cuts, path = sys.argv[1:4]
c = json.load(open(path))["calibration"]
print(json.dumps({"mode": mode, "cuts": cuts, **{f"{k}_{q}": v for k in ("predicted", "measured") for q, v in c[k].items()}}))
PY
}
for cuts in "[]" "[4]" "[2,4,6]"; do
  tag="s${#cuts}"
  for rep in 1 2 3; do
    ./target/release/trainer fit "$here/mlp8.toml" --out "$out/quick-$tag-$rep" --quiet \
      --set "plan.cuts=$cuts" > "$out/summary.json"
    record quick "$cuts" "$out/summary.json"
  done
  ./target/release/trainer profile "$here/mlp8.toml" --set "plan.cuts=$cuts" --events "$out/quick-$tag-1" \
    --out "$out/profile-$tag.json" > /dev/null
  for rep in 1 2 3; do
    ./target/release/trainer fit "$here/mlp8.toml" --out "$out/corrected-$tag-$rep" --quiet \
      --set "plan.cuts=$cuts" --set "plan.profile=\"$out/profile-$tag.json\"" > "$out/summary.json"
    record corrected "$cuts" "$out/summary.json"
  done
done
python3 - "$here" <<'PY'
import json, statistics, sys
here = sys.argv[1]
rows = [json.loads(l) for l in open(f"{here}/results.jsonl")]
lines = ["| profile | slices | cuts | predicted p50 | measured p50 (median of 3) | error | predicted p95 | measured p95 | error |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for mode in ("quick", "corrected"):
    for cuts in ("[]", "[4]", "[2,4,6]"):
        r = [x for x in rows if x["cuts"] == cuts and x["mode"] == mode]
        med = lambda k: statistics.median(x[k] for x in r)
        pp50, mp50, pp95, mp95 = med("predicted_step_ms_p50"), med("measured_step_ms_p50"), med("predicted_step_ms_p95"), med("measured_step_ms_p95")
        s = 1 if cuts == "[]" else cuts.count(",") + 2
        lines.append(f"| {mode} | {s} | `{cuts}` | {pp50:.1f} ms | {mp50:.1f} ms | {100*(pp50/mp50-1):+.0f} % | {pp95:.1f} ms | {mp95:.1f} ms | {100*(pp95/mp95-1):+.0f} % |")
open(f"{here}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
