//! A local AWS Lambda for tests: the Invoke API that `aws-sdk-lambda` calls and the Runtime API that
//! `lambda_runtime` polls, with real worker processes behind it — N per function, started on demand, each with
//! `AWS_LAMBDA_RUNTIME_API` pointing at its own path prefix (`http://127.0.0.1:PORT/{function}/{instance}`; AWS
//! sets a bare `host:port`, which `lambda_runtime` cannot combine with a path).
//!
//! It reproduces the behaviours a run must survive, each as AWS documents it (sources in the comments), plus seeded
//! fault injection: throttling, duplicate asynchronous deliveries, handler errors, worker crashes mid-call and
//! timeouts. Each function's memory is a limit, as on Lambda: an instance whose resident memory passes it is killed
//! (`Runtime.OutOfMemory`). Test code, not product code: `cargo lambda watch` differs from AWS on most of these and
//! hangs on a crashed worker, so tests do not build on it.
//!
//! *Why one long file, for now*: it is one concept — the emulated control plane and the instances it runs — and the
//! emulator issue (23) turns it into a program users run, with its own crate and modules; splitting it here first
//! would be undone there.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Request size limits ("Lambda quotas", AWS Lambda developer guide): 6 MB synchronous request and response,
/// 1 MB asynchronous request.
const MAX_SYNC: usize = 6 * 1024 * 1024;
const MAX_EVENT: usize = 1024 * 1024;

/// How often an instance's resident memory is compared with its function's memory. A burst shorter than this can
/// slip through; Lambda's own limit is a cgroup's and catches every page.
pub const MEMORY_POLL: Duration = Duration::from_millis(5);

/// One function.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    pub name: String,
    /// The worker binary (built by cargo for the tests' profile: see [`worker_binary`]).
    pub binary: PathBuf,
    /// Environment of every instance, besides the Lambda runtime's own variables.
    pub env: Vec<(String, String)>,
    /// The function's memory: an instance whose resident set (`VmRSS`, sampled every [`MEMORY_POLL`]) passes it is
    /// killed, as Lambda kills a function that runs out of memory.
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Instances at most (the function's concurrency).
    pub concurrency: usize,
    /// Retries of a failed asynchronous invocation (AWS default: 2, "Error handling and automatic retries").
    pub async_retries: u32,
}

/// Seeded fault injection; each rate is a probability per occasion.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub seed: u64,
    /// An `Invoke` answered 429 `TooManyRequestsException` (the caller should back off and retry).
    pub throttle_rate: f64,
    /// An `Event` queued twice (asynchronous delivery is at-least-once).
    pub duplicate_rate: f64,
    /// A handler's successful response turned into a function error (the work is done; the platform retries).
    pub error_rate: f64,
    /// An instance killed (SIGKILL) within 20 ms of receiving an invocation.
    pub crash_rate: f64,
    /// An instance stopped (SIGSTOP) on receiving an invocation, so that the function times out.
    pub timeout_rate: f64,
}

/// What happened, counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub invokes: u64,
    pub throttled: u64,
    pub duplicated: u64,
    pub function_errors: u64,
    pub crashes: u64,
    /// Instances frozen (SIGSTOP) by `timeout_rate`; each ends as a timeout once its function's timeout passes.
    pub frozen: u64,
    pub timeouts: u64,
    pub async_retries: u64,
    pub instances_started: u64,
    /// Instances killed for passing their function's memory.
    pub out_of_memory: u64,
    /// Peak resident memory of any instance, per function, KiB (`VmHWM`).
    pub peak_rss_kib: HashMap<String, u64>,
}

#[derive(Default)]
struct Counters {
    invokes: AtomicU64,
    throttled: AtomicU64,
    duplicated: AtomicU64,
    function_errors: AtomicU64,
    crashes: AtomicU64,
    frozen: AtomicU64,
    timeouts: AtomicU64,
    async_retries: AtomicU64,
    instances_started: AtomicU64,
    out_of_memory: AtomicU64,
    /// Occasions fault decisions were drawn for.
    draws: AtomicU64,
}

/// How an invocation ended, for its caller.
enum Outcome {
    Ok(Bytes),
    /// The error body (`errorType`, `errorMessage`).
    FunctionError(Bytes),
}

struct Job {
    body: Bytes,
    /// A synchronous caller waiting for the outcome; `None` for `Event`.
    reply: Option<oneshot::Sender<Outcome>>,
    retries_left: u32,
}

struct InFlight {
    job: Job,
    function: String,
    instance: usize,
}

struct Instance {
    pid: u32,
    kill: Option<oneshot::Sender<()>>,
    /// Whether it has asked for an invocation yet (finished its init).
    polled: bool,
    /// Killed for passing its function's memory.
    out_of_memory: bool,
}

struct Function {
    spec: FunctionSpec,
    queue: mpsc::UnboundedSender<Job>,
    waiting: tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>,
    instances: Mutex<HashMap<usize, Instance>>,
    idle: AtomicUsize,
    next_instance: AtomicUsize,
    peak_rss_kib: AtomicU64,
}

struct State {
    port: u16,
    functions: HashMap<String, Arc<Function>>,
    faults: Faults,
    counters: Counters,
    inflight: Mutex<HashMap<String, InFlight>>,
    next_request: AtomicU64,
    logs: PathBuf,
}

/// The emulator: serves until dropped, then kills its instances.
pub struct Emulator {
    url: String,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
    _logs: tempfile::TempDir,
}

/// A workspace binary cargo built beside the running test executable, for the same profile
/// (`target/{profile}/{name}`; `cargo test --workspace` builds `slice-worker` and `trainer` for their own tests).
pub fn cargo_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/{profile}/deps/{test}-{hash} → target/{profile}/{name}
    let dir = exe.parent()?.parent()?;
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    bin.exists().then_some(bin)
}

/// The function binary.
pub fn worker_binary() -> Option<PathBuf> {
    cargo_binary("slice-worker")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Emulator {
    pub fn start(functions: Vec<FunctionSpec>, faults: Faults) -> std::io::Result<Emulator> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        // Instance stderr goes to one file each: in a temporary folder, or in $LAMBDA_EMULATOR_LOGS to keep them.
        let logs = tempfile::tempdir()?;
        let log_dir = match std::env::var_os("LAMBDA_EMULATOR_LOGS") {
            Some(dir) => {
                std::fs::create_dir_all(&dir)?;
                PathBuf::from(dir)
            }
            None => logs.path().to_path_buf(),
        };
        let functions = functions
            .into_iter()
            .map(|spec| {
                let (tx, rx) = mpsc::unbounded_channel();
                let f = Function {
                    spec: spec.clone(),
                    queue: tx,
                    waiting: tokio::sync::Mutex::new(rx),
                    instances: Mutex::new(HashMap::new()),
                    idle: AtomicUsize::new(0),
                    next_instance: AtomicUsize::new(0),
                    peak_rss_kib: AtomicU64::new(0),
                };
                (spec.name, Arc::new(f))
            })
            .collect();
        let state = Arc::new(State {
            port,
            functions,
            faults,
            counters: Counters::default(),
            inflight: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            logs: log_dir,
        });
        let st = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let service = hyper::service::service_fn(move |req| route(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Emulator {
            url: format!("http://127.0.0.1:{port}"),
            state,
            runtime: Some(runtime),
            _logs: logs,
        })
    }

    /// The endpoint to give the SDK (`endpoint_url`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where instance `i` of `function` writes its stderr.
    pub fn log_path(&self, function: &str, i: usize) -> PathBuf {
        self.state.logs.join(format!("{function}-{i}.log"))
    }

    pub fn stats(&self) -> Stats {
        let c = &self.state.counters;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for f in self.state.functions.values() {
            f.sample_rss();
        }
        Stats {
            invokes: n(&c.invokes),
            throttled: n(&c.throttled),
            duplicated: n(&c.duplicated),
            function_errors: n(&c.function_errors),
            crashes: n(&c.crashes),
            frozen: n(&c.frozen),
            timeouts: n(&c.timeouts),
            async_retries: n(&c.async_retries),
            instances_started: n(&c.instances_started),
            out_of_memory: n(&c.out_of_memory),
            peak_rss_kib: self
                .state
                .functions
                .iter()
                .map(|(k, f)| (k.clone(), f.peak_rss_kib.load(Ordering::Relaxed)))
                .collect(),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        for f in self.state.functions.values() {
            for (_, inst) in lock(&f.instances).drain() {
                kill_pid(inst.pid, libc::SIGKILL);
            }
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

fn kill_pid(pid: u32, signal: i32) {
    // SAFETY: sending a signal to a process id we started.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// A `kB` field of `/proc/{pid}/status`: `VmHWM` (peak resident set) or `VmRSS` (resident set).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// Kills instance `i` once its resident memory passes its function's (checked every [`MEMORY_POLL`] while it lives).
async fn enforce_memory(state: Arc<State>, f: Arc<Function>, i: usize, pid: u32) {
    let limit_kib = u64::from(f.spec.memory_mb) * 1024;
    loop {
        tokio::time::sleep(MEMORY_POLL).await;
        let Some(kib) = status_kib(pid, "VmRSS:") else {
            return; // gone
        };
        if kib <= limit_kib {
            continue;
        }
        let mut instances = lock(&f.instances);
        let Some(inst) = instances.get_mut(&i) else {
            return;
        };
        inst.out_of_memory = true;
        f.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
        state.counters.out_of_memory.fetch_add(1, Ordering::Relaxed);
        kill_pid(pid, libc::SIGKILL);
        return;
    }
}

impl Function {
    fn sample_rss(&self) {
        for inst in lock(&self.instances).values() {
            if let Some(kib) = peak_rss_kib(inst.pid) {
                self.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
            }
        }
    }
}

impl State {
    /// A fault decision: true with probability `rate` (a hash of the seed and a counter).
    fn draw(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let n = self.counters.draws.fetch_add(1, Ordering::Relaxed);
        let mut x = self.faults.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - rate
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// An error as Lambda's REST-JSON API sends it: the status, the `x-amzn-ErrorType` header the SDK reads the code
/// from, and a JSON body with the message ("Invoke", Lambda API reference: Errors).
fn aws_error(status: StatusCode, kind: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "Type": "User", "message": message, "Reason": kind });
    let mut r = reply(status, body.to_string());
    let h = r.headers_mut();
    h.insert(
        "x-amzn-ErrorType",
        hyper::header::HeaderValue::from_str(kind)
            .unwrap_or_else(|_| hyper::header::HeaderValue::from_static("ServiceException")),
    );
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn route(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Reply, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let r = match parts.as_slice() {
        ["2015-03-31", "functions", name, "invocations"] if method == hyper::Method::POST => {
            let name = name.rsplit(':').next().unwrap_or(name).to_string();
            invoke(state, &name, req).await
        }
        [function, instance, "2018-06-01", "runtime", rest @ ..] => {
            let function = function.to_string();
            let instance: usize = instance.parse().unwrap_or(usize::MAX);
            match (method.as_str(), rest) {
                ("GET", ["invocation", "next"]) => next(state, &function, instance).await,
                ("POST", ["invocation", id, "response"]) => {
                    let id = id.to_string();
                    let body = read_body(req).await;
                    respond(&state, &id, Ok(body)).await
                }
                ("POST", ["invocation", id, "error"]) => {
                    let id = id.to_string();
                    let body = read_body(req).await;
                    respond(&state, &id, Err(("Unhandled".into(), body))).await
                }
                ("POST", ["init", "error"]) => reply(StatusCode::ACCEPTED, "{}"),
                _ => reply(StatusCode::NOT_FOUND, "unknown runtime API path"),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "unknown path"),
    };
    Ok(r)
}

async fn read_body(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// `POST /2015-03-31/functions/{name}/invocations` ("Invoke", Lambda API reference).
async fn invoke(state: Arc<State>, name: &str, req: Request<Incoming>) -> Reply {
    state.counters.invokes.fetch_add(1, Ordering::Relaxed);
    let Some(f) = state.functions.get(name).cloned() else {
        // Unknown function: 404 ResourceNotFoundException.
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    };
    let kind = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    let body = read_body(req).await;
    let limit = if kind == "Event" { MAX_EVENT } else { MAX_SYNC };
    if body.len() > limit {
        // Over the payload quota: 413 RequestTooLargeException.
        return aws_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!("Request must be smaller than {limit} bytes for the {kind} invocation type"),
        );
    }
    if state.draw(state.faults.throttle_rate) {
        state.counters.throttled.fetch_add(1, Ordering::Relaxed);
        return aws_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate Exceeded.",
        );
    }
    match kind.as_str() {
        // Asynchronous: queued, 202 with an empty body ("Invoking functions asynchronously").
        "Event" => {
            let copies = if state.draw(state.faults.duplicate_rate) {
                state.counters.duplicated.fetch_add(1, Ordering::Relaxed);
                2
            } else {
                1
            };
            for _ in 0..copies {
                enqueue(
                    &state,
                    &f,
                    Job {
                        body: body.clone(),
                        reply: None,
                        retries_left: f.spec.async_retries,
                    },
                );
            }
            reply(StatusCode::ACCEPTED, Bytes::new())
        }
        "DryRun" => reply(StatusCode::NO_CONTENT, Bytes::new()),
        _ => {
            // Synchronous beyond the function's concurrency: 429 (no queue for synchronous calls).
            let live = lock(&f.instances).len();
            if live >= f.spec.concurrency && f.idle.load(Ordering::Relaxed) == 0 {
                state.counters.throttled.fetch_add(1, Ordering::Relaxed);
                return aws_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                );
            }
            let (tx, rx) = oneshot::channel();
            enqueue(
                &state,
                &f,
                Job {
                    body,
                    reply: Some(tx),
                    retries_left: 0,
                },
            );
            match rx.await {
                Ok(Outcome::Ok(body)) if body.len() > MAX_SYNC => function_error(
                    Bytes::from(format!("{{\"errorMessage\":\"Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_SYNC} bytes).\",\"errorType\":\"Function.ResponseSizeTooLarge\"}}", body.len())),
                ),
                Ok(Outcome::Ok(body)) => {
                    let mut r = reply(StatusCode::OK, body);
                    r.headers_mut().insert("x-amz-executed-version", hyper::header::HeaderValue::from_static("$LATEST"));
                    r
                }
                Ok(Outcome::FunctionError(body)) => function_error(body),
                Err(_) => aws_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", "invocation lost"),
            }
        }
    }
}

/// A function error on a synchronous call: HTTP 200 with `X-Amz-Function-Error` ("Invoke": "If there is an error
/// in the function, the response is 200 with the error in the payload and the X-Amz-Function-Error header").
fn function_error(body: Bytes) -> Reply {
    let mut r = reply(StatusCode::OK, body);
    r.headers_mut().insert(
        "x-amz-function-error",
        hyper::header::HeaderValue::from_static("Unhandled"),
    );
    r
}

/// Queues a job and starts an instance if none is idle and the function may have more.
fn enqueue(state: &Arc<State>, f: &Arc<Function>, job: Job) {
    let _ = f.queue.send(job);
    let live = lock(&f.instances).len();
    if f.idle.load(Ordering::Relaxed) == 0 && live < f.spec.concurrency {
        spawn_instance(state, f);
    }
}

fn spawn_instance(state: &Arc<State>, f: &Arc<Function>) {
    let i = f.next_instance.fetch_add(1, Ordering::Relaxed);
    let spec = &f.spec;
    let log = std::fs::File::create(state.logs.join(format!("{}-{i}.log", spec.name)));
    let mut cmd = tokio::process::Command::new(&spec.binary);
    cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // The Runtime API of this instance, and the variables the Lambda runtime sets ("Defined runtime
        // environment variables", AWS Lambda developer guide).
        .env(
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{}/{}/{i}", state.port, spec.name),
        )
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_mb.to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("{}#{i}", spec.name))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "emulator")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .env(
            "AWS_ENDPOINT_URL_LAMBDA",
            format!("http://127.0.0.1:{}", state.port),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    match log {
        Ok(file) => cmd.stderr(file),
        Err(_) => cmd.stderr(std::process::Stdio::null()),
    };
    let Ok(mut child) = cmd.spawn() else {
        return;
    };
    state
        .counters
        .instances_started
        .fetch_add(1, Ordering::Relaxed);
    let pid = child.id().unwrap_or(0);
    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    lock(&f.instances).insert(
        i,
        Instance {
            pid,
            kill: Some(kill_tx),
            polled: false,
            out_of_memory: false,
        },
    );
    tokio::spawn(enforce_memory(state.clone(), f.clone(), i, pid));
    let (state, f) = (state.clone(), f.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = child.wait() => {}
            _ = kill_rx => { let _ = child.kill().await; }
        }
        instance_gone(&state, &f, i).await;
    });
}

/// Instance `i` exited or was killed: whatever it was running fails with `Runtime.ExitError` ("Troubleshoot
/// invocation issues": the runtime exited without providing a reason) — or `Runtime.OutOfMemory` when the emulator
/// killed it for its memory (the error Lambda reports for a function past its memory size, with the same "signal:
/// killed" message) — and a fresh instance serves what is queued.
async fn instance_gone(state: &Arc<State>, f: &Arc<Function>, i: usize) {
    let gone = lock(&f.instances).remove(&i);
    let initialised = gone.as_ref().is_some_and(|x| x.polled);
    let out_of_memory = gone.as_ref().is_some_and(|x| x.out_of_memory);
    if !initialised {
        // It died in its init: the invocation that started it fails with `Runtime.InitError` (and, if
        // asynchronous, is retried) instead of starting instance after instance. (If another instance is
        // waiting for work, it holds the queue and takes the job itself.)
        let job = f
            .waiting
            .try_lock()
            .ok()
            .and_then(|mut q| q.try_recv().ok());
        if let Some(job) = job {
            fail(
                state,
                f,
                job,
                "Runtime.InitError",
                "the runtime exited during init",
            );
        }
        return;
    }
    let orphaned: Vec<(String, InFlight)> = {
        let mut inflight = lock(&state.inflight);
        let ids: Vec<String> = inflight
            .iter()
            .filter(|(_, j)| j.function == f.spec.name && j.instance == i)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| inflight.remove(&id).map(|j| (id, j)))
            .collect()
    };
    let kind = if out_of_memory {
        "Runtime.OutOfMemory"
    } else {
        "Runtime.ExitError"
    };
    for (_, job) in orphaned {
        fail(
            state,
            f,
            job.job,
            kind,
            "RequestId: Error: Runtime exited with error: signal: killed",
        );
    }
    if f.idle.load(Ordering::Relaxed) == 0 && lock(&f.instances).len() < f.spec.concurrency {
        spawn_instance(state, f);
    }
}

/// A failed invocation: a synchronous caller gets the function error; an asynchronous one is retried while it
/// has retries left ("Error handling and automatic retries": twice, after one and two minutes — here 100 ms and
/// 200 ms).
fn fail(state: &Arc<State>, f: &Arc<Function>, mut job: Job, kind: &str, message: &str) {
    state
        .counters
        .function_errors
        .fetch_add(1, Ordering::Relaxed);
    let body =
        Bytes::from(serde_json::json!({ "errorType": kind, "errorMessage": message }).to_string());
    if let Some(tx) = job.reply.take() {
        let _ = tx.send(Outcome::FunctionError(body));
        return;
    }
    if job.retries_left == 0 {
        return;
    }
    job.retries_left -= 1;
    state.counters.async_retries.fetch_add(1, Ordering::Relaxed);
    let delay = Duration::from_millis(100 * u64::from(f.spec.async_retries - job.retries_left));
    let (state, f) = (state.clone(), f.clone());
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        enqueue(&state, &f, job);
    });
}

/// One instance waiting for work, counted in its function's `idle` for as long as it lives.
struct Idle<'a>(&'a AtomicUsize);

impl<'a> Idle<'a> {
    fn new(count: &'a AtomicUsize) -> Idle<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Idle(count)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET …/runtime/invocation/next`: the instance's long poll for its next event.
async fn next(state: Arc<State>, function: &str, i: usize) -> Reply {
    let Some(f) = state.functions.get(function).cloned() else {
        return reply(StatusCode::NOT_FOUND, "unknown function");
    };
    let pid = lock(&f.instances).get_mut(&i).map(|x| {
        x.polled = true;
        x.pid
    });
    if let Some(pid) = pid {
        if let Some(kib) = peak_rss_kib(pid) {
            f.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
        }
    }
    // Counted idle while it waits — also when the wait ends by the connection closing (a killed instance: the
    // server drops this future), or the count would keep the emulator from replacing dead instances.
    let waiting = Idle::new(&f.idle);
    let job = f.waiting.lock().await.recv().await;
    drop(waiting);
    let Some(job) = job else {
        return reply(StatusCode::GONE, "shutting down");
    };
    // The instance may have died while it waited: give the job to another.
    if !lock(&f.instances).contains_key(&i) {
        let _ = f.queue.send(job);
        return reply(StatusCode::GONE, "instance gone");
    }
    let id = format!(
        "req-{:08}",
        state.next_request.fetch_add(1, Ordering::Relaxed)
    );
    let body = job.body.clone();
    lock(&state.inflight).insert(
        id.clone(),
        InFlight {
            job,
            function: f.spec.name.clone(),
            instance: i,
        },
    );
    // The function's timeout: the invocation fails and the instance is replaced ("Configure function timeout").
    {
        let (state, f, id) = (state.clone(), f.clone(), id.clone());
        let timeout = f.spec.timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let timed_out = lock(&state.inflight).remove(&id);
            if let Some(job) = timed_out {
                state.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                if let Some(kill) = lock(&f.instances)
                    .get_mut(&job.instance)
                    .and_then(|x| x.kill.take())
                {
                    let _ = kill.send(());
                }
                let message = format!("Task timed out after {:.2} seconds", timeout.as_secs_f64());
                fail(&state, &f, job.job, "Sandbox.Timedout", &message);
            }
        });
    }
    let pid = lock(&f.instances).get(&i).map(|x| x.pid);
    if let Some(pid) = pid {
        if state.draw(state.faults.crash_rate) {
            state.counters.crashes.fetch_add(1, Ordering::Relaxed);
            let wait = Duration::from_millis(u64::from(
                state.next_request.load(Ordering::Relaxed) as u32 % 20,
            ));
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                kill_pid(pid, libc::SIGKILL);
            });
        } else if state.draw(state.faults.timeout_rate) {
            // Frozen until the timeout kills it (SIGKILL works on a stopped process).
            state.counters.frozen.fetch_add(1, Ordering::Relaxed);
            kill_pid(pid, libc::SIGSTOP);
        }
    }
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + f.spec.timeout.as_millis() as u64;
    let mut r = reply(StatusCode::OK, body);
    let h = r.headers_mut();
    let header = |v: String| {
        hyper::header::HeaderValue::from_str(&v)
            .unwrap_or_else(|_| hyper::header::HeaderValue::from_static(""))
    };
    // The Runtime API's invocation headers ("AWS Lambda runtime API": Next invocation).
    h.insert("lambda-runtime-aws-request-id", header(id.clone()));
    h.insert("lambda-runtime-deadline-ms", header(deadline.to_string()));
    h.insert(
        "lambda-runtime-invoked-function-arn",
        header(format!(
            "arn:aws:lambda:us-east-1:000000000000:function:{function}"
        )),
    );
    h.insert(
        "lambda-runtime-trace-id",
        header(format!("Root=1-00000000-{id}")),
    );
    h.insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `POST …/invocation/{id}/response` and `…/error`.
async fn respond(state: &Arc<State>, id: &str, result: Result<Bytes, (String, Bytes)>) -> Reply {
    let Some(job) = lock(&state.inflight).remove(id) else {
        // Too late (timed out) or unknown: AWS answers 400/410 here; the instance goes on polling.
        return reply(
            StatusCode::GONE,
            "{\"errorMessage\":\"invocation is no longer in flight\"}",
        );
    };
    let Some(f) = state.functions.get(&job.function).cloned() else {
        return reply(StatusCode::NOT_FOUND, "unknown function");
    };
    match result {
        Ok(body) if !state.draw(state.faults.error_rate) => {
            if let Some(tx) = job.job.reply {
                let _ = tx.send(Outcome::Ok(body));
            }
        }
        Ok(_) => fail(
            state,
            &f,
            job.job,
            "Injected",
            "an error injected by the emulator after the handler finished",
        ),
        Err((kind, body)) => {
            let message = String::from_utf8_lossy(&body).into_owned();
            fail(state, &f, job.job, &kind, &message);
        }
    }
    reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}")
}
