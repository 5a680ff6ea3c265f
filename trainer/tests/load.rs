//! Load: a step of more than a thousand tasks (8 slices × 72 micro-batches) through the local invoker under a
//! concurrency limit, on a real Redis — no task lost or run twice, the reference bytes, and Redis's memory at its
//! peak within what the plan predicted.

mod common;
use common::*;
use e2e_tests::redis_server::RedisServer;
use std::process::Command;

const LOAD: &str = r#"
[model]
kind = "mlp"
widths = [64, 64, 64, 64, 64, 64, 64, 64, 10]

[data]
kind = "synthetic"

[data.synthetic]
features = 64
classes = 10

[train]
steps = 4
batch_size = 72
microbatches = 72
optimizer = "adamw"
lr = 0.001
seed = 5

[plan]
slices = 8

[runtime]
concurrency = 8
"#;

/// F: 8 × 72, B: 7 × 72, U: 8.
const TASKS_PER_STEP: u64 = 8 * 72 + 7 * 72 + 8;

fn used_memory(port: u16, field: &str) -> f64 {
    let o = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "memory"])
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO memory has no {field}"))
}

#[test]
fn a_thousand_task_step_loses_nothing_and_stays_within_the_predicted_store_memory() {
    const { assert!(TASKS_PER_STEP >= 1000) };
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "load.toml", LOAD);
    // The profile is measured beforehand (on the in-memory store), so that the run itself writes nothing to Redis
    // but its own keys and the peak is the run's.
    let (prof, plan) = profile_and_plan(dir.path(), &cfg);
    let predicted = plan["store_peak_bytes"].as_f64().unwrap();

    let (o, reference) = fit(dir.path(), &cfg, "reference", &["--set", "plan.slices=1"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let redis = RedisServer::start(&[]);
    let before = used_memory(redis.port, "used_memory");
    let store = format!("runtime.store={}", redis.url());
    let profile = format!("plan.profile={}", prof.display());
    let (o, run) = fit(
        dir.path(),
        &cfg,
        "load",
        &["--set", &store, "--set", &profile],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let peak = used_memory(redis.port, "used_memory_peak") - before;
    eprintln!(
        "Redis peak {:.2} MB above its idle {:.2} MB; predicted {:.2} MB",
        peak / 1e6,
        before / 1e6,
        predicted / 1e6
    );
    assert!(
        peak <= predicted,
        "Redis grew by {peak} bytes, the plan predicted at most {predicted}"
    );

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let rt = &summary["runtime"];
    assert_eq!(rt["tasks_ran"], 4 * TASKS_PER_STEP, "{rt}");
    assert_eq!(rt["tasks_failed"], 0, "{rt}");
    assert_eq!(rt["fired_twice"], 0, "{rt}");
    let mut tasks = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(run.join("events.jsonl"))
        .unwrap()
        .lines()
    {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        // A late retry or a straggler's copy that found the work done is an execution, not a second run.
        if e["status"] != "ran" {
            continue;
        }
        assert!(
            tasks.insert(e["task"].as_str().unwrap().to_string()),
            "{} ran twice",
            e["task"]
        );
    }
    assert_eq!(tasks.len() as u64, 4 * TASKS_PER_STEP);
    assert!(
        std::fs::read(run.join("model.safetensors")).unwrap()
            == std::fs::read(reference.join("model.safetensors")).unwrap(),
        "the 1,088-task steps changed the weights"
    );
    let keys = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "DBSIZE"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&keys.stdout).trim(), "0");
}
