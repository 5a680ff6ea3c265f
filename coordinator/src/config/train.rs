//! `[train]`: steps, batch and micro-batches, optimizer, schedule, seed, evaluation.

use super::error::{bad, ConfigError};
use super::plan::Slices;
use models::{OptimizerSpec, Schedule};
use serde::{Deserialize, Serialize};

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
    /// planner picks it among the divisors of `batch_size` up to 32.
    #[serde(default)]
    pub microbatches: Microbatches,
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

/// `train.microbatches`: a count, or `"auto"` (split runs: the planner picks it, and the run resolves it before
/// its first step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Microbatches {
    Count(usize),
    Auto,
}

impl Microbatches {
    /// The count; `None` for `"auto"`.
    pub fn count(self) -> Option<usize> {
        match self {
            Microbatches::Count(n) => Some(n),
            Microbatches::Auto => None,
        }
    }

    /// The count of a config whose `"auto"` was resolved (an in-process run, a split run after planning);
    /// `"auto"` still here is an error naming the key.
    pub fn resolved(self) -> Result<usize, ConfigError> {
        self.count().ok_or_else(|| {
            bad(
                "train.microbatches",
                "\"auto\" is chosen by the planner of a split run (plan.slices > 1 or \"auto\"); give a count",
            )
        })
    }
}

impl std::fmt::Display for Microbatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Microbatches::Count(n) => write!(f, "{n}"),
            Microbatches::Auto => f.write_str("auto"),
        }
    }
}

impl Default for Microbatches {
    fn default() -> Self {
        Microbatches::Count(1)
    }
}

impl Serialize for Microbatches {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Microbatches::Count(n) => s.serialize_u64(*n as u64),
            Microbatches::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Microbatches {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Microbatches, D::Error> {
        match Slices::deserialize(d).map_err(|e| {
            serde::de::Error::custom(e.to_string().replace("slices", "micro-batches"))
        })? {
            Slices::Auto => Ok(Microbatches::Auto),
            Slices::Count(0) => Err(serde::de::Error::custom("must be at least 1 (or \"auto\")")),
            Slices::Count(n) => Ok(Microbatches::Count(n)),
        }
    }
}

/// The micro-batch counts `"auto"` considers: divisors of the batch size up to 32.
pub fn microbatch_candidates(batch_size: usize) -> Vec<usize> {
    (1..=batch_size.min(32))
        .filter(|m| batch_size.is_multiple_of(*m))
        .collect()
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

impl TrainConfig {
    /// The steps this trains: `steps`, or `epochs` (default 1) of `steps_per_epoch`.
    pub fn total_steps(&self, steps_per_epoch: u64) -> u64 {
        self.steps
            .unwrap_or_else(|| self.epochs.unwrap_or(1) * steps_per_epoch)
    }

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

    /// Checks the table, naming the key; `split`: whether the run is cut into slices (`[plan]`).
    pub fn validate(&self, split: bool) -> Result<(), ConfigError> {
        let t = self;
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
        if t.microbatches == Microbatches::Auto && !split {
            return Err(bad(
                "train.microbatches",
                "\"auto\" needs the planner: set plan.slices = \"auto\" (or a count, or cuts)",
            ));
        }
        if let Microbatches::Count(m) = t.microbatches {
            if !t.batch_size.is_multiple_of(m) {
                return Err(bad(
                    "train.microbatches",
                    format!(
                        "batch_size {} is not divisible by microbatches {m}",
                        t.batch_size
                    ),
                ));
            }
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
        Ok(())
    }
}
