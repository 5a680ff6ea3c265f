//! The planner: from a measured profile and a platform model to a split.
//!
//! - [`profile`] measures this machine (per-unit compute, store transfers, scheduling overhead) → `profile.json`;
//! - [`platform`] says what a function of a memory size gets and costs (documented, overridable defaults);
//! - [`latency`] turns both into per-task latency distributions and per-slice memory needs;
//! - [`simulate`] gives a step's latency quantiles and cost by Monte Carlo over the step's task graph;
//! - [`search`] picks cuts, slice count and memory per slice for the objective.

pub mod latency;
pub mod platform;
pub mod profile;
pub mod search;
pub mod simulate;

use crate::config::{Config, ConfigError, Slices};
use crate::error::RunError;
use latency::{PlanShape, TaskModel};
use platform::PlatformKind;
use profile::Profile;
use search::{PlanOutcome, Request};

/// Monte Carlo draws per re-ranked candidate, and how many candidates are re-ranked.
const DRAWS: usize = 400;
const RERANK: usize = 10;

/// Plans `cfg` from `profile`: the request comes from `[plan]`, `[train]`, `[runtime]`, `[platform]` and
/// `[pricing]`. With `train.microbatches = "auto"` every candidate count is planned (the profile rescaled to its
/// micro-batch size) and the best for the objective wins. An infeasible request is a config error naming the key
/// and the margin.
pub fn plan_for(
    cfg: &Config,
    profile: &Profile,
    steps_per_epoch: u64,
) -> Result<PlanOutcome, RunError> {
    if cfg.train.microbatches != crate::config::AUTO {
        // The profile may have been measured at another micro-batch size (another config, `"auto"`).
        let m = cfg.train.microbatches;
        let scaled = profile.rescaled(cfg.train.batch_size / m);
        return plan_with(cfg, &scaled, steps_per_epoch, m);
    }
    let p = &cfg.plan;
    let mut outcomes = Vec::new();
    let mut last_err = None;
    for m in crate::config::microbatch_candidates(cfg.train.batch_size) {
        let scaled = profile.rescaled(cfg.train.batch_size / m);
        match plan_with(cfg, &scaled, steps_per_epoch, m) {
            Ok(o) => outcomes.push(o),
            Err(e) => last_err = Some(e),
        }
    }
    let key = |s: &search::PlannedStep| match p.objective {
        search::Objective::Cost => s.cost_usd_per_step,
        search::Objective::Latency => search::quantile_of(&s.predicted, p.quantile),
    };
    outcomes.sort_by(|a, b| key(&a.chosen).total_cmp(&key(&b.chosen)));
    let mut rest = outcomes.into_iter();
    let Some(mut best) = rest.next() else {
        return Err(
            last_err.unwrap_or_else(|| RunError::Mismatch("no micro-batch count to plan".into()))
        );
    };
    // The runners-up: the best plans of the other micro-batch counts and this count's own alternatives.
    let mut alternatives: Vec<search::PlannedStep> = rest.map(|o| o.chosen).collect();
    alternatives.append(&mut best.alternatives);
    alternatives.sort_by(|a, b| key(a).total_cmp(&key(b)));
    best.alternatives = alternatives
        .into_iter()
        .take(3)
        .map(|mut a| {
            a.lost_because = Some(search::why_lost(
                &best.chosen,
                &a,
                p.objective,
                p.quantile,
                p.slo_ms,
                p.budget_usd_per_step,
            ));
            a
        })
        .collect();
    Ok(best)
}

/// Plans `cfg` for a fixed micro-batch count.
fn plan_with(
    cfg: &Config,
    profile: &Profile,
    steps_per_epoch: u64,
    microbatches: usize,
) -> Result<PlanOutcome, RunError> {
    if profile.units.len() != cfg.model.build()?.units().len() {
        return Err(RunError::Mismatch(format!(
            "the profile has {} units, the model {}: profile this config again",
            profile.units.len(),
            cfg.model.build()?.units().len()
        )));
    }
    let req = request(cfg, profile, steps_per_epoch, microbatches);
    let model = TaskModel::new(profile, &cfg.platform);
    search::plan(&model, &cfg.pricing, &req).map_err(|e| {
        RunError::Config(ConfigError {
            field: e.key,
            reason: e.reason,
        })
    })
}

/// The planner's request for `cfg` at `microbatches`: objective and constraints from `[plan]`, parallelism from the
/// platform kind.
fn request(cfg: &Config, profile: &Profile, steps_per_epoch: u64, microbatches: usize) -> Request {
    let p = &cfg.plan;
    let parallel = match cfg.platform.kind {
        PlatformKind::Lambda => simulate::Parallelism {
            slots: cfg.runtime.concurrency,
            cores: None,
        },
        // The local invoker: `concurrency` tasks at once sharing this machine's cores, each computing with the
        // profile's threads.
        PlatformKind::Local => simulate::Parallelism {
            slots: cfg.runtime.concurrency,
            cores: Some(cfg.platform.local_cores() as f64 / profile.threads.max(1) as f64),
        },
    };
    Request {
        objective: p.objective,
        slo_ms: p.slo_ms,
        quantile: p.quantile,
        budget_usd_per_step: p.budget_usd_per_step,
        memory_cap_mb: p.memory_cap_mb,
        // `slices = N > 1` fixes the count; the default 1 ("train in process") and "auto" leave it to the planner
        // (`cuts = []` asks for exactly one slice).
        slices: match p.slices {
            Slices::Count(n) if p.cuts.is_none() && n != 1 => Some(n),
            _ => None,
        },
        cuts: p.cuts.clone(),
        shape: PlanShape {
            microbatches,
            recompute: p.recompute,
            become_successor: p.become_successor,
        },
        parallel,
        steps_per_epoch,
        draws: DRAWS,
        rerank: RERANK,
        seed: cfg.train.seed,
    }
}

/// The model's prediction for one split fixed in full: `bounds` (unit boundaries, from 0 to the unit count) and the
/// memory of each slice, on `cfg.platform` — what a sweep point is predicted to do, without any search.
pub fn evaluate_split(
    cfg: &Config,
    profile: &Profile,
    steps_per_epoch: u64,
    bounds: &[usize],
    memory: &[u32],
) -> Result<search::PlannedStep, RunError> {
    let m = cfg.train.microbatches.max(1);
    let profile = profile.rescaled(cfg.train.batch_size / m);
    if bounds.first() != Some(&0)
        || bounds.last() != Some(&profile.units.len())
        || bounds.len() != memory.len() + 1
    {
        return Err(RunError::Mismatch(format!(
            "split {bounds:?} with memory {memory:?} does not cover the {} profiled units",
            profile.units.len()
        )));
    }
    let req = request(cfg, &profile, steps_per_epoch, m);
    let model = TaskModel::new(&profile, &cfg.platform);
    let seg = search::Segmentation {
        bounds: bounds.to_vec(),
        memory: memory.to_vec(),
    };
    Ok(search::evaluate(&model, &cfg.pricing, &req, &seg))
}

/// Plans `cfg` with `profile`, or with a fresh quick profile of this machine (3 samples of everything) when there
/// is none; returns the profile used and the plan.
pub fn plan_config(
    cfg: &Config,
    profile: Option<Profile>,
) -> Result<(Profile, PlanOutcome), RunError> {
    cfg.validate()?;
    let (_, ds, sampler, _) = crate::fit::open_training(cfg)?;
    let profile = match profile {
        Some(p) => p,
        None => profile::profile_with(cfg, &profile::first_batch(ds.as_ref(), &sampler)?, 3)?,
    };
    let outcome = plan_for(cfg, &profile, sampler.steps_per_epoch() as u64)?;
    Ok((profile, outcome))
}

/// Reads a `profile.json`, naming the file in errors.
pub fn read_profile(path: &std::path::Path) -> Result<Profile, RunError> {
    let text = std::fs::read(path).map_err(crate::error::io(path))?;
    serde_json::from_slice(&text).map_err(|e| {
        RunError::Mismatch(format!(
            "{}: not a profile written by `trainer profile`: {e}",
            path.display()
        ))
    })
}

/// [`read_profile`], checked against the model it is to plan: one profiled unit per model unit, same names.
pub fn read_profile_for(
    path: &std::path::Path,
    model: &models::Model,
) -> Result<Profile, RunError> {
    let profile = read_profile(path)?;
    let names: Vec<String> = model.costs().into_iter().map(|c| c.name).collect();
    let profiled: Vec<&String> = profile.units.iter().map(|u| &u.name).collect();
    if profiled.len() != names.len() || profiled.iter().zip(&names).any(|(a, b)| *a != b) {
        return Err(RunError::Mismatch(format!(
            "{}: profiled for another model ({} units, this config's model has {}): run `trainer profile` on this config",
            path.display(),
            profiled.len(),
            names.len()
        )));
    }
    Ok(profile)
}

/// Measured ÷ modelled task times of the split run in `run_dir` (its `plan.json` and `events.jsonl`), with the
/// model built from `profile` for the local invoker the run used.
pub fn observe_run(
    cfg: &Config,
    profile: &Profile,
    run_dir: &std::path::Path,
) -> Result<profile::Observed, RunError> {
    let read = |name: &str| {
        let path = run_dir.join(name);
        std::fs::read_to_string(&path).map_err(crate::error::io(&path))
    };
    let plan: slice_worker::plan::RunPlan =
        serde_json::from_str(&read("plan.json")?).map_err(|e| {
            RunError::Mismatch(format!(
                "{}: not a split run's plan.json: {e}",
                run_dir.display()
            ))
        })?;
    if plan.slices.last().map(|s| s.1) != Some(profile.units.len()) {
        return Err(RunError::Mismatch(format!(
            "{}: the run's model has other units than this profile",
            run_dir.display()
        )));
    }
    let local = platform::Platform {
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
    };
    let last = plan.slices.len() - 1;
    let resolved: toml::Value = toml::from_str(&read("config.resolved.toml")?).map_err(|e| {
        RunError::Mismatch(format!("{}/config.resolved.toml: {e}", run_dir.display()))
    })?;
    let memory_store = resolved
        .get("runtime")
        .and_then(|r| r.get("store"))
        .and_then(|s| s.as_str())
        .is_none_or(|s| s == "memory");
    let mut obs = profile::Observed {
        run: run_dir.display().to_string(),
        forward: Vec::new(),
        backward: Vec::new(),
        update: Vec::new(),
        step_factors: Vec::new(),
        residuals: Vec::new(),
    };
    let warmup = crate::calibration::warmup_steps(plan.steps);
    // (kind, step, ratio) of every steady task, for the step factors.
    let mut by_step: Vec<(usize, u64, f64)> = Vec::new();
    for e in crate::run_dir::read_events(run_dir)? {
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
        let (kind, modelled, into) = match e.task {
            slice_worker::task::TaskId::F { .. } => (0, m.forward.median(), &mut obs.forward),
            slice_worker::task::TaskId::B { .. } => (1, m.backward.median(), &mut obs.backward),
            slice_worker::task::TaskId::U { .. } => (2, m.update.median(), &mut obs.update),
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
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            1.0
        } else {
            v[v.len() / 2]
        }
    };
    // The kind's scale as the correction takes it (the log-normal's median), so that model × residual × factor
    // lands on the measured times.
    let kind_median: Vec<f64> = kinds.iter().map(|k| latency::correction(k).0).collect();
    let mut steps: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    for &(kind, step, r) in samples {
        steps.entry(step).or_default().push(r / kind_median[kind]);
    }
    let factor: std::collections::BTreeMap<u64, f64> = steps
        .into_iter()
        .map(|(step, mut v)| (step, median(&mut v)))
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
