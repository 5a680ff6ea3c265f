//! What a whole run is simulated with besides its slices: the plan's shape and length, its functions and account,
//! the warm pool, the instances' life cycle and warm-up, losses, replicas.

use crate::planner::latency::PlanShape;

/// What a whole run is simulated with, besides its slices.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub shape: PlanShape,
    pub steps: usize,
    /// Each slice's function (slices of one memory size share one, as `[lambda]` names them), numbered from 0.
    pub function_of: Vec<usize>,
    /// The account's concurrency limit (or the run's share of it).
    pub account_limit: usize,
    /// Per function, the instances a warm pool brings up before the first step (empty: no pool).
    pub warm_pool: Vec<usize>,
    /// An instance idle this long is reaped, ms.
    pub idle_reap_ms: f64,
    /// How a new instance's first invocations run slower.
    pub warmup: Warmup,
    /// Probability that an attempt never reports (a crash, a lost reply).
    pub loss_probability: f64,
    /// Independent runs drawn; quantiles are over all their steps.
    pub replicas: usize,
    pub seed: u64,
}

/// A new instance's warm-up: a forward or backward it runs after `n` other invocations takes
/// `1 + extra · exp(−n / tasks)` times its steady time (a new worker grows its heap, opens its store connections
/// and fills its caches on its first tasks); updates, hundreds of ms to seconds long, are measured at 1.0–1.1 × and
/// left out. Measured on emulated runs (`experiments/run_simulator`); a warm pool's probe does none of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup {
    pub extra: f64,
    pub tasks: f64,
}

impl Warmup {
    pub const NONE: Warmup = Warmup {
        extra: 0.0,
        tasks: 1.0,
    };

    /// The factor on an invocation after `served` others on its instance.
    pub fn factor(&self, served: u32) -> f64 {
        if self.extra <= 0.0 || self.tasks <= 0.0 {
            return 1.0;
        }
        1.0 + self.extra * (-f64::from(served) / self.tasks).exp()
    }
}
