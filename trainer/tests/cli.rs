//! `trainer` as a user runs it: a real process, real files, real data where the test names it.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

const SYNTHETIC_MLP: &str = r#"
[model]
kind = "mlp"
widths = [784, 32, 10]

[data]
kind = "synthetic"

[train]
steps = 12
batch_size = 16
microbatches = 4
optimizer = "sgd"
lr = 0.05
momentum = 0.9
seed = 3
eval_every = 6
eval_samples = 64

[checkpoint]
every = 5
"#;

#[test]
fn fit_writes_a_complete_run_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (o, out) = fit(dir.path(), &cfg, "run", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.resolved.toml",
        "metrics.jsonl",
        "summary.json",
        "model.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    assert_eq!(lines[0]["step"], 1);
    for key in ["loss", "lr", "wall_ms"] {
        assert!(lines[11][key].is_number(), "metrics line lacks {key}");
    }
    assert!(lines[5]["eval"]["accuracy"].is_number(), "step 6 evaluates");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for key in [
        "steps",
        "final_train_loss",
        "test_accuracy",
        "wall_s",
        "step_ms_p50",
        "step_ms_p95",
    ] {
        assert!(!summary[key].is_null(), "summary lacks {key}");
    }
    // The resolved config reproduces the run: same seed, every default written out.
    let resolved = std::fs::read_to_string(out.join("config.resolved.toml")).unwrap();
    assert!(
        resolved.contains("seed = 3") && resolved.contains("microbatches = 4"),
        "{resolved}"
    );
    // The checkpoint holds exactly the model's tensors under state_dict names.
    // `trainer eval` reproduces the final evaluation from the run folder alone.
    let o = trainer(&["eval", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(eval["accuracy"], summary["test_accuracy"]);
    assert_eq!(eval["loss"], summary["test_loss"]);
    let model = models::ModelSpec::Mlp {
        widths: vec![784, 32, 10],
        activation: models::Activation::Relu,
    }
    .build()
    .unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let params = models::checkpoint::params_from_bytes::<f32>(
        &model,
        0..2,
        &bytes,
        "model.safetensors",
        true,
    )
    .unwrap();
    assert_eq!(params[0][0].shape(), &[32, 784]);
}

#[test]
fn runs_are_bit_identical_across_repeats_and_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (a, out_a) = fit(dir.path(), &cfg, "a", &["--set", "runtime.threads=1"]);
    let (b, out_b) = fit(dir.path(), &cfg, "b", &["--set", "runtime.threads=2"]);
    let (c, out_c) = fit(dir.path(), &cfg, "c", &["--set", "runtime.threads=2"]);
    assert!(
        a.status.success() && b.status.success() && c.status.success(),
        "{}",
        stderr(&a)
    );
    let read = |p: &Path| std::fs::read(p.join("model.safetensors")).unwrap();
    assert_eq!(
        read(&out_a),
        read(&out_b),
        "1 thread and 2 threads give different weights"
    );
    assert_eq!(
        read(&out_b),
        read(&out_c),
        "two identical runs give different weights"
    );
    let opt = |p: &Path| std::fs::read(p.join("optimizer.safetensors")).unwrap();
    assert_eq!(opt(&out_a), opt(&out_b));
}

#[test]
fn gpt_trains_on_synthetic_tokens_and_lenet_on_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let gpt = write(
        dir.path(),
        "gpt.toml",
        r#"
model = { kind = "gpt", vocab = 16, context = 16, d_model = 32, n_layers = 2, n_heads = 4 }
data = { kind = "synthetic", context = 16, synthetic = { task = "tokens" } }
train = { steps = 30, batch_size = 8, microbatches = 2, optimizer = "adamw", lr = 3e-3, grad_clip = 1.0, eval_samples = 32 }
"#,
    );
    let (o, out) = fit(dir.path(), &gpt, "gpt", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        s["val_loss"].as_f64().unwrap() < first["loss"].as_f64().unwrap(),
        "GPT did not learn: {s}"
    );

    let lenet = write(
        dir.path(),
        "lenet.toml",
        r#"
model = { kind = "lenet5" }
data = { kind = "mnist" }
train = { steps = 60, batch_size = 32, lr = 0.05, momentum = 0.9 }
"#,
    );
    let (o, out) = fit(dir.path(), &lenet, "lenet", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        s["test_accuracy"].as_f64().unwrap() > 0.5,
        "LeNet-5 after 60 steps: {s}"
    );
}

#[test]
fn bad_configs_fail_with_the_key_named_and_leave_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown key", "[train]\nlrr = 1\n", &["lrr"]),
        (
            "wrong type",
            "model = { kind = \"mlp\", widths = \"big\" }\n",
            &["widths"],
        ),
        ("micro-batches", "", &["microbatches", "divisible"]),
        ("negative lr", "", &["train.lr"]),
        ("unknown model", "", &["kind"]),
        (
            "missing data dir",
            "",
            &["no-such-dir", "data download mnist"],
        ),
        ("slices", "", &["plan.slices"]),
    ];
    let base = "model = { kind = \"mlp\", widths = [784, 8, 10] }\n\
                train = { steps = 2, batch_size = 8, lr = 0.1 }\n";
    for (i, (what, text, needles)) in cases.iter().enumerate() {
        let (cfg_text, sets): (String, Vec<&str>) = match *what {
            "unknown key" => (
                format!("model = {{ kind = \"mlp\", widths = [784, 10] }}\n{text}"),
                vec![],
            ),
            "wrong type" => (
                format!("{text}train = {{ steps = 1, batch_size = 2, lr = 0.1 }}\n"),
                vec![],
            ),
            "micro-batches" => (base.into(), vec!["--set", "train.microbatches=3"]),
            "negative lr" => (base.into(), vec!["--set", "train.lr=-1"]),
            "unknown model" => (base.into(), vec!["--set", "model.kind=resnet"]),
            "missing data dir" => (
                base.into(),
                vec!["--set", "data.kind=mnist", "--set", "data.dir=no-such-dir"],
            ),
            "slices" => (base.into(), vec!["--set", "plan.slices=0"]),
            _ => unreachable!(),
        };
        let cfg = write(dir.path(), &format!("bad{i}.toml"), &cfg_text);
        let (o, out) = fit(dir.path(), &cfg, &format!("run{i}"), &sets);
        let err = stderr(&o);
        assert!(!o.status.success(), "{what}: should fail");
        for n in *needles {
            assert!(
                err.contains(n),
                "{what}: error does not mention {n:?}: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{what}: panicked: {err}");
        assert!(
            !out.join("metrics.jsonl").exists(),
            "{what}: left a half-written run"
        );
    }
}

#[test]
fn an_existing_run_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (o, out) = fit(dir.path(), &cfg, "run", &[]);
    assert!(o.status.success());
    let before = std::fs::read(out.join("model.safetensors")).unwrap();
    let (o, _) = fit(dir.path(), &cfg, "run", &["--set", "train.lr=0.5"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already holds a run"), "{}", stderr(&o));
    assert_eq!(
        before,
        std::fs::read(out.join("model.safetensors")).unwrap()
    );
}

#[test]
fn help_lists_every_subcommand() {
    let o = trainer(&["--help"]);
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "fit", "plan", "profile", "sweep", "report", "deploy", "eval", "data",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}");
    }
    // A missing sweep file, report folder: clear errors naming them.
    let o = trainer(&["sweep", "no-such-sweep.toml"]);
    assert!(
        !o.status.success() && stderr(&o).contains("no-such-sweep.toml"),
        "{}",
        stderr(&o)
    );
    let o = trainer(&["report", "no-such-folder"]);
    assert!(
        !o.status.success() && stderr(&o).contains("no-such-folder"),
        "{}",
        stderr(&o)
    );
    // A missing config is a clear error naming the file.
    let o = trainer(&["plan", "no-such-config.toml"]);
    assert!(
        !o.status.success() && stderr(&o).contains("no-such-config.toml"),
        "{}",
        stderr(&o)
    );
}

/// Metrics of a run without the timings: what must match between a split and a monolithic run.
fn metrics_without_times(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_ms");
            v
        })
        .collect()
}

#[test]
fn a_split_run_through_trainer_fit_matches_the_monolithic_run_despite_faults() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (a, mono) = fit(dir.path(), &cfg, "mono", &[]);
    assert!(a.status.success(), "{}", stderr(&a));
    let faults = [
        "--set",
        "plan.slices=2",
        "--set",
        "runtime.fault_rate=0.1",
        "--set",
        "runtime.duplicate_rate=0.2",
        "--set",
        "runtime.task_timeout_s=0.25",
        "--set",
        "runtime.max_attempts=12",
    ];
    let (b, split) = fit(dir.path(), &cfg, "split", &faults);
    assert!(b.status.success(), "{}", stderr(&b));
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            std::fs::read(mono.join(f)).unwrap() == std::fs::read(split.join(f)).unwrap(),
            "{f} differs between the monolithic and the split run"
        );
    }
    // Same losses and the same periodic evaluation (step 6), bit for bit (JSON keeps every digit).
    assert_eq!(metrics_without_times(&mono), metrics_without_times(&split));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(split.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["runtime"]["fired_twice"], 0);
    assert!(summary["runtime"]["tasks_ran"].as_u64().unwrap() > 0);
    let events = std::fs::read_to_string(split.join("events.jsonl")).unwrap();
    assert!(events.lines().count() as u64 >= summary["runtime"]["tasks_ran"].as_u64().unwrap());
    assert!(split.join("plan.json").is_file());
}

#[test]
fn a_redis_password_never_reaches_files_or_messages() {
    let server = e2e_tests::redis_server::RedisServer::start(&["--requirepass", "s3cr3t-pw"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let good = format!("runtime.store=redis://:s3cr3t-pw@127.0.0.1:{}", server.port);
    let (o, out) = fit(
        dir.path(),
        &cfg,
        "good",
        &["--set", "plan.slices=2", "--set", &good],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let resolved = std::fs::read_to_string(out.join("config.resolved.toml")).unwrap();
    assert!(!resolved.contains("s3cr3t"), "{resolved}");
    assert!(resolved.contains("REDIS_PASSWORD"), "{resolved}");
    for f in ["plan.json", "summary.json", "events.jsonl", "metrics.jsonl"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(!text.contains("s3cr3t"), "{f} shows the password");
    }
    // A wrong password: a clear error naming the store, password redacted, and no run left behind.
    let bad = format!("runtime.store=redis://:wrong-pw@127.0.0.1:{}", server.port);
    let (o, out) = fit(
        dir.path(),
        &cfg,
        "bad",
        &["--set", "plan.slices=2", "--set", &bad],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("127.0.0.1:{}", server.port)), "{err}");
    assert!(!err.contains("wrong-pw"), "{err}");
    assert!(!out.join("metrics.jsonl").exists());
}

#[test]
fn profile_then_plan_prints_a_plan_and_its_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (prof, plan) = profile_and_plan(dir.path(), &cfg);
    assert!(plan["slices"][0]["memory_mb"].as_u64().unwrap() >= 128);
    assert!(plan["predicted"]["step_ms_p95"].as_f64().unwrap() > 0.0);
    // On Lambda (the default platform) the chosen plan and each alternative carry their whole run: as many steps
    // as the config trains (up to the simulator's 50), the warm pool's instances, a wall time that is the steps'.
    let steps = plan["run"]["steps"].as_u64().unwrap();
    assert!((1..=50).contains(&steps), "{}", plan["run"]);
    let (first, p50) = (
        plan["run"]["first_step_ms"].as_f64().unwrap(),
        plan["run"]["step_ms_p50"].as_f64().unwrap(),
    );
    let wall_ms = plan["run"]["wall_s"].as_f64().unwrap() * 1e3;
    assert!(
        first > 0.0 && wall_ms >= first + (steps - 1) as f64 * 0.5 * p50,
        "{}",
        plan["run"]
    );
    assert!(plan["run"]["warm_pool_instances"].as_u64().unwrap() >= 1);
    for alt in plan["alternatives"].as_array().unwrap() {
        assert!(alt["run"]["wall_s"].as_f64().unwrap() > 0.0, "{alt}");
    }
    let o = trainer(&[
        "plan",
        cfg.to_str().unwrap(),
        "--profile",
        prof.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("chosen:") && text.contains("whole run ("),
        "{text}"
    );
    // A file that is not a profile, and an impossible SLO: clear errors, non-zero exits.
    let bad = write(dir.path(), "bad.json", "{\"units\": 3}");
    let o = trainer(&[
        "plan",
        cfg.to_str().unwrap(),
        "--profile",
        bad.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("bad.json"),
        "{}",
        stderr(&o)
    );
    let o = trainer(&[
        "plan",
        cfg.to_str().unwrap(),
        "--profile",
        prof.to_str().unwrap(),
        "--set",
        "plan.slo_ms=0.0001",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("plan.slo_ms"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_split_run_plans_from_the_profile_its_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let prof = profile(dir.path(), &cfg);
    let given = format!("plan.profile={:?}", prof.to_str().unwrap());
    let (o, out) = fit(
        dir.path(),
        &cfg,
        "auto",
        &[
            "--set",
            "plan.slices=\"auto\"",
            "--set",
            &given,
            "--set",
            "train.steps=4",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        summary["calibration"]["predicted"]["step_ms_p50"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(out.join("plan.json").exists());
    // A profile of another model (one more unit): refused before anything runs, naming the file.
    let other = write(
        dir.path(),
        "deeper.toml",
        &SYNTHETIC_MLP.replace("[784, 32, 10]", "[784, 32, 32, 10]"),
    );
    let deeper = dir.path().join("deeper.json");
    let o = trainer(&[
        "profile",
        other.to_str().unwrap(),
        "--out",
        deeper.to_str().unwrap(),
        "--reps",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let wrong = format!("plan.profile={:?}", deeper.to_str().unwrap());
    let (o, out) = fit(
        dir.path(),
        &cfg,
        "wrong",
        &["--set", "plan.slices=2", "--set", &wrong],
    );
    assert!(
        !o.status.success()
            && stderr(&o).contains("deeper.json")
            && stderr(&o).contains("another model"),
        "{}",
        stderr(&o)
    );
    assert!(!out.join("metrics.jsonl").exists());
}

#[test]
fn deploy_dry_run_prints_the_functions_of_the_plan_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let base = r#"
model = { kind = "mlp", widths = [784, 64, 32, 10] }
data = { kind = "synthetic" }
train = { steps = 4, batch_size = 32, microbatches = 2, lr = 0.1 }
[plan]
slices = 3
[runtime]
invoker = "lambda"
store = "rediss://trainer:s3cret@cache.example.com:6380"
[lambda]
function_prefix = "mnist"
role_arn = "arn:aws:iam::123456789012:role/trainer-worker"
memory_mb = 1536
reserved_concurrency = 50
"#;
    let cfg = write(dir.path(), "lambda.toml", base);
    let c = cfg.to_str().unwrap();
    // Fixed slices: every slice on lambda.memory_mb, one function.
    let o = trainer(&["deploy", c, "--dry-run"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("CreateFunction mnist-1536mb") && out.contains("memory 1536 MB"),
        "{out}"
    );
    assert!(
        out.contains("runs slice(s) 0, 1, 2") && out.contains("provided.al2023"),
        "{out}"
    );
    assert!(out.contains("ReservedConcurrentExecutions = 50"), "{out}");
    assert!(
        out.contains("Invoke mnist-1536mb (RequestResponse) {\"probe\":true}"),
        "{out}"
    );
    assert!(
        !out.contains("s3cret") && out.contains("trainer:***@"),
        "{out}"
    );
    let o = trainer(&["deploy", c, "--dry-run", "--destroy"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && out.contains("DeleteFunction mnist-1536mb"),
        "{out}"
    );
    // The planner's split needs a saved profile, so that deploy and the run choose alike.
    let o = trainer(&["deploy", c, "--dry-run", "--set", "plan.slices=\"auto\""]);
    assert!(
        !o.status.success() && stderr(&o).contains("plan.profile"),
        "{}",
        stderr(&o)
    );
    let prof = dir.path().join("profile.json");
    let o = trainer(&[
        "profile",
        c,
        "--out",
        prof.to_str().unwrap(),
        "--reps",
        "1",
        "--set",
        "runtime.invoker=\"local\"",
        "--set",
        "runtime.store=\"memory\"",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let given = format!("plan.profile={:?}", prof.to_str().unwrap());
    let o = trainer(&[
        "deploy",
        c,
        "--dry-run",
        "--set",
        "plan.slices=\"auto\"",
        "--set",
        &given,
        "--set",
        "plan.memory_cap_mb=1024",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    // Under a 1,024 MB cap every function is named by a memory size within it.
    let sizes: Vec<u32> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CreateFunction mnist-"))
        .map(|rest| rest.split("mb").next().unwrap().parse().unwrap())
        .collect();
    assert!(
        !sizes.is_empty() && sizes.iter().all(|&mb| (128..=1024).contains(&mb)),
        "{out}"
    );
    // A real deploy without a role stops before any call, naming the key.
    let no_role = write(
        dir.path(),
        "norole.toml",
        &base.replace("role_arn", "# role_arn"),
    );
    let zip = write(dir.path(), "bootstrap.zip", "not really a zip");
    let o = trainer(&[
        "deploy",
        no_role.to_str().unwrap(),
        "--zip",
        zip.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("lambda.role_arn"),
        "{}",
        stderr(&o)
    );
    // Bad [lambda] values are named.
    let o = trainer(&["deploy", c, "--dry-run", "--set", "lambda.timeout_s=901"]);
    assert!(
        !o.status.success() && stderr(&o).contains("lambda.timeout_s"),
        "{}",
        stderr(&o)
    );
    let o = trainer(&[
        "deploy",
        c,
        "--dry-run",
        "--set",
        "lambda.architecture=\"sparc\"",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("lambda.architecture"),
        "{}",
        stderr(&o)
    );
}

/// A split run through Redis over TLS (private CA via `TRAINER_REDIS_CA`) as an ACL user whose password comes from
/// `REDIS_PASSWORD`: trains to the in-process run's bytes, and the password is in no file of the run.
#[test]
fn a_split_run_over_tls_as_an_acl_user_matches_and_hides_the_password() {
    let server = e2e_tests::redis_server::RedisServer::start_tls(&[
        "--user",
        "trainer",
        "on",
        ">tls-s3cr3t",
        "~*",
        "&*",
        "+@all",
        "--user",
        "default",
        "off",
    ]);
    let ca = server.ca.clone().expect("a TLS server has a CA");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (o, mono) = fit(dir.path(), &cfg, "mono", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = format!(
        "runtime.store=\"rediss://trainer@127.0.0.1:{}\"",
        server.port
    );
    let out = dir.path().join("tls");
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "fit",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ])
        .args(["--set", "plan.slices=2", "--set", &store])
        .env("REDIS_PASSWORD", "tls-s3cr3t")
        .env("TRAINER_REDIS_CA", &ca)
        .output()
        .expect("trainer runs");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(mono.join("model.safetensors")).unwrap(),
        "TLS split run differs from the in-process run"
    );
    let files = std::fs::read_dir(&out)
        .unwrap()
        .chain(std::fs::read_dir(out.join("checkpoint")).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(10).any(|w| w == b"tls-s3cr3t"),
            "{} holds the password",
            path.display()
        );
    }
}

/// A learning rate that blows the weights up stops the run at the step where values stop being finite, naming the
/// step — and in a split run the slice and the tensor — instead of training on NaN or retrying in vain.
#[test]
fn non_finite_values_stop_the_run_naming_the_step_and_slice() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "mlp.toml", SYNTHETIC_MLP);
    let (o, out) = fit(dir.path(), &cfg, "mono", &["--set", "train.lr=1e30"]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("step ") && err.contains("not finite"),
        "{err}"
    );
    assert!(!out.join("summary.json").exists());
    let (o, out) = fit(
        dir.path(),
        &cfg,
        "split",
        &[
            "--set",
            "train.lr=1e30",
            "--set",
            "plan.slices=2",
            "--set",
            "runtime.max_attempts=6",
        ],
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("not finite") && err.contains("slice "),
        "{err}"
    );
    assert!(
        !err.contains("attempt 6 of 6"),
        "a deterministic failure is not retried: {err}"
    );
    assert!(!out.join("summary.json").exists());
}
