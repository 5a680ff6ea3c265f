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
//!    monolithic step plus the transfer floor (bytes the run moved ÷ `redis-benchmark` throughput at 4 MiB), in
//!    `--reps N` repetitions (default 3), each with the floor's rates measured beside its own runs; the median.
//! 4. **Where the time goes**: per step, the CPU the host had (cores × wall) against what the run's process and
//!    `redis-server` used (`/proc`), and the tasks' own clocks split into compute, tensor reads, tensor writes, the
//!    idempotence probe and the fan-in records — for the monolithic run, the split with one task at a time (a
//!    task's reads and writes with nothing competing but Redis), and the split as it runs (4 at once).
//! 5. **A Redis that keeps freed pages**: the split and its floor again on a second `redis-server` whose jemalloc
//!    keeps freed pages (`KEEP_FREED_PAGES`) — the setting the README recommends for a Redis of one's own — beside
//!    the one with Redis's defaults.
//!
//! Prints a Markdown report and one JSON line (`--json FILE` appends it). `--steps N` sets the steps per run.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::{Quiet, Summary};
use e2e_tests::redis_server::{RedisServer, KEEP_FREED_PAGES};
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
        probe_ms: 0.25,
        record_ms: 0.5,
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
fn floor_of(run: &Summary, steps: u64, (set4, get4): (f64, f64)) -> f64 {
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

/// CPU milliseconds process `pid` has used so far (user + system, from `/proc/PID/stat`).
fn cpu_ms(pid: u32) -> f64 {
    lambda_emulator::instance::process_cpu_ns(pid) as f64 / 1e6
}

/// One repetition of the step comparison: the floor's rates measured beside its own runs.
struct Rep {
    floor_rates: (f64, f64),
    floor_ms: f64,
    kept_floor_rates: (f64, f64),
    kept_floor_ms: f64,
    kept_ratio: f64,
    kept: Summary,
    kept_acc: Account,
    cached_floor_ms: f64,
    ratio: f64,
    cached_ratio: f64,
    mono: Summary,
    mono_acc: Account,
    split: Summary,
    split_acc: Account,
    cached: Summary,
    cached_acc: Account,
}

/// `1.23, 1.45, …`
fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The host's cores.
fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// One run's time per step, from its wall clock, the two processes' CPU clocks and its tasks' events: where the
/// time of a split step goes.
#[derive(Default)]
struct Account {
    wall_ms: f64,
    step_p50_ms: f64,
    process_cpu_ms: f64,
    redis_cpu_ms: f64,
    tasks: f64,
    run_ms: f64,
    task_cpu_ms: f64,
    work_ms: f64,
    read_ms: f64,
    write_ms: f64,
    probe_ms: f64,
    record_ms: f64,
    bytes_in: f64,
    bytes_out: f64,
}

/// Trains `toml_text` and accounts for its time per step.
fn train_accounted(
    toml_text: &str,
    dir: &std::path::Path,
    steps: u64,
    redis_pid: u32,
) -> (Summary, Account) {
    let me = std::process::id();
    let (cpu0, redis0, t0) = (cpu_ms(me), cpu_ms(redis_pid), Instant::now());
    let summary = train(toml_text, dir);
    let per = |x: f64| x / steps as f64;
    let mut a = Account {
        wall_ms: per(t0.elapsed().as_secs_f64() * 1e3),
        step_p50_ms: summary.step_ms_p50,
        process_cpu_ms: per(cpu_ms(me) - cpu0),
        redis_cpu_ms: per(cpu_ms(redis_pid) - redis0),
        ..Account::default()
    };
    let Ok(text) = std::fs::read_to_string(dir.join("events.jsonl")) else {
        return (summary, a); // an in-process run has no tasks
    };
    for e in text
        .lines()
        .map(|l| serde_json::from_str::<TaskEvent>(l).expect("event line"))
    {
        a.tasks += per(1.0);
        a.run_ms += per(e.run_ms);
        a.task_cpu_ms += per(e.cpu_ms);
        a.work_ms += per(e.run_ms - e.fetch_ms - e.store_ms);
        a.read_ms += per(e.fetch_ms - e.probe_ms);
        a.write_ms += per(e.store_ms - e.record_ms);
        a.probe_ms += per(e.probe_ms);
        a.record_ms += per(e.record_ms);
        a.bytes_in += per(e.bytes_in as f64);
        a.bytes_out += per(e.bytes_out as f64);
    }
    (summary, a)
}

/// One row of the accounting table: what it shows of a run.
type Measure = fn(&Account) -> f64;

/// The Markdown table of where the time of each accounted run goes, one column per run.
fn account_table(runs: &[(&str, &Account)]) -> String {
    let mut t = format!(
        "| per step (ms; averaged over the run, set-up and evaluation included) | {} |\n|---|{}\n",
        runs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" | "),
        "---|".repeat(runs.len())
    );
    let rows: [(&str, Measure); 14] = [
        ("step p50 (the run's own clock)", |a| a.step_p50_ms),
        ("wall (run ÷ steps)", |a| a.wall_ms),
        ("cores × wall (the CPU there was)", |a| cores() * a.wall_ms),
        (
            "CPU of the run's process (tasks, driver, I/O threads)",
            |a| a.process_cpu_ms,
        ),
        ("CPU of redis-server", |a| a.redis_cpu_ms),
        ("idle: cores × wall − both", |a| {
            cores() * a.wall_ms - a.process_cpu_ms - a.redis_cpu_ms
        }),
        ("tasks per step", |a| a.tasks),
        ("Σ task wall (run_ms)", |a| a.run_ms),
        ("Σ task CPU (cpu_ms, the handler thread)", |a| {
            a.task_cpu_ms
        }),
        ("… of which: compute, encode, decode (wall)", |a| {
            a.work_ms
        }),
        ("… tensor reads (wall)", |a| a.read_ms),
        ("… tensor writes and clean-up (wall)", |a| a.write_ms),
        ("… idempotence probe (wall)", |a| a.probe_ms),
        ("… fan-in records (wall)", |a| a.record_ms),
    ];
    for (name, f) in rows {
        t += &format!(
            "| {name} | {} |\n",
            runs.iter()
                .map(|(_, a)| format!("{:.1}", f(a)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let rate = |bytes: f64, ms: f64| if ms > 0.0 { bytes / ms / 1e6 } else { 0.0 };
    t += &format!(
        "| tensor read rate inside tasks (GB/s) | {} |\n| tensor write rate inside tasks (GB/s) | {} |\n",
        runs.iter().map(|(_, a)| format!("{:.2}", rate(a.bytes_in, a.read_ms))).collect::<Vec<_>>().join(" | "),
        runs.iter().map(|(_, a)| format!("{:.2}", rate(a.bytes_out, a.write_ms))).collect::<Vec<_>>().join(" | ")
    );
    t
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
    let reps: usize = opt("--reps")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let server = RedisServer::start(&[]);
    let kept_server = RedisServer::start_keeping_freed_pages(&[]);
    // Redis built against a prefixed jemalloc (its bundled copy) reads `JE_MALLOC_CONF`, not `MALLOC_CONF`: say so
    // rather than compare two servers that are the same.
    let stats = Command::new("redis-cli")
        .args([
            "-p",
            &kept_server.port.to_string(),
            "memory",
            "malloc-stats",
        ])
        .output()
        .expect("redis-cli runs (apt-get install redis-tools)");
    let kept_applies = String::from_utf8_lossy(&stats.stdout).contains("opt.dirty_decay_ms: -1");
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
    let pid = server.pid();
    let split_cfg = format!(
        "{base}[plan]\nslices = 4\n[runtime]\nstore = {:?}\n",
        server.url()
    );
    let cached_cfg = split_cfg.replace("slices = 4\n", "slices = 4\nrecompute = false\n");
    let kept_cfg = split_cfg.replace(&server.url(), &kept_server.url());
    // This host's pace moves between runs (a shared VM: redis-benchmark's 4 MiB rates moved by 1.5x between two
    // runs of this bench), so each repetition measures the floor's rates beside its own runs and has its own ratio.
    let mut reps: Vec<Rep> = (0..reps)
        .map(|r| {
            let floor_rates = redis_benchmark(server.port, 4 * MIB, 128, 1);
            let kept_floor_rates = redis_benchmark(kept_server.port, 4 * MIB, 128, 1);
            let at = |name: &str| dir.path().join(format!("{name}-{r}"));
            let (mono, mono_acc) = train_accounted(&base, &at("mono"), steps, pid);
            let (split, split_acc) = train_accounted(&split_cfg, &at("split"), steps, pid);
            let (kept, kept_acc) =
                train_accounted(&kept_cfg, &at("kept"), steps, kept_server.pid());
            let (cached, cached_acc) = train_accounted(&cached_cfg, &at("cached"), steps, pid);
            let floor_ms = floor_of(&split, steps, floor_rates);
            let kept_floor_ms = floor_of(&kept, steps, kept_floor_rates);
            let cached_floor_ms = floor_of(&cached, steps, floor_rates);
            Rep {
                kept_ratio: kept.step_ms_p50 / (mono.step_ms_p50 + kept_floor_ms),
                kept_floor_rates,
                kept_floor_ms,
                kept,
                kept_acc,
                ratio: split.step_ms_p50 / (mono.step_ms_p50 + floor_ms),
                cached_ratio: cached.step_ms_p50 / (mono.step_ms_p50 + cached_floor_ms),
                floor_rates,
                floor_ms,
                cached_floor_ms,
                mono,
                mono_acc,
                split,
                split_acc,
                cached,
                cached_acc,
            }
        })
        .collect();
    // The same split with one task at a time: each task's reads and writes without other tasks competing for the
    // two cores (Redis still has one of them).
    let (_, alone_acc) = train_accounted(
        &format!("{split_cfg}concurrency = 1\n"),
        &dir.path().join("split-alone"),
        steps,
        pid,
    );
    let mut rep_rows = String::new();
    for (i, r) in reps.iter().enumerate() {
        rep_rows += &format!(
            "| {} | {:.2} / {:.2} | {:.1} | {:.1} | {:.1} | **{:.2}** | {:.2} / {:.2} | {:.1} | {:.1} | **{:.2}** | {:.1} | {:.1} | {:.2} |\n",
            i + 1,
            r.floor_rates.0,
            r.floor_rates.1,
            r.mono.step_ms_p50,
            r.split.step_ms_p50,
            r.floor_ms,
            r.ratio,
            r.kept_floor_rates.0,
            r.kept_floor_rates.1,
            r.kept.step_ms_p50,
            r.kept_floor_ms,
            r.kept_ratio,
            r.cached.step_ms_p50,
            r.cached_floor_ms,
            r.cached_ratio
        );
    }
    let cached_ratios: Vec<f64> = reps.iter().map(|r| r.cached_ratio).collect();
    let cached_ratio = median(&mut cached_ratios.clone());
    let kept_ratios: Vec<f64> = reps.iter().map(|r| r.kept_ratio).collect();
    let kept_ratio = median(&mut kept_ratios.clone());
    reps.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
    let all_ratios: Vec<f64> = reps.iter().map(|r| r.ratio).collect();
    let Rep {
        mono,
        mono_acc,
        split,
        split_acc,
        cached,
        cached_acc,
        kept_acc,
        floor_rates: (set4, get4),
        floor_ms,
        ratio,
        ..
    } = reps.swap_remove(reps.len() / 2);
    let rt_stats = split
        .runtime
        .clone()
        .expect("split runs report runtime counters");
    let per_step_in = rt_stats.bytes_in as f64 / steps as f64;
    let per_step_out = rt_stats.bytes_out as f64 / steps as f64;
    let tensor_rate = |bytes: f64, ms: f64| bytes / ms / 1e6;
    let (run_get, run_set) = (
        tensor_rate(split_acc.bytes_in, split_acc.read_ms),
        tensor_rate(split_acc.bytes_out, split_acc.write_ms),
    );
    let (alone_get, alone_set) = (
        tensor_rate(alone_acc.bytes_in, alone_acc.read_ms),
        tensor_rate(alone_acc.bytes_out, alone_acc.write_ms),
    );
    if !kept_applies {
        line("\n**The second server did not take `MALLOC_CONF` (its jemalloc reports another dirty decay): its \
              columns measure Redis's defaults.**"
            .into());
    }
    line(format!(
        "\n## Step time: MLP 784-1024-1024-1024-10, batch 128, {steps} steps, {} repetitions\n\n\
         Each repetition measures redis-benchmark's 4 MiB SET / GET rates (1 client) on two servers — Redis's \
         defaults, and jemalloc keeping freed pages (`MALLOC_CONF={KEEP_FREED_PAGES}`) — then trains the \
         monolithic run, the split (S = 4, M = 8, local invoker, Redis, recompute) on each server, and the split \
         with stored caches (`recompute = false`, defaults); a split's floor is the bytes it moved at its server's \
         rates.\n\n\
         | rep | rb 4 MiB SET / GET GB/s | monolithic p50 ms | split p50 ms | floor ms | split ÷ (mono + floor) | pages kept: rb GB/s | split p50 ms | floor ms | ÷ (mono + floor) | stored caches p50 ms | its floor ms | ÷ (mono + its floor) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n{rep_rows}\n\
         Median split / (monolithic + floor) = **{ratio:.2}** (all: {}; goal ≤ 1.15); on the Redis keeping freed \
         pages **{kept_ratio:.2}** (all: {}); with stored caches {cached_ratio:.2} (all: {}).\n\n\
         The median repetition: monolithic {:.1} ms, split {:.1} ms, stored caches {:.1} ms; moved per step \
         {:.1} MB in, {:.1} MB out; floor {floor_ms:.1} ms.\n\n\
         Tensor rates inside tasks (bytes ÷ time in tensor GET/MGET and SET, probes and fan-in records apart): \
         one task at a time GET {alone_get:.2} GB/s ({:.0} % of redis-benchmark at 4 MiB), SET {alone_set:.2} GB/s \
         ({:.0} %); four at once GET {run_get:.2} GB/s ({:.0} %), SET {run_set:.2} GB/s ({:.0} %).\n\
         Tasks: {} ran, {} became, weight-cache hits {}.\n\n\
         ### Where the time goes (the median repetition; one task at a time: a run of its own)\n\n{}",
        all_ratios.len(),
        fmt_list(&all_ratios),
        fmt_list(&kept_ratios),
        fmt_list(&cached_ratios),
        mono.step_ms_p50,
        split.step_ms_p50,
        cached.step_ms_p50,
        per_step_in / 1e6,
        per_step_out / 1e6,
        100.0 * alone_get / get4,
        100.0 * alone_set / set4,
        100.0 * run_get / get4,
        100.0 * run_set / set4,
        rt_stats.tasks_ran,
        rt_stats.became,
        rt_stats.weights_cache_hits,
        account_table(&[
            ("monolithic", &mono_acc),
            ("split, 1 task at a time", &alone_acc),
            ("split, 4 at once", &split_acc),
            ("split, Redis keeping freed pages", &kept_acc),
            ("split, stored caches", &cached_acc),
        ]),
    ));
    for (name, a) in [
        ("mono", &mono_acc),
        ("alone", &alone_acc),
        ("split", &split_acc),
        ("kept", &kept_acc),
        ("cached", &cached_acc),
    ] {
        json.insert(
            format!("account_{name}"),
            serde_json::json!({
                "wall_ms": a.wall_ms, "step_p50_ms": a.step_p50_ms, "process_cpu_ms": a.process_cpu_ms,
                "redis_cpu_ms": a.redis_cpu_ms, "tasks": a.tasks, "run_ms": a.run_ms, "task_cpu_ms": a.task_cpu_ms,
                "work_ms": a.work_ms, "read_ms": a.read_ms, "write_ms": a.write_ms, "probe_ms": a.probe_ms,
                "record_ms": a.record_ms, "bytes_in": a.bytes_in, "bytes_out": a.bytes_out,
            }),
        );
    }
    json.insert("alone_get_gbs".into(), alone_get.into());
    json.insert("alone_set_gbs".into(), alone_set.into());
    json.insert("steps".into(), steps.into());
    json.insert("mono_step_ms_p50".into(), mono.step_ms_p50.into());
    json.insert("split_step_ms_p50".into(), split.step_ms_p50.into());
    json.insert("bytes_in_per_step".into(), per_step_in.into());
    json.insert("bytes_out_per_step".into(), per_step_out.into());
    json.insert("floor_ms".into(), floor_ms.into());
    json.insert("ratio_to_floor".into(), ratio.into());
    json.insert("cached_step_ms_p50".into(), cached.step_ms_p50.into());
    json.insert("cached_ratio_to_floor".into(), cached_ratio.into());
    json.insert("kept_ratio_to_floor".into(), kept_ratio.into());
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
