//! Calibration: after a split run, the latency model's prediction for *this* run (its cuts, micro-batches and
//! options, on the platform it ran on — the local invoker on this machine) beside what the run measured, so the
//! model's error is visible in every `summary.json`.

use crate::config::{Config, Slices};
use crate::error::RunError;
use crate::planner::platform::PlatformKind;
use crate::planner::profile::Profile;
use crate::planner::simulate::StepPrediction;
use serde::Serialize;
use slice_worker::event::{Status, TaskEvent};

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
    if cfg.runtime.invoker != "lambda" {
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
    let mut local = on_its_platform(cfg);
    local.plan.cuts = Some(cuts.to_vec());
    local.plan.slices = Slices::Count(cuts.len() + 1);
    // plan_for rescales a profile measured at another micro-batch size (planning `microbatches = "auto"`).
    let outcome = crate::planner::plan_for(&local, profile, 1)?;
    Ok(outcome.chosen.predicted)
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

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[(((s.len() - 1) as f64) * q).round() as usize]
}

/// Sets the prediction beside the run's measurements: step times (after warm-up) and the successful task
/// executions' run times by kind.
pub fn compare(predicted: &StepPrediction, step_ms: &[f64], events: &[TaskEvent]) -> Calibration {
    let warmup = warmup_steps(step_ms.len() as u64) as usize;
    let steady = &step_ms[warmup..];
    let kind = |k: char| -> Vec<f64> {
        events
            .iter()
            .filter(|e| matches!(e.status, Status::Ran))
            .filter(|e| e.task.to_string().starts_with(k))
            .map(|e| e.run_ms)
            .collect()
    };
    let measured = Latencies {
        step_ms_p50: quantile(steady, 0.5),
        step_ms_p95: quantile(steady, 0.95),
        forward_ms_p50: quantile(&kind('F'), 0.5),
        backward_ms_p50: {
            let b = kind('B');
            if b.is_empty() {
                0.0
            } else {
                quantile(&b, 0.5)
            }
        },
        update_ms_p50: quantile(&kind('U'), 0.5),
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
