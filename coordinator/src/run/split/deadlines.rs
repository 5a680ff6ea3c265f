//! When a due task counts as late: each task kind's deadline and speculation threshold, from the latencies the run
//! itself measures.
//!
//! A task's *latency* here is what the driver can see of it: from the moment it became due (the driver read the
//! report of its last input) to the moment its own report was read. That includes the invocation, any queueing
//! behind the concurrency limit and the event stream's delay, which is what a deadline must allow for. Only tasks
//! that reported on their first attempt are sampled — a recovered task's latency is the deadline's, not the task's.
//!
//! For each (kind, slice) the run keeps the last [`WINDOW`] samples. With [`MIN_SAMPLES`] of them, a task is
//! * **speculated** (a copy started while the original may still run) once it has taken [`SPECULATE_AT`] × the
//!   window's 99th percentile — only while the run has spare concurrency (see the tracker);
//! * **late** (invoked again whatever the load) once it has taken [`MULTIPLIER`] × that percentile;
//!
//! each at least [`FLOOR`] and at most `runtime.task_timeout_s`. Before that many samples the kind's samples over
//! all slices stand in, then every task's, then the planner's prediction of the kind's run time ([`Initial`]). The constants are
//! justified in numbers in `docs/ARCHITECTURE.md` ("Deadlines from the run's own latency") and measured in
//! `experiments/recovery/`.

use crate::stats::quantile_sorted;
use slice_worker::task::{TaskId, TaskKind};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Samples kept per (kind, slice): enough for a 99th percentile, few enough to follow a run whose load changes.
pub const WINDOW: usize = 400;

/// Samples needed before a window's percentile is trusted: with fewer, one hiccup of the host sets it (measured:
/// at 8, a 25 ms stall of a 2-core host in step 5 made five false alarms).
pub const MIN_SAMPLES: usize = 20;

/// The deadline in units of the 99th percentile.
pub const MULTIPLIER: f64 = 3.0;

/// The speculation threshold in units of the 99th percentile.
pub const SPECULATE_AT: f64 = 1.5;

/// No deadline or speculation threshold is shorter than this: the driver's own wake-ups and a loaded host's
/// scheduling delays reach a few milliseconds.
pub const FLOOR: Duration = Duration::from_millis(10);

/// The deadline before any sample: the prediction's run time stretched by this factor, plus [`Initial::slack_ms`]
/// for cold starts, which the prediction of a steady step leaves out.
const INITIAL_STRETCH: f64 = 20.0;

/// How deadlines are set (`runtime.deadline`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    /// From the run's measured latencies, bounded by `cap`.
    Auto { cap: Duration },
    /// Always `runtime.task_timeout_s`, and no speculation (the behaviour before adaptive deadlines).
    Fixed(Duration),
}

/// The planner's predicted run time of each task kind, ms (NaN where it predicts none).
#[derive(Clone, Copy, Debug)]
pub struct Initial {
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub update_ms: f64,
    /// Added to the first deadlines: what a cold start may take on the run's platform.
    pub slack_ms: f64,
}

impl Initial {
    /// No prediction: every kind starts at the cap.
    pub const NONE: Initial = Initial {
        forward_ms: f64::NAN,
        backward_ms: f64::NAN,
        update_ms: f64::NAN,
        slack_ms: 0.0,
    };

    fn of(&self, kind: TaskKind) -> f64 {
        match kind {
            TaskKind::Forward => self.forward_ms,
            TaskKind::Backward => self.backward_ms,
            // A reduce streams the same gradients an update does; the clip barrier is small but waits on the store.
            TaskKind::Update | TaskKind::Reduce | TaskKind::Clip => self.update_ms,
        }
    }
}

/// The two thresholds of one task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Start a copy past this, when the run has room for one (`None`: never).
    pub speculate: Option<Duration>,
    /// Invoke again past this.
    pub deadline: Duration,
}

impl Limits {
    /// Both limits times `factor` (≥ 1), for a run with more tasks due than may run at once.
    pub fn stretched(self, factor: f64) -> Limits {
        if factor <= 1.0 {
            return self;
        }
        Limits {
            speculate: self.speculate.map(|d| d.mul_f64(factor)),
            deadline: self.deadline.mul_f64(factor),
        }
    }
}

#[derive(Default)]
struct Window {
    samples: VecDeque<f64>,
    /// The window's 99th percentile, ms, recomputed when a sample arrived since.
    p99: Option<f64>,
}

impl Window {
    fn push(&mut self, ms: f64) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(ms);
        self.p99 = None;
    }

    fn p99(&mut self) -> Option<f64> {
        if self.samples.len() < MIN_SAMPLES {
            return None;
        }
        if self.p99.is_none() {
            let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            self.p99 = Some(quantile_sorted(&sorted, 0.99));
        }
        self.p99
    }
}

/// The run's measured task latencies, and the limits they give.
pub struct Deadlines {
    policy: Policy,
    initial: Initial,
    per_slice: HashMap<(TaskKind, usize), Window>,
    per_kind: HashMap<TaskKind, Window>,
    all: Window,
}

impl Deadlines {
    pub fn new(policy: Policy, initial: Initial) -> Deadlines {
        Deadlines {
            policy,
            initial,
            per_slice: HashMap::new(),
            per_kind: HashMap::new(),
            all: Window::default(),
        }
    }

    /// `task` reported on its first attempt, `latency` after it became due.
    pub fn sample(&mut self, task: TaskId, latency: Duration) {
        let ms = latency.as_secs_f64() * 1e3;
        let kind = task.kind();
        self.per_slice
            .entry((kind, task.slice()))
            .or_default()
            .push(ms);
        self.per_kind.entry(kind).or_default().push(ms);
        self.all.push(ms);
    }

    /// The 99th percentile that sets `task`'s limits, ms: its (kind, slice)'s, else its kind's, else every task's,
    /// else none yet.
    fn p99(&mut self, task: TaskId) -> Option<f64> {
        let kind = task.kind();
        if let Some(p) = self
            .per_slice
            .get_mut(&(kind, task.slice()))
            .and_then(Window::p99)
        {
            return Some(p);
        }
        if let Some(p) = self.per_kind.get_mut(&kind).and_then(Window::p99) {
            return Some(p);
        }
        self.all.p99()
    }

    /// The limits of `task` now.
    pub fn limits(&mut self, task: TaskId) -> Limits {
        let cap = match self.policy {
            Policy::Fixed(d) => {
                return Limits {
                    speculate: None,
                    deadline: d,
                }
            }
            Policy::Auto { cap } => cap,
        };
        let clamp = |ms: f64| {
            if ms.is_finite() && ms >= 0.0 {
                Duration::from_secs_f64(ms / 1e3).clamp(FLOOR, cap.max(FLOOR))
            } else {
                cap
            }
        };
        match self.p99(task) {
            Some(p99) => Limits {
                speculate: Some(clamp(SPECULATE_AT * p99)),
                deadline: clamp(MULTIPLIER * p99),
            },
            None => {
                let predicted = self.initial.of(task.kind());
                let deadline = if predicted.is_finite() {
                    clamp(INITIAL_STRETCH * predicted + self.initial.slack_ms)
                } else {
                    cap
                };
                // Without a measurement there is nothing to call a straggler.
                Limits {
                    speculate: None,
                    deadline,
                }
            }
        }
    }

    /// Each kind's measured latency quantiles (p50, p95, p99), ms, for the status view.
    pub fn quantiles(&self) -> Vec<(TaskKind, usize, [f64; 3])> {
        let mut out: Vec<(TaskKind, usize, [f64; 3])> = self
            .per_kind
            .iter()
            .map(|(kind, w)| {
                let mut sorted: Vec<f64> = w.samples.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                let q = |p| quantile_sorted(&sorted, p);
                (*kind, sorted.len(), [q(0.5), q(0.95), q(0.99)])
            })
            .collect();
        out.sort_by_key(|(k, _, _)| *k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: TaskId = TaskId::F {
        step: 1,
        slice: 0,
        mb: 0,
    };
    const F1: TaskId = TaskId::F {
        step: 1,
        slice: 1,
        mb: 0,
    };
    const CAP: Duration = Duration::from_secs(300);

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1e3)
    }

    #[test]
    fn before_any_sample_the_prediction_sets_the_deadline_and_nothing_is_speculated() {
        let initial = Initial {
            forward_ms: 2.0,
            backward_ms: 4.0,
            update_ms: 8.0,
            slack_ms: 1000.0,
        };
        let mut d = Deadlines::new(Policy::Auto { cap: CAP }, initial);
        assert_eq!(
            d.limits(F),
            Limits {
                speculate: None,
                deadline: ms(20.0 * 2.0 + 1000.0)
            }
        );
        let mut none = Deadlines::new(Policy::Auto { cap: CAP }, Initial::NONE);
        assert_eq!(none.limits(F).deadline, CAP);
    }

    #[test]
    fn measured_latencies_set_both_limits_per_kind_and_slice_within_floor_and_cap() {
        let mut d = Deadlines::new(Policy::Auto { cap: CAP }, Initial::NONE);
        for i in 0..100 {
            // 1..=100 ms: the 99th percentile (nearest rank) is 99 ms.
            d.sample(F, ms(f64::from(i + 1)));
        }
        let l = d.limits(F);
        assert_eq!(l.deadline, ms(3.0 * 99.0));
        assert_eq!(l.speculate, Some(ms(1.5 * 99.0)));
        // Slice 1 has no samples of its own yet: the kind's stand in.
        assert_eq!(d.limits(F1).deadline, ms(3.0 * 99.0));
        for _ in 0..MIN_SAMPLES {
            d.sample(F1, ms(0.1));
        }
        assert_eq!(
            d.limits(F1),
            Limits {
                speculate: Some(FLOOR),
                deadline: FLOOR
            }
        );
        let mut capped = Deadlines::new(Policy::Auto { cap: ms(50.0) }, Initial::NONE);
        for _ in 0..MIN_SAMPLES {
            capped.sample(F, ms(40.0));
        }
        assert_eq!(capped.limits(F).deadline, ms(50.0));
    }

    #[test]
    fn the_window_forgets_old_samples() {
        let mut d = Deadlines::new(Policy::Auto { cap: CAP }, Initial::NONE);
        for _ in 0..WINDOW {
            d.sample(F, ms(100.0));
        }
        assert_eq!(d.limits(F).deadline, ms(300.0));
        for _ in 0..WINDOW {
            d.sample(F, ms(10.0));
        }
        assert_eq!(d.limits(F).deadline, ms(30.0));
    }

    #[test]
    fn a_fixed_policy_never_speculates() {
        let mut d = Deadlines::new(Policy::Fixed(ms(1000.0)), Initial::NONE);
        for _ in 0..50 {
            d.sample(F, ms(1.0));
        }
        assert_eq!(
            d.limits(F),
            Limits {
                speculate: None,
                deadline: ms(1000.0)
            }
        );
    }
}
