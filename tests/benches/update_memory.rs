//! The sharded update under a memory cap, through the Lambda emulator: the MLP 784-4096-4096-4096-10 with AdamW,
//! M = 4, planned under `plan.memory_cap_mb = 512` (which refused it while the update held all M gradients), trained
//! for a few steps by `slice-worker` processes whose functions have the planner's memory — the emulator kills an
//! instance whose resident set passes it. Reports each function's measured peak RSS against the planner's predicted
//! peak (and each task kind's), whether the weights' bytes equal the in-process run's, and the bytes each step moves
//! for K ∈ {1, 2, 4} update shards (local invoker, in-memory store).
//! Usage: experiments/update_memory/run.sh (builds the release binaries this needs, then runs this bench).

use coordinator::config::Config;
use coordinator::planner::search::PlannedSlice;
use e2e_tests::lambda_emulator::{cargo_binary, worker_binary, Emulator, Faults, FunctionSpec};
use e2e_tests::redis_server::RedisServer;
use slice_worker::event::{Status, TaskEvent};
use slice_worker::task::TaskKind;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const MLP: &str = r#"
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
/// The issue's test for a task kind's prediction: within 15 % of the measurement or above it, and never below it by
/// more than the runtime allowance (`platform.runtime_mb`, which every function's memory adds on top).
fn verdict(predicted_mb: f64, measured_mb: f64, runtime_mb: f64) -> String {
    if measured_mb <= predicted_mb * 1.15 {
        "ok: within 15 % or above".into()
    } else if measured_mb - predicted_mb <= runtime_mb {
        format!(
            "ok: below by {:.1} MB, inside the {runtime_mb:.0} MB runtime allowance",
            measured_mb - predicted_mb
        )
    } else {
        format!("UNDER by {:.1} MB", measured_mb - predicted_mb)
    }
}

fn per_kind_table(events: &Path, slices: &[PlannedSlice], runtime_mb: f64) -> Vec<String> {
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
        "| slice | task kind | tasks measured | predicted task peak | measured heap peak (max) | measured / predicted | heap at start (max) | prediction |".to_string(),
        "| --- | --- | --- | --- | --- | --- | --- | --- |".to_string(),
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
                "| {i} | {kind:?} | {n} | {predicted:.1} MB | {mb:.1} MB | {:.2} | {:.1} MB | {} |",
                mb / predicted,
                start as f64 / 1e6,
                verdict(predicted, mb, runtime_mb)
            ));
        }
    }
    md
}

/// What the tasks of one kind read over a run, and how many of them found their weights in the container's cache.
#[derive(Clone, Copy, Default)]
struct KindBytes {
    bytes_in: u64,
    tasks: usize,
    cached: usize,
}

fn bytes_in_by_kind(events: &Path) -> HashMap<TaskKind, KindBytes> {
    let text = String::from_utf8_lossy(&read(events)).to_string();
    let mut by = HashMap::<TaskKind, KindBytes>::new();
    for e in text
        .lines()
        .filter_map(|l| serde_json::from_str::<TaskEvent>(l).ok())
    {
        if e.status != Status::Ran {
            continue;
        }
        let slot = by.entry(e.task.kind()).or_default();
        slot.bytes_in += e.bytes_in;
        slot.tasks += 1;
        slot.cached += usize::from(e.weights_cached);
    }
    by
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One model planned under `cap_mb` (with `plan` lines beside the cap) and trained through the emulator at the
/// planner's memory; returns the report's lines. `base` also runs in process, for the bytes.
struct Case<'a> {
    name: &'a str,
    base: String,
    plan: &'a str,
    cap_mb: u32,
}

struct Binaries {
    trainer: std::path::PathBuf,
    worker: std::path::PathBuf,
}

fn emulator_case(case: &Case, bin: &Binaries, tmp: &Path) -> (Vec<String>, Vec<u8>, Vec<usize>) {
    let dir = tmp.join(case.name);
    std::fs::create_dir_all(&dir).expect("case folder");
    let mut md = vec![format!("### {}\n", case.name)];
    let mono_cfg = dir.join("mono.toml");
    std::fs::write(&mono_cfg, &case.base).expect("config");
    assert!(
        fit(&bin.trainer, &mono_cfg, &dir.join("mono")),
        "{}: in-process run",
        case.name
    );
    let mono = read(&dir.join("mono/model.safetensors"));

    // The planner's choice under the cap, for Lambda functions.
    let planned_text = format!(
        "{}[plan]\nmemory_cap_mb = {}\n{}[platform]\nkind = \"lambda\"\n",
        case.base, case.cap_mb, case.plan
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
        "Planned under memory_cap_mb = {} ({}): cuts {cuts:?}, update shards {shards:?}, weight cache {cache} \
         (`plan.weight_cache` is one number: the run keeps the fewest versions any slice was planned for)\n",
        case.cap_mb,
        if case.plan.is_empty() { "slices auto".to_string() } else { case.plan.trim().replace('\n', ", ") }
    ));
    let redis = RedisServer::start(&[]);
    // The names the run gives its functions (`lambda.function_per_slice`, the default prefix).
    let names: Vec<String> = chosen
        .slices
        .iter()
        .enumerate()
        .map(|(i, s)| format!("trainer-s{i}-{}mb", s.memory_mb))
        .collect();
    let lambda = Emulator::start(
        names
            .iter()
            .zip(&chosen.slices)
            .map(|(n, s)| FunctionSpec {
                name: n.clone(),
                binary: bin.worker.clone(),
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
        "{}[plan]\ncuts = {cuts:?}\nupdate_shards = {shards:?}\nweight_cache = {cache}\n\
         [runtime]\ninvoker = \"lambda\"\nstore = {:?}\nconcurrency = 4\ntask_timeout_s = 300\n\
         [lambda]\nmemory_mb = {}\nfunction_per_slice = true\nendpoint_url = {:?}\nregion = \"us-east-1\"\n",
        case.base,
        redis.url(),
        case.cap_mb,
        lambda.url()
    );
    let split_cfg = dir.join("split.toml");
    std::fs::write(&split_cfg, &split_text).expect("config");
    let ok = fit(&bin.trainer, &split_cfg, &dir.join("split"));
    let stats = lambda.stats();
    let same = ok && read(&dir.join("split/model.safetensors")) == mono;
    md.push(format!(
        "Through the emulator: run {}, {} instance(s) killed for memory, weights {} the in-process run's\n",
        if ok { "finished" } else { "FAILED" },
        stats.out_of_memory,
        if same { "byte-equal to" } else { "DIFFERENT from" }
    ));
    md.push(
        "| slice | units | function | update shards | cached versions | predicted peak | measured peak RSS | measured / predicted |"
            .into(),
    );
    md.push("| --- | --- | --- | --- | --- | --- | --- | --- |".into());
    for (i, (name, s)) in names.iter().zip(&chosen.slices).enumerate() {
        let rss = stats.peak_rss_kib.get(name).copied().unwrap_or(0) as f64 / 1024.0;
        md.push(format!(
            "| {i} | [{}, {}) | {} MB | {} | {} | {:.0} MB | {rss:.0} MB | {:.2} |",
            s.units[0],
            s.units[1],
            s.memory_mb,
            s.shards,
            s.weight_cache,
            s.predicted_peak_mb,
            rss / s.predicted_peak_mb
        ));
    }
    drop(lambda);
    md.push(String::new());
    if ok {
        md.extend(per_kind_table(
            &dir.join("split/events.jsonl"),
            &chosen.slices,
            cfg.platform.runtime_mb,
        ));
    }
    md.push(String::new());
    (md, mono, cuts)
}

fn main() {
    let out_dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/update_memory").into()
        });
    let bin = Binaries {
        trainer: cargo_binary("trainer")
            .expect("target/release/trainer: cargo build --release -p trainer"),
        worker: worker_binary()
            .expect("target/release/slice-worker: cargo build --release -p slice-worker"),
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/shakespeare_gpt.toml"
    );
    let mut gpt = std::fs::read_to_string(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    // The example as configured (clipping at 1.0), a few steps; checkpoints and evaluation off the short run.
    for (line, short) in [
        ("steps = 2000", "steps = 3"),
        ("eval_every = 250", "eval_every = 0"),
        ("microbatches = 1", "microbatches = 4"),
        ("\nevery = 500", "\nevery = 0"),
    ] {
        assert!(
            gpt.contains(line),
            "{example} no longer has `{line}`: update this bench"
        );
        gpt = gpt.replacen(line, short, 1);
    }
    let cases = [
        Case {
            name: "MLP 784-4096-4096-4096-10, AdamW, M = 4",
            base: MLP.into(),
            plan: "",
            cap_mb: CAP_MB,
        },
        Case {
            name: "MLP 784-4096-4096-4096-10, AdamW, M = 4, two slices",
            base: MLP.into(),
            plan: "slices = 2\n",
            cap_mb: CAP_MB,
        },
        Case {
            name: "char-GPT (examples/shakespeare_gpt.toml), M = 4, three slices",
            base: gpt,
            plan: "slices = 3\n",
            cap_mb: CAP_MB,
        },
    ];
    let mut md = Vec::new();
    let mut mlp = None;
    for case in &cases {
        let (lines, mono, cuts) = emulator_case(case, &bin, tmp.path());
        println!("{}", lines.join("\n"));
        md.extend(lines);
        mlp.get_or_insert((mono, cuts));
    }
    let (mono, cuts) = mlp.unwrap_or_default();

    // Bytes moved per step, K = 1, 2, 4 (local invoker, in-memory store, the first case's cuts).
    md.push(
        "### Bytes per step by update shards (first case's cuts, local invoker, in-memory store)\n"
            .into(),
    );
    md.push(
        "| update shards | bytes in per step | bytes out per step | tasks per step | in: forwards (weights from cache) | in: backwards | in: updates | weights equal in-process |"
            .into(),
    );
    md.push("| --- | --- | --- | --- | --- | --- | --- | --- |".into());
    for k in [1usize, 2, 4] {
        let text = format!("{MLP}[plan]\ncuts = {cuts:?}\nupdate_shards = {k}\n");
        let path = tmp.path().join(format!("k{k}.toml"));
        std::fs::write(&path, &text).expect("config");
        let out = tmp.path().join(format!("k{k}"));
        assert!(fit(&bin.trainer, &path, &out), "K = {k}");
        let summary: serde_json::Value =
            serde_json::from_slice(&read(&out.join("summary.json"))).expect("summary");
        let rt = &summary["runtime"];
        let steps = 3.0;
        let per = |f: &str| rt[f].as_f64().unwrap_or(f64::NAN) / steps;
        let kinds = bytes_in_by_kind(&out.join("events.jsonl"));
        let kind_in = |k: TaskKind| {
            kinds
                .get(&k)
                .map_or(0.0, |b| b.bytes_in as f64 / steps / 1e6)
        };
        let forwards = kinds.get(&TaskKind::Forward).copied().unwrap_or_default();
        md.push(format!(
            "| {k} | {:.1} MB | {:.1} MB | {:.0} | {:.1} MB ({} of {}) | {:.1} MB | {:.1} MB | {} |",
            per("bytes_in") / 1e6,
            per("bytes_out") / 1e6,
            per("tasks_ran"),
            kind_in(TaskKind::Forward),
            forwards.cached,
            forwards.tasks,
            kind_in(TaskKind::Backward),
            kind_in(TaskKind::Update) + kind_in(TaskKind::Reduce),
            read(&out.join("model.safetensors")) == mono
        ));
    }
    std::fs::create_dir_all(&out_dir).expect("output folder");
    std::fs::write(format!("{out_dir}/results.md"), md.join("\n") + "\n").expect("results.md");
    println!("{}", md.join("\n"));
}
