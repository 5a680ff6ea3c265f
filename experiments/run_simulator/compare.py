#!/usr/bin/env python3
"""Sets the run simulator's prediction beside an emulated run: for each point of a kept sweep folder
(SWEEP_OUT of experiments/sweeps_emulated/run.sh), the step loop's p50 / p95, first step, wall time, cold starts and
functions at once, measured (summary.json, metrics.jsonl, the emulator's events.jsonl) against `projected_run`
(results.json), as ratios measured / predicted.
Usage: compare.py SWEEP_DIR[=PREDICTED_RESULTS_JSON] ...  (prints a Markdown table; with =FILE the prediction is
taken from another results.json of the same points, e.g. `trainer sweep --predict-only` with a newer model)"""
import gzip
import json
import sys
from pathlib import Path


def quantile(xs, q):
    """Nearest rank, as the trainer's stats.rs."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(-(-q * len(xs) // 1)) - 1))
    return xs[k]


def read_lines(path):
    """A JSON-lines file's lines, from PATH or, where only that exists, PATH.gz."""
    gz = path.with_name(path.name + ".gz")
    text = path.read_text() if path.exists() else gzip.decompress(gz.read_bytes()).decode()
    return [l for l in text.splitlines() if l.strip()]


def peak_at_once(events, dilation):
    """The most task invocations in flight at once, from the emulator's records (real start, undilated duration)."""
    marks = []
    for e in events:
        if e.get("kind") != "Event":
            continue
        start = e["start_unix_ms"]
        marks.append((start, 1))
        marks.append((start + (e["duration_ms"] + e.get("init_ms", 0.0)) * dilation, -1))
    peak = cur = 0
    for _, d in sorted(marks, key=lambda m: (m[0], m[1])):
        cur += d
        peak = max(peak, cur)
    return peak


def rows(sweep, predicted_file=None):
    results = json.loads((sweep / "results.json").read_text())
    predicted = results
    if predicted_file:
        predicted = json.loads(Path(predicted_file).read_text())
    runs = {p["point"]: p.get("projected_run") for p in predicted["points"]}
    for p in results["points"]:
        run = runs.get(p["point"])
        if p.get("status") != "done" or run is None:
            continue
        d = sweep / p["dir"]
        steps = [json.loads(l)["wall_ms"] for l in (d / "metrics.jsonl").read_text().splitlines() if l.strip()]
        summary = json.loads((d / "summary.json").read_text())
        events = [json.loads(l) for l in read_lines(d / "emulator" / "events.jsonl")]
        dilation = p["measured_on"].get("dilation", 1.0)
        measured = {
            "p50": quantile(steps, 0.5),
            "p95": quantile(steps, 0.95),
            "first": steps[0],
            "wall": summary["train_s"],
            "cold": sum(1 for e in events if e.get("cold")),
            "peak": peak_at_once(events, dilation),
        }
        total = p["steps"]
        more = max(0, total - run["steps"])
        predicted = {
            "p50": run["step_ms_p50"],
            "p95": run["step_ms_p95"],
            "first": run["first_step_ms"],
            "wall": run["wall_s"] + more * run["steady_step_ms"] / 1e3,
            "cold": run["cold_starts"] + run["warm_pool_instances"],
            "peak": run["peak_concurrency"],
        }
        yield (sweep.name if sweep.name != "sweep" else sweep.parent.name), p["point"], measured, predicted


def main():
    keys = [("p50", "step p50 ms"), ("p95", "step p95 ms"), ("first", "first step ms"), ("wall", "step loop s"),
            ("cold", "cold starts"), ("peak", "functions at once")]
    print("| run | point | " + " | ".join(f"{label} (meas. / pred. = ratio)" for _, label in keys) + " |")
    print("|" + "---|" * (2 + len(keys)))
    for arg in sys.argv[1:]:
        sweep, _, predicted_file = arg.partition("=")
        for name, point, m, p in rows(Path(sweep), predicted_file or None):
            cells = []
            for k, _ in keys:
                r = m[k] / p[k] if p[k] else float("nan")
                fmt = "{:.0f}" if k in ("cold", "peak") else ("{:.2f}" if k == "wall" else "{:.0f}")
                cells.append(f"{fmt.format(m[k])} / {fmt.format(p[k])} = {r:.2f}")
            print(f"| {name} | {point} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
