//! A whole run by discrete-event simulation: every step's task graph, chained step to step (a slice's forwards of
//! step k + 1 wait for its update of step k), on the account's concurrency limit, over instances that start cold,
//! stay warm and are reaped when idle ([`super::fleet`]), with task times, stragglers and lost attempts drawn from
//! the fitted distributions. Where [`super::simulate`] answers "how long is a steady step", this answers "what does
//! the run do": its first step, its wall time, its cold starts, its queueing — at any number of functions.
//!
//! The events: an invoked task *arrives* an invoke latency after its last input was recorded (a request in flight
//! holds no instance); it *starts* when the account has a slot (else it waits, first come first served — the
//! governor queues rather than throttles); it is *done* when its outputs are recorded; its instance is *released*
//! after the Invoke API's replies to the invocations it made. A task whose predecessor becomes it (an update's
//! first shard) runs on that predecessor's instance with no invocation. An attempt that is lost never reports: its
//! instance dies, and the driver invokes the task again at its deadline ([`MULTIPLIER`] × the kind's 99th
//! percentile, as the run's own deadlines do once they have samples).
//!
//! What it leaves out, said so the numbers are read right: speculative copies (a fault-free run makes none that
//! matter), the driver's own per-step work (a few milliseconds), and contention for the store.

mod events;
mod graph;
mod spec;
#[cfg(test)]
mod tests;

use super::fleet::Fleet;
use super::latency::SliceModel;
use crate::config::Pricing;
use crate::stats::quantile_sorted;
use events::{Replica, Sim};
use graph::Template;
use rand::SeedableRng;
pub use spec::{RunSpec, Warmup};

/// A lost attempt is invoked again after this many times its kind's 99th percentile (the run's deadline rule,
/// `run/split/deadlines.rs`).
pub const MULTIPLIER: f64 = 3.0;

/// What the simulated runs did: step quantiles over every step of every replica, the rest medians (counts: means)
/// over replicas.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunPrediction {
    /// Steps simulated, and the steps of the whole training (more: the rest at the steady step).
    pub steps: usize,
    #[serde(default)]
    pub total_steps: u64,
    pub step_ms_p50: f64,
    pub step_ms_p95: f64,
    pub step_ms_p99: f64,
    pub first_step_ms: f64,
    /// The mean of the steps after the first: what each further step of a longer run adds.
    pub steady_step_ms: f64,
    /// From the first invocation to the last step's end, s (the warm pool before it not counted).
    pub wall_s: f64,
    /// Instances started during the steps (first step included), and those of them in the first step.
    pub cold_starts: f64,
    pub first_step_cold_starts: f64,
    /// Instances the warm pool started before the first step.
    pub warm_pool_instances: usize,
    pub reaped: f64,
    pub peak_concurrency: f64,
    /// Time tasks waited for an account slot, summed over tasks, ms.
    pub queued_ms: f64,
    pub retries: f64,
    pub gb_seconds: f64,
    /// What a step after the first bills (its own tasks' GB-seconds and requests, the store for the steady step's
    /// time): each further step of a longer run at this price.
    #[serde(default)]
    pub steady_gb_seconds_per_step: f64,
    #[serde(default)]
    pub steady_cost_usd_per_step: f64,
    /// Functions and requests of the steps (the warm pool priced apart), and the store for the wall time.
    pub cost_usd: f64,
}

impl RunPrediction {
    /// The steps' latency at quantile `q` (p50, p95 or p99, whichever is nearest, as the step simulator's).
    pub fn quantile(&self, q: f64) -> f64 {
        if q >= 0.97 {
            self.step_ms_p99
        } else if q >= 0.7 {
            self.step_ms_p95
        } else {
            self.step_ms_p50
        }
    }

    /// The wall time of a run of `total` steps, s: the simulated steps, then each further one at the steady mean
    /// (`total_steps` is the training's own).
    pub fn wall_s_for(&self, total: u64) -> f64 {
        let more = total.saturating_sub(self.steps as u64) as f64;
        self.wall_s + more * self.steady_step_ms / 1e3
    }
}

/// Each (slice, kind)'s deadline for a lost attempt: [`MULTIPLIER`] × the 99th percentile of its run time, from
/// draws of its model.
fn deadlines(slices: &[SliceModel], rng: &mut rand_chacha::ChaCha8Rng) -> Vec<[f64; 3]> {
    slices
        .iter()
        .map(|sl| {
            [0, 1, 2].map(|kind| {
                let mut draws: Vec<f64> = (0..200).map(|_| sl.sample(kind, rng)).collect();
                draws.sort_by(f64::total_cmp);
                MULTIPLIER * (quantile_sorted(&draws, 0.99) + sl.weights_ms) + sl.invoke_ms
            })
        })
        .collect()
}

/// Simulates `spec.replicas` whole runs of `slices`.
pub fn simulate_run(slices: &[SliceModel], spec: &RunSpec, pricing: &Pricing) -> RunPrediction {
    let template = Template::new(slices, spec.shape.microbatches.max(1));
    let n = template.nodes.len();
    let functions = spec.function_of.iter().max().map_or(0, |f| f + 1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
    let deadline_ms = deadlines(slices, &mut rng);
    let replicas: Vec<Replica> = (0..spec.replicas.max(1))
        .map(|r| {
            let mut fleet = Fleet::new(functions, spec.account_limit, spec.idle_reap_ms);
            for (f, &k) in spec.warm_pool.iter().enumerate().take(functions) {
                fleet.bring_up(f, k, 0.0);
            }
            let mut rng =
                rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed ^ ((r as u64 + 1) << 32));
            let phase = (0..spec.steps)
                .map(|_| slices.first().map_or(1.0, |s| s.step_factor(&mut rng)))
                .collect();
            let missing = (0..spec.steps)
                .flat_map(|step| {
                    let t = &template;
                    (0..n)
                        .map(move |z| t.indegree[z] + if step > 0 { t.from_previous[z] } else { 0 })
                })
                .collect();
            Sim::new(
                slices,
                spec,
                &template,
                deadline_ms.clone(),
                rng,
                fleet,
                phase,
                missing,
            )
            .run()
        })
        .collect();
    summarize(&replicas, spec, pricing)
}

fn summarize(replicas: &[Replica], spec: &RunSpec, pricing: &Pricing) -> RunPrediction {
    let r = replicas.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Replica) -> f64| replicas.iter().map(f).sum::<f64>() / r;
    let median = |f: &dyn Fn(&Replica) -> f64| {
        let mut v: Vec<f64> = replicas.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        quantile_sorted(&v, 0.5)
    };
    let mut steps: Vec<f64> = replicas
        .iter()
        .flat_map(|x| x.step_ms.iter().copied())
        .collect();
    steps.sort_by(f64::total_cmp);
    let wall_ms = median(&|x| x.wall_ms);
    // The steps after the first, or the only one.
    let later = |v: &[f64]| {
        let v = &v[usize::from(v.len() > 1)..];
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let steady_gb_seconds = mean(&|x| later(&x.step_gb_seconds));
    let steady_requests = mean(&|x| later(&x.step_requests));
    let steady_step_ms = mean(&|x| later(&x.step_ms));
    let gb_seconds = mean(&|x| x.step_gb_seconds.iter().sum());
    let requests = mean(&|x| x.step_requests.iter().sum());
    RunPrediction {
        steps: spec.steps,
        total_steps: spec.steps as u64,
        step_ms_p50: quantile_sorted(&steps, 0.5),
        step_ms_p95: quantile_sorted(&steps, 0.95),
        step_ms_p99: quantile_sorted(&steps, 0.99),
        steady_step_ms,
        first_step_ms: median(&|x| x.step_ms.first().copied().unwrap_or(0.0)),
        wall_s: wall_ms / 1e3,
        cold_starts: mean(&|x| x.cold_starts as f64),
        first_step_cold_starts: mean(&|x| x.first_step_cold_starts as f64),
        warm_pool_instances: spec.warm_pool.iter().sum(),
        reaped: mean(&|x| x.reaped as f64),
        peak_concurrency: mean(&|x| x.peak as f64),
        queued_ms: mean(&|x| x.queued_ms),
        retries: mean(&|x| x.retries as f64),
        gb_seconds,
        steady_gb_seconds_per_step: steady_gb_seconds,
        steady_cost_usd_per_step: steady_gb_seconds * pricing.usd_per_gb_s
            + steady_requests * pricing.usd_per_request
            + pricing.store_usd_per_hour * steady_step_ms / 3.6e6,
        cost_usd: gb_seconds * pricing.usd_per_gb_s
            + requests * pricing.usd_per_request
            + pricing.store_usd_per_hour * wall_ms / 3.6e6,
    }
}
