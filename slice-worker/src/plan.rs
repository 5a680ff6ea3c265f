//! The run plan every task reads from the store: model, cuts, micro-batches, optimizer and schedule.

use models::{ModelSpec, OptimizerSpec, Schedule};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Written once by the run driver under `run:{id}:plan`; workers cache it per run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run_id: String,
    pub model: ModelSpec,
    /// Half-open unit ranges, contiguous, covering every unit.
    pub slices: Vec<(usize, usize)>,
    pub microbatches: usize,
    pub batch_size: usize,
    pub steps: u64,
    /// The first step this plan runs (1, or the step after the checkpoint a resumed run starts from): its forward
    /// tasks wait for no update, because the weights of version `first_step - 1` were written by the driver.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub first_step: u64,
    pub optimizer: OptimizerSpec,
    pub schedule: Schedule,
    pub lr: f64,
    /// Safety-net TTL of every key, seconds.
    pub ttl_s: u64,
    /// Weight and optimizer versions that are multiples of any of these periods outlive the next update: the
    /// driver pulls them for periodic checkpoints and evaluations, then deletes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_every: Vec<u64>,
    /// `true`: a backward re-runs its slice's forward from the stored slice input. `false`: the forward stores its
    /// layer caches (`c:{t}:{s}:{m}`) and the backward reads them — more bytes, no second forward.
    #[serde(default = "yes")]
    pub recompute: bool,
    /// The *become* option for hosts that read it from the plan (Lambda workers): a task that completes a
    /// successor on its own slice runs it in the same invocation.
    #[serde(default = "yes", rename = "become")]
    pub become_successor: bool,
    /// How many shards each slice's update runs as (`shards[s]`; empty: one each). Shard `k` of slice `s` owns the
    /// `k`-th of [`models::shard::SliceLayout::shards`]`(shards[s])` of the slice's parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<usize>,
    /// Global-norm gradient clipping (PyTorch's `clip_grad_norm_` with this `max_norm`): the step's updates wait for
    /// a clip barrier, `C(t)`, fed by per-shard reduce tasks `R(t,s,k)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// How many decoded weight versions a warm container keeps (0 to 4; the planner sizes memory for them).
    #[serde(default = "default_weight_cache")]
    pub weight_cache: usize,
    /// The Lambda function of each slice, by slice index (empty when the run is not on Lambda): a worker starts a
    /// successor by invoking its slice's function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<String>,
    /// Invokes one invocation has in flight before a fan-out of successors becomes a tree ([`crate::fanout`]).
    #[serde(default = "fanout_width")]
    pub fanout_width: usize,
    /// The account governor's slot lease, ms, when the run is governed ([`crate::governor`]): each task is started
    /// with a slot, and gives it back when its invocation ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_lease_ms: Option<u64>,
}

fn fanout_width() -> usize {
    crate::fanout::FANOUT_WIDTH
}

fn default_weight_cache() -> usize {
    crate::weight_cache::WEIGHT_CACHE
}

fn yes() -> bool {
    true
}

fn one() -> u64 {
    1
}

fn is_one(step: &u64) -> bool {
    *step == 1
}

impl RunPlan {
    /// A plan of `model` cut into `slices` with `microbatches` micro-batches of one sample each, and plain
    /// defaults for the rest (run `r`, one step, SGD without momentum at lr 0.1, constant schedule, 60 s TTL,
    /// recompute, *become*, local): the one place tests and tools start a plan from, setting what they need with
    /// struct update syntax (`RunPlan { steps: 10, ..RunPlan::example(...) }`).
    pub fn example(model: ModelSpec, slices: Vec<(usize, usize)>, microbatches: usize) -> RunPlan {
        RunPlan {
            run_id: "r".into(),
            model,
            slices,
            microbatches,
            batch_size: microbatches,
            steps: 1,
            first_step: 1,
            optimizer: OptimizerSpec::Sgd {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            schedule: Schedule::Constant,
            lr: 0.1,
            ttl_s: 60,
            keep_every: Vec::new(),
            recompute: true,
            become_successor: true,
            shards: Vec::new(),
            grad_clip: None,
            weight_cache: crate::weight_cache::WEIGHT_CACHE,
            functions: Vec::new(),
            fanout_width: crate::fanout::FANOUT_WIDTH,
            slot_lease_ms: None,
        }
    }

    /// How many shards slice `s`'s update runs as.
    pub fn shard_count(&self, s: usize) -> usize {
        self.shards.get(s).copied().unwrap_or(1)
    }

    /// Every (slice, shard) of a step's update, slice by slice.
    pub fn update_shards(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.slices.len()).flat_map(move |s| (0..self.shard_count(s)).map(move |k| (s, k)))
    }

    /// Whether the plan's shape is one its model can run: slices cover the units in order, one shard count per
    /// slice (or none), each between 1 and the slice's chunk count, a finite positive clip, a cache of 0 to 4.
    pub fn check(&self, model: &models::Model) -> Result<(), String> {
        let units = model.units().len();
        let contiguous = self.slices.first().is_some_and(|s| s.0 == 0)
            && self.slices.last().is_some_and(|s| s.1 == units)
            && self.slices.windows(2).all(|w| w[0].1 == w[1].0)
            && self.slices.iter().all(|s| s.0 < s.1);
        if !contiguous {
            return Err(format!(
                "slices {:?} do not cover the model's {units} units in order",
                self.slices
            ));
        }
        if self.microbatches == 0 {
            return Err("microbatches is 0".into());
        }
        if !self.shards.is_empty() && self.shards.len() != self.slices.len() {
            return Err(format!(
                "shards {:?}: one count per slice ({} slices)",
                self.shards,
                self.slices.len()
            ));
        }
        for (s, &k) in self.shards.iter().enumerate() {
            let layout = models::shard::SliceLayout::new(model, self.slice_range(s));
            layout.shards(k).map_err(|e| format!("shards[{s}]: {e}"))?;
        }
        if let Some(c) = self.grad_clip.filter(|c| !(c.is_finite() && *c > 0.0)) {
            return Err(format!("grad_clip {c}: must be a finite number above 0"));
        }
        if self.weight_cache > crate::weight_cache::WEIGHT_CACHE {
            return Err(format!(
                "weight_cache {}: at most {}",
                self.weight_cache,
                crate::weight_cache::WEIGHT_CACHE
            ));
        }
        Ok(())
    }

    pub fn slice_range(&self, s: usize) -> Range<usize> {
        let (a, b) = self.slices[s];
        a..b
    }

    /// Whether version `version` is kept for the driver (see `keep_every`).
    pub fn keeps(&self, version: u64) -> bool {
        self.keep_every
            .iter()
            .any(|&p| p > 0 && version > 0 && version.is_multiple_of(p))
    }

    pub fn last_slice(&self) -> usize {
        self.slices.len() - 1
    }

    /// Slices from cut points (unit indices where a new slice starts) over `units` units.
    pub fn slices_from_cuts(cuts: &[usize], units: usize) -> Result<Vec<(usize, usize)>, String> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(units);
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "cuts {cuts:?} must be strictly increasing inside 1..{units}"
            ));
        }
        Ok(bounds.windows(2).map(|w| (w[0], w[1])).collect())
    }

    /// `n` slices with units spread as evenly as possible (earlier slices take the remainder).
    pub fn even_slices(n: usize, units: usize) -> Result<Vec<(usize, usize)>, String> {
        if n == 0 || n > units {
            return Err(format!("{n} slices asked for a model of {units} units"));
        }
        let (base, extra) = (units / n, units % n);
        let mut start = 0;
        Ok((0..n)
            .map(|i| {
                let len = base + usize::from(i < extra);
                let r = (start, start + len);
                start += len;
                r
            })
            .collect())
    }
}
