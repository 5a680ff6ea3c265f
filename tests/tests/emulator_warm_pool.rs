//! The warm pool through Lambda's interfaces: after a run's instances were reaped idle, the next run's pool brings
//! its function back to the instances the plan runs at once (starting them all), and its first step starts no
//! instance cold; with the pool off the first step pays the cold starts. Bytes equal to the in-process run either
//! way.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use e2e_tests::lambda_emulator::{cargo_binary, worker_binary, Emulator, FunctionSpec, Settings};
use e2e_tests::redis_server::RedisServer;
use lambda_emulator::Latency;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const BASE: &str = r#"
model = { kind = "mlp", widths = [784, 16, 16, 10] }
data = { kind = "synthetic" }
train = { steps = 3, batch_size = 16, microbatches = 4, optimizer = "sgd", lr = 0.05, seed = 4 }
"#;

/// An idle instance lives this long.
const REAP: Duration = Duration::from_secs(2);

fn in_process(dir: &Path) -> Vec<u8> {
    let cfg: Config = toml::from_str(BASE).expect("config");
    fit(&cfg, &RunDir::new(dir), &mut Quiet, &AtomicBool::new(false)).expect("in-process run");
    std::fs::read(dir.join("model.safetensors")).expect("weights")
}

/// `trainer fit` on the emulator (two slices on one 1,024 MB function, M = 4, 8 at once); the run's summary and
/// whether its weights equal `reference`.
fn fit_on(
    emulator: &Emulator,
    redis: &str,
    run: &Path,
    warm_pool: bool,
    reference: &[u8],
) -> Value {
    let cfg = format!(
        "{BASE}\n[plan]\nslices = 2\n[runtime]\ninvoker = \"lambda\"\nstore = {redis:?}\nconcurrency = 8\n\
         warm_pool = {warm_pool}\ntask_timeout_s = 60\n[lambda]\nmemory_mb = 1024\nendpoint_url = {:?}\n\
         region = \"us-east-1\"\n",
        emulator.url()
    );
    let cfg_path = run.with_extension("toml");
    std::fs::write(&cfg_path, &cfg).expect("config written");
    let trainer = cargo_binary("trainer").expect("the trainer binary beside this test");
    let out = std::process::Command::new(trainer)
        .arg("fit")
        .arg(&cfg_path)
        .arg("--out")
        .arg(run)
        .arg("--quiet")
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("trainer runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weights = std::fs::read(run.join("model.safetensors")).expect("weights");
    assert!(
        weights == reference,
        "{}: the bytes differ from the in-process run",
        run.display()
    );
    serde_json::from_slice(&std::fs::read(run.join("summary.json")).expect("summary.json"))
        .expect("summary parses")
}

#[test]
fn a_warm_pool_after_the_instances_were_reaped_leaves_the_first_step_no_cold_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = in_process(&dir.path().join("in-process"));
    let redis = RedisServer::start(&[]);
    let worker = worker_binary().expect("the slice-worker binary beside this test");
    let emulator = Emulator::start_with(
        vec![FunctionSpec {
            name: "trainer-1024mb".into(),
            binary: worker,
            env: vec![
                ("TRAINER_STORE".into(), redis.url()),
                ("TRAINER_THREADS".into(), "1".into()),
            ],
            memory_mb: 1024,
            timeout: Duration::from_secs(60),
            concurrency: 8,
            async_retries: 2,
        }],
        Settings {
            idle_reap: REAP,
            latency: Latency {
                invoke: Duration::from_millis(5),
                cold_start: Duration::from_millis(100),
            },
            ..Settings::default()
        },
    )
    .expect("emulator starts");

    let cold = fit_on(
        &emulator,
        &redis.url(),
        &dir.path().join("no-pool"),
        false,
        &reference,
    );
    let runtime = &cold["runtime"];
    assert!(runtime["warm_pool"].is_null(), "{runtime}");
    assert!(
        runtime["first_step_cold_starts"].as_u64().unwrap_or(0) > 0,
        "without a pool the first step starts instances: {runtime}"
    );

    // Past the reap time every instance of the first run is gone: the pool must start them all again.
    std::thread::sleep(REAP * 3);
    let warm = fit_on(
        &emulator,
        &redis.url(),
        &dir.path().join("pool"),
        true,
        &reference,
    );
    let runtime = &warm["runtime"];
    let pool = &runtime["warm_pool"];
    let f = &pool["functions"][0];
    assert_eq!(f["function"], "trainer-1024mb", "{pool}");
    // Two slices of four micro-batches on one function, eight at once.
    assert_eq!(f["wanted"], 8, "{pool}");
    assert_eq!(f["instances"], 8, "{pool}");
    assert_eq!(
        f["started"], 8,
        "the reaped instances were started again: {pool}"
    );
    assert!(
        pool["gb_seconds"].as_f64().unwrap_or(0.0) > 0.0
            && pool["cost_usd"].as_f64().unwrap_or(0.0) > 0.0,
        "{pool}"
    );
    eprintln!(
        "no pool: {} cold starts in the first step; pool: {pool}, then {} in the first step",
        cold["runtime"]["first_step_cold_starts"], runtime["first_step_cold_starts"]
    );
    assert_eq!(
        runtime["first_step_cold_starts"], 0,
        "the pool's instances ran the first step: {runtime}"
    );
}
