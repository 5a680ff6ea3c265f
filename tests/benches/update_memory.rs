//! The sharded update under a memory cap, through the Lambda emulator: the MLP 784-4096-4096-4096-10 with AdamW,
//! M = 4, planned under `plan.memory_cap_mb = 512` (which refused it while the update held all M gradients), trained
//! for a few steps by `slice-worker` processes whose functions have the planner's memory — the emulator kills an
//! instance whose resident set passes it. Reports each function's measured peak RSS against the planner's predicted
//! peak (and each task kind's), whether the weights' bytes equal the in-process run's, and the bytes each step moves
//! for K ∈ {1, 2, 4} update shards (local invoker, in-memory store).
//! Usage: experiments/update_memory/run.sh (builds the release binaries this needs, then runs this bench).

use coordinator::config::Config;
use e2e_tests::lambda_emulator::{cargo_binary, worker_binary, Emulator, Faults, FunctionSpec};
use e2e_tests::redis_server::RedisServer;
use coordinator::planner::search::PlannedSlice;
use slice_worker::event::{Status, TaskEvent};
use slice_worker::task::TaskKind;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const BASE: &str = r#"
model = { kind = "mlp", widths = [784, 4096, 4096, 4096, 10] }
data = { kind = "mnist" }
train = { steps = 3, batch_size = 32, microbatches = 4, optimizer = "adamw", lr = 0.001, seed = 1 }
"#;

const CAP_MB: u32 = 512;

fn fit(trainer: &Path, cfg: &Path, out: &Path) -> bool {
    std::process::Command::new(trainer)
        .arg("fit")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("trainer runs")
        .success()
}

/// Each task kind's measured heap (the workers' `heap_peak_bytes`, the most any one task of that kind held beyond
/// what its process held when it started) against the planner's task peak, per slice; and the heap a warm worker
/// held at a task's start (runtime and cached weight versions) against the cached versions the planner counts.
fn per_kind_table(events: &Path, slices: &[PlannedSlice]) -> Vec<String> {
    let text = String::from_utf8_lossy(&read(events)).to_string();
    let mut peak: HashMap<(usize, TaskKind), (u64, u64, usize)> = HashMap::new();
    for line in text.lines() {
        let Ok(e) = serde_json::from_str::<TaskEvent>(line) else {
            continue;
        };
        if e.status != Status::Ran || e.heap_peak_bytes == 0 {
            continue;
        }
        let slot = peak.entry((e.task.slice(), e.task.kind())).or_default();
        slot.0 = slot.0.max(e.heap_peak_bytes);
        slot.1 = slot.1.max(e.heap_start_bytes);
        slot.2 += 1;
    }
    let mut md = vec![
        "| slice | task kind | tasks measured | predicted task peak | measured heap peak (max) | measured / predicted | heap at start (max) |".to_string(),
        "| --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for (i, s) in slices.iter().enumerate() {
        let t = &s.task_peaks_mb;
        for (kind, predicted) in [
            (TaskKind::Forward, t.forward),
            (TaskKind::Backward, t.backward),
            (TaskKind::Update, t.update),
            (TaskKind::Reduce, t.reduce),
        ] {
            let Some(&(bytes, start, n)) = peak.get(&(i, kind)) else {
                continue;
            };
            let mb = bytes as f64 / 1e6;
            md.push(format!(
                "| {i} | {kind:?} | {n} | {predicted:.1} MB | {mb:.1} MB | {:.2} | {:.1} MB |",
                mb / predicted,
                start as f64 / 1e6
            ));
        }
    }
    md
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn main() {
    let out_dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "experiments/update_memory".into());
    let trainer =
        cargo_binary("trainer").expect("target/release/trainer: cargo build --release -p trainer");
    let worker = worker_binary()
        .expect("target/release/slice-worker: cargo build --release -p slice-worker");
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut md = Vec::new();

    // The in-process reference.
    let mono_cfg = tmp.path().join("mono.toml");
    std::fs::write(&mono_cfg, BASE).expect("config");
    assert!(
        fit(&trainer, &mono_cfg, &tmp.path().join("mono")),
        "in-process run"
    );
    let mono = read(&tmp.path().join("mono/model.safetensors"));

    // The planner's choice under the cap, for Lambda functions of at most 512 MB.
    let planned_text = format!(
        "{BASE}[plan]\nslices = \"auto\"\nmemory_cap_mb = {CAP_MB}\n[platform]\nkind = \"lambda\"\n"
    );
    let cfg: Config = toml::from_str(&planned_text).expect("config parses");
    let (_, outcome) = coordinator::profiling::plan_config(&cfg, None).expect("plan");
    let chosen = &outcome.chosen;
    let cuts = chosen.cuts();
    let shards: Vec<usize> = chosen.slices.iter().map(|s| s.shards).collect();
    let cache = chosen
        .slices
        .iter()
        .map(|s| s.weight_cache)
        .min()
        .unwrap_or(0);
    md.push(format!(
        "Planned under memory_cap_mb = {CAP_MB}: cuts {cuts:?}, update shards {shards:?}, weight cache {cache}\n"
    ));

    let redis = RedisServer::start(&[]);
    let names: Vec<String> = (0..chosen.slices.len())
        .map(|i| format!("trainer-s{i}"))
        .collect();
    let lambda = Emulator::start(
        names
            .iter()
            .zip(&chosen.slices)
            .map(|(n, s)| FunctionSpec {
                name: n.clone(),
                binary: worker.clone(),
                env: vec![
                    ("TRAINER_STORE".into(), redis.url()),
                    ("TRAINER_THREADS".into(), "1".into()),
                ],
                memory_mb: s.memory_mb,
                timeout: Duration::from_secs(300),
                concurrency: 2,
                async_retries: 2,
            })
            .collect(),
        Faults::default(),
    )
    .expect("emulator");
    let split_text = format!(
        "{BASE}[plan]\ncuts = {cuts:?}\nupdate_shards = {shards:?}\nweight_cache = {cache}\n\
         [runtime]\ninvoker = \"lambda\"\nstore = {:?}\nconcurrency = 4\ntask_timeout_s = 300\n\
         [lambda]\nmemory_mb = {CAP_MB}\nfunction_per_slice = true\nendpoint_url = {:?}\nregion = \"us-east-1\"\n",
        redis.url(),
        lambda.url()
    );
    let split_cfg = tmp.path().join("split.toml");
    std::fs::write(&split_cfg, &split_text).expect("config");
    let ok = fit(&trainer, &split_cfg, &tmp.path().join("split"));
    let stats = lambda.stats();
    let same = ok && read(&tmp.path().join("split/model.safetensors")) == mono;
    md.push(format!(
        "Through the emulator: run {}, {} instance(s) killed for memory, weights {} the in-process run's\n",
        if ok { "finished" } else { "FAILED" },
        stats.out_of_memory,
        if same { "byte-equal to" } else { "DIFFERENT from" }
    ));
    md.push(
        "| slice | units | function | update shards | predicted peak | forward | backward | update shard | measured peak RSS | measured / predicted |"
            .into(),
    );
    md.push("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |".into());
    for (i, (name, s)) in names.iter().zip(&chosen.slices).enumerate() {
        let rss = stats.peak_rss_kib.get(name).copied().unwrap_or(0) as f64 / 1024.0;
        let t = &s.task_peaks_mb;
        md.push(format!(
            "| {i} | [{}, {}) | {} MB | {} | {:.0} MB | {:.0} | {:.0} | {:.0} | {rss:.0} MB | {:.2} |",
            s.units[0],
            s.units[1],
            s.memory_mb,
            s.shards,
            s.predicted_peak_mb,
            t.forward,
            t.backward,
            t.update,
            rss / s.predicted_peak_mb
        ));
    }
    drop(lambda);
    md.push(String::new());
    md.extend(per_kind_table(&tmp.path().join("split/events.jsonl"), &chosen.slices));

    // Bytes moved per step, K = 1, 2, 4 (local invoker, in-memory store, the same cuts).
    md.push("\n| update shards | bytes in per step | bytes out per step | tasks per step | weights equal in-process |".into());
    md.push("| --- | --- | --- | --- | --- |".into());
    for k in [1usize, 2, 4] {
        let text = format!("{BASE}[plan]\ncuts = {cuts:?}\nupdate_shards = {k}\n");
        let path = tmp.path().join(format!("k{k}.toml"));
        std::fs::write(&path, &text).expect("config");
        let out = tmp.path().join(format!("k{k}"));
        assert!(fit(&trainer, &path, &out), "K = {k}");
        let summary: serde_json::Value =
            serde_json::from_slice(&read(&out.join("summary.json"))).expect("summary");
        let rt = &summary["runtime"];
        let steps = 3.0;
        let per = |f: &str| rt[f].as_f64().unwrap_or(f64::NAN) / steps;
        md.push(format!(
            "| {k} | {:.1} MB | {:.1} MB | {:.0} | {} |",
            per("bytes_in") / 1e6,
            per("bytes_out") / 1e6,
            per("tasks_ran"),
            read(&out.join("model.safetensors")) == mono
        ));
    }
    std::fs::create_dir_all(&out_dir).expect("output folder");
    std::fs::write(format!("{out_dir}/results.md"), md.join("\n") + "\n").expect("results.md");
    println!("{}", md.join("\n"));
}
