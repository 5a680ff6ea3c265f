//! `[plan]`: how the model is cut (slices or cuts, recompute, become) and what the planner optimises.

use super::error::{bad, ConfigError};
use super::platform::Platform;
use serde::{Deserialize, Serialize};

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
    /// How many shards each slice's update runs as: `"auto"` (the planner's choice under `memory_cap_mb`; one per
    /// slice when nothing forces more), a number for every slice (at most a slice's count of 4096-element chunks,
    /// fewer for a slice that has fewer), or one number per slice. Each shard sums its part of every micro-batch's
    /// gradient and updates it, so no function holds more than its share of the update.
    #[serde(default)]
    pub update_shards: UpdateShards,
    /// How many decoded weight versions a warm container keeps (0 to 4; default: the most that fit the memory the
    /// planner gives the function, 4 when nothing is capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_cache: Option<usize>,
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
            update_shards: UpdateShards::Auto,
            weight_cache: None,
            objective: Objective::Cost,
            slo_ms: None,
            quantile: quantile(),
            budget_usd_per_step: None,
            memory_cap_mb: None,
            profile: None,
        }
    }
}

/// `plan.update_shards`: `"auto"`, one count for every slice, or one per slice.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum UpdateShards {
    #[default]
    Auto,
    Each(usize),
    PerSlice(Vec<usize>),
}

impl Serialize for UpdateShards {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            UpdateShards::Auto => s.serialize_str("auto"),
            UpdateShards::Each(k) => s.serialize_u64(*k as u64),
            UpdateShards::PerSlice(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for UpdateShards {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UpdateShards, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            List(Vec<u64>),
            Text(String),
        }
        let count = |v: u64| match usize::try_from(v) {
            Ok(k) if k >= 1 => Ok(k),
            _ => Err(serde::de::Error::custom(format!(
                "{v} shards: must be at least 1"
            ))),
        };
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected \"auto\", a number of shards, or a list of one per slice",
            )
        })? {
            Raw::Text(t) if t == "auto" => Ok(UpdateShards::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "{t:?}: expected \"auto\", a number of shards, or a list of one per slice"
            ))),
            Raw::Count(v) => Ok(UpdateShards::Each(count(v)?)),
            Raw::List(v) => Ok(UpdateShards::PerSlice(
                v.into_iter().map(count).collect::<Result<_, _>>()?,
            )),
        }
    }
}

/// What the user optimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// The cheapest plan whose step latency meets `slo_ms` with probability `quantile`.
    #[default]
    Cost,
    /// The fastest plan (step latency at `quantile`) under `budget_usd_per_step`.
    Latency,
}

impl PlanConfig {
    /// Checks the table, naming the key, against the platform it plans for.
    pub fn validate(&self, platform: &Platform) -> Result<(), ConfigError> {
        if self.slices == Slices::Count(0) {
            return Err(bad("plan.slices", "must be at least 1 (or \"auto\")"));
        }
        let pl = self;
        if let Some(n) = pl
            .weight_cache
            .filter(|&n| n > slice_worker::weight_cache::WEIGHT_CACHE)
        {
            return Err(bad(
                "plan.weight_cache",
                format!(
                    "{n} versions: at most {}",
                    slice_worker::weight_cache::WEIGHT_CACHE
                ),
            ));
        }
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
        if pl.memory_cap_mb.is_some_and(|c| c < platform.min_memory_mb) {
            return Err(bad(
                "plan.memory_cap_mb",
                format!(
                    "{} MB is below the platform's smallest function ({} MB)",
                    pl.memory_cap_mb.unwrap_or(0),
                    platform.min_memory_mb
                ),
            ));
        }
        Ok(())
    }
}

fn quantile() -> f64 {
    0.95
}
fn yes() -> bool {
    true
}
