//! The planner's search: cut points, slice count and memory per slice.
//!
//! 1. A dynamic program over unit boundaries minimises a decomposable stand-in objective — per slice,
//!    `cost/c₀ + λ·time/t₀` with the slice's best memory size on the grid (every size its peak memory fits) — for
//!    several weights λ and every slice count allowed. Each (λ, count) gives one candidate.
//! 2. The candidates are ranked by quick estimates for the objective, and the best few are re-ranked by Monte
//!    Carlo ([`super::simulate`]), which sees what the stand-in cannot: the pipeline's bottleneck slice, the spread,
//!    the concurrency limit.
//! 3. The objective picks: `cost` — the cheapest plan whose step latency at `quantile` meets `slo_ms`; `latency` —
//!    the fastest (at `quantile`) under `budget_usd_per_step`. An infeasible request names the constraint and the
//!    margin.
//!
//! One file past 600 lines on purpose: about 555 are the search, one concept (candidates, their ranking and the
//! objective's choice, with the types it answers in), and the rest are its tests, which belong beside it.

use super::latency::{PlanShape, TaskModel, TaskPeaks};
use super::segment::Dp;
use super::segment::Segmentation;
use super::simulate::{simulate, Parallelism, StepPrediction};
use crate::config::{Objective, Pricing};
use serde::Serialize;

/// A planning request.
#[derive(Clone, Debug)]
pub struct Request {
    pub objective: Objective,
    pub slo_ms: Option<f64>,
    pub quantile: f64,
    pub budget_usd_per_step: Option<f64>,
    pub memory_cap_mb: Option<u32>,
    /// A fixed slice count (the planner still picks cuts and memory).
    pub slices: Option<usize>,
    /// Fixed cuts (the planner picks memory only).
    pub cuts: Option<Vec<usize>>,
    pub shape: PlanShape,
    /// How tasks run at once (Lambda: the concurrency limit, own CPUs; local: slots sharing the cores).
    pub parallel: Parallelism,
    pub steps_per_epoch: u64,
    /// Monte Carlo draws per re-ranked candidate, and how many candidates are re-ranked.
    pub draws: usize,
    pub rerank: usize,
    pub seed: u64,
}

/// One slice of a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedSlice {
    /// Half-open unit range `[start, end)`.
    pub units: [usize; 2],
    pub memory_mb: u32,
    pub predicted_peak_mb: f64,
    /// How many shards the slice's update runs as, and how many decoded weight versions its containers keep.
    pub shards: usize,
    pub weight_cache: usize,
    /// What each task kind holds at its peak beside the runtime and the cached versions, MB.
    pub task_peaks_mb: TaskPeaksMb,
    /// The model's median run time of each task kind, ms (for comparing with a run's events, task by task).
    pub task_ms: TaskTimesMs,
}

/// A slice's median task times as the model has them, ms: each kind's run with its transfers (the last slice's
/// forward runs its loss and backward, and it has no backward task), an update shard, and the weights' read a
/// task adds when its container does not hold the step's version.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TaskTimesMs {
    pub forward: f64,
    pub backward: f64,
    pub update: f64,
    pub weights: f64,
}

/// [`TaskPeaks`] in MB, for `plan.json` and `trainer plan`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TaskPeaksMb {
    pub forward: f64,
    /// 0 (and left out of `plan.json`) for the last slice, whose forward task runs the backward.
    #[serde(skip_serializing_if = "is_zero")]
    pub backward: f64,
    pub update: f64,
    #[serde(skip_serializing_if = "is_zero")]
    pub reduce: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl TaskPeaksMb {
    fn of(p: &TaskPeaks) -> TaskPeaksMb {
        TaskPeaksMb {
            forward: p.forward / 1e6,
            backward: p.backward / 1e6,
            update: p.update / 1e6,
            reduce: p.reduce / 1e6,
        }
    }
}

/// A plan with its prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedStep {
    pub slices: Vec<PlannedSlice>,
    pub microbatches: usize,
    pub predicted: StepPrediction,
    pub cost_usd_per_step: f64,
    pub cost_usd_per_epoch: f64,
    pub store_peak_bytes: f64,
    /// For an alternative: why the chosen plan beat it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_because: Option<String>,
    /// On Lambda, the whole run simulated ([`super::run_rank`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<super::whole_run::RunPrediction>,
}

/// The planner's answer: the chosen plan and the three best alternatives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanOutcome {
    pub objective: Objective,
    pub quantile: f64,
    #[serde(flatten)]
    pub chosen: PlannedStep,
    pub alternatives: Vec<PlannedStep>,
    /// Candidates the dynamic program produced, and how many Monte Carlo re-ranked.
    pub candidates: usize,
    pub reranked: usize,
    /// On Lambda with `runtime.warm_pool`: the instances brought up before the first step and their one-time cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolPlan>,
}

/// A warm pool as the planner prices it ([`crate::planner::costs::warm_pool_cost`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WarmPoolPlan {
    pub instances: usize,
    pub cost_usd: f64,
}

impl PlannedStep {
    /// Cut points (unit indices where slices 2.. start).
    pub fn cuts(&self) -> Vec<usize> {
        self.slices.iter().skip(1).map(|s| s.units[0]).collect()
    }
}

/// Why a request cannot be met: the config key and the reason with its margin.
#[derive(Debug, Clone, PartialEq)]
pub struct Infeasible {
    pub key: String,
    pub reason: String,
}

/// The stand-in weights λ: from cost only to latency-dominated.
const LAMBDAS: [f64; 8] = [0.0, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0];

/// Plans a run: the dynamic program proposes segmentations for several weights λ, quick estimates shortlist them,
/// Monte Carlo ranks the shortlist for the objective, and the best must meet its constraint.
pub fn plan(
    model: &TaskModel<'_>,
    pricing: &Pricing,
    req: &Request,
) -> Result<PlanOutcome, Infeasible> {
    let n = model.units();
    let grid = model.platform.memory_grid(req.memory_cap_mb);
    let cap = *grid.last().unwrap_or(&model.platform.min_memory_mb);
    check_units_fit(model, req, cap)?;
    let ks = slice_counts(req, n)?;
    let table = SegmentTable::new(model, pricing, req, &grid, cap);
    let pool = proposals(&table, req, &ks);
    if pool.is_empty() {
        return Err(Infeasible {
            key: "plan.memory_cap_mb".into(),
            reason: format!("no split into {:?} slices fits {cap} MB per function", ks),
        });
    }
    let candidates = pool.len();
    let shortlist = shortlist(model, pricing, req, pool);
    let reranked = shortlist.len();
    let mut evaluated: Vec<PlannedStep> = shortlist
        .iter()
        .map(|seg| evaluate(model, pricing, req, seg))
        .collect();
    rank(&mut evaluated, req);
    let chosen = evaluated.remove(0);
    check_objective(&chosen, req)?;
    let alternatives = evaluated
        .into_iter()
        .take(3)
        .map(|mut alt| {
            alt.lost_because = Some(why_lost(
                &chosen,
                &alt,
                req.objective,
                req.quantile,
                req.slo_ms,
                req.budget_usd_per_step,
            ));
            alt
        })
        .collect();
    Ok(PlanOutcome {
        objective: req.objective,
        quantile: req.quantile,
        chosen,
        alternatives,
        candidates,
        reranked,
        warm_pool: None,
    })
}

/// Every unit must fit the memory cap on its own.
fn check_units_fit(model: &TaskModel<'_>, req: &Request, cap: u32) -> Result<(), Infeasible> {
    for u in 0..model.units() {
        if model.memory_fit((u, u + 1), req.shape, cap).is_none() {
            let most = model.max_shards((u, u + 1));
            let shards = req.shape.shards.unwrap_or(most).min(most);
            let need = model.peak_mb(
                (u, u + 1),
                req.shape,
                shards,
                req.shape.weight_cache.unwrap_or(0),
            );
            return Err(Infeasible {
                key: if req.memory_cap_mb.is_some() {
                    "plan.memory_cap_mb".into()
                } else {
                    "platform.max_memory_mb".into()
                },
                reason: format!(
                    "unit {u} ({}) alone needs {need:.0} MB even with its update in {shards} shards and no cached \
                     weight versions, {:.0} MB over the {cap} MB limit",
                    model.profile.units[u].name,
                    need - f64::from(cap)
                ),
            });
        }
    }
    Ok(())
}

/// The slice counts the request allows: its cuts', its fixed count, or every count up to the unit count.
fn slice_counts(req: &Request, n: usize) -> Result<Vec<usize>, Infeasible> {
    let ks: Vec<usize> = match (&req.cuts, req.slices) {
        (Some(c), _) => vec![c.len() + 1],
        (None, Some(k)) => vec![k],
        (None, None) => (1..=n).collect(),
    };
    if let Some(&k) = ks.iter().find(|&&k| k == 0 || k > n) {
        return Err(Infeasible {
            key: "plan.slices".into(),
            reason: format!("{k} slices asked for a model of {n} units"),
        });
    }
    Ok(ks)
}

/// Every segment's normalised cost and critical-path time at every memory size it fits, computed once; each λ then
/// only weighs them.
struct SegmentTable<'g> {
    n: usize,
    grid: &'g [u32],
    /// `cells[(a * (n + 1) + b) * grid.len() + gi]`: (cost / c₀, chain / t₀) of units `a..b` at `grid[gi]`.
    cells: Vec<Option<(f64, f64)>>,
}

impl<'g> SegmentTable<'g> {
    fn new(
        model: &TaskModel<'_>,
        pricing: &Pricing,
        req: &Request,
        grid: &'g [u32],
        cap: u32,
    ) -> SegmentTable<'g> {
        let n = model.units();
        let m = req.shape.microbatches as f64;
        let gb_ms_price = pricing.usd_per_gb_s / 1e3 / 1024.0;
        // Normalisers: the whole model on the largest memory.
        let whole_shards = model
            .memory_fit((0, n), req.shape, cap)
            .map_or(1, |f| f.shards);
        let (busy0, chain0) = model.estimate((0, n), cap, req.shape, true, whole_shards);
        let c0 = (busy0 * f64::from(cap) * gb_ms_price).max(1e-12);
        let t0 = chain0.max(1e-9);
        let g = grid.len();
        let mut cells: Vec<Option<(f64, f64)>> = vec![None; (n + 1) * (n + 1) * g];
        for a in 0..n {
            for b in a + 1..=n {
                for (gi, &mem) in grid.iter().enumerate() {
                    let Some(fit) = model.memory_fit((a, b), req.shape, mem) else {
                        continue;
                    };
                    let (busy, chain) = model.estimate((a, b), mem, req.shape, b == n, fit.shards);
                    let updates = fit.shards as f64 * if req.shape.clip { 2.0 } else { 1.0 };
                    let cost = busy * f64::from(mem) * gb_ms_price
                        + (2.0 * m + updates) * pricing.usd_per_request;
                    cells[(a * (n + 1) + b) * g + gi] = Some((cost / c0, chain / t0));
                }
            }
        }
        SegmentTable { n, grid, cells }
    }

    fn at(&self, a: usize, b: usize, gi: usize) -> Option<(f64, f64)> {
        self.cells[(a * (self.n + 1) + b) * self.grid.len() + gi]
    }
}

/// The dynamic program's segmentations for every λ (for fixed cuts: the best memory per slice), sorted, without
/// repeats.
fn proposals(table: &SegmentTable<'_>, req: &Request, ks: &[usize]) -> Vec<Segmentation> {
    let n = table.n;
    let mut pool: Vec<Segmentation> = Vec::new();
    for &lambda in &LAMBDAS {
        let dp = Dp::new(n, table.grid, |a, b, gi| {
            table
                .at(a, b, gi)
                .map(|(cost, chain)| cost + lambda * chain)
        });
        match &req.cuts {
            Some(c) => {
                let mut bounds = vec![0];
                bounds.extend(c);
                bounds.push(n);
                if let Some((_, seg)) = dp.fixed(&bounds) {
                    pool.push(seg);
                }
            }
            None => pool.extend(
                dp.solve(ks)
                    .into_iter()
                    .filter_map(|(_, s)| s.map(|(_, seg)| seg)),
            ),
        }
    }
    pool.sort();
    pool.dedup();
    pool
}

/// The few proposals Monte Carlo re-ranks: by quick estimates (pipeline latency ≈ Σ per-micro-batch chain +
/// (M − 1) × the slowest slice's micro-batch), the cheapest that may meet the SLO and then the fastest, half each.
fn shortlist(
    model: &TaskModel<'_>,
    pricing: &Pricing,
    req: &Request,
    pool: Vec<Segmentation>,
) -> Vec<Segmentation> {
    let n = model.units();
    let m = req.shape.microbatches as f64;
    let gb_ms_price = pricing.usd_per_gb_s / 1e3 / 1024.0;
    let quick = |seg: &Segmentation| -> (f64, f64) {
        let (mut chain, mut worst, mut cost) = (0.0, 0.0f64, 0.0);
        for (i, w) in seg.bounds.windows(2).enumerate() {
            let last = w[1] == n;
            let shards = model
                .memory_fit((w[0], w[1]), req.shape, seg.memory[i])
                .map_or(1, |f| f.shards);
            let (busy, ch) = model.estimate((w[0], w[1]), seg.memory[i], req.shape, last, shards);
            chain += ch;
            worst = worst.max((busy - ch).max(0.0) / (m - 1.0).max(1.0));
            cost += busy * f64::from(seg.memory[i]) * gb_ms_price;
        }
        (chain + (m - 1.0) * worst, cost)
    };
    let mut ranked: Vec<(f64, f64, Segmentation)> = pool
        .into_iter()
        .map(|s| {
            let (t, c) = quick(&s);
            (t, c, s)
        })
        .collect();
    let keep = req.rerank.max(4);
    let mut chosen_pool: Vec<Segmentation> = Vec::new();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let slo_ok = |t: f64| req.slo_ms.is_none_or(|slo| t <= slo * 1.5);
    chosen_pool.extend(
        ranked
            .iter()
            .filter(|r| slo_ok(r.0))
            .take(keep / 2)
            .map(|r| r.2.clone()),
    );
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    for r in &ranked {
        if chosen_pool.len() >= keep {
            break;
        }
        if !chosen_pool.contains(&r.2) {
            chosen_pool.push(r.2.clone());
        }
    }
    chosen_pool
}

/// Best first for the objective: meeting the constraint first, then the objective's value, then the other.
fn rank(evaluated: &mut [PlannedStep], req: &Request) {
    let at_q = |p: &PlannedStep| quantile_of(&p.predicted, req.quantile);
    match req.objective {
        Objective::Cost => evaluated.sort_by(|a, b| {
            let ok = |p: &PlannedStep| req.slo_ms.is_none_or(|s| at_q(p) <= s);
            ok(b)
                .cmp(&ok(a))
                .then(a.cost_usd_per_step.total_cmp(&b.cost_usd_per_step))
                .then(at_q(a).total_cmp(&at_q(b)))
        }),
        Objective::Latency => evaluated.sort_by(|a, b| {
            let ok = |p: &PlannedStep| {
                req.budget_usd_per_step
                    .is_none_or(|u| p.cost_usd_per_step <= u)
            };
            ok(b)
                .cmp(&ok(a))
                .then(at_q(a).total_cmp(&at_q(b)))
                .then(a.cost_usd_per_step.total_cmp(&b.cost_usd_per_step))
        }),
    }
}

/// The best plan must meet the objective's constraint: `slo_ms` for cost, the budget for latency.
fn check_objective(chosen: &PlannedStep, req: &Request) -> Result<(), Infeasible> {
    let q = req.quantile;
    let at_q = quantile_of(&chosen.predicted, q);
    if let (Objective::Cost, Some(slo)) = (req.objective, req.slo_ms) {
        if at_q > slo {
            return Err(Infeasible {
                key: "plan.slo_ms".into(),
                reason: format!(
                    "the fastest plan found takes {:.1} ms per step at quantile {q}, {:.1} ms over slo_ms = {slo}",
                    at_q,
                    at_q - slo
                ),
            });
        }
    }
    if let (Objective::Latency, Some(budget)) = (req.objective, req.budget_usd_per_step) {
        if chosen.cost_usd_per_step > budget {
            return Err(Infeasible {
                key: "plan.budget_usd_per_step".into(),
                reason: format!(
                    "the cheapest plan found costs ${:.3e} per step, ${:.3e} over the budget of ${budget:.3e}",
                    chosen.cost_usd_per_step,
                    chosen.cost_usd_per_step - budget
                ),
            });
        }
    }
    Ok(())
}

/// The step latency at quantile `q` (p50, p95 or p99, whichever is nearest).
pub fn quantile_of(p: &StepPrediction, q: f64) -> f64 {
    if q >= 0.97 {
        p.step_ms_p99
    } else if q >= 0.7 {
        p.step_ms_p95
    } else {
        p.step_ms_p50
    }
}

/// Why `alt` lost to `chosen` under the objective, in words and numbers.
pub fn why_lost(
    chosen: &PlannedStep,
    alt: &PlannedStep,
    objective: Objective,
    quantile: f64,
    slo_ms: Option<f64>,
    budget_usd_per_step: Option<f64>,
) -> String {
    let (qc, qa) = (
        quantile_of(&chosen.predicted, quantile),
        quantile_of(&alt.predicted, quantile),
    );
    let pct = |a: f64, b: f64| 100.0 * (a / b - 1.0);
    let with_m = if alt.microbatches != chosen.microbatches {
        format!("with {} micro-batches: ", alt.microbatches)
    } else {
        String::new()
    };
    let reason = match objective {
        Objective::Cost => match slo_ms {
            Some(slo) if qa > slo => format!(
                "misses slo_ms by {:.1} ms ({qa:.1} ms at q = {quantile})",
                qa - slo
            ),
            _ => format!(
                "costs {:+.1} % per step (${:.3e} vs ${:.3e})",
                pct(alt.cost_usd_per_step, chosen.cost_usd_per_step),
                alt.cost_usd_per_step,
                chosen.cost_usd_per_step
            ),
        },
        Objective::Latency => match budget_usd_per_step {
            Some(b) if alt.cost_usd_per_step > b => {
                format!("over budget by ${:.3e} per step", alt.cost_usd_per_step - b)
            }
            _ => format!(
                "{:+.1} % slower at q = {quantile} ({qa:.1} vs {qc:.1} ms)",
                pct(qa, qc)
            ),
        },
    };
    format!("{with_m}{reason}")
}

/// Monte Carlo of one segmentation.
pub fn evaluate(
    model: &TaskModel<'_>,
    pricing: &Pricing,
    req: &Request,
    seg: &Segmentation,
) -> PlannedStep {
    let n = model.units();
    let slices: Vec<_> = seg
        .bounds
        .windows(2)
        .zip(&seg.memory)
        .map(|(w, &mem)| model.slice((w[0], w[1]), mem, req.shape, w[1] == n))
        .collect();
    let predicted = simulate(
        &slices,
        req.shape,
        req.parallel,
        pricing,
        req.draws,
        req.seed,
    );
    let store_peak_bytes = slices.iter().map(|s| s.store_bytes).sum();
    PlannedStep {
        slices: slices
            .iter()
            .map(|s| PlannedSlice {
                units: [s.units.0, s.units.1],
                memory_mb: s.memory_mb,
                predicted_peak_mb: s.predicted_peak_mb,
                shards: s.shards,
                weight_cache: s.weight_cache,
                task_peaks_mb: TaskPeaksMb::of(&s.task_peaks),
                task_ms: TaskTimesMs {
                    forward: s.forward.median(),
                    backward: s.backward.median(),
                    update: s.update.median(),
                    weights: s.weights_ms,
                },
            })
            .collect(),
        microbatches: req.shape.microbatches,
        cost_usd_per_step: predicted.cost_usd_per_step,
        cost_usd_per_epoch: predicted.cost_usd_per_step * req.steps_per_epoch as f64,
        predicted,
        store_peak_bytes,
        lost_because: None,
        run: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every segmentation into `k` slices with every memory choice, the slow way.
    fn brute(
        n: usize,
        k: usize,
        grid: &[u32],
        value: &dyn Fn(usize, usize, u32) -> Option<f64>,
    ) -> Option<f64> {
        fn go(
            a: usize,
            n: usize,
            k: usize,
            grid: &[u32],
            value: &dyn Fn(usize, usize, u32) -> Option<f64>,
        ) -> Option<f64> {
            if k == 0 {
                return (a == n).then_some(0.0);
            }
            let mut best: Option<f64> = None;
            for b in a + 1..=n {
                for &m in grid {
                    let (Some(v), Some(rest)) = (value(a, b, m), go(b, n, k - 1, grid, value))
                    else {
                        continue;
                    };
                    if best.is_none_or(|x| v + rest < x) {
                        best = Some(v + rest);
                    }
                }
            }
            best
        }
        go(0, n, k, grid, value)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// On random per-unit costs and memory needs, the DP finds the brute-force optimum for every slice count.
        #[test]
        fn the_dynamic_program_matches_brute_force(
            n in 1usize..=6,
            work in proptest::collection::vec(1.0f64..100.0, 6),
            need in proptest::collection::vec(50u32..400, 6),
            fixed in 0.0f64..20.0,
        ) {
            let grid = [128u32, 256, 512];
            let value = |a: usize, b: usize, m: u32| -> Option<f64> {
                let peak: u32 = need[a..b].iter().sum::<u32>() / 2;
                if peak > m {
                    return None;
                }
                let w: f64 = work[a..b].iter().sum();
                // Faster with more memory, pricier per ms: a real trade-off.
                Some(fixed + w * 256.0 / f64::from(m) + w * f64::from(m) / 512.0)
            };
            let dp = Dp::new(n, &grid, |a, b, gi| value(a, b, grid[gi]));
            let ks: Vec<usize> = (1..=n).collect();
            for (k, got) in dp.solve(&ks) {
                let want = brute(n, k, &grid, &value);
                match (got, want) {
                    (None, None) => {}
                    (Some((v, seg)), Some(w)) => {
                        prop_assert!((v - w).abs() < 1e-9 * w.max(1.0), "k = {k}: dp {v} vs brute {w}");
                        prop_assert_eq!(seg.bounds.len(), k + 1);
                        // The reported segmentation really has that value.
                        let again: f64 = seg.bounds.windows(2).zip(&seg.memory)
                            .map(|(w2, &m)| value(w2[0], w2[1], m).unwrap()).sum();
                        prop_assert!((again - v).abs() < 1e-9 * v.max(1.0));
                    }
                    (g, w) => prop_assert!(false, "k = {k}: dp {g:?} vs brute {w:?}"),
                }
            }
        }
    }
}
