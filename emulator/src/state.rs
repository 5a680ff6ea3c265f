//! The emulator's state, as data: functions and their configurations, instances, queued and running invocations,
//! the account's concurrency, counters. The behaviour lives in the modules above (`scheduler`, the three APIs).

use crate::billing::Ledger;
use crate::cgroup::{Cgroups, Group, Usage};
use crate::settings::Settings;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Notify};

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A function's settings; an update makes a new version, which only instances started after it get (as on Lambda).
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    /// The executable each instance runs (a package's `bootstrap`, or a binary the tests name).
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Retries of a failed asynchronous invocation (AWS default: 2).
    pub async_retries: u32,
    /// `PutFunctionConcurrency`: at most this many at once, set aside from the account's pool.
    pub reserved: Option<usize>,
    /// What `GetFunction` shows besides: role, handler, code size and hash, last modified.
    pub role: String,
    pub handler: String,
    pub code_size: usize,
    pub code_sha256: String,
    pub last_modified: String,
    pub version: u64,
}

/// How an invocation ended, for a synchronous caller.
pub enum Outcome {
    Ok(Bytes),
    /// The error body (`errorType`, `errorMessage`).
    FunctionError(Bytes),
}

/// One invocation on its way: queued, then dispatched to an instance.
pub struct Job {
    pub body: Bytes,
    /// A synchronous caller waiting for the outcome; `None` for `Event`.
    pub reply: Option<oneshot::Sender<Outcome>>,
    pub retries_left: u32,
    /// When it (last) entered the queue.
    pub queued_at: Instant,
}

impl Job {
    pub fn kind(&self) -> &'static str {
        if self.reply.is_some() {
            "RequestResponse"
        } else {
            "Event"
        }
    }
}

/// A concurrency slot held by a dispatched invocation, released (and the queue served again) when dropped.
pub struct Slot {
    pub state: Arc<State>,
    pub function: String,
}

/// A job with its slot, on its way to an instance.
pub struct Dispatched {
    pub job: Job,
    pub slot: Slot,
    pub queued_ms: f64,
}

/// An invocation an instance is running.
pub struct InFlight {
    pub request_id: String,
    pub dispatched: Dispatched,
    pub function: Arc<Function>,
    pub instance: usize,
    pub started: Instant,
    pub start_unix_ms: u64,
    pub start_usage: Usage,
    pub cold: bool,
    pub init_ms: f64,
    pub memory_mb: u32,
}

pub struct Instance {
    pub pid: u32,
    pub kill: Option<oneshot::Sender<()>>,
    /// The configuration version it was started with.
    pub version: u64,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub spawned: Instant,
    /// Its init phase, once it asked for its first invocation.
    pub init_ms: Option<f64>,
    pub invocations: u64,
    /// Killed for passing its function's memory (by polling; a cgroup's kill shows in its counters).
    pub out_of_memory: bool,
    /// Its cgroup (`None`: not confined by one).
    pub group: Option<Arc<Group>>,
    /// Its network namespace and shaped link (`None`: the host's loopback); removed with the instance.
    pub link: Option<crate::network::Link>,
    /// A job given to it, taken by its next poll.
    pub mailbox: Option<Dispatched>,
    pub wake: Arc<Notify>,
    pub frozen: bool,
}

/// One function's queue and concurrency, under the scheduler's lock.
#[derive(Default)]
pub struct Queue {
    pub pending: VecDeque<Job>,
    /// Instances waiting for work (or about to ask for it), oldest first.
    pub idle: VecDeque<usize>,
    pub busy: usize,
}

/// The account's concurrency and every function's queue, under one lock so that a decision sees them together.
#[derive(Default)]
pub struct Sched {
    pub queues: HashMap<String, Queue>,
    /// Busy slots of functions without a reservation (they share the unreserved pool).
    pub unreserved_busy: usize,
    /// Σ reservations.
    pub reserved_total: usize,
    /// Where the next round-robin pass starts.
    pub turn: usize,
}

pub struct Function {
    pub name: String,
    pub config: RwLock<FunctionConfig>,
    pub instances: Mutex<HashMap<usize, Instance>>,
    pub next_instance: AtomicUsize,
    pub peak_rss_kib: AtomicU64,
}

impl Function {
    pub fn new(name: String, config: FunctionConfig) -> Function {
        Function {
            name,
            config: RwLock::new(config),
            instances: Mutex::new(HashMap::new()),
            next_instance: AtomicUsize::new(0),
            peak_rss_kib: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> FunctionConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What happened, counted.
#[derive(Default)]
pub struct Counters {
    pub invokes: AtomicU64,
    pub throttled: AtomicU64,
    pub duplicated: AtomicU64,
    pub function_errors: AtomicU64,
    pub crashes: AtomicU64,
    pub frozen: AtomicU64,
    pub timeouts: AtomicU64,
    pub async_retries: AtomicU64,
    pub instances_started: AtomicU64,
    pub out_of_memory: AtomicU64,
    /// `Event` invocations that waited for a concurrency slot (Lambda queues them; only synchronous calls get 429).
    pub queued_for_concurrency: AtomicU64,
    pub reaped: AtomicU64,
    /// CPU used by instances between invocations (until their next one), ns — the cgroup's counter; none when
    /// they are frozen, as on Lambda.
    pub cpu_while_idle_ns: AtomicU64,
    /// Occasions fault decisions were drawn for.
    pub draws: AtomicU64,
}

/// The counters, read.
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
    pub out_of_memory: u64,
    pub queued_for_concurrency: u64,
    pub reaped: u64,
    /// CPU instances used between invocations, ns (0 when frozen).
    pub cpu_while_idle_ns: u64,
    /// Peak memory of any instance, per function, KiB.
    pub peak_rss_kib: HashMap<String, u64>,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How instances are confined, decided once.
pub enum Confiner {
    Cgroups(Cgroups),
    /// No cgroup could be made: why, said once and on every record.
    RssPolling(String),
}

impl Confiner {
    pub fn describe(&self) -> String {
        match self {
            Confiner::Cgroups(c) => c.version().name().to_string(),
            Confiner::RssPolling(why) => format!("rss polling ({why})"),
        }
    }
}

pub struct State {
    pub port: u16,
    pub settings: Settings,
    pub functions: RwLock<HashMap<String, Arc<Function>>>,
    pub counters: Counters,
    pub inflight: Mutex<HashMap<String, InFlight>>,
    pub sched: Mutex<Sched>,
    pub next_request: AtomicU64,
    pub logs: PathBuf,
    pub packages: PathBuf,
    pub confiner: Confiner,
    pub network: Shaping,
    pub ledger: Ledger,
}

/// How instances' networks are shaped.
pub enum Shaping {
    /// Not asked for: the host's loopback, unlimited.
    Off,
    /// Each instance in a namespace of its own on this bridge.
    Links(crate::network::Network),
    /// Asked for, and impossible here (why): unlimited, said once and on every record.
    Unavailable(String),
}

impl State {
    /// How instances were confined, for the records: the cgroup version (or why none), and the network.
    pub fn confinement(&self) -> String {
        let cpu_memory = self.confiner.describe();
        match &self.network {
            Shaping::Off => cpu_memory,
            Shaping::Links(_) => format!("{cpu_memory}, bandwidth shaped"),
            Shaping::Unavailable(why) => format!("{cpu_memory}, bandwidth unshaped ({why})"),
        }
    }

    /// The address an instance reaches the emulator (and its store) at.
    pub fn host_for_instances(&self) -> std::net::Ipv4Addr {
        match &self.network {
            Shaping::Links(n) => n.gateway(),
            _ => std::net::Ipv4Addr::LOCALHOST,
        }
    }

    /// A new instance's shaped link, if links are shaped (blocking: runs `ip` and `tc`).
    pub fn attach_link(&self, memory_mb: u32) -> Option<Result<crate::network::Link, String>> {
        match (&self.network, self.settings.instance_bandwidth(memory_mb)) {
            (Shaping::Links(n), Some(rate)) => Some(n.attach(rate)),
            _ => None,
        }
    }
}

impl State {
    pub fn function(&self, name: &str) -> Option<Arc<Function>> {
        self.functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn all_functions(&self) -> Vec<Arc<Function>> {
        self.functions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// A fault decision: true with probability `rate`.
    pub fn draw(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let n = self.counters.draws.fetch_add(1, Ordering::Relaxed);
        self.settings.faults.draw(n, rate)
    }

    pub fn count(&self, counter: impl Fn(&Counters) -> &AtomicU64) {
        counter(&self.counters).fetch_add(1, Ordering::Relaxed);
    }
}
