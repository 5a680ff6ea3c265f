//! `trainer fit --resume` and what a run survives: a clean stop (SIGINT, SIGTERM), a killed coordinator
//! (SIGKILL), a Redis server that restarts under a split run or drops its connections or goes away — each ending
//! with the bytes of the run that was never disturbed, or with an error that says how to go on.

mod common;
use common::*;
use e2e_tests::redis_server::RedisServer;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Interrupted by SIGINT or SIGTERM (a clean stop) or killed outright (SIGKILL), `--resume` continues from the last checkpoint
/// and ends with the bytes of the run that was never interrupted; a corrupt checkpoint, another config and a
/// finished run are refused with the reason.
#[test]
fn an_interrupted_run_resumes_to_the_bytes_of_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = "model = { kind = \"mlp\", widths = [784, 128, 64, 10] }\ndata = { kind = \"synthetic\" }\n\
                train = { steps = 800, batch_size = 32, microbatches = 2, optimizer = \"adamw\", lr = 0.001, seed = 4 }\n\
                checkpoint = { every = 40 }\n";
    let cfg = write(dir.path(), "long.toml", text);
    let (o, whole) = fit(dir.path(), &cfg, "whole", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = std::fs::read(whole.join("model.safetensors")).unwrap();
    // Starts a run and stops it with `signal` once it has trained `after` steps.
    let interrupted = |name: &str, signal: &str, after: usize| -> PathBuf {
        let out = dir.path().join(name);
        let mut child = start_fit(&cfg, &out, &[] as &[&str]);
        wait_for_steps(&mut child, &out, after);
        let o = interrupt(child, signal);
        assert!(!o.status.success(), "{name}: finished although interrupted");
        if signal != "-KILL" {
            let err = stderr(&o);
            assert!(err.contains("--resume") && err.contains(name), "{err}");
        }
        assert!(steps_written(&out) < 800, "{name}: not interrupted");
        out
    };

    for (name, signal) in [
        ("sigint", "-INT"),
        ("sigterm", "-TERM"),
        ("sigkill", "-KILL"),
    ] {
        let out = interrupted(name, signal, 100);
        let o = resume(&cfg, &out, &[] as &[&str]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            std::fs::read(out.join("model.safetensors")).unwrap() == expected,
            "{name}: the resumed run's weights differ from the uninterrupted run's"
        );
        assert_eq!(
            metric_steps(&out),
            (1..=800).collect::<Vec<_>>(),
            "{name}: metrics.jsonl"
        );
        // Finished: nothing left to resume.
        let o = resume(&cfg, &out, &[] as &[&str]);
        assert!(
            !o.status.success() && stderr(&o).contains("already finished"),
            "{}",
            stderr(&o)
        );
    }

    let out = interrupted("corrupt", "-KILL", 100);
    let metrics_before = std::fs::read(out.join("metrics.jsonl")).unwrap();
    // Another config: refused, naming the section.
    let o = resume(&cfg, &out, &["train.lr=0.002"]);
    assert!(
        !o.status.success() && stderr(&o).contains("[train] differs"),
        "{}",
        stderr(&o)
    );
    // A flipped byte in the checkpoint's weights: refused, naming the file; the run folder untouched.
    let path = out.join("checkpoint/model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let o = resume(&cfg, &out, &[] as &[&str]);
    let err = stderr(&o);
    assert!(
        !o.status.success()
            && err.contains("checkpoint/model.safetensors")
            && err.contains("checksum"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(out.join("metrics.jsonl")).unwrap(),
        metrics_before
    );
}

/// A 3-slice MLP run long enough to be disturbed mid-way (about 10 s on two cores through Redis).
const SPLIT: &str = "model = { kind = \"mlp\", widths = [784, 64, 32, 32, 10] }\ndata = { kind = \"synthetic\" }\n\
                     train = { steps = 1200, batch_size = 16, microbatches = 2, optimizer = \"adamw\", lr = 0.001, seed = 4 }\n\
                     checkpoint = { every = 25 }\nplan = { slices = 3 }\n";

/// `trainer fit CONFIG FLAG OUT --quiet --set …` (FLAG: `--out` or `--resume`).
fn fit_command(cfg: &Path, flag: &str, out: &Path, sets: &[impl AsRef<str>]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
    c.arg("fit").arg(cfg).arg(flag).arg(out).arg("--quiet");
    for s in sets {
        c.args(["--set", s.as_ref()]);
    }
    c
}

/// `trainer fit CONFIG --out OUT --quiet --set …` in the background, its stderr kept.
fn start_fit(cfg: &Path, out: &Path, sets: &[impl AsRef<str>]) -> Child {
    fit_command(cfg, "--out", out, sets)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trainer starts")
}

/// Sends `signal` (`-INT`, `-TERM`, `-KILL`) to the run and waits for it to end.
fn interrupt(child: Child, signal: &str) -> std::process::Output {
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait_with_output().unwrap()
}

/// Waits until the run in `out` has written `steps` steps; fails if it ended first.
fn wait_for_steps(child: &mut Child, out: &Path, steps: usize) {
    while steps_written(out) < steps {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before step {steps}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `trainer fit CONFIG --resume OUT --quiet --set …`.
fn resume(cfg: &Path, out: &Path, sets: &[impl AsRef<str>]) -> std::process::Output {
    fit_command(cfg, "--resume", out, sets)
        .output()
        .expect("the trainer binary runs")
}

/// The bytes every run of `cfg` must end with: the single-process run's.
fn reference_weights(dir: &Path, cfg: &Path) -> Vec<u8> {
    let (o, run) = fit(dir, cfg, "reference", &["--set", "plan.slices=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read(run.join("model.safetensors")).unwrap()
}

/// `redis-cli -p PORT ARGS…`'s answer.
fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed with redis-server");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn plan_json(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("plan.json")).unwrap()).unwrap()
}

/// Every update task of steps 1..=`steps` reported in `events.jsonl` and none of a later step (the events of the
/// work redone after the checkpoint are not there twice as stale copies of a dead namespace's).
fn assert_events_cover(out: &Path, steps: u64, slices: u64) {
    let mut updates = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
    {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let task = e["task"].as_str().unwrap().to_string();
        if task.starts_with('U') && e["status"] != "failed" {
            updates.insert(task);
        }
    }
    let expected: std::collections::BTreeSet<String> = (1..=steps)
        .flat_map(|t| (0..slices).map(move |s| format!("U({t},{s},0)")))
        .collect();
    assert_eq!(updates, expected, "update events in events.jsonl");
}

/// A split run stopped by SIGINT (in-memory store) or killed by SIGKILL (Redis, its keys left behind) at a random
/// step, and refusing a second process meanwhile, resumes under a fresh namespace — the killed run's keys deleted, none left at the end — and ends with the single-process
/// run's bytes, its metrics and events covering every step once.
#[test]
fn a_killed_split_run_resumes_under_a_fresh_namespace_to_the_reference_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "split.toml", SPLIT);
    let expected = reference_weights(dir.path(), &cfg);
    let redis = RedisServer::start(&[]);
    let on_redis = vec![format!("runtime.store={}", redis.url())];
    for (name, signal, sets) in [
        ("sigint-memory", "-INT", Vec::new()),
        ("sigkill-redis", "-KILL", on_redis.clone()),
    ] {
        let out = dir.path().join(name);
        let mut child = start_fit(&cfg, &out, &sets);
        // A different moment on every run (printed, to reproduce a failure): the resume must not depend on it.
        let at = 30
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as usize
                % 400;
        eprintln!("{name}: interrupted after step {at}");
        wait_for_steps(&mut child, &out, at);
        // While it runs, the folder is its own: a resume is refused, naming the process.
        let o = resume(&cfg, &out, &sets);
        assert!(
            !o.status.success()
                && stderr(&o).contains(&format!("another trainer process (pid {})", child.id())),
            "{}",
            stderr(&o)
        );
        let o = interrupt(child, signal);
        assert!(!o.status.success(), "{name}: finished although interrupted");
        if signal == "-INT" {
            assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
        }
        let killed_run = plan_json(&out)["run_id"].as_str().unwrap().to_string();
        if !sets.is_empty() {
            assert_ne!(
                redis_cli(redis.port, &["DBSIZE"]),
                "0",
                "the killed run left nothing behind: the cleanup is not tested"
            );
        }
        let o = resume(&cfg, &out, &sets);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            std::fs::read(out.join("model.safetensors")).unwrap() == expected,
            "{name}: the resumed split run's weights differ from the reference"
        );
        assert_eq!(metric_steps(&out), (1..=1200).collect::<Vec<_>>(), "{name}");
        assert_events_cover(&out, 1200, 3);
        let plan = plan_json(&out);
        assert_ne!(
            plan["run_id"],
            killed_run.as_str(),
            "{name}: same namespace"
        );
        assert!(plan["first_step"].as_u64().unwrap() > 1, "{name}: {plan}");
        if !sets.is_empty() {
            assert_eq!(
                redis_cli(redis.port, &["DBSIZE"]),
                "0",
                "keys left in Redis after the resumed run"
            );
        }
    }
}

/// Stops that stop. A split run whose deadlines are fixed and long (600 s) while one delivery in ten stalls: SIGTERM
/// cannot wait for its stalled step, so it stops within `runtime.stop_grace_s` (3 s here) with the run folder's
/// last checkpoint; with the default adaptive deadlines a stalled task is invoked again within milliseconds, so the
/// step finishes and SIGTERM stops after it, and the run resumes to the single-process run's bytes. SIGTERM then
/// SIGINT on the stalled run stops at once (within 2 s), saying how to resume.
#[test]
fn a_stop_request_is_bounded_in_time_and_a_second_one_stops_at_once() {
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "split.toml", SPLIT);
    let expected = reference_weights(dir.path(), &cfg);
    let stalled = ["runtime.stall_rate=0.1", "runtime.stop_grace_s=3"];
    let fixed = [
        "runtime.stall_rate=0.1",
        "runtime.stop_grace_s=3",
        "runtime.deadline=\"fixed\"",
        "runtime.task_timeout_s=600",
    ];
    let cases: [(&str, &[&str], bool, u64); 3] = [
        ("stalled-fixed", &fixed, false, 30),
        ("stalled-auto", &stalled, false, 30),
        ("term-then-int", &fixed, true, 2),
    ];
    for (name, sets, twice, bound_s) in cases {
        let out = dir.path().join(name);
        let mut child = start_fit(&cfg, &out, sets);
        if name != "stalled-auto" {
            // Fixed 600 s deadlines: the run stalls at its first stuck delivery, after a few steps at most.
            std::thread::sleep(Duration::from_secs(3));
        } else {
            wait_for_steps(&mut child, &out, 60);
        }
        let kill = |signal: &str| {
            let sent = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap();
            assert!(sent.success());
        };
        kill("-TERM");
        if twice {
            std::thread::sleep(Duration::from_millis(200));
            kill("-INT");
        }
        let since = Instant::now();
        let o = child.wait_with_output().unwrap();
        let took = since.elapsed();
        let err = stderr(&o);
        assert!(!o.status.success(), "{name}: finished although stopped");
        assert!(
            took < Duration::from_secs(bound_s),
            "{name}: took {took:?} to stop, more than {bound_s} s: {err}"
        );
        assert!(err.contains("--resume"), "{name}: {err}");
        if twice {
            assert!(err.contains("stopped at once"), "{name}: {err}");
        }
        if name == "stalled-fixed" {
            assert!(
                err.contains("did not finish within runtime.stop_grace_s"),
                "{err}"
            );
        }
        if name != "stalled-auto" {
            // Resuming it would stall again for 600 s: its stop is what is tested. (A stop at once leaves the run
            // folder as a SIGKILL does, and the SIGKILL cases above resume to the reference bytes.)
            continue;
        }
        let o = resume(&cfg, &out, sets);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            std::fs::read(out.join("model.safetensors")).unwrap() == expected,
            "{name}: the resumed run's weights differ from the reference"
        );
    }
}

/// `trainer status --json`, read from another process while a split run trains, reports the run as running with
/// its step count, a step rate and its tasks in flight against the concurrency limit; after the run, as finished.
#[test]
fn status_shows_a_live_split_run_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "split.toml", SPLIT);
    let out = dir.path().join("live");
    let mut child = start_fit(&cfg, &out, &[] as &[&str]);
    wait_for_steps(&mut child, &out, 30);
    let status = |run: &Path| {
        let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args(["status", "--json"])
            .arg(run)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let live = status(&out);
    assert_eq!(live["state"], "running", "{live}");
    assert!(live["steps_done"].as_u64().unwrap() >= 30, "{live}");
    assert_eq!(live["steps_total"], 1200, "{live}");
    assert!(live["steps_per_s"].as_f64().unwrap() > 0.0, "{live}");
    assert!(
        live["in_flight"].is_u64() && live["concurrency"] == 4,
        "{live}"
    );
    assert!(
        live["latency"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kind"] == "forward"),
        "{live}"
    );
    let o = interrupt(child, "-INT");
    assert!(!o.status.success());
    assert_eq!(status(&out)["state"], "ended");
    // A folder without a status (an in-process run, or none at all) says why.
    let o = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["status"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("not a run folder"),
        "{}",
        stderr(&o)
    );
}

/// Redis drops every client connection five times (transient: retried, no step lost or redone), then crashes and
/// comes back empty: the driver sees the new server, restarts once from the last checkpoint under a fresh
/// namespace and ends with the reference bytes.
#[test]
fn a_split_run_survives_dropped_connections_and_a_redis_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "split.toml", SPLIT);
    let expected = reference_weights(dir.path(), &cfg);
    let mut redis = RedisServer::start(&[]);
    let out = dir.path().join("run");
    let mut child = start_fit(&cfg, &out, &[format!("runtime.store={}", redis.url())]);
    for k in 1..=5 {
        wait_for_steps(&mut child, &out, 60 * k);
        let killed: u64 = redis_cli(redis.port, &["CLIENT", "KILL", "TYPE", "normal"])
            .parse()
            .unwrap_or(0);
        assert!(killed >= 2, "CLIENT KILL closed {killed} connections");
    }
    wait_for_steps(&mut child, &out, 400);
    redis.restart();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("restarted during the run") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        std::fs::read(out.join("model.safetensors")).unwrap() == expected,
        "the weights differ from the reference after the Redis restart"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["runtime"]["store_restarts"], 1,
        "one restart for the crash, none for the dropped connections"
    );
    assert_eq!(metric_steps(&out), (1..=1200).collect::<Vec<_>>());
    assert_events_cover(&out, 1200, 3);
    assert_eq!(redis_cli(redis.port, &["DBSIZE"]), "0");
}

/// Redis goes away and does not come back within `runtime.store_wait_s`: the run stops with an error that names the
/// store and says how to resume (no panic, no hang); once Redis is back, `--resume` ends with the reference bytes.
#[test]
fn a_store_gone_for_good_stops_the_run_with_a_resumable_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "split.toml", SPLIT);
    let expected = reference_weights(dir.path(), &cfg);
    let mut redis = RedisServer::start(&[]);
    let out = dir.path().join("run");
    let sets = vec![
        format!("runtime.store={}", redis.url()),
        "runtime.store_wait_s=1".to_string(),
    ];
    let mut child = start_fit(&cfg, &out, &sets);
    wait_for_steps(&mut child, &out, 100);
    redis.kill();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "finished without its store");
    assert!(
        err.contains(&format!("127.0.0.1:{}", redis.port))
            && err.contains("store_wait_s")
            && err.contains("resume with: trainer fit")
            && !err.contains("panicked"),
        "{err}"
    );
    redis.restart();
    let o = resume(&cfg, &out, &sets);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(out.join("model.safetensors")).unwrap() == expected);
    assert_eq!(metric_steps(&out), (1..=1200).collect::<Vec<_>>());
}

/// A made-up corpus of `words` words over a small vocabulary of English words, lines and punctuation, from a seeded
/// generator (so the test needs no data files).
fn corpus(words: usize, seed: u64) -> String {
    const WORDS: [&str; 24] = [
        "the", "king", "and", "queen", "shall", "speak", "to", "my", "lord", "of", "York", "thou",
        "art", "a", "fool", "what", "say", "you", "now", "good", "night", "sweet", "prince",
        "come",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut text = String::new();
    for i in 0..words {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let w = WORDS[(x >> 33) as usize % WORDS.len()];
        text.push_str(w);
        text.push_str(match (x >> 20) % 9 {
            0 => ",\n",
            1 => ".\n",
            _ if i + 1 == words => "\n",
            _ => " ",
        });
    }
    text
}

/// A subword GPT run keeps its vocabulary beside its weights (`tokenizer.json`; its sha256 in every checkpoint):
/// resumed on a corpus that now tokenizes otherwise it is refused, naming the vocabulary, and `trainer eval`
/// too; with the corpus back, it resumes and finishes.
#[test]
fn a_subword_run_keeps_its_vocabulary_and_refuses_a_changed_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("corpus");
    std::fs::create_dir_all(&data).unwrap();
    let original = corpus(6000, 1);
    std::fs::write(data.join("input.txt"), &original).unwrap();
    let text = format!(
        "model = {{ kind = \"gpt\", vocab = 96, context = 16, d_model = 16, n_layers = 1, n_heads = 2 }}\n\
         data = {{ kind = \"text\", dir = {:?}, context = 16, tokenizer = \"bpe\", vocab_size = 96 }}\n\
         train = {{ steps = 300, batch_size = 4, optimizer = \"adamw\", lr = 0.001, seed = 3 }}\n\
         checkpoint = {{ every = 10 }}\n",
        data.display().to_string()
    );
    let cfg = write(dir.path(), "bpe.toml", &text);
    let out = dir.path().join("run");
    let mut child = start_fit(&cfg, &out, &[] as &[&str]);
    wait_for_steps(&mut child, &out, 25);
    let o = interrupt(child, "-KILL");
    assert!(!o.status.success());
    let saved = std::fs::read_to_string(out.join("tokenizer.json")).unwrap();
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(saved["kind"], "bpe");
    let base = saved["base"].as_str().unwrap().chars().count();
    assert_eq!(base + saved["merges"].as_array().unwrap().len(), 96);

    // Another corpus of the same characters: other merges, so other ids.
    std::fs::write(data.join("input.txt"), corpus(6000, 2)).unwrap();
    let o = resume(&cfg, &out, &[] as &[&str]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("vocabulary") && err.contains("tokenizer.json"),
        "{err}"
    );
    let o = trainer(&["eval", out.to_str().unwrap()]);
    assert!(
        !o.status.success() && stderr(&o).contains("vocabulary"),
        "{}",
        stderr(&o)
    );

    std::fs::write(data.join("input.txt"), &original).unwrap();
    let o = resume(&cfg, &out, &[] as &[&str]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metric_steps(&out), (1..=300).collect::<Vec<_>>());
    let o = trainer(&["eval", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}
