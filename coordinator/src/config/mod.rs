//! The run configuration: the TOML file users write, as typed serde structs with documented defaults, one file
//! per table, each with its own `validate`; [`Config::validate`] adds what one table means for another.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`), so a typo is an error that names the key.
//! The floor under everything in the crate: it imports nothing of the crate.

mod calibrated;
mod checkpoint;
mod emulator;
mod error;
mod lambda;
mod plan;
mod platform;
mod qos;
mod runtime;
mod train;

pub use calibrated::{parse_config, take_in_calibrated};
pub use checkpoint::CheckpointConfig;
pub use emulator::EmulatorConfig;
use error::bad;
pub use error::ConfigError;
pub use lambda::{Architecture, LambdaConfig};
pub use plan::{Objective, PlanConfig, Slices, UpdateShards};
pub use platform::{Platform, PlatformKind, Pricing};
pub use qos::{Governed, QosConfig};
pub use runtime::{DeadlineMode, InvokerKind, RuntimeConfig};
pub use train::{microbatch_candidates, Microbatches, OptimizerKind, ScheduleKind, TrainConfig};

use data::DataConfig;
use models::ModelSpec;
use serde::{Deserialize, Serialize};

/// A whole config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[model]`: `kind = "mlp" | "lenet5" | "gpt"` and its fields.
    pub model: ModelSpec,
    /// `[data]`: which dataset (default: synthetic).
    #[serde(default)]
    pub data: DataConfig,
    /// `[train]`: steps, batch, optimizer, schedule, seed, evaluation.
    pub train: TrainConfig,
    /// `[plan]`: how the model is cut into slices (one: trained in this process) and what the planner optimises.
    #[serde(default)]
    pub plan: PlanConfig,
    /// `[runtime]`: invoker, store and threads.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[checkpoint]`: how often to write weights.
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// `[platform]`: the function platform the planner models (default: AWS Lambda).
    #[serde(default)]
    pub platform: Platform,
    /// `[pricing]`: prices the planner's costs use (default: AWS us-east-1 list prices).
    #[serde(default)]
    pub pricing: Pricing,
    /// `[lambda]`: the functions of `runtime.invoker = "lambda"` and `trainer deploy`.
    #[serde(default)]
    pub lambda: LambdaConfig,
    /// `[emulator]`: `trainer emulate`'s settings, and the time dilation a run on it must know.
    #[serde(default)]
    pub emulator: EmulatorConfig,
    /// `[qos]`: sharing the account's concurrency with other runs (the governor).
    #[serde(default)]
    pub qos: QosConfig,
}

impl Config {
    /// Whether the run goes through the account governor (`qos.governor`): Lambda runs unless it is off, local runs
    /// when it is on. Runs in one process (one slice) never do.
    pub fn governed(&self) -> bool {
        self.plan.is_split()
            && match self.qos.governor {
                Governed::Off => false,
                Governed::On => true,
                Governed::Auto => self.runtime.invoker == InvokerKind::Lambda,
            }
    }

    /// Whether the planner chooses the split (`plan.slices = "auto"` without cuts, or `train.microbatches =
    /// "auto"`): the split run plans at its start, `trainer deploy` plans alike.
    pub fn planner_picks_split(&self) -> bool {
        (self.plan.slices == Slices::Auto && self.plan.cuts.is_none())
            || self.train.microbatches == Microbatches::Auto
    }

    /// Checks values that parse but make no sense, naming the key: each table on its own, then what one table's
    /// value means for another's.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let split = self.plan.is_split();
        self.train.validate(split)?;
        self.plan.validate(&self.platform)?;
        if let Err((key, why)) = self.platform.validate() {
            return Err(bad(&key, why));
        }
        if let Err((key, why)) = self.pricing.validate() {
            return Err(bad(&key, why));
        }
        self.runtime.validate(split)?;
        self.emulator.validate()?;
        self.qos.validate()?;
        let lambda = self.runtime.invoker == InvokerKind::Lambda;
        if self.governed() && !self.runtime.store.is_shared() {
            return Err(bad(
                "qos.governor",
                "the account governor keeps its slots in the store the runs share: runtime.store must be a redis:// \
                 or rediss:// URL (or qos.governor = \"off\")",
            ));
        }
        if self.governed() && !lambda && self.qos.account_limit.is_none() {
            return Err(bad(
                "qos.account_limit",
                "a local run under the governor must say how many tasks the runs sharing its store may run at once",
            ));
        }
        if lambda && self.planner_picks_split() && self.plan.profile.is_none() {
            return Err(bad(
                "plan.profile",
                "a Lambda run whose split the planner chooses plans from a saved profile (`trainer profile`), so that \
                 `trainer deploy` and the run choose the same functions",
            ));
        }
        if lambda && !self.runtime.store.is_shared() {
            return Err(bad(
                "runtime.store",
                "the lambda invoker needs a store its functions can reach: a redis:// or rediss:// URL",
            ));
        }
        self.lambda.validate()
    }
}
