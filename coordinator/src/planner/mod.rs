//! The planner: from a measured profile and a platform model to a split.
//!
//! Takes a [`profile::Profile`] and task events as data and never calls into a run (measuring a profile is
//! `crate::profiling`'s, reading a run folder `crate::run`'s). The platform model (`[platform]`, `[pricing]`) is
//! config: [`crate::config::Platform`].
//!
//! - [`profile`] holds `profile.json` (per-unit compute, store transfers, scheduling overhead) and reads it;
//! - [`latency`] turns both into per-task latency distributions and per-slice memory needs;
//! - [`simulate`] gives a step's latency quantiles and cost by Monte Carlo over the step's task graph;
//! - [`search`] picks cuts, slice count and memory per slice for the objective;
//! - [`whole_run`] simulates whole runs — steps chained, the account's limit, instances started cold, kept warm
//!   and reaped ([`fleet`]) — and [`run_rank`] ranks the best candidates again by them (Lambda);
//! - [`calibration`] sets a run's prediction beside what it measured, [`costs`] prices measured tasks, and
//!   [`observe`] turns a finished run's events into the correction `trainer profile --events` keeps.

pub mod calibration;
pub mod costs;
pub mod fleet;
pub mod latency;
pub mod lognormal;
pub mod observe;
pub mod profile;
pub mod run_rank;
pub mod search;
pub mod segment;
pub mod simulate;
pub mod whole_run;

use crate::config::{Config, ConfigError, PlatformKind, Slices};
use crate::error::RunError;
use latency::{PlanShape, TaskModel};
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
    let mut outcome = plan_any_microbatches(cfg, profile, steps_per_epoch)?;
    outcome.warm_pool = warm_pool_for(cfg, &outcome.chosen);
    Ok(outcome)
}

/// The warm pool of `chosen` on Lambda: its functions (named as `[lambda]` names them) at the instances the plan
/// runs on each at once, priced once; none when `runtime.warm_pool` is off.
fn warm_pool_for(cfg: &Config, chosen: &search::PlannedStep) -> Option<search::WarmPoolPlan> {
    if !cfg.runtime.warm_pool {
        return None;
    }
    let pool = run_rank::warm_pool(cfg, chosen);
    Some(search::WarmPoolPlan {
        instances: pool.iter().map(|(_, n)| n).sum(),
        cost_usd: costs::warm_pool_cost(&pool, &cfg.platform, &cfg.pricing),
    })
}

/// [`plan_for`] without the warm pool.
fn plan_any_microbatches(
    cfg: &Config,
    profile: &Profile,
    steps_per_epoch: u64,
) -> Result<PlanOutcome, RunError> {
    if let Some(m) = cfg.train.microbatches.count() {
        // The profile may have been measured at another micro-batch size (another config, `"auto"`).
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
    let key = |s: &search::PlannedStep| run_rank::key(cfg, s);
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
    let mut outcome = search::plan(&model, &cfg.pricing, &req).map_err(|e| {
        RunError::Config(ConfigError {
            field: e.key,
            reason: e.reason,
        })
    })?;
    if cfg.platform.kind == PlatformKind::Lambda {
        run_rank::rerank(cfg, &model, &req, &mut outcome);
    }
    Ok(outcome)
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
            clip: cfg.train.grad_clip.is_some(),
            shards: match p.update_shards {
                crate::config::UpdateShards::Each(k) => Some(k),
                _ => None,
            },
            weight_cache: p.weight_cache,
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
    // A sweep point fixes the count; one left to the planner is evaluated at 1.
    let m = cfg.train.microbatches.count().unwrap_or(1);
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
    let seg = segment::Segmentation {
        bounds: bounds.to_vec(),
        memory: memory.to_vec(),
    };
    let mut planned = search::evaluate(&model, &cfg.pricing, &req, &seg);
    if cfg.platform.kind == PlatformKind::Lambda {
        planned.run = Some(run_rank::predict(cfg, &model, &req, &planned));
    }
    Ok(planned)
}
