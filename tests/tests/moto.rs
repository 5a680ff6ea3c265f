//! `trainer deploy` against a third party's model of AWS: moto's server (PyPI `moto[server]`, see
//! `e2e_tests::moto_server`). The trainer binary makes its real SDK calls — GetFunction, CreateFunction,
//! UpdateFunctionCode, UpdateFunctionConfiguration, Invoke, PutFunctionConcurrency, DeleteFunction — and moto, code we
//! did not write, parses them as AWS documents them and keeps what they say; the tests read the functions back
//! through moto's own API, not through our SDK client.
//!
//! moto checks the control plane only. Without docker it runs no function code: the probe invocation a deploy makes
//! once a function is active gets moto's canned reply. Answering the probe for real — the worker starts and
//! reaches its store — is the Lambda emulator's job (`tests/tests/emulator.rs`).
//!
//! Limits of moto (5.2) that these tests live with: it keeps no architecture from UpdateFunctionCode (only
//! CreateFunction's), it answers an invocation without looking the function up, and it checks few values
//! (role ARNs and that IAM has the role, not memory or timeout ranges; those are ours, `LambdaConfig::validate`).

use e2e_tests::lambda_emulator::cargo_binary;
use e2e_tests::moto_server::{MotoServer, REGION};
use e2e_tests::worker_package::{package, stripped_worker};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A store the functions are told about; deploy never connects to it.
const STORE: &str = "redis://127.0.0.1:6390/0";

/// A split run on Lambda: three slices of 1024 MB, functions named `{prefix}-…`.
fn config(moto: &MotoServer, prefix: &str, role: &str, lambda: &str) -> String {
    format!(
        r#"model = {{ kind = "mlp", widths = [784, 64, 32, 32, 10] }}
data = {{ kind = "mnist" }}
train = {{ steps = 4, batch_size = 32, microbatches = 2, optimizer = "sgd", lr = 0.05, seed = 5 }}
[plan]
slices = 3
[runtime]
invoker = "lambda"
store = "{STORE}"
[lambda]
function_prefix = "{prefix}"
endpoint_url = "{url}"
region = "{REGION}"
role_arn = "{role}"
memory_mb = 1024
{lambda}"#,
        url = moto.url()
    )
}

/// `trainer deploy CONFIG ARGS…` with credentials moto accepts (its default account) and no profile of this
/// machine's; fails the test, with the trainer's output, unless it succeeds.
fn deploy(cfg: &Path, args: &[&str]) -> String {
    let out = deploy_output(cfg, args);
    assert!(
        out.status.success(),
        "trainer deploy {} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        cfg.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn deploy_output(cfg: &Path, args: &[&str]) -> Output {
    let trainer = cargo_binary("trainer")
        .expect("the trainer binary beside this test (cargo test --workspace builds it)");
    std::process::Command::new(trainer)
        .arg("deploy")
        .arg(cfg)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "moto-test")
        .env("AWS_SECRET_ACCESS_KEY", "moto-test")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("trainer deploy runs")
}

/// The function's configuration as moto keeps it; fails the test when moto has no such function.
fn configuration(moto: &MotoServer, name: &str) -> Value {
    let f = moto
        .function(name)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("moto has no function {name}"));
    f["Configuration"].clone()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("deploy.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// The user's path: the worker binary in a bootstrap.zip is created as a function, updated with new code and a new
/// timeout, then destroyed; after each step moto reports what the step asked for.
#[test]
fn moto_sees_deploy_create_update_and_destroy_a_function() {
    let moto = MotoServer::start();
    let role = moto
        .create_role("trainer-moto-lifecycle")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("temp dir");
    let worker = stripped_worker(dir.path());
    let zip = dir.path().join("bootstrap.zip");
    let code = package(&zip, &[("bootstrap", &worker)]);
    let cfg = write_config(
        dir.path(),
        &config(
            &moto,
            "moto-life",
            &role,
            "architecture = \"x86_64\"\ntimeout_s = 60\n",
        ),
    );
    let name = "moto-life-1024mb";
    let zip_arg = zip.to_str().expect("a UTF-8 temp path");

    // Create. moto answers the probe with what was queued: proof the Invoke reached it.
    moto.queue_invoke_result(r#"{"probe":"moto"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let said = deploy(&cfg, &["--zip", zip_arg]);
    assert!(
        said.contains(&format!("created {name} (1024 MB)"))
            && said.contains(r#"probe answered {"probe":"moto"}"#),
        "{said}"
    );
    let c = configuration(&moto, name);
    assert_eq!(c["Runtime"], "provided.al2023", "{c:#}");
    assert_eq!(c["Handler"], "bootstrap", "{c:#}");
    assert_eq!(c["MemorySize"], 1024, "{c:#}");
    assert_eq!(c["Timeout"], 60, "{c:#}");
    assert_eq!(c["Role"], role.as_str(), "{c:#}");
    assert_eq!(c["Architectures"], serde_json::json!(["x86_64"]), "{c:#}");
    assert_eq!(
        c["Environment"]["Variables"]["TRAINER_STORE"], STORE,
        "{c:#}"
    );
    assert_eq!(c["State"], "Active", "{c:#}");
    // The package arrived whole.
    assert_eq!(c["CodeSize"], code.len(), "{c:#}");

    // Update: new code (a second file in the package) and a new timeout.
    let code = package(
        &zip,
        &[("bootstrap", &worker), ("VERSION", b"moto conformance 2\n")],
    );
    let said = deploy(&cfg, &["--zip", zip_arg, "--set", "lambda.timeout_s=120"]);
    assert!(
        said.contains(&format!("updated {name} (1024 MB)")),
        "{said}"
    );
    let c = configuration(&moto, name);
    assert_eq!(c["Timeout"], 120, "{c:#}");
    assert_eq!(c["CodeSize"], code.len(), "{c:#}");
    assert_eq!(c["MemorySize"], 1024, "{c:#}");
    assert_eq!(c["Role"], role.as_str(), "{c:#}");
    assert_eq!(
        c["Environment"]["Variables"]["TRAINER_STORE"], STORE,
        "{c:#}"
    );
    assert_eq!(c["LastUpdateStatus"], "Successful", "{c:#}");

    // Destroy, twice: the second finds nothing, which moto says the way AWS does (ResourceNotFoundException).
    let said = deploy(&cfg, &["--destroy"]);
    assert!(said.contains(&format!("deleted {name}")), "{said}");
    assert!(
        moto.function(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none(),
        "moto still has {name} after --destroy"
    );
    let said = deploy(&cfg, &["--destroy"]);
    assert!(said.contains(&format!("{name} did not exist")), "{said}");
}

/// The settings a single function does not show: a function per slice, arm64 (not moto's default), reserved
/// concurrency and a VPC reach moto on every function; a role IAM does not have is refused, and deploy says by
/// which call.
#[test]
fn moto_keeps_every_setting_deploy_sends_and_refuses_an_unknown_role() {
    let moto = MotoServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let zip = dir.path().join("bootstrap.zip");
    let code = package(&zip, &[("bootstrap", b"#!/bin/sh\nexit 0\n")]);
    let zip_arg = zip.to_str().expect("a UTF-8 temp path");
    let lambda = "architecture = \"arm64\"\nfunction_per_slice = true\nreserved_concurrency = 5\n\
                  subnet_ids = [\"subnet-0a\", \"subnet-0b\"]\nsecurity_group_ids = [\"sg-0c\"]\n";

    // No such role in moto's IAM: CreateFunction is refused and nothing is left behind.
    let ghost = "arn:aws:iam::123456789012:role/not-created";
    let cfg = write_config(dir.path(), &config(&moto, "moto-set", ghost, lambda));
    let out = deploy_output(&cfg, &["--zip", zip_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("CreateFunction moto-set-s0-1024mb")
            && stderr.contains("cannot be assumed by Lambda"),
        "deploy with a role IAM does not have:\n{stderr}"
    );
    assert!(moto
        .function("moto-set-s0-1024mb")
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());

    let role = moto
        .create_role("trainer-moto-settings")
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = write_config(dir.path(), &config(&moto, "moto-set", &role, lambda));
    deploy(&cfg, &["--zip", zip_arg]);
    for slice in 0..3 {
        let name = format!("moto-set-s{slice}-1024mb");
        let f = moto
            .function(&name)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("moto has no function {name}"));
        let c = &f["Configuration"];
        assert_eq!(c["Architectures"], serde_json::json!(["arm64"]), "{f:#}");
        assert_eq!(c["CodeSize"], code.len(), "{f:#}");
        assert_eq!(
            c["VpcConfig"]["SubnetIds"],
            serde_json::json!(["subnet-0a", "subnet-0b"]),
            "{f:#}"
        );
        assert_eq!(
            c["VpcConfig"]["SecurityGroupIds"],
            serde_json::json!(["sg-0c"]),
            "{f:#}"
        );
        assert_eq!(f["Concurrency"]["ReservedConcurrentExecutions"], 5, "{f:#}");
    }
    let said = deploy(&cfg, &["--destroy"]);
    for slice in 0..3 {
        let name = format!("moto-set-s{slice}-1024mb");
        assert!(said.contains(&format!("deleted {name}")), "{said}");
        assert!(
            moto.function(&name)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none(),
            "moto still has {name} after --destroy"
        );
    }
}
