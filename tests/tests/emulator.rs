//! End to end through Lambda's interfaces: the run driver starts tasks with the real `aws-sdk-lambda` → a local
//! Lambda emulator → real `slice-worker` processes under `lambda_runtime` → a real `redis-server`. The workers start
//! each other's tasks through the same SDK. The weights must equal the monolithic run's bytes, with and without the
//! faults the platform brings (throttling, duplicate deliveries, handler errors, crashes mid-call, timeouts), and
//! every task of the graph must fire exactly once.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use e2e_tests::lambda_emulator::{
    cargo_binary, worker_binary, Emulator, Faults, FunctionSpec, Stats,
};
use e2e_tests::redis_server::RedisServer;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

mod common;

const MNIST_MLP: &str = r#"
model = { kind = "mlp", widths = [784, 64, 32, 32, 10] }
data = { kind = "mnist" }
train = { steps = 4, batch_size = 32, microbatches = 2, optimizer = "sgd", lr = 0.05, momentum = 0.9, seed = 5 }
"#;

const FUNCTION: &str = "trainer-1024mb";

fn fit_to(cfg_text: &str, dir: &Path) -> Vec<u8> {
    let cfg: Config = toml::from_str(cfg_text).unwrap_or_else(|e| panic!("{cfg_text}\n{e}"));
    fit(&cfg, &RunDir::new(dir), &mut Quiet, &AtomicBool::new(false))
        .unwrap_or_else(|e| panic!("{cfg_text}\n{e}"));
    std::fs::read(dir.join("model.safetensors")).expect("checkpoint written")
}

/// `trainer fit CONFIG FLAG DIR/run --quiet` (FLAG `--out` or `--resume`) in a process of its own, with credentials
/// the emulator accepts (the SDK's standard chain reads them from the environment, as on a developer's machine).
fn trainer_command(cfg_text: &str, dir: &Path, flag: &str) -> std::process::Command {
    let trainer = cargo_binary("trainer")
        .expect("the trainer binary beside this test (cargo test --workspace builds it)");
    std::fs::create_dir_all(dir).expect("run parent");
    let cfg = dir.with_extension("toml");
    std::fs::write(&cfg, cfg_text).expect("config written");
    let mut c = std::process::Command::new(trainer);
    c.arg("fit")
        .arg(&cfg)
        .arg(flag)
        .arg(dir.join("run"))
        .arg("--quiet")
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .env_remove("AWS_PROFILE");
    c
}

/// Runs `trainer fit` to its end (`flag`: `--out` for a new run, `--resume` to go on with one); returns the final
/// weights.
fn trainer_fit(cfg_text: &str, dir: &Path, flag: &str) -> Vec<u8> {
    let out = trainer_command(cfg_text, dir, flag)
        .output()
        .expect("trainer runs");
    assert!(
        out.status.success(),
        "{cfg_text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("run/model.safetensors")).expect("checkpoint written")
}

fn emulator(store: &str, faults: Faults, timeout: Duration) -> Emulator {
    emulator_of(FUNCTION, 1024, store, faults, timeout)
}

/// One function `name` of `memory_mb`, four instances at most, one thread each.
fn emulator_of(
    name: &str,
    memory_mb: u32,
    store: &str,
    faults: Faults,
    timeout: Duration,
) -> Emulator {
    let binary = worker_binary().expect(
        "the slice-worker binary beside this test executable (cargo test --workspace builds it)",
    );
    Emulator::start(
        vec![FunctionSpec {
            name: name.into(),
            binary,
            env: vec![
                ("TRAINER_STORE".into(), store.into()),
                ("TRAINER_THREADS".into(), "1".into()),
            ],
            memory_mb,
            timeout,
            concurrency: 4,
            async_retries: 2,
        }],
        faults,
    )
    .expect("emulator starts")
}

fn on_lambda(base: &str, store: &str, endpoint: &str, task_timeout_s: f64) -> String {
    on_lambda_planned(base, "", store, endpoint, task_timeout_s)
}

/// [`on_lambda`] with more `[plan]` lines.
fn on_lambda_planned(
    base: &str,
    plan: &str,
    store: &str,
    endpoint: &str,
    task_timeout_s: f64,
) -> String {
    format!(
        "{base}\n[plan]\nslices = 3\n{plan}[runtime]\ninvoker = \"lambda\"\nstore = {store:?}\nconcurrency = 8\n\
         task_timeout_s = {task_timeout_s}\nmax_attempts = 12\n[lambda]\nmemory_mb = 1024\nendpoint_url = {endpoint:?}\n\
         region = \"us-east-1\"\n"
    )
}

/// The common checks (every task fired once, succeeded, none failed), and what Lambda adds: the plan names the
/// function of every slice, nothing crashes by the local invoker's hand, cold starts show in `invoke_ms`. Returns
/// the executions skipped as already done.
fn check_events(dir: &Path) -> usize {
    let checked = common::check_events(dir);
    assert_eq!(checked.plan.functions, vec![FUNCTION.to_string(); 3]);
    assert_eq!(
        checked.crashes, 0,
        "only the local invoker injects crashes into events"
    );
    // Invocation latency crosses processes on the sender's clock (the warm pool started the first instances, so
    // few tasks, if any, start cold).
    assert!(
        checked
            .events
            .iter()
            .any(|e| !e.became && e.invoke_ms > 0.0),
        "invocation latency shows in invoke_ms"
    );
    // Each worker process runs one task at a time and counts its heap: every task that ran says what it held.
    assert!(
        checked
            .events
            .iter()
            .filter(|e| e.status == slice_worker::event::Status::Ran)
            .all(|e| e.heap_peak_bytes > 0 && e.heap_start_bytes > 0),
        "events through Lambda carry the task's heap"
    );
    checked.skipped
}

#[test]
fn emulator_split_run_equals_the_monolithic_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mono = fit_to(MNIST_MLP, &dir.path().join("mono"));
    let redis = RedisServer::start(&[]);
    let lambda = emulator(&redis.url(), Faults::default(), Duration::from_secs(30));
    let run = dir.path().join("lambda");
    let split = trainer_fit(
        &on_lambda(MNIST_MLP, &redis.url(), lambda.url(), 30.0),
        &run,
        "--out",
    );
    let run = run.join("run");
    assert!(
        split == mono,
        "weights through Lambda differ from the monolithic run"
    );
    check_events(&run);
    let stats = lambda.stats();
    // Every task went through the Invoke API: the driver's leaves and the workers' successors alike.
    assert!(
        stats.invokes > 0 && stats.instances_started >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.function_errors, 0, "{stats:?}");
    assert!(stats.peak_rss_kib[FUNCTION] > 1024, "{stats:?}");
}

#[test]
fn emulator_faulty_split_run_equals_the_monolithic_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = RedisServer::start(&[]);
    let faults = Faults {
        seed: 3,
        throttle_rate: 0.15,
        duplicate_rate: 0.2,
        error_rate: 0.1,
        crash_rate: 0.08,
        timeout_rate: 0.04,
    };
    // A short function timeout (the timeouts are injected) and a driver deadline beyond it with the platform's two
    // retries: what the platform recovers, the driver need not.
    let lambda = emulator(&redis.url(), faults, Duration::from_secs(2));
    let run = dir.path().join("lambda");
    // Clipped, and each slice's update in three shards: the clip barrier and the shards' fan-ins cross processes too.
    let clipped = MNIST_MLP.replace("seed = 5 }", "seed = 5, grad_clip = 0.5 }");
    let mono = fit_to(&clipped, &dir.path().join("mono-clipped"));
    let split = trainer_fit(
        &on_lambda_planned(
            &clipped,
            "update_shards = 3\n",
            &redis.url(),
            lambda.url(),
            8.0,
        ),
        &run,
        "--out",
    );
    let run = run.join("run");
    assert!(
        split == mono,
        "weights through a faulty Lambda differ from the monolithic run"
    );
    let skipped = check_events(&run);
    let s: Stats = lambda.stats();
    assert!(
        s.throttled > 0
            && s.duplicated > 0
            && s.crashes > 0
            && s.function_errors > 0
            && s.async_retries > 0,
        "every kind of fault happened: {s:?}"
    );
    assert!(
        skipped > 0,
        "duplicates and retries found their work done: {s:?}"
    );
}

/// The coordinator killed (SIGKILL) mid-run while its tasks run on Lambda: the chains of tasks it started go on
/// without it into the old namespace; `--resume` deletes that namespace, goes on from the last checkpoint under a new
/// one, and ends with the monolithic run's bytes and no key of either run left in Redis.
#[test]
fn emulator_killed_split_run_resumes_to_the_monolithic_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 48 steps after the kill point: the run cannot finish between the check and the SIGKILL.
    let base = MNIST_MLP.replace("steps = 4", "steps = 60") + "checkpoint = { every = 5 }\n";
    let mono = fit_to(&base, &dir.path().join("mono"));
    let redis = RedisServer::start(&[]);
    let lambda = emulator(&redis.url(), Faults::default(), Duration::from_secs(30));
    let cfg = on_lambda(&base, &redis.url(), lambda.url(), 30.0);
    let run = dir.path().join("lambda");
    let mut child = trainer_command(&cfg, &run, "--out")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("trainer starts");
    let metrics = run.join("run/metrics.jsonl");
    let steps = || std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count());
    while steps() < 12 {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before step 12"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let killed_at = steps();
    let weights = trainer_fit(&cfg, &run, "--resume");
    assert!(
        weights == mono,
        "weights after a kill at step {killed_at} and --resume differ from the monolithic run"
    );
    assert_eq!(steps(), 60, "metrics cover every step once");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let left = rt.block_on(async {
        let store = slice_worker::store::RedisStore::connect(&redis.url())
            .await
            .expect("Redis");
        use slice_worker::store::Store;
        store.keys_with_prefix("").await.expect("SCAN")
    });
    assert!(left.is_empty(), "keys left after the resumed run: {left:?}");
}

/// A slice that needs more memory than its function has: the emulator kills the instance as Lambda would
/// (`Runtime.OutOfMemory`), the platform's retries and the driver's fail the same way, and the run stops with an
/// error naming the task instead of hanging.
#[test]
fn emulator_kills_a_worker_past_its_memory_and_the_run_stops_naming_the_task() {
    let redis = RedisServer::start(&[]);
    // The middle slice holds a 4096×4096 layer: 67 MB of weights, as much again of gradients, and the update its
    // momentum — over 256 MB, which the cgroup (memory.limit_in_bytes) refuses.
    let big = MNIST_MLP
        .replace("[784, 64, 32, 32, 10]", "[784, 4096, 4096, 10]")
        .replace("steps = 4", "steps = 2");
    let lambda = emulator_of(
        "trainer-256mb",
        256,
        &redis.url(),
        Faults::default(),
        Duration::from_secs(30),
    );
    // A 256 MB function has 0.14 vCPU: its tasks are slow, so the deadline is long enough not to be what stops it.
    let cfg = on_lambda(&big, &redis.url(), lambda.url(), 60.0)
        .replace("memory_mb = 1024", "memory_mb = 256")
        .replace("max_attempts = 12", "max_attempts = 2");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = trainer_command(&cfg, &dir.path().join("oom"), "--out")
        .output()
        .expect("trainer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run cannot succeed: {stderr}");
    // The middle slice's task, and what to look for.
    assert!(
        stderr.contains("error: task ")
            && stderr.contains("(1,1")
            && stderr.contains("Runtime.OutOfMemory"),
        "the error names the middle slice's task and the likely cause: {stderr}"
    );
    let stats = lambda.stats();
    assert!(stats.out_of_memory > 0, "{stats:?}\n{stderr}");
    assert!(
        stats.peak_rss_kib["trainer-256mb"] >= 255 * 1024,
        "an instance was seen past its memory: {stats:?}"
    );
}

/// A run whose functions were never deployed (here: another memory size than the one the emulator serves) stops at
/// once, naming the function and the settings its name comes from, instead of waiting out every task's deadline.
#[test]
fn a_run_on_functions_that_do_not_exist_stops_at_once_naming_them() {
    let redis = RedisServer::start(&[]);
    let lambda = emulator(&redis.url(), Faults::default(), Duration::from_secs(30));
    let cfg = on_lambda(MNIST_MLP, &redis.url(), lambda.url(), 300.0)
        .replace("memory_mb = 1024", "memory_mb = 2048");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = trainer_command(&cfg, &dir.path().join("missing"), "--out")
        .output()
        .expect("trainer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run cannot succeed: {stderr}");
    assert!(
        stderr.contains("trainer-2048mb")
            && stderr.contains("does not exist")
            && stderr.contains("trainer deploy")
            && stderr.contains("lambda.function_prefix"),
        "{stderr}"
    );
    // Stopped before any task: without the probe each of them would wait out its 300 s deadline, twelve times.
    assert_eq!(lambda.stats().instances_started, 0);
}

/// The SDK pointed at an emulator, with credentials it accepts.
fn settings(endpoint: &str) -> slice_worker::invoker::LambdaSettings {
    slice_worker::invoker::LambdaSettings {
        region: Some("us-east-1".into()),
        profile: None,
        endpoint_url: Some(endpoint.into()),
        static_credentials: Some(("emulator".into(), "emulator".into())),
    }
}

#[test]
fn emulator_answers_the_invoke_api_as_lambda_does() {
    use slice_worker::invoker::lambda::{Backoff, InvokeError, LambdaClient};
    let redis = RedisServer::start(&[]);
    let lambda = emulator(&redis.url(), Faults::default(), Duration::from_secs(5));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let settings = settings(lambda.url());
        let backoff = Backoff { base: Duration::from_millis(1), cap: Duration::from_millis(5), tries: 3 };
        let client = LambdaClient::new(&settings, 4, backoff).await;
        let e = client.invoke_event("no-such-function", b"{}").await;
        assert!(matches!(&e, Err(InvokeError::NoSuchFunction { function }) if function == "no-such-function"), "{e:?}");
        let big = vec![b' '; 1024 * 1024 + 1];
        let e = client.invoke_event(FUNCTION, &big).await;
        assert!(matches!(e, Err(InvokeError::TooLarge { .. })), "{e:?}");
        // A payload the worker rejects: a function error on a synchronous call, not a transport retry.
        let e = client.invoke_sync(FUNCTION, b"{\"not\":\"a task\"}").await;
        assert!(
            matches!(&e, Err(InvokeError::FunctionError { body, .. }) if body.contains("malformed task payload")),
            "{e:?}"
        );
        // The probe `trainer deploy` sends: the worker runs and reaches its store.
        let answer = client
            .invoke_sync(FUNCTION, coordinator::deploy::PROBE)
            .await
            .expect("the probe is answered");
        let answer: serde_json::Value = serde_json::from_slice(&answer.payload).expect("JSON");
        assert_eq!(answer["probe"], "ok", "{answer}");
        assert_eq!(client.retried(), 0);
        client.invoke_event(FUNCTION, b"{\"not\":\"a task\"}").await.expect("queued: 202");
    });
    // A worker that cannot reach its store dies in its init: the invocation fails with Runtime.InitError, and the
    // emulator does not start instance after instance.
    let unreachable = emulator(
        "redis://127.0.0.1:1",
        Faults::default(),
        Duration::from_secs(5),
    );
    rt.block_on(async {
        let settings = settings(unreachable.url());
        let client = LambdaClient::new(&settings, 4, Backoff::default()).await;
        let e = client.invoke_sync(FUNCTION, b"{}").await;
        assert!(
            matches!(&e, Err(InvokeError::FunctionError { body, .. }) if body.contains("Runtime.InitError")),
            "{e:?}"
        );
    });
    assert_eq!(unreachable.stats().instances_started, 1);
}

/// `trainer emulate` as a user runs it, in a process of its own: the URL it prints, then what it printed on
/// stopping (stdout: the bill) once interrupted.
struct EmulateProcess {
    child: std::process::Child,
    url: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl EmulateProcess {
    fn start(dir: &Path) -> EmulateProcess {
        use std::io::BufRead;
        let trainer = cargo_binary("trainer").expect("the trainer binary beside this test");
        let mut child = std::process::Command::new(trainer)
            .arg("emulate")
            .arg("--dir")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("trainer emulate starts");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let url = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("trainer emulate printed no URL: {seen:?}"));
            if let Some(rest) = line.strip_prefix("Lambda emulator on ") {
                break rest.split_whitespace().next().expect("a URL").to_string();
            }
            seen.push(line);
        };
        EmulateProcess {
            child,
            url,
            stderr: rx,
        }
    }

    /// Ctrl-C, as a user stops it; returns its stdout and the rest of its stderr.
    fn interrupt(self) -> (String, String) {
        // SAFETY: signalling the child this test started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let out = self.child.wait_with_output().expect("trainer emulate ends");
        assert!(
            out.status.success(),
            "trainer emulate exited with {}",
            out.status
        );
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            rest.join("\n"),
        )
    }
}

/// `trainer deploy` (with and without --destroy) and `trainer fit` as a user runs them against AWS, here pointed at
/// `trainer emulate`: the worker package is created as a function (its size printed, its probe answered by the
/// real worker), the run ends with the monolithic run's bytes, the function is deleted, and the emulator's bill —
/// printed on Ctrl-C and in its events.jsonl — covers every invocation of the run.
#[test]
fn trainer_emulate_serves_deploy_fit_and_destroy_as_aws_would_and_bills_the_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mono = fit_to(MNIST_MLP, &dir.path().join("mono"));
    let redis = RedisServer::start(&[]);
    let emulate = EmulateProcess::start(&dir.path().join("emulator"));
    let zip = e2e_tests::worker_package::worker_zip(dir.path());
    let cfg_text = on_lambda(MNIST_MLP, &redis.url(), &emulate.url, 30.0)
        + "role_arn = \"arn:aws:iam::000000000000:role/trainer\"\n";
    let cfg = dir.path().join("deploy.toml");
    std::fs::write(&cfg, &cfg_text).expect("config written");
    let deploy = |extra: &[&std::ffi::OsStr]| {
        let trainer = cargo_binary("trainer").expect("the trainer binary beside this test");
        let out = std::process::Command::new(trainer)
            .arg("deploy")
            .arg(&cfg)
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", "emulator")
            .env("AWS_SECRET_ACCESS_KEY", "emulator")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("trainer deploy runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // Lambda's default architecture here is arm64, which the emulator refuses, saying why.
    let refused = std::process::Command::new(cargo_binary("trainer").expect("trainer"))
        .arg("deploy")
        .arg(&cfg)
        .arg("--zip")
        .arg(&zip)
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .output()
        .expect("trainer deploy runs");
    let refusal = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && refusal.contains("CreateFunction")
            && refusal.contains("x86_64 functions only")
            && refusal.lines().count() < 5,
        "an arm64 function is refused in a line that says why: {refusal}"
    );
    std::fs::write(&cfg, cfg_text.clone() + "architecture = \"x86_64\"\n").expect("config written");
    let deployed = deploy(&["--zip".as_ref(), zip.as_os_str()]);
    assert!(
        deployed.contains("MB zipped") && deployed.contains("MB unzipped"),
        "deploy prints the package's size: {deployed}"
    );
    assert!(
        deployed.contains(&format!("created {FUNCTION}"))
            && deployed.contains("probe answered")
            && deployed.contains("\"probe\":\"ok\""),
        "the real worker answered the probe: {deployed}"
    );
    let run = dir.path().join("lambda");
    let split = trainer_fit(
        &std::fs::read_to_string(&cfg).expect("config"),
        &run,
        "--out",
    );
    assert!(
        split == mono,
        "weights through trainer emulate differ from the monolithic run"
    );
    // Every execution but those a worker went on to in the same invocation (`became`) was an invocation.
    let invoked = common::check_events(&run.join("run"))
        .events
        .iter()
        .filter(|e| !e.became)
        .count();
    let destroyed = deploy(&["--destroy".as_ref()]);
    assert!(destroyed.contains(FUNCTION), "{destroyed}");
    let (stdout, stderr) = emulate.interrupt();
    let bill = lambda_emulator::Bill::of_file(
        &dir.path().join("emulator/events.jsonl"),
        lambda_emulator::Prices::default(),
    )
    .expect("the emulator's events.jsonl is a ledger");
    // The probe was one more.
    assert!(
        bill.requests as usize > invoked,
        "{bill:?}, {invoked} invoked task executions"
    );
    assert!(bill.cold_starts >= 1 && bill.total_usd > 0.0, "{bill:?}");
    assert!(
        stdout.contains(&format!("{} invocations", bill.requests)) && stdout.contains("cost:"),
        "the bill printed on Ctrl-C is the ledger's: {stdout}\n{stderr}"
    );
}
