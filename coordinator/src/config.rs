//! The run configuration: the TOML file users write, as typed serde structs with documented defaults.
//!
//! Every table rejects unknown keys (`deny_unknown_fields`), so a typo is an error that names the key.

use crate::planner::platform::{Platform, Pricing};
use crate::planner::search::Objective;
use data::DataConfig;
use models::{ModelSpec, OptimizerSpec, Schedule};
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
    /// `[plan]`: how the model is cut (1 slice until the distributed runtime lands).
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
}

/// `[lambda]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    /// Function names are `{prefix}-{memory}mb`: one function per distinct memory size of the plan.
    #[serde(default = "function_prefix")]
    pub function_prefix: String,
    /// AWS region (default: the SDK's chain — `AWS_REGION`, the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Named profile of the AWS shared config files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Another Lambda endpoint (an emulator, a VPC endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The execution role `trainer deploy` gives the functions (required to deploy, not to run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `"arm64"` (Graviton: 20 % cheaper per GB-second) or `"x86_64"`.
    #[serde(default = "arm64")]
    pub architecture: String,
    /// Function timeout, seconds (Lambda allows 1–900).
    #[serde(default = "lambda_timeout_s")]
    pub timeout_s: u32,
    /// Memory of every slice's function when the planner did not choose (`plan.slices` fixed), MB.
    #[serde(default = "lambda_memory_mb")]
    pub memory_mb: u32,
    /// Reserved concurrency per function (none: the account's unreserved pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    /// Subnets and security groups of the functions, to reach a store inside a VPC (ElastiCache); empty: no VPC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// A function of its own for every slice, even where memory sizes repeat: a warm container then only ever
    /// holds one slice's weights (slices sharing a function share containers and their weight caches).
    #[serde(default)]
    pub function_per_slice: bool,
}

fn function_prefix() -> String {
    "trainer".into()
}
fn arm64() -> String {
    "arm64".into()
}
fn lambda_timeout_s() -> u32 {
    300
}
fn lambda_memory_mb() -> u32 {
    2048
}

impl Default for LambdaConfig {
    fn default() -> Self {
        LambdaConfig {
            function_prefix: function_prefix(),
            region: None,
            profile: None,
            endpoint_url: None,
            role_arn: None,
            architecture: arm64(),
            timeout_s: lambda_timeout_s(),
            memory_mb: lambda_memory_mb(),
            reserved_concurrency: None,
            subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
            function_per_slice: false,
        }
    }
}

impl LambdaConfig {
    /// The function that runs `slice`, given `memory_mb`: `{prefix}-{memory}mb`, or `{prefix}-s{slice}-{memory}mb`
    /// with `function_per_slice`.
    pub fn function_name(&self, slice: usize, memory_mb: u32) -> String {
        if self.function_per_slice {
            format!("{}-s{slice}-{memory_mb}mb", self.function_prefix)
        } else {
            format!("{}-{memory_mb}mb", self.function_prefix)
        }
    }
}

/// Which optimizer (its hyper-parameters are flat keys of `[train]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Sgd,
    Adamw,
}

/// Learning-rate schedule kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    #[default]
    Constant,
    /// Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio · lr`.
    Cosine,
}

/// `[train]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of optimizer steps. Exactly one of `steps` and `epochs` must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Number of epochs (each `train_len / batch_size` steps; the last partial batch is dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u64>,
    /// Samples per optimizer step.
    pub batch_size: usize,
    /// Micro-batches per step: the batch is split in order into this many equal parts, each part's gradients are
    /// computed separately and summed in order. Must divide `batch_size`. Default 1. `"auto"` (split runs): the
    /// planner picks it among the divisors of `batch_size` up to 32 (held here as [`AUTO`]).
    #[serde(
        default = "one",
        deserialize_with = "microbatches_from",
        serialize_with = "microbatches_to"
    )]
    pub microbatches: usize,
    /// `"sgd"` (default) or `"adamw"`.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (default 0).
    #[serde(default)]
    pub momentum: f64,
    /// SGD Nesterov momentum (default false).
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay: L2 added to the gradient for SGD (default 0), decoupled for AdamW (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// AdamW β₁ (default 0.9).
    #[serde(default = "beta1")]
    pub beta1: f64,
    /// AdamW β₂ (default 0.999).
    #[serde(default = "beta2")]
    pub beta2: f64,
    /// AdamW ε (default 1e-8).
    #[serde(default = "eps")]
    pub eps: f64,
    /// `"constant"` (default) or `"cosine"`.
    #[serde(default)]
    pub schedule: ScheduleKind,
    /// Cosine schedule: linear warm-up steps (default 0).
    #[serde(default)]
    pub warmup_steps: u64,
    /// Cosine schedule: final rate as a fraction of `lr` (default 0).
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Clip gradients to this global L2 norm (summed over units in unit order). Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Seed of initialisation, data order and any training randomness. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Evaluate every this many steps (0 = only at the end; the end always evaluates on the whole eval set).
    #[serde(default)]
    pub eval_every: u64,
    /// Periodic evaluations use the first this-many eval examples (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_samples: Option<usize>,
}

/// `[plan]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Number of slices: 1 trains in this process; more cut the model into that many contiguous slices of units
    /// (spread evenly unless `cuts` says where) trained by stateless tasks through the store; `"auto"`: the planner
    /// picks the count, the cuts and the memory for `objective`.
    #[serde(default)]
    pub slices: Slices,
    /// Unit indices where a new slice starts (e.g. `[1, 3]` on a 5-unit model: slices 0..1, 1..3, 3..5).
    /// Overrides `slices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuts: Option<Vec<usize>>,
    /// `true`: a backward recomputes its slice's forward from the stored slice input (the fewest bytes: one
    /// activation per slice boundary). `false`: the forward stores its layer caches and the backward reads them (no
    /// second forward; more bytes, most for attention and convolutions).
    #[serde(default = "yes")]
    pub recompute: bool,
    /// A task that completes the inputs of a successor on its own slice (a backward completing the update, an
    /// update completing a next-step forward) runs it in the same invocation and warm container instead of invoking
    /// it: one invoke and one weight fetch fewer.
    #[serde(default = "yes", rename = "become")]
    pub become_successor: bool,
    /// What the planner optimises: `"cost"` (cheapest plan meeting `slo_ms` at `quantile`) or `"latency"` (fastest
    /// at `quantile` under `budget_usd_per_step`).
    #[serde(default)]
    pub objective: Objective,
    /// Step-latency objective of `"cost"` plans, ms (none: the cheapest plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_ms: Option<f64>,
    /// The probability with which `slo_ms` must hold (0.5, 0.95 or 0.99 are reported; others round to them).
    #[serde(default = "quantile")]
    pub quantile: f64,
    /// Cost ceiling of `"latency"` plans, USD per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_per_step: Option<f64>,
    /// The most memory any function may get, MB (default: the platform's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_cap_mb: Option<u32>,
    /// A profile written by `trainer profile` (perhaps corrected by a previous run with `--events`), path relative
    /// to the working directory: a split run plans its `"auto"` choices and predicts its own step time
    /// (`summary.json` calibration) from it instead of from a quick profile of this machine at its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<std::path::PathBuf>,
}

/// `train.microbatches = "auto"` as held in [`TrainConfig::microbatches`] until the planner resolves it.
pub const AUTO: usize = 0;

fn microbatches_to<S: serde::Serializer>(m: &usize, s: S) -> Result<S::Ok, S::Error> {
    if *m == AUTO {
        s.serialize_str("auto")
    } else {
        s.serialize_u64(*m as u64)
    }
}

fn microbatches_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match Slices::deserialize(d)
        .map_err(|e| serde::de::Error::custom(e.to_string().replace("slices", "micro-batches")))?
    {
        Slices::Auto => Ok(AUTO),
        Slices::Count(0) => Err(serde::de::Error::custom("must be at least 1 (or \"auto\")")),
        Slices::Count(n) => Ok(n),
    }
}

/// The micro-batch counts `"auto"` considers: divisors of the batch size up to 32.
pub fn microbatch_candidates(batch_size: usize) -> Vec<usize> {
    (1..=batch_size.min(32))
        .filter(|m| batch_size.is_multiple_of(*m))
        .collect()
}

/// `plan.slices`: a count, or `"auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slices {
    Count(usize),
    Auto,
}

impl Default for Slices {
    fn default() -> Self {
        Slices::Count(1)
    }
}

impl Serialize for Slices {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Slices::Count(n) => s.serialize_u64(*n as u64),
            Slices::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Slices {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Slices, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Slices;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of slices or \"auto\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Slices, E> {
                Ok(Slices::Count(v as usize))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Slices, E> {
                usize::try_from(v)
                    .map(Slices::Count)
                    .map_err(|_| E::custom(format!("{v} slices: must be at least 1")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Slices, E> {
                if v == "auto" {
                    Ok(Slices::Auto)
                } else {
                    Err(E::custom(format!(
                        "{v:?}: expected a number of slices or \"auto\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl PlanConfig {
    /// Whether the run is cut into slices trained by tasks (rather than trained in this process).
    pub fn is_split(&self) -> bool {
        self.slices != Slices::Count(1) || self.cuts.is_some()
    }
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            slices: Slices::Count(1),
            cuts: None,
            recompute: true,
            become_successor: true,
            objective: Objective::Cost,
            slo_ms: None,
            quantile: quantile(),
            budget_usd_per_step: None,
            memory_cap_mb: None,
            profile: None,
        }
    }
}

/// `[runtime]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `"local"`: tasks run in this process (the embedded default); `"lambda"`: each slice's tasks run on its AWS
    /// Lambda function (`[lambda]`, `trainer deploy`), through a Redis store.
    #[serde(default = "local")]
    pub invoker: String,
    /// `"memory"` (the embedded default: tensors stay in process) or a Redis URL (`redis://host:6379`,
    /// `rediss://user:password@host:6380` for TLS + AUTH; a password may also come from `REDIS_PASSWORD`).
    #[serde(default = "memory")]
    pub store: String,
    /// Split runs: how many tasks may run at once (default 4).
    #[serde(default = "four")]
    pub concurrency: usize,
    /// Compute threads (0 = one per core). Results do not depend on it.
    #[serde(default)]
    pub threads: usize,
    /// Local invoker: probability that a delivery's container crashes (half before the handler runs, half after
    /// it wrote its outputs but before it reported). The run driver recovers by deadline.
    #[serde(default)]
    pub fault_rate: f64,
    /// Local invoker: probability that an invocation is delivered twice.
    #[serde(default)]
    pub duplicate_rate: f64,
    /// Local invoker: delay of starting a new container, milliseconds.
    #[serde(default)]
    pub cold_start_ms: u64,
    /// Local invoker: probability that a delivery is stuck for twice `task_timeout_s` before it runs, so that the
    /// driver's retry overtakes it and it arrives late.
    #[serde(default)]
    pub stall_rate: f64,
    /// Seed of the injected faults (which deliveries crash or repeat).
    #[serde(default)]
    pub seed: u64,
    /// A task whose inputs are complete but that has not reported within this many seconds is invoked again
    /// with the next attempt number (it is idempotent, so a slow original does no harm).
    #[serde(default = "task_timeout_s")]
    pub task_timeout_s: f64,
    /// How many attempts a task gets (failures and missed deadlines) before the run stops with its error.
    #[serde(default = "max_attempts")]
    pub max_attempts: u32,
    /// Redis stores: when the store restarts under a split run (its data gone) or stays unreachable past the
    /// store's own retries, the run restarts from its last checkpoint under a fresh namespace, up to this many times
    /// (0: stop at once with a resumable error).
    #[serde(default = "store_restarts")]
    pub store_restarts: u32,
    /// How long the driver waits for a lost store to answer again before it stops with a resumable error, seconds.
    #[serde(default = "store_wait_s")]
    pub store_wait_s: f64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            invoker: local(),
            store: memory(),
            concurrency: four(),
            threads: 0,
            fault_rate: 0.0,
            duplicate_rate: 0.0,
            cold_start_ms: 0,
            stall_rate: 0.0,
            seed: 0,
            task_timeout_s: task_timeout_s(),
            max_attempts: max_attempts(),
            store_restarts: store_restarts(),
            store_wait_s: store_wait_s(),
        }
    }
}

/// `[checkpoint]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write `model.safetensors` and `optimizer.safetensors` every this many steps (0 = only at the end).
    #[serde(default)]
    pub every: u64,
}

fn quantile() -> f64 {
    0.95
}
fn yes() -> bool {
    true
}
fn task_timeout_s() -> f64 {
    300.0
}
fn store_restarts() -> u32 {
    3
}

fn store_wait_s() -> f64 {
    60.0
}

fn max_attempts() -> u32 {
    6
}
fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn eps() -> f64 {
    1e-8
}
fn local() -> String {
    "local".into()
}
fn memory() -> String {
    "memory".into()
}

/// A config value that is well-formed TOML but not acceptable, with the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl TrainConfig {
    /// The optimizer with its hyper-parameters.
    pub fn optimizer_spec(&self) -> OptimizerSpec {
        match self.optimizer {
            OptimizerKind::Sgd => OptimizerSpec::Sgd {
                momentum: self.momentum,
                weight_decay: self.weight_decay.unwrap_or(0.0),
                nesterov: self.nesterov,
            },
            OptimizerKind::Adamw => OptimizerSpec::Adamw {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay.unwrap_or(0.01),
            },
        }
    }

    /// The learning-rate schedule.
    pub fn schedule_spec(&self) -> Schedule {
        match self.schedule {
            ScheduleKind::Constant => Schedule::Constant,
            ScheduleKind::Cosine => Schedule::Cosine {
                warmup: self.warmup_steps,
                min_lr_ratio: self.min_lr_ratio,
            },
        }
    }
}

impl Config {
    /// Whether the planner chooses the split (`plan.slices = "auto"` without cuts, or `train.microbatches =
    /// "auto"`): the split run plans at its start, `trainer deploy` plans alike.
    pub fn planner_picks_split(&self) -> bool {
        (self.plan.slices == Slices::Auto && self.plan.cuts.is_none())
            || self.train.microbatches == AUTO
    }

    /// Checks values that parse but make no sense, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.train;
        match (t.steps, t.epochs) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "train.steps",
                    "give either train.steps or train.epochs, not both",
                ))
            }
            (None, None) => {
                return Err(bad(
                    "train.steps",
                    "missing: give train.steps or train.epochs",
                ))
            }
            (Some(0), _) => return Err(bad("train.steps", "must be at least 1")),
            (_, Some(0)) => return Err(bad("train.epochs", "must be at least 1")),
            _ => {}
        }
        if t.batch_size == 0 {
            return Err(bad("train.batch_size", "must be at least 1"));
        }
        if t.microbatches == AUTO && !self.plan.is_split() {
            return Err(bad(
                "train.microbatches",
                "\"auto\" needs the planner: set plan.slices = \"auto\" (or a count, or cuts)",
            ));
        }
        if t.microbatches != AUTO && !t.batch_size.is_multiple_of(t.microbatches) {
            return Err(bad(
                "train.microbatches",
                format!(
                    "batch_size {} is not divisible by microbatches {}",
                    t.batch_size, t.microbatches
                ),
            ));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(bad(
                "train.lr",
                format!("must be a positive number, got {}", t.lr),
            ));
        }
        if !(0.0..1.0).contains(&t.momentum) {
            return Err(bad(
                "train.momentum",
                format!("must be in [0, 1), got {}", t.momentum),
            ));
        }
        if t.nesterov && t.momentum == 0.0 {
            return Err(bad(
                "train.nesterov",
                "Nesterov momentum needs train.momentum > 0",
            ));
        }
        if let Some(wd) = t.weight_decay {
            if !(wd.is_finite() && wd >= 0.0) {
                return Err(bad("train.weight_decay", format!("must be ≥ 0, got {wd}")));
            }
        }
        for (k, v) in [("train.beta1", t.beta1), ("train.beta2", t.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(k, format!("must be in [0, 1), got {v}")));
            }
        }
        if !(t.eps.is_finite() && t.eps > 0.0) {
            return Err(bad("train.eps", format!("must be positive, got {}", t.eps)));
        }
        if !(0.0..=1.0).contains(&t.min_lr_ratio) {
            return Err(bad(
                "train.min_lr_ratio",
                format!("must be in [0, 1], got {}", t.min_lr_ratio),
            ));
        }
        if let Some(c) = t.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(bad("train.grad_clip", format!("must be positive, got {c}")));
            }
        }
        if t.eval_samples == Some(0) {
            return Err(bad(
                "train.eval_samples",
                "must be at least 1 (omit it to use the whole eval set)",
            ));
        }
        if self.plan.slices == Slices::Count(0) {
            return Err(bad("plan.slices", "must be at least 1 (or \"auto\")"));
        }
        let pl = &self.plan;
        if !(pl.quantile > 0.0 && pl.quantile < 1.0) {
            return Err(bad(
                "plan.quantile",
                format!("must be in (0, 1), got {}", pl.quantile),
            ));
        }
        for (key, v) in [
            ("plan.slo_ms", pl.slo_ms),
            ("plan.budget_usd_per_step", pl.budget_usd_per_step),
        ] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(bad(key, format!("must be positive, got {v}")));
            }
        }
        if pl
            .memory_cap_mb
            .is_some_and(|c| c < self.platform.min_memory_mb)
        {
            return Err(bad(
                "plan.memory_cap_mb",
                format!(
                    "{} MB is below the platform's smallest function ({} MB)",
                    pl.memory_cap_mb.unwrap_or(0),
                    self.platform.min_memory_mb
                ),
            ));
        }
        if let Err((key, why)) = self.platform.validate() {
            return Err(bad(&key, why));
        }
        if let Err((key, why)) = self.pricing.validate() {
            return Err(bad(&key, why));
        }
        let split = self.plan.is_split();
        if split && self.train.grad_clip.is_some() {
            return Err(bad(
                "train.grad_clip",
                "not supported in split runs yet (plan.slices > 1 or plan.cuts)",
            ));
        }
        let r = &self.runtime;
        for (key, v) in [
            ("runtime.fault_rate", r.fault_rate),
            ("runtime.duplicate_rate", r.duplicate_rate),
            ("runtime.stall_rate", r.stall_rate),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(key, format!("must be in [0, 1), got {v}")));
            }
            if v > 0.0 && !split {
                return Err(bad(
                    key,
                    "injected faults need a split run (plan.slices > 1 or plan.cuts): a single slice trains in process",
                ));
            }
        }
        if !(r.task_timeout_s.is_finite() && r.task_timeout_s > 0.0) {
            return Err(bad(
                "runtime.task_timeout_s",
                format!(
                    "must be a positive number of seconds, got {}",
                    r.task_timeout_s
                ),
            ));
        }
        if r.max_attempts == 0 {
            return Err(bad("runtime.max_attempts", "must be at least 1"));
        }
        if !(r.store_wait_s.is_finite() && r.store_wait_s >= 0.0) {
            return Err(bad(
                "runtime.store_wait_s",
                format!(
                    "must be a number of seconds, 0 or more, got {}",
                    r.store_wait_s
                ),
            ));
        }
        if self.runtime.concurrency == 0 {
            return Err(bad("runtime.concurrency", "must be at least 1"));
        }
        if self.runtime.invoker != "local" && self.runtime.invoker != "lambda" {
            return Err(bad(
                "runtime.invoker",
                format!(
                    "unknown invoker {:?}; available: \"local\", \"lambda\"",
                    self.runtime.invoker
                ),
            ));
        }
        if self.runtime.invoker == "lambda"
            && self.planner_picks_split()
            && self.plan.profile.is_none()
        {
            return Err(bad(
                "plan.profile",
                "a Lambda run whose split the planner chooses plans from a saved profile (`trainer profile`), so that \
                 `trainer deploy` and the run choose the same functions",
            ));
        }
        if self.runtime.invoker == "lambda" && self.runtime.store == "memory" {
            return Err(bad(
                "runtime.store",
                "the lambda invoker needs a store its functions can reach: a redis:// or rediss:// URL",
            ));
        }
        let l = &self.lambda;
        let name_ok = !l.function_prefix.is_empty()
            && l.function_prefix.len() <= 50
            && l.function_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(bad(
                "lambda.function_prefix",
                format!(
                    "{:?}: use 1-50 letters, digits, '-' or '_' (Lambda function names)",
                    l.function_prefix
                ),
            ));
        }
        if l.architecture != "arm64" && l.architecture != "x86_64" {
            return Err(bad(
                "lambda.architecture",
                format!("{:?}: use \"arm64\" or \"x86_64\"", l.architecture),
            ));
        }
        if !(1..=900).contains(&l.timeout_s) {
            return Err(bad(
                "lambda.timeout_s",
                format!("{}: Lambda allows 1 to 900 seconds", l.timeout_s),
            ));
        }
        if l.subnet_ids.is_empty() != l.security_group_ids.is_empty() {
            return Err(bad(
                "lambda.subnet_ids",
                "a VPC needs both lambda.subnet_ids and lambda.security_group_ids (or neither)",
            ));
        }
        if !(128..=10_240).contains(&l.memory_mb) {
            return Err(bad(
                "lambda.memory_mb",
                format!("{}: Lambda allows 128 to 10,240 MB", l.memory_mb),
            ));
        }
        let st = &self.runtime.store;
        if st != "memory" && !st.starts_with("redis://") && !st.starts_with("rediss://") {
            let shown = slice_worker::store::redact_url(st);
            return Err(bad(
                "runtime.store",
                format!("unknown store {shown:?}; use \"memory\" or a redis:// or rediss:// URL"),
            ));
        }
        if st != "memory" && !split {
            return Err(bad(
                "runtime.store",
                "a Redis store needs a split run (plan.slices > 1 or plan.cuts)",
            ));
        }
        Ok(())
    }
}
