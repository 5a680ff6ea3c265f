//! Calibration: after a split run, the latency model's prediction for *this* run (its cuts, micro-batches and
//! options, on the platform it ran on — the local invoker on this machine) beside what the run measured, so the
//! model's error is visible in every `summary.json`.

use crate::config::{Config, InvokerKind, PlatformKind, Slices};
use crate::error::RunError;
use crate::planner::profile::Profile;
use crate::planner::simulate::StepPrediction;
use crate::stats::quantile;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use slice_worker::event::{Status, TaskEvent};
use slice_worker::task::TaskId;

/// Step-latency quantiles and per-task-kind medians, ms.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latencies {
    pub step_ms_p50: f64,
    pub step_ms_p95: f64,
    pub forward_ms_p50: f64,
    pub backward_ms_p50: f64,
    pub update_ms_p50: f64,
}

/// Predicted against measured, with relative errors (`predicted / measured − 1`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    pub predicted: Latencies,
    pub measured: Latencies,
    pub relative_error: Latencies,
    /// Steps left out of the measured quantiles as warm-up (new containers, first fetches).
    pub warmup_steps: usize,
}

/// `cfg` with the platform its runs are predicted for: this machine for the local invoker, `[platform]` on Lambda.
pub fn on_its_platform(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    if cfg.runtime.invoker != InvokerKind::Lambda {
        c.platform.kind = PlatformKind::Local;
    }
    c
}

/// The prediction for the run `cfg` describes, with cuts `cuts`, from `profile`: on the local platform for the
/// local invoker, on `[platform]` for Lambda.
pub fn predict(
    cfg: &Config,
    profile: &Profile,
    cuts: &[usize],
) -> Result<StepPrediction, RunError> {
    predict_with_peaks(cfg, profile, cuts).map(|(predicted, _)| predicted)
}

/// [`predict`], and each slice's planned peak memory (MB) in the plan it predicts.
pub fn predict_with_peaks(
    cfg: &Config,
    profile: &Profile,
    cuts: &[usize],
) -> Result<(StepPrediction, Vec<f64>), RunError> {
    let mut local = on_its_platform(cfg);
    local.plan.cuts = Some(cuts.to_vec());
    local.plan.slices = Slices::Count(cuts.len() + 1);
    // plan_for rescales a profile measured at another micro-batch size (planning `microbatches = "auto"`).
    let outcome = crate::planner::plan_for(&local, profile, 1)?;
    let peaks = outcome
        .chosen
        .slices
        .iter()
        .map(|s| s.predicted_peak_mb)
        .collect();
    Ok((outcome.chosen.predicted, peaks))
}

/// Steps at the start of a run left out of its measured quantiles (at most a fifth of the run) and of the corrections
/// taken from its events: new containers, first fetches, and memory touched for the first time — a container keeps
/// the last `WEIGHT_CACHE` weight versions decoded, so its first `WEIGHT_CACHE + 1` updates each allocate fresh
/// memory and pay its page faults (seen: the 8-unit MLP's update at one slice took 40–46 ms in steps 1–5 and 9–10 ms
/// after). The model predicts the steady state that follows.
pub const WARMUP_STEPS: u64 = slice_worker::weight_cache::WEIGHT_CACHE as u64 + 2;

/// The warm-up steps of a run of `steps` steps: [`WARMUP_STEPS`], but at most a fifth of the run.
pub fn warmup_steps(steps: u64) -> u64 {
    (steps / 5).min(WARMUP_STEPS)
}

/// Most run times [`TaskTimes`] keeps per task kind; beyond it, a uniform sample of them.
pub const SAMPLES_PER_KIND: usize = 1 << 16;

/// The successful task executions' run times by kind, taken in as a split run's events arrive. Bounded: the driver
/// kept every event of the run for the calibration until 2026-12-01 — about 0.5 KB a task, so its memory grew by
/// 0.5 MB a step on the 1,088-task load test and without end on a long run. Past [`SAMPLES_PER_KIND`] executions of
/// a kind it keeps a uniform sample (reservoir sampling, from a fixed seed: the same run gives the same sample).
pub struct TaskTimes {
    kinds: [Reservoir; 3],
    rng: ChaCha8Rng,
}

#[derive(Default)]
struct Reservoir {
    seen: u64,
    kept: Vec<f64>,
}

impl Default for TaskTimes {
    fn default() -> Self {
        TaskTimes {
            kinds: Default::default(),
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }
}

impl TaskTimes {
    /// Takes in one event: its run time, if it ran.
    pub fn record(&mut self, e: &TaskEvent) {
        if !matches!(e.status, Status::Ran) {
            return;
        }
        // The update side (sum and optimizer) in one row, whether a shard of it or the reduce half of a clipped one;
        // the clip barrier is too small to calibrate against.
        let kind = match e.task {
            TaskId::F { .. } => 0,
            TaskId::B { .. } => 1,
            TaskId::U { .. } | TaskId::R { .. } => 2,
            TaskId::C { .. } => return,
        };
        let r = &mut self.kinds[kind];
        r.seen += 1;
        if r.kept.len() < SAMPLES_PER_KIND {
            r.kept.push(e.run_ms);
        } else {
            let j = self.rng.random_range(0..r.seen);
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| r.kept.get_mut(j)) {
                *slot = e.run_ms;
            }
        }
    }

    fn forward(&self) -> &[f64] {
        &self.kinds[0].kept
    }

    fn backward(&self) -> &[f64] {
        &self.kinds[1].kept
    }

    fn update(&self) -> &[f64] {
        &self.kinds[2].kept
    }
}

/// Sets the prediction beside the run's measurements: step times (after warm-up) and the successful task
/// executions' run times by kind.
pub fn compare(predicted: &StepPrediction, step_ms: &[f64], tasks: &TaskTimes) -> Calibration {
    let warmup = warmup_steps(step_ms.len() as u64) as usize;
    let steady = &step_ms[warmup..];
    let measured = Latencies {
        step_ms_p50: quantile(steady, 0.5),
        step_ms_p95: quantile(steady, 0.95),
        forward_ms_p50: quantile(tasks.forward(), 0.5),
        backward_ms_p50: if tasks.backward().is_empty() {
            0.0
        } else {
            quantile(tasks.backward(), 0.5)
        },
        update_ms_p50: quantile(tasks.update(), 0.5),
    };
    let predicted = Latencies {
        step_ms_p50: predicted.step_ms_p50,
        step_ms_p95: predicted.step_ms_p95,
        forward_ms_p50: predicted.forward_ms_p50,
        backward_ms_p50: predicted.backward_ms_p50,
        update_ms_p50: predicted.update_ms_p50,
    };
    let rel = |p: f64, m: f64| if m > 0.0 { p / m - 1.0 } else { 0.0 };
    Calibration {
        relative_error: Latencies {
            step_ms_p50: rel(predicted.step_ms_p50, measured.step_ms_p50),
            step_ms_p95: rel(predicted.step_ms_p95, measured.step_ms_p95),
            forward_ms_p50: rel(predicted.forward_ms_p50, measured.forward_ms_p50),
            backward_ms_p50: rel(predicted.backward_ms_p50, measured.backward_ms_p50),
            update_ms_p50: rel(predicted.update_ms_p50, measured.update_ms_p50),
        },
        predicted,
        measured,
        warmup_steps: warmup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(task: TaskId, run_ms: f64) -> TaskEvent {
        let mut e = TaskEvent::new(task, 1, "slice-0#0".into(), Status::Ran);
        e.run_ms = run_ms;
        e
    }

    #[test]
    fn task_times_are_kept_by_kind_and_only_for_executions_that_ran() {
        let mut t = TaskTimes::default();
        t.record(&ran(
            TaskId::F {
                step: 1,
                slice: 0,
                mb: 0,
            },
            1.0,
        ));
        t.record(&ran(
            TaskId::B {
                step: 1,
                slice: 0,
                mb: 0,
            },
            2.0,
        ));
        t.record(&ran(
            TaskId::U {
                step: 1,
                slice: 0,
                shard: 0,
            },
            3.0,
        ));
        let mut failed = ran(
            TaskId::F {
                step: 1,
                slice: 0,
                mb: 1,
            },
            99.0,
        );
        failed.status = Status::Failed("no".into());
        t.record(&failed);
        assert_eq!(
            (t.forward(), t.backward(), t.update()),
            (&[1.0][..], &[2.0][..], &[3.0][..])
        );
    }

    #[test]
    fn past_the_bound_a_kind_keeps_a_uniform_sample() {
        let mut t = TaskTimes::default();
        let n = 4 * SAMPLES_PER_KIND;
        for i in 0..n {
            t.record(&ran(
                TaskId::U {
                    step: i as u64,
                    slice: 0,
                    shard: 0,
                },
                i as f64,
            ));
        }
        let kept = t.update();
        assert_eq!(kept.len(), SAMPLES_PER_KIND);
        // Every quarter of the run is in the sample about equally (a sample of the first executions only, or of
        // the last, would fail this), and the median is the run's within 1 %.
        for q in 0..4 {
            let lo = (q * SAMPLES_PER_KIND) as f64;
            let share = kept
                .iter()
                .filter(|&&v| v >= lo && v < lo + SAMPLES_PER_KIND as f64)
                .count() as f64
                / SAMPLES_PER_KIND as f64;
            assert!((share - 0.25).abs() < 0.01, "quarter {q}: {share}");
        }
        let median = quantile(kept, 0.5);
        assert!(
            (median / (n as f64 / 2.0) - 1.0).abs() < 0.01,
            "median {median}"
        );
    }
}
