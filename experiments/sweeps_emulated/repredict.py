#!/usr/bin/env python3
"""Predicts committed emulated sweep parts again with the current model, from each part's own profile (no
emulator: `trainer sweep --predict-only`), and sets the predictions beside what the part measured: step p50 / p95
and GB-seconds per step as measured / predicted, and the pick — the point the new predictions rank best for the
base config's objective — against the best measured point.
Usage (from the repository root, after `cargo build --release -p trainer`):
  python3 experiments/sweeps_emulated/repredict.py NAME [NAME ...]   (NAME: a folder here with NAME_sweep.toml)"""
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAINER = HERE.parent.parent / "target" / "release" / "trainer"


def predict(name, out):
    sweep = HERE / f"{name}_sweep.toml"
    text = sweep.read_text()
    base = tomllib.loads(text)["base"]
    lines = [l for l in text.splitlines() if not l.startswith("base") and not l.startswith("profile")]
    lines.insert(0, f'profile = "{HERE / name / "profile.json"}"')
    lines.insert(0, f'base = "{(HERE / base).resolve()}"')
    spec = Path(out) / f"{name}.toml"
    spec.write_text("\n".join(lines) + "\n")
    subprocess.run([str(TRAINER), "sweep", str(spec), "--predict-only", "--out", str(Path(out) / name)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    objective = tomllib.loads((HERE / base).resolve().read_text()).get("plan", {})
    return json.loads((Path(out) / name / "results.json").read_text()), objective


def main():
    print("| part | point | p50 meas. / pred. | p95 meas. / pred. | GB-s meas. / pred. "
          "| whole run: p50 | p95 | GB-s |")
    print("|---|---|---|---|---|---|---|---|")
    picks, run_picks = [], []
    with tempfile.TemporaryDirectory() as out:
        for name in sys.argv[1:]:
            measured = {p["point"]: p for p in json.loads((HERE / name / "results.json").read_text())["points"]
                        if p.get("status") == "done"}
            predicted, plan = predict(name, out)
            quantile = plan.get("quantile", 0.5)
            latency = plan.get("objective", "cost") == "latency"
            key_pred, key_meas, key_run = {}, {}, {}
            for p in predicted["points"]:
                m = measured.get(p["point"])
                if m is None or m.get("measured_step_ms_p50") is None:
                    continue
                r50 = m["measured_step_ms_p50"] / p["projected_step_ms_p50"]
                r95 = m["measured_step_ms_p95"] / p["projected_step_ms_p95"]
                rgb = m["measured_gb_seconds_per_step"] / p["projected_gb_seconds_per_step"]
                q = "p95" if quantile >= 0.7 else "p50"
                run = p.get("projected_run")
                whole = ""
                if run:
                    gb = run["gb_seconds"] / run["steps"]
                    whole = (f" {m['measured_step_ms_p50'] / run['step_ms_p50']:.3f} |"
                             f" {m['measured_step_ms_p95'] / run['step_ms_p95']:.3f} |"
                             f" {m['measured_gb_seconds_per_step'] / gb:.3f} |")
                    key_run[p["point"]] = run[f"step_ms_{q}"] if latency else run["cost_usd"] / run["steps"]
                print(f"| {name} | {p['point']} | {r50:.3f} | {r95:.3f} | {rgb:.3f} |{whole}")
                key_pred[p["point"]] = p[f"projected_step_ms_{q}"] if latency else p["projected_cost_usd_per_step"]
                key_meas[p["point"]] = m[f"measured_step_ms_{q}"] if latency else m["measured_cost_usd_per_step"]
            if key_pred:
                pick = min(key_pred, key=key_pred.get)
                best = min(key_meas, key=key_meas.get)
                picks.append((name, pick, best, key_meas[pick] / key_meas[best]))
                if len(key_run) == len(key_pred):
                    run_pick = min(key_run, key=key_run.get)
                    run_picks.append((name, run_pick, best, key_meas[run_pick] / key_meas[best]))
    print()
    print("| part | pick (new prediction) | best measured | pick's measured ÷ best's |")
    print("|---|---|---|---|")
    for name, pick, best, ratio in picks:
        print(f"| {name} | {pick} | {best} | {ratio:.3f} |")
    if run_picks:
        print()
        print("| part | pick by the whole-run simulation | best measured | pick's measured ÷ best's |")
        print("|---|---|---|---|")
        for name, pick, best, ratio in run_picks:
            print(f"| {name} | {pick} | {best} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
