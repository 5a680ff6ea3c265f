//! `[runtime]`: invoker, store, concurrency and threads, deadlines, store loss, injected faults.

use super::error::{bad, ConfigError};
use serde::{Deserialize, Serialize};
use slice_worker::store::StoreUrl;

/// `runtime.invoker`: where a split run's tasks execute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvokerKind {
    /// In this process, on a pool of simulated containers (the embedded default).
    #[default]
    Local,
    /// On each slice's AWS Lambda function (`[lambda]`, `trainer deploy`).
    Lambda,
}

/// `runtime.deadline`: how long a due task may go without a report before the driver invokes it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeadlineMode {
    /// From the run's own latency: the planner's prediction at first, then a multiple of each task kind's measured
    /// 99th percentile (per slice), at least 10 ms and at most `task_timeout_s`; stragglers get a speculative copy
    /// while the run has room for one. The default.
    #[default]
    Auto,
    /// Always `task_timeout_s`, and no speculative copies.
    Fixed,
}

/// `[runtime]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `"local"`: tasks run in this process (the embedded default); `"lambda"`: each slice's tasks run on its AWS
    /// Lambda function (`[lambda]`, `trainer deploy`), through a Redis store.
    #[serde(default)]
    pub invoker: InvokerKind,
    /// `"memory"` (the embedded default: tensors stay in process) or a Redis URL (`redis://host:6379`,
    /// `rediss://user:password@host:6380` for TLS + AUTH; a password may also come from `REDIS_PASSWORD`).
    #[serde(default = "memory")]
    pub store: StoreUrl,
    /// Split runs: how many tasks may run at once (default 4).
    #[serde(default = "four")]
    pub concurrency: usize,
    /// Split runs: how many invokes one task has in flight at once when it starts its successors (default 32); a
    /// wider fan-out (an update starting M next-step forwards) is started as a tree — about √n invocations, each
    /// starting a share of the rest first thing — so that n tasks start in two rounds of invoke latency for
    /// n ≤ width², not n / width.
    #[serde(default = "fanout_width")]
    pub fanout_width: usize,
    /// Lambda runs: before the first step, bring each function to the instances the plan runs on it at once (M
    /// tasks of each slice it serves, at most `concurrency`) with probes that hold their instance until all are up,
    /// so the first step starts cold nowhere; what it did and cost is in `summary.json` (`runtime.warm_pool`).
    #[serde(default = "yes")]
    pub warm_pool: bool,
    /// Compute threads (0 = one per core). Results do not depend on it.
    #[serde(default)]
    pub threads: usize,
    /// Local invoker: probability that a delivery's container crashes (half before the handler runs, half after
    /// it wrote its outputs but before it reported). The run driver recovers by deadline.
    #[serde(default)]
    pub fault_rate: f64,
    /// Local invoker: probability that an invocation is delivered twice.
    #[serde(default)]
    pub duplicate_rate: f64,
    /// Local invoker: delay of starting a new container, milliseconds.
    #[serde(default)]
    pub cold_start_ms: u64,
    /// Local invoker: probability that a delivery is stuck for twice `task_timeout_s` before it runs, so that the
    /// driver's retry overtakes it and it arrives late.
    #[serde(default)]
    pub stall_rate: f64,
    /// Seed of the injected faults (which deliveries crash or repeat).
    #[serde(default)]
    pub seed: u64,
    /// The longest a task whose inputs are complete may go without a report before it is invoked again with the
    /// next attempt number (it is idempotent, so a slow original does no harm); with `deadline = "fixed"` every
    /// task's deadline.
    #[serde(default = "task_timeout_s")]
    pub task_timeout_s: f64,
    /// `"auto"` (deadlines from the run's measured latency, capped by `task_timeout_s`, with speculative copies of
    /// stragglers) or `"fixed"` (`task_timeout_s` for every task, no copies).
    #[serde(default)]
    pub deadline: DeadlineMode,
    /// After a stop request (Ctrl-C, SIGTERM) a split run finishes the steps it started for at most this many
    /// seconds, then checkpoints the last step it has whole; a second request stops at once.
    #[serde(default = "stop_grace_s")]
    pub stop_grace_s: f64,
    /// How many attempts a task gets (failures and missed deadlines) before the run stops with its error.
    #[serde(default = "max_attempts")]
    pub max_attempts: u32,
    /// Redis stores: when the store restarts under a split run (its data gone) or stays unreachable past the
    /// store's own retries, the run restarts from its last checkpoint under a fresh namespace, up to this many times
    /// (0: stop at once with a resumable error).
    #[serde(default = "store_restarts")]
    pub store_restarts: u32,
    /// How long the driver waits for a lost store to answer again before it stops with a resumable error, seconds.
    #[serde(default = "store_wait_s")]
    pub store_wait_s: f64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            invoker: InvokerKind::Local,
            store: memory(),
            concurrency: four(),
            fanout_width: fanout_width(),
            warm_pool: true,
            threads: 0,
            fault_rate: 0.0,
            duplicate_rate: 0.0,
            cold_start_ms: 0,
            stall_rate: 0.0,
            seed: 0,
            task_timeout_s: task_timeout_s(),
            deadline: DeadlineMode::Auto,
            stop_grace_s: stop_grace_s(),
            max_attempts: max_attempts(),
            store_restarts: store_restarts(),
            store_wait_s: store_wait_s(),
        }
    }
}

impl RuntimeConfig {
    /// Checks the table, naming the key; `split`: whether the run is cut into slices (`[plan]`).
    pub fn validate(&self, split: bool) -> Result<(), ConfigError> {
        let r = self;
        for (key, v) in [
            ("runtime.fault_rate", r.fault_rate),
            ("runtime.duplicate_rate", r.duplicate_rate),
            ("runtime.stall_rate", r.stall_rate),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(key, format!("must be in [0, 1), got {v}")));
            }
            if v > 0.0 && !split {
                return Err(bad(
                    key,
                    "injected faults need a split run (plan.slices > 1 or plan.cuts): a single slice trains in process",
                ));
            }
        }
        if r.fanout_width < 2 {
            return Err(bad(
                "runtime.fanout_width",
                format!(
                    "must be at least 2 (invokes one task has in flight at once), got {}",
                    r.fanout_width
                ),
            ));
        }
        if !(r.task_timeout_s.is_finite() && r.task_timeout_s > 0.0) {
            return Err(bad(
                "runtime.task_timeout_s",
                format!(
                    "must be a positive number of seconds, got {}",
                    r.task_timeout_s
                ),
            ));
        }
        if !(r.stop_grace_s.is_finite() && r.stop_grace_s >= 0.0) {
            return Err(bad(
                "runtime.stop_grace_s",
                format!(
                    "must be a number of seconds, 0 or more, got {}",
                    r.stop_grace_s
                ),
            ));
        }
        if r.max_attempts == 0 {
            return Err(bad("runtime.max_attempts", "must be at least 1"));
        }
        if !(r.store_wait_s.is_finite() && r.store_wait_s >= 0.0) {
            return Err(bad(
                "runtime.store_wait_s",
                format!(
                    "must be a number of seconds, 0 or more, got {}",
                    r.store_wait_s
                ),
            ));
        }
        if r.concurrency == 0 {
            return Err(bad("runtime.concurrency", "must be at least 1"));
        }
        if r.store.is_shared() && !split {
            return Err(bad(
                "runtime.store",
                "a Redis store needs a split run (plan.slices > 1 or plan.cuts)",
            ));
        }
        Ok(())
    }
}

fn task_timeout_s() -> f64 {
    300.0
}
fn stop_grace_s() -> f64 {
    20.0
}
fn store_restarts() -> u32 {
    3
}
fn store_wait_s() -> f64 {
    60.0
}
fn max_attempts() -> u32 {
    6
}
fn yes() -> bool {
    true
}
fn four() -> usize {
    4
}
fn fanout_width() -> usize {
    slice_worker::fanout::FANOUT_WIDTH
}
fn memory() -> StoreUrl {
    StoreUrl::Memory
}
