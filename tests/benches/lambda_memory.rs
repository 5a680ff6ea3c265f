//! Peak resident memory of each Lambda worker process against the planner's predicted peak memory of its slice,
//! for S ∈ {1, 2, 4} on the MNIST MLP 784-[512]×7-10 (batch 128, M = 8), trained for a few steps through the real SDK
//! → the Lambda emulator → `slice-worker` processes (one function per slice) → Redis. Each worker's `VmHWM` is its
//! peak RSS; the prediction is the planner's `predicted_peak_mb` for the same cuts.
//! Usage: experiments/lambda_memory/run.sh (builds the release binaries this needs, then runs this bench).

use coordinator::config::Config;
use e2e_tests::lambda_emulator::{cargo_binary, worker_binary, Emulator, Faults, FunctionSpec};
use e2e_tests::redis_server::RedisServer;
use std::io::Write;
use std::time::Duration;

const BASE: &str = r#"
model = { kind = "mlp", widths = [784, 512, 512, 512, 512, 512, 512, 512, 10] }
data = { kind = "mnist" }
train = { steps = 6, batch_size = 128, microbatches = 8, optimizer = "sgd", lr = 0.01, momentum = 0.9, seed = 1 }
"#;

const MEMORY_MB: u32 = 1024;

fn main() {
    let out_dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "experiments/lambda_memory".into());
    let trainer =
        cargo_binary("trainer").expect("target/release/trainer: cargo build --release -p trainer");
    let worker = worker_binary()
        .expect("target/release/slice-worker: cargo build --release -p slice-worker");
    let redis = RedisServer::start(&[]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    for cuts in [vec![], vec![4], vec![2, 4, 6]] {
        let s = cuts.len() + 1;
        let names: Vec<String> = (0..s)
            .map(|i| format!("trainer-s{i}-{MEMORY_MB}mb"))
            .collect();
        let lambda = Emulator::start(
            names
                .iter()
                .map(|n| FunctionSpec {
                    name: n.clone(),
                    binary: worker.clone(),
                    env: vec![
                        ("TRAINER_STORE".into(), redis.url()),
                        ("TRAINER_THREADS".into(), "1".into()),
                    ],
                    memory_mb: MEMORY_MB,
                    timeout: Duration::from_secs(60),
                    concurrency: 4,
                    async_retries: 2,
                })
                .collect(),
            Faults::default(),
        )
        .expect("emulator");
        let cuts_text = format!("{cuts:?}");
        let text = format!(
            "{BASE}\n[plan]\ncuts = {cuts_text}\n[runtime]\ninvoker = \"lambda\"\nstore = {:?}\nconcurrency = 8\n\
             [lambda]\nmemory_mb = {MEMORY_MB}\nfunction_per_slice = true\nendpoint_url = {:?}\nregion = \"us-east-1\"\n",
            redis.url(),
            lambda.url()
        );
        let cfg_path = tmp.path().join(format!("s{s}.toml"));
        std::fs::write(&cfg_path, &text).expect("config");
        let status = std::process::Command::new(&trainer)
            .arg("fit")
            .arg(&cfg_path)
            .arg("--out")
            .arg(tmp.path().join(format!("run-s{s}")))
            .arg("--quiet")
            .env("AWS_ACCESS_KEY_ID", "emulator")
            .env("AWS_SECRET_ACCESS_KEY", "emulator")
            .stdout(std::process::Stdio::null())
            .status()
            .expect("trainer runs");
        assert!(status.success(), "S = {s}: the run failed");
        let stats = lambda.stats();
        // The planner's prediction for these cuts (the local platform's profile is enough: the memory a slice needs
        // does not depend on where it runs).
        let mut cfg: Config = toml::from_str(&text).expect("config parses");
        cfg.runtime.invoker = coordinator::config::InvokerKind::Local;
        cfg.runtime.store = slice_worker::store::StoreUrl::Memory;
        let (_, outcome) = coordinator::profiling::plan_config(&cfg, None).expect("plan");
        for (i, (name, planned)) in names.iter().zip(&outcome.chosen.slices).enumerate() {
            let rss_mb = stats.peak_rss_kib.get(name).copied().unwrap_or(0) as f64 / 1024.0;
            rows.push(serde_json::json!({
                "slices": s,
                "slice": i,
                "units": planned.units,
                "predicted_peak_mb": planned.predicted_peak_mb,
                "measured_peak_rss_mb": rss_mb,
                "ratio": rss_mb / planned.predicted_peak_mb,
            }));
        }
    }
    std::fs::create_dir_all(&out_dir).expect("output folder");
    let mut jsonl =
        std::fs::File::create(format!("{out_dir}/results.jsonl")).expect("results.jsonl");
    let mut md = vec![
        "| slices | slice | units | predicted peak | measured peak RSS | measured / predicted |"
            .to_string(),
        "| --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for r in &rows {
        writeln!(jsonl, "{r}").expect("write");
        md.push(format!(
            "| {} | {} | [{}, {}) | {:.0} MB | {:.0} MB | {:.2} |",
            r["slices"],
            r["slice"],
            r["units"][0],
            r["units"][1],
            r["predicted_peak_mb"].as_f64().unwrap_or(0.0),
            r["measured_peak_rss_mb"].as_f64().unwrap_or(0.0),
            r["ratio"].as_f64().unwrap_or(0.0)
        ));
    }
    std::fs::write(format!("{out_dir}/results.md"), md.join("\n") + "\n").expect("results.md");
    println!("{}", md.join("\n"));
}
