//! `slice-worker`: the function binary. Under the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` set) it serves
//! invocations — one task payload each, run by the same handler as the local invoker's
//! ([`slice_worker::handler`]), its successors started by `Invoke` (`Event`) on their slices' functions. Outside
//! Lambda it runs one payload given on the command line and prints the payloads of the successors it completed
//! (one JSON line each) instead of starting them: a way to run or debug one task by hand against a run's store.
//!
//! Environment: `TRAINER_STORE` (the run's Redis URL; required), `TRAINER_THREADS` (compute threads; default:
//! the CPUs this process may use — on Lambda, the function's vCPU share), `TRAINER_DILATION` (set by the emulator at a
//! time dilation D: the store's retry window and the invoke backoff last D times longer; default 1). The SDK's usual variables (`AWS_REGION`,
//! credentials, `AWS_ENDPOINT_URL_LAMBDA`) reach Lambda for successors.

use async_trait::async_trait;
use slice_worker::executor::{Outcome, TaskError, Worker};
use slice_worker::governor::Governor;
use slice_worker::handler::{self, Ended, Host, Invocation};
use slice_worker::invoker::lambda::{Backoff, LambdaClient, LambdaSettings};
use slice_worker::store::{Store, StoreUrl};
use slice_worker::task::TaskPayload;
use slice_worker::{calibrate, warm};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

// Tasks allocate and free tens of MB each; glibc's malloc hands large blocks back to the kernel at once and the
// next task faults them in again (see the trainer binary). Counted, so that each task's event says how much heap
// it held (`heap_peak_bytes`): the process keeps its peak resident set, which says only what the largest task needed.
#[global_allocator]
static ALLOC: slice_worker::alloc::Counting<mimalloc::MiMalloc> =
    slice_worker::alloc::Counting(mimalloc::MiMalloc);

/// Successor invokes one worker may have in flight.
const INVOKE_CONCURRENCY: usize = 64;

fn usage() -> &'static str {
    "usage: slice-worker PAYLOAD_JSON   (outside Lambda: run one task, e.g. '{\"run\":\"r1\",\"task\":{\"kind\":\"F\",\"step\":1,\"slice\":0,\"mb\":0},\"attempt\":1}')\n\
     environment: TRAINER_STORE=redis://… (required), TRAINER_THREADS=N (optional), TRAINER_DILATION=D (optional)\n\
     under the Lambda runtime (AWS_LAMBDA_RUNTIME_API set) it serves invocations instead"
}

/// What the worker needs from its environment, read once at start.
struct Settings {
    store: StoreUrl,
    threads: usize,
    /// How many times slower the world this worker runs in is than the one it stands for (an emulator's).
    dilation: f64,
}

fn settings() -> Result<Settings, String> {
    let store = std::env::var("TRAINER_STORE").map_err(|_| {
        "TRAINER_STORE is not set: the run's Redis URL (redis://… or rediss://…)".to_string()
    })?;
    let store = StoreUrl::parse(&store).map_err(|e| format!("TRAINER_STORE: {e}"))?;
    if !store.is_shared() {
        return Err("TRAINER_STORE=memory: a worker process needs a store other processes can reach (Redis)".into());
    }
    let threads =
        match std::env::var("TRAINER_THREADS") {
            Ok(v) => v.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("TRAINER_THREADS={v:?}: expected a positive whole number")
            })?,
            Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
    let dilation = match std::env::var("TRAINER_DILATION") {
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite() && *d >= 1.0)
            .ok_or_else(|| format!("TRAINER_DILATION={v:?}: expected a number of at least 1"))?,
        Err(_) => 1.0,
    };
    Ok(Settings {
        store,
        threads,
        dilation,
    })
}

/// The worker process as the handler's host.
struct LambdaHost {
    worker: Arc<Worker>,
    client: Option<Arc<LambdaClient>>,
    functions: Vec<String>,
}

#[async_trait]
impl Host for LambdaHost {
    /// Inline on the process's single runtime thread: the thread's CPU clock is the handler's.
    async fn execute(&self, payload: &TaskPayload) -> (Result<Outcome, TaskError>, Duration) {
        let cpu = slice_worker::cpu_clock::ThreadCpu::start();
        let result = self.worker.execute(payload).await;
        (result, cpu.elapsed())
    }

    /// A function instance runs one invocation at a time.
    fn runs_alone(&self) -> bool {
        true
    }

    async fn start(&self, payload: TaskPayload) -> Result<(), String> {
        // Run by hand outside Lambda: say what would be started, start nothing.
        let Some(client) = self.client.as_ref() else {
            println!("{}", payload.to_json());
            return Ok(());
        };
        let slice = payload.task.slice();
        let function = self
            .functions
            .get(slice)
            .ok_or_else(|| format!("the run's plan names no function for slice {slice}"))?;
        client
            .invoke_event(function, payload.stamped().to_json().as_bytes())
            .await
            .map_err(|e| e.to_string())
    }
}

/// Runs one invocation of `payload`.
async fn serve_one(
    worker: &Arc<Worker>,
    store: &Arc<dyn Store>,
    client: Option<Arc<LambdaClient>>,
    payload: TaskPayload,
    instance: &str,
    cold: bool,
) -> Ended {
    // The plan says which function runs each slice and whether to become successors; an unknown run fails here,
    // before any work, with the run named.
    let plan = match worker.plan(&payload.run).await {
        Ok(plan) => plan,
        Err(e) => {
            return Ended::Failed {
                task: payload.task.to_string(),
                reason: e.to_string(),
            }
        }
    };
    let host = LambdaHost {
        worker: worker.clone(),
        client,
        functions: plan.functions.clone(),
    };
    let invocation = Invocation {
        worker: instance.to_string(),
        cold,
        // From the sender's clock to this one: queueing, throttling retries, cold start.
        invoke: payload.since_sent(),
        become_successor: plan.become_successor,
        event_ttl: Duration::from_secs(plan.ttl_s),
        fanout_width: plan.fanout_width,
        governor: plan
            .slot_lease_ms
            .map(|ms| Governor::new(store.clone(), Duration::from_millis(ms))),
    };
    handler::run(&host, store.as_ref(), payload, invocation).await
}

/// The answer to `{"probe": true}` (a synchronous invoke after deploy): the function runs and reaches its store.
async fn probe(store: &dyn Store) -> Result<serde_json::Value, lambda_runtime::Error> {
    store
        .exists_many(&["trainer:probe".to_string()])
        .await
        .map_err(|e| format!("the store is not reachable: {e}"))?;
    Ok(serde_json::json!({
        "probe": "ok",
        "store": store.describe(),
        "threads": models::matmul::threads(),
    }))
}

/// The answer to `{"probe": {"barrier": KEY, "of": N, "wait_ms": MS}}` (a warm pool's probe, [`warm`]): this
/// instance holds until N distinct instances of its function hold one, then says which it is and whether the probe
/// started it — a task's first invocation on an instance a warm pool started is not a cold start.
async fn warm_probe(
    store: &dyn Store,
    ask: &serde_json::Value,
    instance: &str,
    cold: bool,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let probe: warm::WarmProbe = serde_json::from_value(ask.clone())
        .map_err(|e| format!("malformed warm probe {ask}: {e}"))?;
    let held = warm::hold(store, &probe, instance, cold, Duration::from_secs(600))
        .await
        .map_err(|e| format!("warm probe {}: {e}", probe.barrier))?;
    Ok(serde_json::to_value(held).unwrap_or_else(|e| unreachable!("plain struct: {e}")))
}

/// The answer to `{"probe": {"read": KEY}}` or `{"probe": {"write": KEY, "bytes": N}}`: one transfer between this
/// function and its store, timed on its clock — how the bandwidth a function of some memory gets is measured
/// (`probe_transfer` in the tests; a written key lives 10 minutes).
async fn probe_transfer(
    store: &dyn Store,
    ask: &serde_json::Value,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let started = std::time::Instant::now();
    let bytes = if let Some(key) = ask.get("read").and_then(|k| k.as_str()) {
        let value = store
            .get(key)
            .await
            .map_err(|e| format!("probe read {key}: {e}"))?
            .ok_or_else(|| format!("probe read {key}: no such key"))?;
        value.len()
    } else if let Some(key) = ask.get("write").and_then(|k| k.as_str()) {
        let n = ask
            .get("bytes")
            .and_then(|n| n.as_u64())
            .ok_or("probe write: `bytes` (a whole number) is missing")? as usize;
        let value = bytes::Bytes::from(vec![0x5a_u8; n]);
        let started = std::time::Instant::now();
        store
            .put(key, value, Duration::from_secs(600))
            .await
            .map_err(|e| format!("probe write {key}: {e}"))?;
        return Ok(serde_json::json!({
            "bytes": n,
            "ms": started.elapsed().as_secs_f64() * 1e3,
        }));
    } else {
        return Err(format!(
            "unknown probe {ask}: expected {{\"read\": KEY}} or {{\"write\": KEY, \"bytes\": N}}"
        )
        .into());
    };
    Ok(serde_json::json!({
        "bytes": bytes,
        "ms": started.elapsed().as_secs_f64() * 1e3,
    }))
}

/// The answer to a calibration probe (`{"probe": {"burn": …}}` or `{"probe": {"stamp": …}}`, [`calibrate`]).
async fn calibration_probe(
    store: &dyn Store,
    ask: &serde_json::Value,
    dilation: f64,
) -> Result<serde_json::Value, lambda_runtime::Error> {
    let probe: calibrate::Probe = serde_json::from_value(ask.clone())
        .map_err(|e| format!("malformed calibration probe {ask}: {e}"))?;
    let answer = match probe {
        calibrate::Probe::Burn {
            iterations,
            threads,
        } => serde_json::to_value(calibrate::burn(iterations, threads, dilation)),
        calibrate::Probe::Stamp { key } => {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3);
            store
                .put(
                    &key,
                    bytes::Bytes::from(unix_ms.to_string()),
                    Duration::from_secs(600),
                )
                .await
                .map_err(|e| format!("stamp {key}: {e}"))?;
            serde_json::to_value(calibrate::Stamped { unix_ms, dilation })
        }
    };
    Ok(answer.unwrap_or_else(|e| unreachable!("plain struct: {e}")))
}

async fn lambda_main(settings: Settings) -> Result<(), String> {
    let store = slice_worker::store::open_dilated(&settings.store, settings.dilation)
        .await
        .map_err(|e| e.to_string())?;
    let worker = Arc::new(Worker::new(store.clone()));
    let client = Arc::new(
        LambdaClient::new(
            &LambdaSettings::default(),
            INVOKE_CONCURRENCY,
            Backoff::default().stretched(settings.dilation),
        )
        .await,
    );
    let instance = std::env::var("AWS_LAMBDA_LOG_STREAM_NAME")
        .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
    let fresh = Arc::new(AtomicBool::new(true));
    let dilation = settings.dilation;
    let handler = lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (worker, store, client, instance, fresh) = (
                worker.clone(),
                store.clone(),
                client.clone(),
                instance.clone(),
                fresh.clone(),
            );
            async move {
                match event.payload.get("probe") {
                    Some(serde_json::Value::Bool(true)) => return probe(store.as_ref()).await,
                    Some(ask @ serde_json::Value::Object(_))
                        if ask.get("burn").is_some() || ask.get("stamp").is_some() =>
                    {
                        return calibration_probe(store.as_ref(), ask, dilation).await;
                    }
                    Some(ask @ serde_json::Value::Object(_)) if ask.get("barrier").is_some() => {
                        let cold = fresh.swap(false, Ordering::Relaxed);
                        return warm_probe(store.as_ref(), ask, &instance, cold).await;
                    }
                    Some(ask @ serde_json::Value::Object(_)) => {
                        return probe_transfer(store.as_ref(), ask).await
                    }
                    _ => {}
                }
                let payload: TaskPayload = serde_json::from_value(event.payload)
                    .map_err(|e| format!("malformed task payload: {e}"))?;
                let cold = fresh.swap(false, Ordering::Relaxed);
                let task = payload.task.to_string();
                match serve_one(&worker, &store, Some(client), payload, &instance, cold).await {
                    Ended::Done => Ok::<serde_json::Value, lambda_runtime::Error>(
                        serde_json::json!({ "task": task, "ended": "done" }),
                    ),
                    // A function error: visible in the platform's metrics; the run driver retries with a new attempt.
                    Ended::Failed { task, reason } => Err(format!("{task}: {reason}").into()),
                    Ended::Crashed => Err(format!("{task}: crashed").into()),
                }
            }
        },
    );
    lambda_runtime::run(handler)
        .await
        .map_err(|e| e.to_string())
}

async fn local_main(settings: Settings, payload: TaskPayload) -> Result<(), String> {
    let store = slice_worker::store::open(&settings.store)
        .await
        .map_err(|e| e.to_string())?;
    let worker = Arc::new(Worker::new(store.clone()));
    match serve_one(&worker, &store, None, payload, "local", true).await {
        Ended::Done => Ok(()),
        Ended::Failed { task, reason } => Err(format!("{task}: {reason}")),
        Ended::Crashed => Err("crashed".into()),
    }
}

fn main() -> ExitCode {
    slice_worker::alloc::keep_freed_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let under_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let payload = match (under_lambda, args.as_slice()) {
        (true, _) => None,
        (false, [json]) => match TaskPayload::from_json(json) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("slice-worker: {e}");
                return ExitCode::from(2);
            }
        },
        (false, _) => {
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("slice-worker: {e}");
            return ExitCode::from(2);
        }
    };
    models::matmul::set_threads(settings.threads);
    // One thread: a function instance runs one invocation at a time, and the handler's CPU clock is this thread's.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slice-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match payload {
            None => lambda_main(settings).await,
            Some(p) => local_main(settings, p).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slice-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
