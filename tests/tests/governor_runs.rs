//! Runs sharing an account through the governor (`[qos]`): three split runs at once on one Redis with an account
//! limit below their demand — one of high priority — each end with their in-process bytes, their queueing counted,
//! and every slot given back; a run killed mid-way gives its slots and its registration back within the lease.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::{Quiet, Summary};
use e2e_tests::lambda_emulator::cargo_binary;
use e2e_tests::redis_server::RedisServer;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const MLP: &str = r#"
model = { kind = "mlp", widths = [784, 48, 32, 10] }
data = { kind = "synthetic" }
train = { steps = 6, batch_size = 16, microbatches = MB, optimizer = "sgd", lr = 0.05, momentum = 0.9, seed = SEED }
"#;

fn base(microbatches: usize, seed: u64) -> String {
    MLP.replace("MB", &microbatches.to_string())
        .replace("SEED", &seed.to_string())
}

fn run(text: &str, dir: &Path) -> (Vec<u8>, Summary) {
    let cfg: Config = toml::from_str(text).unwrap_or_else(|e| panic!("{text}\n{e}"));
    let summary = fit(&cfg, &RunDir::new(dir), &mut Quiet, &AtomicBool::new(false))
        .unwrap_or_else(|e| panic!("{text}\n{e}"));
    let weights = std::fs::read(dir.join("model.safetensors")).expect("weights");
    (weights, summary)
}

fn governed(base: &str, store: &str, priority: &str, limit: usize) -> String {
    format!(
        "{base}[plan]\nslices = 3\n[runtime]\nstore = {store:?}\nconcurrency = 4\n[qos]\ngovernor = \"on\"\n\
         priority = \"{priority}\"\naccount_limit = {limit}\n"
    )
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn three_runs_over_one_account_queue_for_slots_and_keep_their_bytes() {
    let server = RedisServer::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    // A: high priority, two at once; B and C: normal, four at once each; the account holds four.
    let runs = [
        ("a", 2usize, 1u64, "high"),
        ("b", 4, 2, "normal"),
        ("c", 4, 3, "normal"),
    ];
    let alone: Vec<Vec<u8>> = runs
        .iter()
        .map(|(name, m, seed, _)| run(&base(*m, *seed), &d.join(format!("{name}-alone"))).0)
        .collect();
    let url = server.url();
    let together: Vec<(Vec<u8>, Summary)> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|(name, m, seed, priority)| {
                let text = governed(&base(*m, *seed), &url, priority, 4);
                let out = d.join(format!("{name}-governed"));
                s.spawn(move || run(&text, &out))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("run thread"))
            .collect()
    });
    let mut queued = 0;
    for ((name, ..), ((weights, summary), reference)) in
        runs.iter().zip(together.iter().zip(&alone))
    {
        assert!(
            weights == reference,
            "run {name} under the governor differs from its in-process bytes"
        );
        let qos = summary
            .runtime
            .as_ref()
            .and_then(|r| r.qos.clone())
            .unwrap_or_else(|| panic!("run {name}: no qos counts"));
        eprintln!("run {name}: {qos:?}");
        // Every invocation went through the governor: started at once with a slot, or queued and granted one.
        let invocations = summary
            .runtime
            .as_ref()
            .map_or(0, |r| r.tasks_ran + r.tasks_skipped - r.became);
        assert!(
            qos.admitted + qos.granted >= invocations,
            "run {name}: {qos:?}"
        );
        assert_eq!(
            qos.granted, qos.queued,
            "run {name}: every queued task started: {qos:?}"
        );
        queued += qos.queued;
    }
    assert!(
        queued > 0,
        "ten tasks wanted at once on four slots: some must have waited"
    );
    // Every slot came back and every run left.
    assert_eq!(
        redis_cli(server.port, &["ZCARD", "{trainer-qos}:slots"]),
        "0"
    );
    assert_eq!(redis_cli(server.port, &["HLEN", "{trainer-qos}:runs"]), "0");
}

#[test]
fn a_killed_run_gives_its_slots_and_registration_back_within_its_lease() {
    let server = RedisServer::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let text = governed(
        &base(4, 5).replace("steps = 6", "steps = 400"),
        &server.url(),
        "normal",
        4,
    ) + "lease_s = 1\n";
    let cfg = dir.path().join("long.toml");
    std::fs::write(&cfg, &text).expect("config");
    let trainer = cargo_binary("trainer").expect("the trainer binary beside this test");
    let mut child = std::process::Command::new(trainer)
        .arg("fit")
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("long"))
        .arg("--quiet")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("trainer starts");
    // Until it is registered and has tasks out.
    let registered = std::time::Instant::now();
    while redis_cli(server.port, &["HLEN", "{trainer-qos}:runs"]) != "1" {
        assert!(
            registered.elapsed() < Duration::from_secs(60),
            "the run never registered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().expect("killed");
    child.wait().expect("reaped");
    // Its in-process tasks died with it; nothing renews its slots or its registration. A lease later (1 s), the
    // next call of the governor — here a run registering — lets them go.
    std::thread::sleep(Duration::from_millis(1500));
    let next = governed(&base(2, 6), &server.url(), "normal", 4);
    let (_, summary) = run(&next, &dir.path().join("next"));
    assert!(summary.runtime.and_then(|r| r.qos).is_some());
    assert_eq!(redis_cli(server.port, &["HLEN", "{trainer-qos}:runs"]), "0");
    assert_eq!(
        redis_cli(server.port, &["ZCARD", "{trainer-qos}:slots"]),
        "0"
    );
}
