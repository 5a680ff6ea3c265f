//! Measured ÷ modelled task times of a finished split run: the correction `trainer profile --events` keeps in a
//! profile. Takes the run's plan and events as data; reading them from a run folder is the caller's.

use super::calibration::warmup_steps;
use super::latency::{self, PlanShape, TaskModel};
use super::profile::{Observed, Profile};
use crate::config::{Config, Platform, PlatformKind};
use crate::error::RunError;
use crate::stats::median;
use slice_worker::event::TaskEvent;
use slice_worker::plan::RunPlan;

/// Measured ÷ modelled task times of the split run `run` (its name in the profile) that ran `plan` and reported
/// `events`, with the model built from `profile` for the local invoker the run used. `memory_store`: whether the
/// run's store was the in-memory one (then a task's CPU time is what it cost; with a real store its whole run time).
pub fn observe(
    cfg: &Config,
    profile: &Profile,
    run: &str,
    plan: &RunPlan,
    events: &[TaskEvent],
    memory_store: bool,
) -> Result<Observed, RunError> {
    if plan.slices.last().map(|s| s.1) != Some(profile.units.len()) {
        return Err(RunError::Mismatch(format!(
            "{run}: the run's model has other units than this profile"
        )));
    }
    let local = Platform {
        kind: PlatformKind::Local,
        ..cfg.platform.clone()
    };
    let scaled = Profile {
        observed: None,
        ..profile.rescaled(plan.batch_size / plan.microbatches.max(1))
    };
    let model = TaskModel::new(&scaled, &local);
    let shape = PlanShape {
        microbatches: plan.microbatches,
        recompute: plan.recompute,
        become_successor: true,
        clip: plan.grad_clip.is_some(),
        shards: None,
        weight_cache: Some(plan.weight_cache),
    };
    let last = plan.slices.len() - 1;
    let mut obs = Observed {
        run: run.to_string(),
        forward: Vec::new(),
        backward: Vec::new(),
        update: Vec::new(),
        step_factors: Vec::new(),
        residuals: Vec::new(),
    };
    let warmup = warmup_steps(plan.steps);
    // (kind, step, ratio) of every steady task, for the step factors.
    let mut by_step: Vec<(usize, u64, f64)> = Vec::new();
    for e in events {
        // Steady state only, as calibration measures it: not the warm-up steps (new containers, first fetches,
        // memory touched for the first time), not cold starts.
        if !matches!(e.status, slice_worker::event::Status::Ran)
            || e.run_ms <= 0.0
            || e.cold
            || e.task.step() <= warmup
        {
            continue;
        }
        let s = e.task.slice();
        let Some(&units) = plan.slices.get(s) else {
            continue;
        };
        let m = model.slice(units, 1024, shape, s == last);
        use slice_worker::task::TaskId;
        let whole_update = plan.shard_count(s) == 1 && plan.grad_clip.is_none();
        let (kind, modelled, into) = match e.task {
            TaskId::F { .. } => (0, m.forward.median(), &mut obs.forward),
            TaskId::B { .. } => (1, m.backward.median(), &mut obs.backward),
            // The profile's update is a whole slice's: only whole-slice updates correct it.
            TaskId::U { .. } if whole_update => (2, m.update.median(), &mut obs.update),
            TaskId::U { .. } | TaskId::R { .. } | TaskId::C { .. } => continue,
        };
        // With the in-memory store a local handler never waits for I/O, only for a core that other tasks share —
        // which the simulator adds itself: its CPU time is what a task time of the model stands for. With a real
        // store, waiting on the network is part of the task, so the whole run time counts.
        let measured = if memory_store && e.cpu_ms > 0.0 {
            e.cpu_ms
        } else {
            e.run_ms
        };
        if modelled > 0.0 && measured > 0.0 {
            into.push(measured / modelled);
            by_step.push((kind, e.task.step(), measured / modelled));
        }
    }
    (obs.step_factors, obs.residuals) =
        step_factors(&by_step, [&obs.forward, &obs.backward, &obs.update]);
    Ok(obs)
}

/// Splits ratios `(kind, step, ratio)` into a factor per step (the median of the step's ratios, each divided by its
/// kind's scale) and each task's residual (its ratio divided by its kind's median and its step's factor), by kind.
fn step_factors(samples: &[(usize, u64, f64)], kinds: [&[f64]; 3]) -> (Vec<f64>, Vec<Vec<f64>>) {
    // The kind's scale as the correction takes it (the log-normal's median), so that model × residual × factor
    // lands on the measured times.
    let kind_median: Vec<f64> = kinds.iter().map(|k| latency::correction(k).0).collect();
    let mut steps: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for &(kind, step, r) in samples {
        steps.entry(step).or_default().push(r / kind_median[kind]);
    }
    let factor: std::collections::BTreeMap<u64, f64> = steps
        .into_iter()
        .map(|(step, v)| (step, median(&v)))
        .collect();
    let mut residuals = vec![Vec::new(); 3];
    for &(kind, step, r) in samples {
        residuals[kind].push(r / kind_median[kind] / factor[&step]);
    }
    (factor.into_values().collect(), residuals)
}

#[cfg(test)]
mod tests {
    use super::step_factors;

    /// Two steps, one three times as slow as the other: the slowness is the step's, nothing is left to the tasks.
    #[test]
    fn a_slow_step_is_a_step_factor_not_a_task_residual() {
        let samples = [(0, 1, 1.0), (0, 1, 1.0), (0, 2, 3.0), (0, 2, 3.0)];
        let forward = [1.0, 1.0, 3.0, 3.0];
        let (factors, residuals) = step_factors(&samples, [&forward, &[], &[]]);
        let scale = 3f64.sqrt(); // the log-normal's median of the kind's ratios
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(factors[0], 1.0 / scale);
        close(factors[1], 3.0 / scale);
        assert_eq!(residuals[0].len(), 4);
        for r in &residuals[0] {
            close(*r, 1.0);
        }
    }
}
