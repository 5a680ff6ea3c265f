//! The planner's best candidates run whole: each is simulated over its steps ([`super::whole_run`]) on the
//! account's limit, with the warm pool the run would bring up and instances reaped as `[platform]` says, and the
//! candidates are ranked again by what the whole run does — its steps' quantile for a latency objective, its cost
//! per step with the warm pool and the first step's cold starts for a cost objective.
//!
//! Lambda only: the local invoker has no instances to start or reap, and its steady step is the step simulator's.

use super::costs;
use super::latency::{PlanShape, TaskModel};
use super::search::{self, PlanOutcome, PlannedStep, Request};
use super::whole_run::{simulate_run, RunPrediction, RunSpec, Warmup};
use crate::config::{Config, LambdaConfig, Objective};

/// Steps simulated per candidate at most (a longer run's wall time is extrapolated from its steady steps), and
/// replicas drawn.
pub const STEPS: usize = 50;
pub const REPLICAS: usize = 8;

/// The function of each slice of `planned`, as `[lambda]` names them (slices of one memory size share one unless
/// `function_per_slice`).
fn function_names(cfg: &Config, planned: &PlannedStep) -> Vec<String> {
    let memory: Vec<u32> = planned.slices.iter().map(|s| s.memory_mb).collect();
    let slices = memory.len();
    cfg.lambda
        .functions(Some(memory), slices)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The warm pool `planned` brings up: per function (its memory, MB), the instances the plan runs on it at once.
pub fn warm_pool(cfg: &Config, planned: &PlannedStep) -> Vec<(u32, usize)> {
    costs::instances_at_once(
        &function_names(cfg, planned),
        planned.microbatches,
        cfg.runtime.concurrency,
    )
    .into_iter()
    .map(|(f, n)| {
        (
            LambdaConfig::memory_of(&f).unwrap_or(cfg.lambda.memory_mb),
            n,
        )
    })
    .collect()
}

/// What a whole run of `planned` is simulated with, for `cfg`: its functions as `[lambda]` names them, the
/// account's limit (`runtime.concurrency`), the warm pool `runtime.warm_pool` brings up, `platform.idle_reap_s`
/// and the instances' warm-up.
pub fn run_spec(cfg: &Config, planned: &PlannedStep, shape: PlanShape, steps: usize) -> RunSpec {
    let names = function_names(cfg, planned);
    // One entry per function, in the order its slices first name it: the functions' numbers.
    let at_once = costs::instances_at_once(&names, shape.microbatches, cfg.runtime.concurrency);
    let function_of = names
        .iter()
        .map(|n| {
            at_once.iter().position(|(f, _)| f == n).unwrap_or_else(|| {
                unreachable!("instances_at_once lists every function it was given")
            })
        })
        .collect();
    let warm_pool = if cfg.runtime.warm_pool {
        at_once.iter().map(|(_, n)| *n).collect()
    } else {
        Vec::new()
    };
    RunSpec {
        shape,
        steps,
        function_of,
        account_limit: cfg.runtime.concurrency,
        warm_pool,
        idle_reap_ms: cfg.platform.idle_reap_s * 1e3,
        warmup: Warmup {
            extra: cfg.platform.warmup_extra,
            tasks: cfg.platform.warmup_tasks,
        },
        loss_probability: 0.0,
        replicas: REPLICAS,
        seed: cfg.train.seed,
    }
}

/// The whole-run prediction of `planned` (its slices' models rebuilt from `model`).
pub fn predict(
    cfg: &Config,
    model: &TaskModel<'_>,
    req: &Request,
    planned: &PlannedStep,
) -> RunPrediction {
    let n = model.units();
    let slices: Vec<_> = planned
        .slices
        .iter()
        .map(|s| {
            model.slice(
                (s.units[0], s.units[1]),
                s.memory_mb,
                req.shape,
                s.units[1] == n,
            )
        })
        .collect();
    let total = cfg.train.total_steps(req.steps_per_epoch);
    let steps = (total as usize).clamp(1, STEPS);
    let spec = run_spec(cfg, planned, req.shape, steps);
    RunPrediction {
        total_steps: total.max(steps as u64),
        ..simulate_run(&slices, &spec, &cfg.pricing)
    }
}

/// A candidate's figure for the objective from its whole run: the steps' quantile, or its cost per step over the
/// whole training ([`cost_per_step`]).
pub fn key(cfg: &Config, p: &PlannedStep) -> f64 {
    let Some(run) = &p.run else {
        return match cfg.plan.objective {
            Objective::Cost => p.cost_usd_per_step,
            Objective::Latency => search::quantile_of(&p.predicted, cfg.plan.quantile),
        };
    };
    match cfg.plan.objective {
        Objective::Latency => run.quantile(cfg.plan.quantile),
        Objective::Cost => cost_per_step(cfg, p, run),
    }
}

/// `p`'s cost per step over the whole training by its `run`: the simulated steps (first step and cold starts
/// included), the rest at the whole run's steady step's cost (its instances' caches counted, which the step
/// simulator's per-step figure leaves out), the warm pool once.
fn cost_per_step(cfg: &Config, p: &PlannedStep, run: &RunPrediction) -> f64 {
    let simulated = run.steps.max(1) as f64;
    let total = (run.total_steps as f64).max(simulated);
    (run.cost_usd + (total - simulated) * run.steady_cost_usd_per_step + warm_pool_cost(cfg, p))
        / total
}

/// The one-time cost of `p`'s warm pool under `cfg` (0 without one).
pub fn warm_pool_cost(cfg: &Config, p: &PlannedStep) -> f64 {
    if !cfg.runtime.warm_pool {
        return 0.0;
    }
    costs::warm_pool_cost(&warm_pool(cfg, p), &cfg.platform, &cfg.pricing)
}

/// Whether `p` meets the objective's constraint by its whole run (the SLO for cost, the budget for latency).
fn meets_constraint(cfg: &Config, p: &PlannedStep) -> bool {
    let Some(run) = &p.run else {
        return true;
    };
    match cfg.plan.objective {
        Objective::Cost => cfg
            .plan
            .slo_ms
            .is_none_or(|slo| run.quantile(cfg.plan.quantile) <= slo),
        Objective::Latency => cfg
            .plan
            .budget_usd_per_step
            .is_none_or(|b| cost_per_step(cfg, p, run) <= b),
    }
}

/// Simulates the chosen plan and its alternatives whole and ranks them again: the best by its whole run becomes
/// the choice (those meeting the constraint first), the others keep why they lost.
pub fn rerank(cfg: &Config, model: &TaskModel<'_>, req: &Request, outcome: &mut PlanOutcome) {
    let mut all: Vec<PlannedStep> = std::iter::once(outcome.chosen.clone())
        .chain(outcome.alternatives.drain(..))
        .collect();
    for p in &mut all {
        p.run = Some(predict(cfg, model, req, p));
    }
    all.sort_by(|a, b| {
        meets_constraint(cfg, b)
            .cmp(&meets_constraint(cfg, a))
            .then(key(cfg, a).total_cmp(&key(cfg, b)))
    });
    let mut all = all.into_iter();
    if let Some(best) = all.next() {
        outcome.chosen = best;
    }
    outcome.alternatives = all
        .map(|mut a| {
            a.lost_because = Some(why_lost(cfg, &outcome.chosen, &a));
            a
        })
        .collect();
}

/// Why `alt` lost to `chosen` by their whole runs, in numbers.
pub fn why_lost(cfg: &Config, chosen: &PlannedStep, alt: &PlannedStep) -> String {
    let (kc, ka) = (key(cfg, chosen), key(cfg, alt));
    let what = match cfg.plan.objective {
        Objective::Latency => format!("step at q = {} over a whole run", cfg.plan.quantile),
        Objective::Cost => "cost per step over a whole run (warm pool included)".to_string(),
    };
    let p = &cfg.plan;
    let base = search::why_lost(
        chosen,
        alt,
        p.objective,
        p.quantile,
        p.slo_ms,
        p.budget_usd_per_step,
    );
    if !meets_constraint(cfg, alt) {
        return format!("{base}; its whole run misses the constraint too");
    }
    format!(
        "{base}; {what}: {ka:.4e} against {kc:.4e} ({:+.1} %)",
        100.0 * (ka / kc - 1.0)
    )
}
