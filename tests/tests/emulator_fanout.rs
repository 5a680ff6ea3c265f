//! Wide fan-outs through Lambda's interfaces: an update that starts M next-step forwards starts them as a tree of
//! relaying invocations whose invokes are in flight together — not one invoke latency after another — and the run
//! still ends with the in-process bytes, every task fired once.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use e2e_tests::lambda_emulator::{cargo_binary, worker_binary, Emulator, FunctionSpec, Settings};
use e2e_tests::redis_server::RedisServer;
use lambda_emulator::Latency;
use slice_worker::task::TaskId;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod common;

/// Sixteen micro-batches of two examples: an update's fan-out of 16 forwards, four times the width below.
const BASE: &str = r#"
model = { kind = "mlp", widths = [784, 16, 10] }
data = { kind = "synthetic" }
train = { steps = 3, batch_size = 32, microbatches = 16, optimizer = "sgd", lr = 0.05, seed = 11 }
"#;

const WIDTH: usize = 4;
const INVOKE: Duration = Duration::from_millis(40);

fn in_process(dir: &Path) -> Vec<u8> {
    let cfg: Config = toml::from_str(BASE).expect("config");
    fit(&cfg, &RunDir::new(dir), &mut Quiet, &AtomicBool::new(false)).expect("in-process run");
    std::fs::read(dir.join("model.safetensors")).expect("weights")
}

/// An update's fan-out of 16 forwards at width 4: 4 invocations started at once, each relaying 3. The invoke windows
/// (from the sender's stamp to the handler's start) of one step's directly started forwards overlap by more than
/// half the 40 ms invoke latency — they were in flight together — and the bytes equal the in-process run's.
#[test]
fn an_updates_fan_out_starts_as_a_tree_of_overlapping_invokes_and_keeps_the_bytes() {
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
            concurrency: 32,
            async_retries: 2,
        }],
        Settings {
            latency: Latency {
                invoke: INVOKE,
                cold_start: Duration::ZERO,
            },
            ..Settings::default()
        },
    )
    .expect("emulator starts");
    let cfg = format!(
        "{BASE}\n[plan]\nslices = 2\n[runtime]\ninvoker = \"lambda\"\nstore = {:?}\nconcurrency = 32\n\
         fanout_width = {WIDTH}\ntask_timeout_s = 60\n[lambda]\nmemory_mb = 1024\nendpoint_url = {:?}\n\
         region = \"us-east-1\"\n",
        redis.url(),
        emulator.url()
    );
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).expect("run parent");
    let cfg_path = run.with_extension("toml");
    std::fs::write(&cfg_path, &cfg).expect("config written");
    let trainer = cargo_binary("trainer").expect("the trainer binary beside this test");
    let out = std::process::Command::new(trainer)
        .arg("fit")
        .arg(&cfg_path)
        .arg("--out")
        .arg(&run)
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
        "the tree's run differs from the in-process bytes"
    );

    let checked = common::check_events(&run);
    assert_eq!(checked.plan.fanout_width, WIDTH);
    // Steps 2 and 3: slice 0's update fired the step's 16 forwards (the driver fed the data two steps ahead).
    for step in 2..=3u64 {
        let forwards: Vec<_> = checked
            .events
            .iter()
            .filter(|e| matches!(e.task, TaskId::F { step: s, slice: 0, .. } if s == step))
            .filter(|e| e.attempt == 1 && !e.became)
            .collect();
        let relayed: u32 = forwards.iter().map(|e| e.relayed).sum();
        let heads = forwards.iter().filter(|e| e.relayed > 0).count();
        assert!(
            heads >= 2 && relayed as usize + heads >= 12,
            "step {step}: {heads} relaying invocations started {relayed} forwards: {:?}",
            forwards
                .iter()
                .map(|e| (e.task.to_string(), e.relayed))
                .collect::<Vec<_>>()
        );
        // The heads' invokes were in flight together: their windows share more than half an invoke latency.
        let windows: Vec<(f64, f64)> = forwards
            .iter()
            .filter(|e| e.relayed > 0)
            .map(|e| (e.start_unix_ms - e.invoke_ms, e.start_unix_ms))
            .collect();
        let shared = windows.iter().map(|w| w.1).fold(f64::INFINITY, f64::min)
            - windows
                .iter()
                .map(|w| w.0)
                .fold(f64::NEG_INFINITY, f64::max);
        eprintln!(
            "step {step}: {heads} relaying invocations started {relayed} more forwards; their invoke windows \
             share {shared:.1} ms"
        );
        assert!(
            shared > INVOKE.as_secs_f64() * 1e3 / 2.0,
            "step {step}: the relaying invocations' invoke windows share {shared:.1} ms: {windows:?}"
        );
    }
}
