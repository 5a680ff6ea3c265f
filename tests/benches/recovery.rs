//! Recovery from lost tasks through Lambda's interfaces (issue 22): the config of `experiments/recovery/why.toml`
//! (MLP 784-256-128-64-10 on MNIST, AdamW, batch 64, 25 steps, M = 4, three slices) run by `trainer fit` with the
//! Lambda invoker → the Lambda emulator → `slice-worker` processes → a real Redis, every runtime setting at its
//! default. Faults are the platform's own, injected by the emulator: an instance killed within 20 ms of receiving an
//! invocation (`crash_rate`), an event delivered twice (`duplicate_rate`), an instance frozen until its function's
//! timeout (`timeout_rate`, the stall). The platform's asynchronous retries are off (`async_retries = 0`): every
//! crash is a lost invocation — a container that died, an event that expired — that only the driver's deadline
//! logic can recover, the case the issue describes.
//!
//! Per mix and seed: steady-state step p50 (steps 6–25) against the fault-free run's, the runtime's counters, and
//! whether the weights equal the in-process run's bytes.
//! Usage: experiments/recovery/run.sh (builds the release binaries this needs, then runs this bench).

use e2e_tests::lambda_emulator::{cargo_binary, worker_binary, Emulator, Faults, FunctionSpec};
use e2e_tests::redis_server::RedisServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The emulator's one function: every slice's (`lambda.memory_mb` at its default names it).
const FUNCTION: &str = "trainer-2048mb";

/// A fault mix: name, crash rate, duplicate rate, stall (freeze until the function's timeout) rate.
struct Mix {
    name: &'static str,
    crash: f64,
    duplicate: f64,
    stall: f64,
}

const MIXES: [Mix; 3] = [
    Mix {
        name: "fault-free",
        crash: 0.0,
        duplicate: 0.0,
        stall: 0.0,
    },
    Mix {
        name: "heavy",
        crash: 0.2,
        duplicate: 0.2,
        stall: 0.0,
    },
    Mix {
        name: "light",
        crash: 0.02,
        duplicate: 0.05,
        stall: 0.01,
    },
];

struct Measured {
    steady_p50_ms: f64,
    /// The p50 of the steady steps no fault touched (no second attempt, duplicate or cold start among their tasks):
    /// what the faults cost the machine beside the recovery itself (replacement instances, duplicates' work).
    clean_p50_ms: f64,
    clean_steps: usize,
    train_s: f64,
    runtime: serde_json::Value,
    bytes_equal: bool,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let out_dir = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "experiments/recovery".into()),
    );
    let trainer =
        cargo_binary("trainer").expect("target/release/trainer: cargo build --release -p trainer");
    let worker = worker_binary()
        .expect("target/release/slice-worker: cargo build --release -p slice-worker");
    let config = out_dir.join("why.toml");
    // RECOVERY_KEEP=1 keeps the run folders (events, metrics) for a closer look; their path is printed.
    let tmp = tempfile::tempdir().expect("temp dir");
    let (root, _removed_at_exit) = if std::env::var_os("RECOVERY_KEEP").is_some() {
        let kept = tmp.keep();
        println!("run folders kept in {}", kept.display());
        (kept, None)
    } else {
        (tmp.path().to_path_buf(), Some(tmp))
    };
    let mono = root.join("in-process");
    let status = Command::new(&trainer)
        .arg("fit")
        .arg(&config)
        .arg("--out")
        .arg(&mono)
        .args(["--quiet", "--set", "plan.slices=1"])
        .stdout(Stdio::null())
        .status()
        .expect("trainer runs");
    assert!(status.success(), "the in-process reference run failed");
    let reference = std::fs::read(mono.join("model.safetensors")).expect("reference weights");
    let redis = RedisServer::start(&[]);
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    // RECOVERY_SEEDS=4,5,6 runs other seeds; RECOVERY_MIXES=light runs some mixes only (the ratio then reads NaN
    // without the fault-free run).
    let seeds = list_from_env("RECOVERY_SEEDS", "1,2,3");
    let mixes = list_from_env("RECOVERY_MIXES", "fault-free,heavy,light");
    for seed in seeds.iter().map(|s| {
        s.parse::<u64>()
            .expect("RECOVERY_SEEDS: comma-separated integers")
    }) {
        let mut fault_free_p50 = f64::NAN;
        for mix in MIXES
            .iter()
            .filter(|m| mixes.iter().any(|name| name == m.name))
        {
            let run = root.join(format!("{}-{seed}", mix.name));
            let (m, stats) = run_on_emulator(
                &trainer, &worker, &config, &redis, mix, seed, &run, &reference,
            );
            if mix.crash == 0.0 && mix.duplicate == 0.0 && mix.stall == 0.0 {
                fault_free_p50 = m.steady_p50_ms;
            }
            let r = &m.runtime;
            let count = |k: &str| r[k].as_u64().unwrap_or(0);
            let tasks = count("tasks_ran") + count("tasks_skipped");
            // Each figure once; the console line and the markdown row both print these.
            let ratio = m.steady_p50_ms / fault_free_p50;
            let counts = [
                stats.crashes,
                stats.frozen,
                stats.duplicated,
                count("late_retries"),
                count("speculative_copies"),
                count("orphans_started"),
                count("false_alarms"),
                tasks,
                count("fired_twice"),
            ];
            let [crashes, frozen, duplicated, late, copies, orphans, false_alarms, tasks, fired_twice] =
                counts;
            let line = format!(
                "{:10} seed {seed}: steady p50 {:6.1} ms ({ratio:.2} x fault-free), clean steps {} p50 {:5.1} ms, train {:5.2} s, \
                 emulator: crashes {crashes}, frozen {frozen}, duplicated {duplicated}; driver: late {late}, copies {copies}, \
                 orphans {orphans}, false alarms {false_alarms}, tasks {tasks}, fired twice {fired_twice}, bytes equal {}",
                mix.name, m.steady_p50_ms, m.clean_steps, m.clean_p50_ms, m.train_s, m.bytes_equal
            );
            println!("{line}");
            lines.push(line);
            let count_cells: Vec<String> = counts.iter().map(u64::to_string).collect();
            rows.push(format!(
                "| {} | {seed} | {:.1} ms | {ratio:.2} × | {} | {:.1} ms | {:.2} s | {} | {} |",
                mix.name,
                m.steady_p50_ms,
                m.clean_steps,
                m.clean_p50_ms,
                m.train_s,
                count_cells.join(" | "),
                if m.bytes_equal { "yes" } else { "NO" }
            ));
        }
    }
    let mut md = vec![
        "| mix | seed | steady p50 | / fault-free | clean steps | their p50 | train | crashes | frozen | duplicated | late retries | copies | orphans | false alarms | tasks reported | fired twice | bytes equal in-process |".to_string(),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    md.extend(rows);
    let path = out_dir.join("emulator.md");
    std::fs::write(&path, md.join("\n") + "\n").expect("emulator.md");
    println!("wrote {}", path.display());
}

/// A comma-separated list from the environment variable `name`, or `default`.
fn list_from_env(name: &str, default: &str) -> Vec<String> {
    let raw = std::env::var(name).unwrap_or_else(|_| default.to_string());
    raw.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What the emulator injected in one run.
struct Injected {
    crashes: u64,
    frozen: u64,
    duplicated: u64,
}

/// One run of `config` through a fresh emulator with `mix`'s faults (seeded by `seed`), into `run`.
#[allow(clippy::too_many_arguments)]
fn run_on_emulator(
    trainer: &Path,
    worker: &Path,
    config: &Path,
    redis: &RedisServer,
    mix: &Mix,
    seed: u64,
    run: &Path,
    reference: &[u8],
) -> (Measured, Injected) {
    // The function's timeout: what a frozen instance holds its slot for (Lambda's default is 3 s; `trainer deploy`
    // sets `lambda.timeout_s`, 300 s by default — far beyond a run this short, so a stall is never recovered by it).
    let timeout = Duration::from_secs(300);
    let lambda = Emulator::start(
        vec![FunctionSpec {
            name: FUNCTION.into(),
            binary: worker.to_path_buf(),
            env: vec![
                ("TRAINER_STORE".into(), redis.url()),
                ("TRAINER_THREADS".into(), "1".into()),
            ],
            memory_mb: 2048,
            timeout,
            // Room beside frozen instances (each holds its slot until the timeout), as an account's pool has.
            concurrency: 16,
            async_retries: 0,
        }],
        Faults {
            seed,
            crash_rate: mix.crash,
            duplicate_rate: mix.duplicate,
            timeout_rate: mix.stall,
            ..Faults::default()
        },
    )
    .expect("emulator starts");
    let out = Command::new(trainer)
        .arg("fit")
        .arg(config)
        .arg("--out")
        .arg(run)
        .arg("--quiet")
        .args(["--set", "runtime.invoker=\"lambda\""])
        .arg("--set")
        .arg(format!("runtime.store={:?}", redis.url()))
        .arg("--set")
        .arg(format!("lambda.endpoint_url={:?}", lambda.url()))
        .args(["--set", "lambda.region=\"us-east-1\""])
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("trainer runs");
    assert!(
        out.status.success(),
        "{} seed {seed}: the run failed: {}",
        mix.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the run's summary (JSON on stdout)");
    let walls: Vec<(u64, f64)> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["step"].as_u64()?, v["wall_ms"].as_f64()?)))
        .skip(5)
        .collect();
    let touched = touched_steps(run);
    let mut steps: Vec<f64> = walls.iter().map(|&(_, ms)| ms).collect();
    steps.sort_by(f64::total_cmp);
    let mut clean: Vec<f64> = walls
        .iter()
        .filter(|(s, _)| !touched.contains(s))
        .map(|&(_, ms)| ms)
        .collect();
    clean.sort_by(f64::total_cmp);
    let weights = std::fs::read(run.join("model.safetensors")).expect("weights");
    let stats = lambda.stats();
    (
        Measured {
            steady_p50_ms: median(&steps),
            clean_p50_ms: median(&clean),
            clean_steps: clean.len(),
            train_s: summary["train_s"].as_f64().unwrap_or(f64::NAN),
            runtime: summary["runtime"].clone(),
            bytes_equal: weights == reference,
        },
        Injected {
            crashes: stats.crashes,
            frozen: stats.frozen,
            duplicated: stats.duplicated,
        },
    )
}

/// The steps any fault touched, from the run's events: a task reported twice (a duplicate or a copy), an attempt
/// after the first (a retry or a copy), a skipped report, or a cold start (a replacement for a killed instance).
fn touched_steps(run: &Path) -> std::collections::HashSet<u64> {
    let events = std::fs::read_to_string(run.join("events.jsonl")).expect("events.jsonl");
    let mut seen = std::collections::HashSet::new();
    let mut touched = std::collections::HashSet::new();
    for event in events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        let task = event["task"].as_str().unwrap_or_default().to_string();
        // Task ids read `F(step,slice,microbatch)`.
        let Some(step) = task
            .split(['(', ','])
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let faulted = event["attempt"].as_u64() != Some(1)
            || event["status"].as_str() != Some("ran")
            || event["cold"].as_bool() == Some(true)
            || !seen.insert(task);
        if faulted {
            touched.insert(step);
        }
    }
    touched
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
