//! What every `trainer` test does: run the real binary, write a config, read what it printed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("the trainer binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `trainer fit CONFIG --out DIR/OUT --quiet EXTRA…`.
pub fn fit(dir: &Path, config: &Path, out: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out = dir.join(out);
    let mut args = vec![
        "fit",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    (trainer(&args), out)
}

/// How many steps the run in `run` has written to `metrics.jsonl` so far.
pub fn steps_written(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// The `step` of every line of `metrics.jsonl`, in order.
pub fn metric_steps(run: &Path) -> Vec<u64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// `trainer profile CONFIG --out DIR/profile.json --reps 2`: the profile's path.
pub fn profile(dir: &Path, config: &Path) -> PathBuf {
    let prof = dir.join("profile.json");
    let o = trainer(&[
        "profile",
        config.to_str().unwrap(),
        "--out",
        prof.to_str().unwrap(),
        "--reps",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The runtime's cost per task, from its own short split run: one sample a step after the first.
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&prof).unwrap()).unwrap();
    let costs = p["runtime_task_ms"].as_array().unwrap();
    assert!(
        costs.len() == 15
            && costs
                .iter()
                .all(|c| c.as_f64().is_some_and(|ms| ms > 0.0 && ms < 100.0)),
        "{costs:?}"
    );
    prof
}

/// [`profile`], then `trainer plan CONFIG --profile … --json`: the profile's path and the plan.
pub fn profile_and_plan(dir: &Path, config: &Path) -> (PathBuf, serde_json::Value) {
    let prof = profile(dir, config);
    let o = trainer(&[
        "plan",
        config.to_str().unwrap(),
        "--profile",
        prof.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    (prof, serde_json::from_slice(&o.stdout).unwrap())
}
