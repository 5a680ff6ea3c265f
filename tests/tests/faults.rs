//! The invariant under platform faults: with containers crashing before or after their work (`fault_rate`) and
//! invocations delivered twice (`duplicate_rate`), a split run ends with the same bytes as the monolithic one, and
//! every task of the graph is fired (its last input recorded) exactly once — counted from `events.jsonl`. Fan-outs of
//! three or more run as trees of relaying invocations (`fanout_width = 2`), so a crashed head loses its relay too
//! and the driver's deadlines must recover it.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use e2e_tests::redis_server::RedisServer;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

mod common;

use common::check_events;

fn run(toml_text: &str, dir: &Path) -> Vec<u8> {
    let cfg: Config = toml::from_str(toml_text).expect("valid config");
    let out = RunDir::new(dir);
    fit(&cfg, &out, &mut Quiet, &AtomicBool::new(false))
        .unwrap_or_else(|e| panic!("{toml_text}\n{e}"));
    std::fs::read(dir.join("model.safetensors")).expect("checkpoint written")
}

const MLP: &str = r#"
model = { kind = "mlp", widths = [784, 48, 32, 10] }
data = { kind = "synthetic" }
train = { steps = 4, batch_size = 16, microbatches = MB, optimizer = "sgd", lr = 0.05, momentum = 0.9, seed = 7 }
"#;

const GPT: &str = r#"
model = { kind = "gpt", vocab = 16, context = 8, d_model = 16, n_layers = 2, n_heads = 2 }
data = { kind = "synthetic", context = 8, synthetic = { task = "tokens" } }
train = { steps = 4, batch_size = 8, microbatches = MB, optimizer = "adamw", lr = 0.003, seed = 2 }
"#;

fn faulty(
    base: &str,
    m: usize,
    plan: &str,
    store: &str,
    become_successor: bool,
    seed: u64,
) -> String {
    format!(
        "{}\n[plan]\n{plan}\nbecome = {become_successor}\n[runtime]\nstore = {store:?}\nfault_rate = 0.2\n\
         duplicate_rate = 0.2\nstall_rate = 0.05\nseed = {seed}\ntask_timeout_s = 0.25\nmax_attempts = 12\nconcurrency = 4\n\
         fanout_width = 2\n",
        base.replace("MB", &m.to_string())
    )
}

fn check(base: &str, units: usize, store: &str) {
    let dir = tempfile::tempdir().unwrap();
    let per_unit: Vec<String> = (1..units).map(|u| u.to_string()).collect();
    let (mut crashes, mut skipped, mut late, mut relayed) = (0, 0, 0, 0);
    // Every micro-batch count, split and become setting appears; not every combination (each faulty run waits
    // out a few deadlines).
    let plans = [
        "slices = 2".to_string(),
        format!("cuts = [{}]", per_unit.join(", ")),
    ];
    let mut monos = HashMap::new();
    for (m, plan, become_successor) in [(1, 0, false), (1, 1, true), (4, 0, true), (4, 1, false)] {
        let mono = monos.entry(m).or_insert_with(|| {
            run(
                &base.replace("MB", &m.to_string()),
                &dir.path().join(format!("mono-{m}")),
            )
        });
        let name = format!("faulty-{m}-{plan}-{become_successor}");
        let d = dir.path().join(&name);
        let w = run(
            &faulty(
                base,
                m,
                &plans[plan],
                store,
                become_successor,
                11 + plan as u64,
            ),
            &d,
        );
        assert!(
            w == *mono,
            "{name} on {store}: weights differ from the monolithic run"
        );
        let events = check_events(&d);
        // A stuck delivery reports after the driver's later attempt of the same task: re-ordered.
        let mut newest: HashMap<String, u32> = HashMap::new();
        for e in &events.events {
            let seen = newest.entry(e.task.to_string()).or_default();
            if e.attempt < *seen {
                late += 1;
            }
            *seen = (*seen).max(e.attempt);
        }
        relayed += events.events.iter().map(|e| e.relayed).sum::<u32>();
        let (c, s) = (events.crashes, events.skipped);
        crashes += c;
        skipped += s;
    }
    assert!(
        crashes > 0 && skipped > 0 && late > 0 && relayed > 0,
        "faults were injected ({crashes} crashes, {skipped} skipped duplicates, {late} stuck deliveries reporting \
         after their retry) into runs whose fan-outs were relayed ({relayed} tasks)"
    );
}

#[test]
fn faulty_mlp_runs_equal_the_monolithic_run_in_memory() {
    check(MLP, 3, "memory");
}

#[test]
fn faulty_gpt_runs_equal_the_monolithic_run_in_memory() {
    check(GPT, 4, "memory");
}

#[test]
fn faulty_runs_through_a_real_redis_equal_the_monolithic_run() {
    let server = RedisServer::start(&[]);
    check(GPT, 4, &server.url());
}

/// Links dropped with a reply in flight — after a fan-in call or an event append ran on the server, before its
/// answer came back — cost the run nothing: the store's retry learns that its fan-in fired (no successor waits for
/// the driver's deadline) and the driver drops the copy of an event appended twice. The deadline here is long, so a
/// lost firing would show as a retry in summary.json.
#[test]
fn replies_lost_with_dropped_links_lose_no_firing_and_count_no_event_twice() {
    let server = RedisServer::start(&[]);
    let proxy = e2e_tests::lossy_proxy::LossyProxy::start(&format!("127.0.0.1:{}", server.port));
    let dir = tempfile::tempdir().unwrap();
    let base = MLP.replace("steps = 4", "steps = 40").replace("MB", "4");
    let mono = run(&base, &dir.path().join("mono"));
    let cfg = format!(
        "{base}\n[plan]\nslices = 3\n[runtime]\nstore = \"redis://{}\"\ntask_timeout_s = 120\nconcurrency = 4\n",
        proxy.addr()
    );
    let split = dir.path().join("split");
    let losses = ["EVALSHA", "XADD", "EVALSHA", "XADD", "EVALSHA", "XADD"];
    let lost = std::thread::scope(|s| {
        let running = s.spawn(|| run(&cfg, &split));
        // Not before training: the run's start-up profile also appends events and records fan-ins.
        let metrics = split.join("metrics.jsonl");
        while std::fs::metadata(&metrics).map_or(true, |m| m.len() == 0) && !running.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        for (i, pattern) in losses.iter().enumerate() {
            proxy.lose_next_reply_to(pattern);
            while proxy.replies_lost() == i && !running.is_finished() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        assert!(
            running.join().unwrap() == mono,
            "weights differ from the monolithic run"
        );
        proxy.replies_lost()
    });
    assert_eq!(
        lost,
        losses.len(),
        "the run ended before every reply was lost"
    );
    check_events(&split);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(split.join("summary.json")).unwrap()).unwrap();
    let runtime = &summary["runtime"];
    // A lost firing leaves its task due with no report that started it: an orphan (or, undetected, a late retry).
    // A speculative copy of a slowed input can also make one — its report (fired nothing: the set had fired) may
    // be read before the slow original's — and a task slowed by a lost reply can pass its deadline while its copy
    // is out (loss-aware speculation copies early in a run that looks lossy), so orphans and late retries beyond
    // the copies are what would show a lost firing.
    assert!(
        runtime["orphans_started"].as_u64().unwrap() + runtime["late_retries"].as_u64().unwrap()
            <= runtime["speculative_copies"].as_u64().unwrap(),
        "a firing was lost: {runtime}"
    );
    assert_eq!(runtime["fired_twice"], 0, "{runtime}");
    assert!(
        runtime["report_copies"].as_u64().unwrap_or(0) >= 1,
        "{runtime}"
    );
}
