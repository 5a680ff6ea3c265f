//! When a due task counts as late: each task kind's deadline and speculation threshold, from the latencies the run
//! itself measures.
//!
//! A task's *latency* here is what the driver can see of it: from the moment it became due (the driver read the
//! report of its last input) to the moment its own report was read. That includes the invocation, any queueing
//! behind the concurrency limit and the event stream's delay, which is what a deadline must allow for. Only tasks
//! that reported on their first attempt are sampled — a recovered task's latency is the deadline's, not the task's.
//!
//! For each (kind, slice) the run keeps the last [`WINDOW`] samples. With [`MIN_SAMPLES`] of them, a task is
//! * **speculated** (a copy started while the original may still run) once it is more likely lost than slow — or
//!   at the latest once it has taken [`SPECULATE_AT`] × the window's 99th percentile — only while the run has
//!   spare concurrency (see the tracker). With `p` the run's measured share of tasks whose first attempt never
//!   reported ([`LossRate`]) and `S(t)` the share of healthy tasks still unreported after `t`, a task unreported
//!   at `t` is lost with probability `p / (p + (1 − p) S(t))`; that passes one half once `S(t) ≤ p / (1 − p)`,
//!   i.e. at the window's `1 − p / (1 − p)` quantile. A fault-free run (`p` below [`LOSS_WORTH_COPYING`]) keeps
//!   the 1.5 × p99 rule alone;
//! * **late** (invoked again whatever the load) once it has taken [`MULTIPLIER`] × that percentile;
//!
//! each at least [`FLOOR`] and at most `runtime.task_timeout_s`. Before that many samples the kind's samples over
//! all slices stand in, then every task's, then the planner's prediction of the slice's run time ([`Initial`]) —
//! which also bounds the borrowed deadlines from below, since a slice holding the model's big layer can take ten
//! times the others' time (a 4096×4096 layer at 256 MB: 3 s against 0.1 s). The constants are justified in numbers in `docs/ARCHITECTURE.md` ("Deadlines from the run's own latency") and measured in
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

/// The loss rate below which speculation waits for [`SPECULATE_AT`] × p99 alone: the loss-odds quantile would be
/// above the 99th percentile, where a window of a few hundred samples cannot place it.
pub const LOSS_WORTH_COPYING: f64 = 0.01;

/// The lowest quantile a copy is started at, however lossy the run: before the median, a task is more likely
/// queued than lost whatever the odds say.
const LOWEST_SPECULATION_QUANTILE: f64 = 0.5;

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

/// The planner's predicted run time of each slice's tasks, ms, before the run has measured them.
#[derive(Clone, Debug, Default)]
pub struct Initial {
    /// Per slice, `[forward, backward, update]` (its slowest task of each kind in a step: `StepPrediction::slice_slowest_ms`); none:
    /// no prediction, every task starts at the cap.
    pub slice_ms: Vec<[f64; 3]>,
    /// Added to the first deadlines: what a cold start may take on the run's platform.
    pub slack_ms: f64,
}

impl Initial {
    /// No prediction: every kind starts at the cap.
    pub const NONE: Initial = Initial {
        slice_ms: Vec::new(),
        slack_ms: 0.0,
    };

    /// `task`'s predicted run time, NaN where there is none.
    fn of(&self, task: TaskId) -> f64 {
        let kind = match task.kind() {
            TaskKind::Forward => 0,
            TaskKind::Backward => 1,
            // A reduce streams the same gradients an update does; the clip barrier is small but waits on the store.
            TaskKind::Update | TaskKind::Reduce | TaskKind::Clip => 2,
        };
        self.slice_ms
            .get(task.slice())
            .map_or(f64::NAN, |kinds| kinds[kind])
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
    /// The samples sorted, ms, redone when a sample arrived since.
    sorted: Option<Vec<f64>>,
}

impl Window {
    fn push(&mut self, ms: f64) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(ms);
        self.sorted = None;
    }

    /// The window's `q`-quantile, ms, once it holds [`MIN_SAMPLES`].
    fn quantile(&mut self, q: f64) -> Option<f64> {
        if self.samples.len() < MIN_SAMPLES {
            return None;
        }
        let samples = &self.samples;
        let sorted = self.sorted.get_or_insert_with(|| {
            let mut v: Vec<f64> = samples.iter().copied().collect();
            v.sort_by(f64::total_cmp);
            v
        });
        Some(quantile_sorted(sorted, q))
    }
}

/// Tasks whose first attempt was never heard from, as a share of the last [`WINDOW`] tasks that reported: a
/// crashed instance, an expired event, a frozen worker. A task the driver recovered counts as lost until its first
/// attempt reports after all (then it was only slow, and counts as such), so copies that merely beat a slow
/// original do not feed the rate that starts copies.
#[derive(Default)]
pub struct LossRate {
    outcomes: VecDeque<(TaskId, bool)>,
}

/// What the rate assumes before the run has shown anything: a quarter of a loss in [`PRIOR_TASKS`] tasks (0.5 %,
/// under [`LOSS_WORTH_COPYING`]), so that one early loss does not lower every threshold.
const PRIOR_LOST: f64 = 0.25;
const PRIOR_TASKS: f64 = 50.0;

impl LossRate {
    /// `task` reported; `lost`: by a re-invocation while its first attempt stayed silent.
    pub fn outcome(&mut self, task: TaskId, lost: bool) {
        if self.outcomes.len() == WINDOW {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((task, lost));
    }

    /// `task`'s first attempt reported after a re-invocation finished it: it was slow, not lost.
    pub fn was_slow(&mut self, task: TaskId) {
        if let Some(o) = self.outcomes.iter_mut().rev().find(|(t, _)| *t == task) {
            o.1 = false;
        }
    }

    /// The share of tasks lost, smoothed by the prior.
    pub fn rate(&self) -> f64 {
        let lost = self.outcomes.iter().filter(|(_, l)| *l).count() as f64;
        (lost + PRIOR_LOST) / (self.outcomes.len() as f64 + PRIOR_TASKS)
    }
}

/// The run's measured task latencies, and the limits they give.
pub struct Deadlines {
    policy: Policy,
    initial: Initial,
    per_slice: HashMap<(TaskKind, usize), Window>,
    per_kind: HashMap<TaskKind, Window>,
    all: Window,
    /// How often tasks are lost: it lowers the speculation threshold of a lossy run.
    pub loss: LossRate,
}

impl Deadlines {
    pub fn new(policy: Policy, initial: Initial) -> Deadlines {
        Deadlines {
            policy,
            initial,
            per_slice: HashMap::new(),
            per_kind: HashMap::new(),
            all: Window::default(),
            loss: LossRate::default(),
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

    /// The window that sets `task`'s limits: its (kind, slice)'s, else its kind's, else every task's, whichever
    /// first holds [`MIN_SAMPLES`] (none yet), and whether it is the task's own.
    fn window(&mut self, task: TaskId) -> Option<(&mut Window, bool)> {
        let kind = task.kind();
        let trusted = |w: &Window| w.samples.len() >= MIN_SAMPLES;
        if self
            .per_slice
            .get(&(kind, task.slice()))
            .is_some_and(trusted)
        {
            return self
                .per_slice
                .get_mut(&(kind, task.slice()))
                .map(|w| (w, true));
        }
        if self.per_kind.get(&kind).is_some_and(trusted) {
            return self.per_kind.get_mut(&kind).map(|w| (w, false));
        }
        trusted(&self.all).then_some((&mut self.all, false))
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
        let predicted = self.initial.of(task);
        let initial = clamp(INITIAL_STRETCH * predicted + self.initial.slack_ms);
        let loss = self.loss.rate();
        match self.window(task) {
            Some((w, own)) => {
                let p99 = w.quantile(0.99).unwrap_or(f64::NAN);
                let mut speculate = SPECULATE_AT * p99;
                if loss >= LOSS_WORTH_COPYING {
                    // More likely lost than slow past this quantile (the module's doc).
                    let level = (1.0 - loss / (1.0 - loss)).max(LOWEST_SPECULATION_QUANTILE);
                    speculate = speculate.min(w.quantile(level).unwrap_or(speculate));
                }
                let mut limits = Limits {
                    speculate: Some(clamp(speculate)),
                    deadline: clamp(MULTIPLIER * p99),
                };
                // Another slice's (or kind's) latencies say little of a slice ten times heavier: until the task's
                // own are trusted, its prediction bounds the deadline from below and nothing is a straggler
                // before it.
                if !own && predicted.is_finite() && initial > limits.deadline {
                    limits = Limits {
                        speculate: None,
                        deadline: initial,
                    };
                }
                limits
            }
            // Without a measurement there is nothing to call a straggler.
            None => Limits {
                speculate: None,
                deadline: initial,
            },
        }
    }

    /// The limits of `task` after `lates` of its attempts passed their deadline unreported: the deadline doubles
    /// with each (up to the cap), the speculation threshold stays. A host stalled for longer than one deadline
    /// then costs a retry or two, not every attempt — with one deadline for all of them, a loaded CI machine ran
    /// six attempts of 16 ms out in a row on a task that was only waiting for a core.
    pub fn limits_after(&mut self, task: TaskId, lates: u32) -> Limits {
        let limits = self.limits(task);
        let Policy::Auto { cap } = self.policy else {
            return limits;
        };
        let factor = 2f64.powi(lates.min(30) as i32);
        Limits {
            deadline: limits
                .deadline
                .mul_f64(factor)
                .min(cap.max(limits.deadline)),
            ..limits
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
            slice_ms: vec![[2.0, 4.0, 8.0]],
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
    fn a_heavy_slice_keeps_its_predicted_deadline_until_its_own_samples_are_trusted() {
        let initial = Initial {
            slice_ms: vec![[2.0, 4.0, 8.0], [200.0, 400.0, 800.0]],
            slack_ms: 1000.0,
        };
        let mut d = Deadlines::new(Policy::Auto { cap: CAP }, initial);
        for _ in 0..MIN_SAMPLES {
            d.sample(F, ms(5.0));
        }
        // Slice 0's own window; slice 1 borrows it, but not below its prediction.
        assert_eq!(d.limits(F).deadline, ms(15.0));
        assert_eq!(
            d.limits(F1),
            Limits {
                speculate: None,
                deadline: ms(20.0 * 200.0 + 1000.0)
            }
        );
        for _ in 0..MIN_SAMPLES {
            d.sample(F1, ms(300.0));
        }
        assert_eq!(d.limits(F1).deadline, ms(900.0));
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
    fn a_lossy_run_copies_where_a_task_is_more_likely_lost_than_slow() {
        let mut d = Deadlines::new(Policy::Auto { cap: CAP }, Initial::NONE);
        for i in 0..100 {
            d.sample(F, ms(f64::from(i + 1)));
        }
        // No loss seen: 1.5 × p99 (99 ms).
        assert_eq!(d.limits(F).speculate, Some(ms(1.5 * 99.0)));
        // 20 of 100 tasks lost: p̂ = 20.25 / 150 = 0.135, odds 0.156, so the 84th percentile (85 ms, nearest rank
        // of 1..=100); the deadline does not move.
        for i in 0..100 {
            d.loss.outcome(F, i % 5 == 0);
        }
        assert_eq!(d.limits(F).speculate, Some(ms(85.0)));
        assert_eq!(d.limits(F).deadline, ms(3.0 * 99.0));
        // All but one of those turn out slow (their first attempts report after all): back to 1.5 × p99.
        for _ in 0..19 {
            let mut first = d.loss.outcomes.iter_mut().find(|(_, lost)| *lost);
            if let Some(o) = first.as_mut() {
                o.1 = false;
            }
        }
        assert!(d.loss.rate() < LOSS_WORTH_COPYING);
        assert_eq!(d.limits(F).speculate, Some(ms(1.5 * 99.0)));
        // However lossy, never before the median.
        let mut all_lost = Deadlines::new(Policy::Auto { cap: CAP }, Initial::NONE);
        for i in 0..100 {
            all_lost.sample(F, ms(f64::from(i + 1)));
            all_lost.loss.outcome(F, true);
        }
        assert_eq!(all_lost.limits(F).speculate, Some(ms(51.0)));
    }

    #[test]
    fn a_task_found_slow_no_longer_counts_as_lost() {
        let mut loss = LossRate::default();
        loss.outcome(F, true);
        loss.outcome(F1, false);
        let before = loss.rate();
        assert!((before - 1.25 / 52.0).abs() < 1e-12, "{before}");
        loss.was_slow(F);
        assert!((loss.rate() - 0.25 / 52.0).abs() < 1e-12);
        // A task never recorded changes nothing.
        loss.was_slow(TaskId::F {
            step: 9,
            slice: 0,
            mb: 0,
        });
        assert!((loss.rate() - 0.25 / 52.0).abs() < 1e-12);
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
