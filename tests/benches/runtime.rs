//! Benchmark of the distributed runtime (the runtime issue's numbers), against references measured in the same run:
//!
//! 1. **Store throughput**: our `RedisStore` moving values of 64 KiB, 1 MiB and 4 MiB (sequential SET, then GET)
//!    vs `redis-benchmark` at the same value size on the same server, with one client (like one task) and with
//!    as many clients as the run's concurrency.
//! 2. **Scheduling overhead** per task: the protocol's own round trips — the idempotence probe, the fan-in record
//!    (claim), the completion event — plus an invocation (spawn under the concurrency limit), excluding compute
//!    and tensor transfer; median over many tasks, on the in-memory store and on Redis.
//! 3. **Step time**: an MLP of 4 units (784-1024-1024-1024-10), batch 128, trained monolithically and split into
//!    S = 4 slices with M = 8 micro-batches through the local invoker and a real Redis; the split step vs the
//!    monolithic step plus the transfer floor (bytes the run moved ÷ `redis-benchmark` throughput at 4 MiB).
//!
//! Prints a Markdown report and one JSON line (`--json FILE` appends it). `--steps N` sets the steps per run.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::{Quiet, Summary};
use e2e_tests::redis_server::RedisServer;
use slice_worker::event::TaskEvent;
use slice_worker::store::{Keys, MemoryStore, RedisStore, Store};
use slice_worker::task::TaskId;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

// The allocator the `trainer` binary (and so every task it runs) uses: without it, each multi-MiB value the Redis
// client packs lands in a fresh mmap and pays a page fault per 4 KiB, which alone cut SET throughput by ~3× here.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TTL: Duration = Duration::from_secs(600);
const MIB: usize = 1 << 20;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// GB/s of our client: `n` sequential SETs of `size` bytes, then `n` GETs.
async fn our_throughput(store: &dyn Store, size: usize, n: usize) -> (f64, f64) {
    let value = bytes::Bytes::from(vec![7u8; size]);
    let keys: Vec<String> = (0..4).map(|i| format!("bench:tp:{i}")).collect();
    for k in &keys {
        store.put(k, value.clone(), TTL).await.expect("SET");
    }
    let t0 = Instant::now();
    for i in 0..n {
        store
            .put(&keys[i % keys.len()], value.clone(), TTL)
            .await
            .expect("SET");
    }
    let set = (n * size) as f64 / t0.elapsed().as_secs_f64() / 1e9;
    let t0 = Instant::now();
    for i in 0..n {
        let v = store.get(&keys[i % keys.len()]).await.expect("GET");
        assert_eq!(v.map(|v| v.len()), Some(size));
    }
    let get = (n * size) as f64 / t0.elapsed().as_secs_f64() / 1e9;
    store.delete(&keys).await.expect("DEL");
    (set, get)
}

/// GB/s of `redis-benchmark` SET and GET at `size` bytes with `clients` connections.
fn redis_benchmark(port: u16, size: usize, n: usize, clients: usize) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            "set,get",
            "-d",
            &size.to_string(),
        ])
        .args(["-n", &n.to_string(), "-c", &clients.to_string(), "--csv"])
        .output()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(&format!("\"{name}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|v| v.trim_matches('"').parse().ok())
            .unwrap_or_else(|| panic!("no {name} row in redis-benchmark output:\n{text}"))
    };
    (
        rps("SET") * size as f64 / 1e9,
        rps("GET") * size as f64 / 1e9,
    )
}

/// Median microseconds of one task's scheduling: fan-in record (claim), event, invoke — and, with `probe`, the
/// idempotence probe every task makes first.
async fn scheduling_overhead(store: Arc<dyn Store>, n: usize, probe: bool) -> f64 {
    let keys = Keys::new("bench-sched").expect("valid run id");
    let permits = Arc::new(tokio::sync::Semaphore::new(4));
    let event = TaskEvent {
        task: TaskId::B {
            step: 12,
            slice: 2,
            mb: 5,
        },
        attempt: 1,
        worker: "slice-2#7".into(),
        cold: false,
        became: false,
        status: slice_worker::event::Status::Ran,
        fired: vec![TaskId::B {
            step: 12,
            slice: 1,
            mb: 5,
        }],
        relayed: 0,
        weights_cached: true,
        bytes_in: 4_259_840,
        bytes_out: 4_259_840,
        invoke_ms: 0.012,
        fetch_ms: 1.5,
        compute_ms: 20.25,
        store_ms: 1.75,
        run_ms: 23.5,
        cpu_ms: 21.0,
        start_unix_ms: 0.0,
        heap_start_bytes: 0,
        heap_peak_bytes: 0,
        grad_norm: None,
        loss: None,
        report_id: 7,
    };
    let fields = event.to_fields();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let task = TaskId::F {
            step: i as u64 + 1,
            slice: 1,
            mb: 0,
        };
        if probe {
            let probe = [
                keys.done(1, i as u64 + 1, 0),
                keys.activation(i as u64 + 1, 1, 0),
            ];
            store.exists_many(&probe).await.expect("probe");
        }
        let set = keys.dependencies(&task.to_string());
        let fired = store
            .complete_dependency(&set, "F(1,0,0)", 1, TTL)
            .await
            .expect("fan-in");
        assert!(fired);
        store
            .append_event(&keys.events(), &fields, TTL)
            .await
            .expect("event");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let permits = permits.clone();
        tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            let _ = tx.send(());
        });
        rx.await.expect("invoked task ran");
        samples.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    store.delete_prefix(keys.prefix()).await.expect("cleanup");
    median(&mut samples)
}

/// Milliseconds per step to move a run's bytes at `redis-benchmark`'s 4 MiB SET and GET rates.
fn floor_of(run: &Summary, steps: u64, rates: &[(usize, f64, f64)]) -> f64 {
    let (_, set4, get4) = rates[2];
    let r = run
        .runtime
        .as_ref()
        .expect("split runs report runtime counters");
    (r.bytes_in as f64 / (get4 * 1e9) + r.bytes_out as f64 / (set4 * 1e9)) * 1e3 / steps as f64
}

fn train(toml_text: &str, dir: &std::path::Path) -> Summary {
    let cfg: Config = toml::from_str(toml_text).expect("valid config");
    fit(&cfg, &RunDir::new(dir), &mut Quiet, &AtomicBool::new(false)).expect("run")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let steps: u64 = opt("--steps").and_then(|s| s.parse().ok()).unwrap_or(20);
    let server = RedisServer::start(&[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let redis: Arc<dyn Store> = Arc::new(
        rt.block_on(RedisStore::connect(&server.url()))
            .expect("redis"),
    );
    let mut report = String::new();
    let mut json = serde_json::Map::new();
    let mut line = |s: String| {
        println!("{s}");
        report.push_str(&s);
        report.push('\n');
    };

    line("## Store throughput (GB/s; ours: one connection, sequential)\n".into());
    line("| value | ours SET | ours GET | redis-benchmark SET/GET, 1 client | ours / rb (SET, GET) | redis-benchmark SET/GET, 4 clients |".into());
    line("|---|---|---|---|---|---|".into());
    let mut rates = Vec::new();
    for size in [64 << 10, MIB, 4 * MIB] {
        let n = (512 * MIB / size).clamp(64, 2000);
        let (s, g) = rt.block_on(our_throughput(redis.as_ref(), size, n));
        let (rs1, rg1) = redis_benchmark(server.port, size, n, 1);
        let (rs4, rg4) = redis_benchmark(server.port, size, n, 4);
        line(format!(
            "| {} KiB | {s:.2} | {g:.2} | {rs1:.2} / {rg1:.2} | {:.2}, {:.2} | {rs4:.2} / {rg4:.2} |",
            size >> 10,
            s / rs1,
            g / rg1
        ));
        json.insert(
            format!("throughput_{}k", size >> 10),
            serde_json::json!({"ours_set": s, "ours_get": g, "rb1_set": rs1, "rb1_get": rg1, "rb4_set": rs4, "rb4_get": rg4}),
        );
        rates.push((size, rs1, rg1));
    }

    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    line(
        "\n## Scheduling overhead per task (µs, median of 5000; excludes compute and tensor transfer)\n\n\
         | store | claim + event + invoke | with the idempotence probe |\n|---|---|---|"
            .into(),
    );
    for (name, store) in [("memory", memory), ("Redis", redis.clone())] {
        let bare = rt.block_on(scheduling_overhead(store.clone(), 5000, false));
        let probed = rt.block_on(scheduling_overhead(store, 5000, true));
        line(format!("| {name} | {bare:.1} | {probed:.1} |"));
        json.insert(format!("sched_us_{name}"), bare.into());
        json.insert(format!("sched_us_{name}_probe"), probed.into());
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let base = format!(
        "model = {{ kind = \"mlp\", widths = [784, 1024, 1024, 1024, 10] }}\n\
         data = {{ kind = \"synthetic\" }}\n\
         train = {{ steps = {steps}, batch_size = 128, microbatches = 8, optimizer = \"sgd\", lr = 0.01, \
         momentum = 0.9, seed = 1, eval_samples = 64 }}\n"
    );
    let mono = train(&base, &dir.path().join("mono"));
    let split_cfg = format!(
        "{base}[plan]\nslices = 4\n[runtime]\nstore = {:?}\n",
        server.url()
    );
    let split_dir = dir.path().join("split");
    let split = train(&split_cfg, &split_dir);
    let cached = train(
        &split_cfg.replace("slices = 4\n", "slices = 4\nrecompute = false\n"),
        &dir.path().join("split-cached"),
    );
    let cached_ratio = cached.step_ms_p50 / (mono.step_ms_p50 + floor_of(&cached, steps, &rates));
    let rt_stats = split
        .runtime
        .clone()
        .expect("split runs report runtime counters");
    let events: Vec<TaskEvent> = std::fs::read_to_string(split_dir.join("events.jsonl"))
        .expect("events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect();
    let fetch_s: f64 = events.iter().map(|e| e.fetch_ms).sum::<f64>() / 1e3;
    let store_s: f64 = events.iter().map(|e| e.store_ms).sum::<f64>() / 1e3;
    let (_, set4, get4) = rates[2];
    let per_step_in = rt_stats.bytes_in as f64 / steps as f64;
    let per_step_out = rt_stats.bytes_out as f64 / steps as f64;
    let floor_ms = floor_of(&split, steps, &rates);
    let ratio = split.step_ms_p50 / (mono.step_ms_p50 + floor_ms);
    let run_get = rt_stats.bytes_in as f64 / fetch_s / 1e9;
    let run_set = rt_stats.bytes_out as f64 / store_s / 1e9;
    line(format!(
        "\n## Step time: MLP 784-1024-1024-1024-10, batch 128, {steps} steps\n\n\
         | run | step p50 ms |\n|---|---|\n\
         | monolithic (1 process) | {:.1} |\n\
         | split S = 4, M = 8, local invoker, Redis (recompute) | {:.1} |\n\
         | … with stored caches (`recompute = false`) | {:.1} (÷ its floor: {cached_ratio:.2}) |\n\n\
         Moved per step: {:.1} MB in, {:.1} MB out; transfer floor at redis-benchmark 4 MiB rates: {floor_ms:.1} ms.\n\
         Split / (monolithic + floor) = **{ratio:.2}** (goal ≤ 1.15).\n\n\
         Redis rates inside the run (bytes ÷ time tasks spent reading / writing, incl. probes and fan-in records): \
         GET {run_get:.2} GB/s ({:.0} % of redis-benchmark), SET {run_set:.2} GB/s ({:.0} %).\n\
         Tasks: {} ran, {} became, weight-cache hits {}.",
        mono.step_ms_p50,
        split.step_ms_p50,
        cached.step_ms_p50,
        per_step_in / 1e6,
        per_step_out / 1e6,
        100.0 * run_get / get4,
        100.0 * run_set / set4,
        rt_stats.tasks_ran,
        rt_stats.became,
        rt_stats.weights_cache_hits,
    ));
    json.insert("steps".into(), steps.into());
    json.insert("mono_step_ms_p50".into(), mono.step_ms_p50.into());
    json.insert("split_step_ms_p50".into(), split.step_ms_p50.into());
    json.insert("bytes_in_per_step".into(), per_step_in.into());
    json.insert("bytes_out_per_step".into(), per_step_out.into());
    json.insert("floor_ms".into(), floor_ms.into());
    json.insert("ratio_to_floor".into(), ratio.into());
    json.insert("cached_step_ms_p50".into(), cached.step_ms_p50.into());
    json.insert("cached_ratio_to_floor".into(), cached_ratio.into());
    json.insert("run_get_gbs".into(), run_get.into());
    json.insert("run_set_gbs".into(), run_set.into());
    let text = serde_json::Value::Object(json).to_string();
    if let Some(path) = opt("--json") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("--json file opens");
        writeln!(f, "{text}").expect("--json file written");
    }
    if let Some(path) = opt("--markdown") {
        std::fs::write(&path, report).expect("--markdown file written");
    }
}
