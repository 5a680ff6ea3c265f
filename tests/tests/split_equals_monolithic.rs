//! The central invariant, end to end: for a fixed seed, data order and micro-batch count, the final
//! `model.safetensors` (and `optimizer.safetensors`) have the same bytes for every split — 1 slice in process, 2, 3,
//! one slice per unit through tasks — on both stores; and a run leaves no keys behind.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::{Quiet, Summary};
use e2e_tests::redis_server::RedisServer;
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn run(base: &str, extra: &str, dir: &Path, name: &str) -> (Vec<u8>, Vec<u8>, Summary) {
    let cfg: Config = toml::from_str(&format!("{base}\n{extra}")).expect("valid config");
    let out = RunDir::new(dir.join(name));
    let summary = fit(&cfg, &out, &mut Quiet, &AtomicBool::new(false))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let read = |f: &str| std::fs::read(out.path().join(f)).expect("checkpoint written");
    (
        read("model.safetensors"),
        read("optimizer.safetensors"),
        summary,
    )
}

fn check_all_splits(base: &str, units: usize, store: &str) {
    let dir = tempfile::tempdir().unwrap();
    for m in [1, 4] {
        let mb = format!("[runtime]\nstore = {store:?}\n");
        let (w1, o1, s1) = run(
            &base.replace("MB", &m.to_string()),
            "",
            dir.path(),
            &format!("mono-{m}"),
        );
        let per_unit: Vec<String> = (1..units).map(|u| u.to_string()).collect();
        for (label, plan) in [
            ("2", "slices = 2".to_string()),
            ("3", "slices = 3".to_string()),
            ("per-unit", format!("cuts = [{}]", per_unit.join(", "))),
            (
                "per-unit, stored caches",
                format!("cuts = [{}]\nrecompute = false", per_unit.join(", ")),
            ),
        ] {
            let extra = format!("{mb}[plan]\n{plan}\n");
            let (w, o, s) = run(
                &base.replace("MB", &m.to_string()),
                &extra,
                dir.path(),
                &format!("split-{}-{m}", label.replace([' ', ','], "_")),
            );
            assert!(
                w == w1,
                "M = {m}, split {label} on {store}: weights differ from the monolithic run"
            );
            assert!(
                o == o1,
                "M = {m}, split {label} on {store}: optimizer state differs"
            );
            assert_eq!(
                s.final_train_loss.to_bits(),
                s1.final_train_loss.to_bits(),
                "loss differs"
            );
        }
    }
}

const MLP: &str = r#"
model = { kind = "mlp", widths = [784, 48, 32, 10] }
data = { kind = "synthetic" }
train = { steps = 5, batch_size = 16, microbatches = MB, optimizer = "sgd", lr = 0.05, momentum = 0.9, seed = 7 }
"#;

const LENET: &str = r#"
model = { kind = "lenet5" }
data = { kind = "mnist" }
train = { steps = 3, batch_size = 8, microbatches = MB, optimizer = "adamw", lr = 0.003, seed = 1, eval_samples = 64 }
"#;

const GPT: &str = r#"
model = { kind = "gpt", vocab = 16, context = 8, d_model = 16, n_layers = 2, n_heads = 2 }
data = { kind = "synthetic", context = 8, synthetic = { task = "tokens" } }
train = { steps = 4, batch_size = 8, microbatches = MB, optimizer = "adamw", lr = 0.003, seed = 2 }
"#;

#[test]
fn mlp_split_equals_monolithic_in_memory() {
    check_all_splits(MLP, 3, "memory");
}

#[test]
fn lenet5_split_equals_monolithic_in_memory() {
    check_all_splits(LENET, 5, "memory");
}

#[test]
fn gpt_split_equals_monolithic_in_memory() {
    check_all_splits(GPT, 4, "memory");
}

#[test]
fn split_runs_through_a_real_redis_match_and_leave_no_keys() {
    let server = RedisServer::start(&[]);
    check_all_splits(GPT, 4, &server.url());
    check_all_splits(MLP, 3, &server.url());
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port.to_string(),
            "--scan",
            "--pattern",
            "run:*",
        ])
        .output()
        .expect("redis-cli runs");
    assert!(
        keys.stdout.is_empty(),
        "keys left behind: {}",
        String::from_utf8_lossy(&keys.stdout)
    );
}

#[test]
fn two_runs_at_once_on_one_redis_do_not_disturb_each_other() {
    let server = RedisServer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let base = MLP.replace("MB", "2");
    let (alone, _, _) = run(&base, "[plan]\nslices = 1\n", dir.path(), "alone");
    let other = MLP.replace("MB", "2").replace("seed = 7", "seed = 8");
    let d = dir.path();
    let ea = format!("[plan]\nslices = 3\n[runtime]\nstore = {url:?}\n");
    let eb = ea.clone();
    let (a, b) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(&base, &ea, d, "together-a"));
        let hb = s.spawn(|| run(&other, &eb, d, "together-b"));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert!(a.0 == alone, "a run beside another gave different weights");
    assert!(a.0 != b.0, "different seeds should give different weights");
}

#[test]
fn a_stopped_split_run_checkpoints_the_steps_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let base = MLP.replace("MB", "2");
    // Stop requested before the first step: the two steps already fed finish, then their weights are written.
    let cfg: Config = toml::from_str(&format!("{base}\n[plan]\nslices = 3\n")).unwrap();
    let out = RunDir::new(dir.path().join("stopped"));
    let err = fit(&cfg, &out, &mut Quiet, &AtomicBool::new(true)).unwrap_err();
    assert!(
        matches!(err, coordinator::RunError::Interrupted { step: 2 }),
        "{err}"
    );
    let two: Config = toml::from_str(&base.replace("steps = 5", "steps = 2")).unwrap();
    let mono = RunDir::new(dir.path().join("two-steps"));
    fit(&two, &mono, &mut Quiet, &AtomicBool::new(false)).unwrap();
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            std::fs::read(out.path().join(f)).unwrap()
                == std::fs::read(mono.path().join(f)).unwrap(),
            "{f}: a stopped run's checkpoint differs from a 2-step run's"
        );
    }
}
