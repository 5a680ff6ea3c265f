//! `status.json`: what a split run is doing, kept up to date in its run folder by the driver (twice a second and at
//! every step) so that `trainer status RUN_DIR` can show it from another terminal — for runs on the memory store
//! too, whose event stream lives inside the run's process. Written by renames: a reader never sees half a file.

use super::tracker::Tracker;
use crate::run::record::RuntimeStats;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often the driver rewrites the file between steps.
pub const EVERY: Duration = Duration::from_millis(500);

/// Steps over which the rate is measured.
const RATE_WINDOW: usize = 20;

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    /// A stop was requested: finishing the started steps.
    Stopping,
    Finished,
    /// Stopped by request or by an error; the run folder says where it can go on from.
    Ended,
}

/// One task kind's measured due-to-report latency, ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindLatency {
    pub kind: String,
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// The contents of `status.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub state: State,
    /// The driver's process, to tell a live run from one that died without a last word.
    pub pid: u32,
    pub updated_unix_ms: u64,
    pub steps_done: u64,
    pub steps_total: u64,
    /// Over the last (up to) 20 steps; null before two steps are done.
    pub steps_per_s: Option<f64>,
    pub eta_s: Option<f64>,
    /// Tasks due and not reported (invoked, queued, running or lost), against the concurrency limit.
    pub in_flight: usize,
    pub concurrency: usize,
    pub latency: Vec<KindLatency>,
    /// Store traffic of the tasks, bytes per second over the run so far.
    pub store_bytes_per_s: f64,
    pub runtime: RuntimeStats,
}

/// What the driver keeps to write the file.
pub struct StatusWriter {
    started: Instant,
    steps: VecDeque<Instant>,
    pub last_write: Instant,
}

impl Default for StatusWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusWriter {
    pub fn new() -> StatusWriter {
        let now = Instant::now();
        StatusWriter {
            started: now,
            steps: VecDeque::new(),
            last_write: now - EVERY,
        }
    }

    /// A step finished now.
    pub fn step_done(&mut self) {
        if self.steps.len() == RATE_WINDOW {
            self.steps.pop_front();
        }
        self.steps.push_back(Instant::now());
    }

    /// The status of the run as `tracker` sees it.
    pub fn status(
        &self,
        state: State,
        tracker: &Tracker,
        (done, total): (u64, u64),
        concurrency: usize,
    ) -> RunStatus {
        let rate = match (self.steps.front(), self.steps.back()) {
            (Some(a), Some(b)) if self.steps.len() >= 2 && b > a => {
                Some((self.steps.len() - 1) as f64 / b.duration_since(*a).as_secs_f64())
            }
            _ => None,
        };
        let stats = tracker.stats.clone();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        RunStatus {
            state,
            pid: std::process::id(),
            updated_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            steps_done: done,
            steps_total: total,
            steps_per_s: rate,
            eta_s: rate.map(|r| total.saturating_sub(done) as f64 / r),
            in_flight: tracker.in_flight(),
            concurrency,
            latency: tracker
                .latency_quantiles()
                .into_iter()
                .map(|(kind, samples, [p50, p95, p99])| KindLatency {
                    kind: kind.name().to_string(),
                    samples,
                    p50_ms: p50,
                    p95_ms: p95,
                    p99_ms: p99,
                })
                .collect(),
            store_bytes_per_s: (stats.bytes_in + stats.bytes_out) as f64 / elapsed,
            runtime: stats,
        }
    }
}
