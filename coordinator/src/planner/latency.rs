//! The latency model of one task: a random variable built from the profile's samples (log-normal fits) and the
//! platform (vCPU share, bandwidth, invoke and cold-start latency), plus the memory each slice's function needs.
//!
//! A slice's tasks, per micro-batch: `F` (fetch input, forward, store output — and its caches with
//! `recompute = false`), `B` (fetch the output gradient and the input or the caches, recompute the forward if the
//! plan says so, backward, store the input gradient and the parameter gradients), the last slice's `F` doing both;
//! per step K update shards `U` (each streams its share of the M gradients, fetches its share of the optimizer
//! state, updates, stores its share of weights and state; with clipping a reduce half and an update half). Weights
//! come from the warm container's cache except on the slice's first task of a step.
//!
//! *Why one file past 600 lines*: time, bytes and memory of a slice's tasks are one model — the memory fit picks the
//! shard count that the times and transfers then use — and a third of the file is its tests. The memory half
//! (`TaskPeaks`, `memory_fit`) is the piece to move out first if it grows.

use super::lognormal::{sum_of, LogNormal};
use super::profile::{Profile, TransferFit};
use crate::config::{Platform, PlatformKind};
use rand::{Rng, RngExt};
use serde::Serialize;
use slice_worker::weight_cache::WEIGHT_CACHE;
use std::sync::Arc;

/// Redis's bytes for a key beyond its value: 180 B measured on Redis 7.0 (jemalloc) for a run key (a 45-byte
/// name) holding 8 bytes with a TTL (20,000 keys, `used_memory` before and after).
const KEY_BYTES: f64 = 180.0;
/// A dependency set of one member with its fired flag: 418 B measured the same way, plus 38 B since the flag keeps
/// the firing call's 16-character token instead of `1` (measured side by side, 20,000 fan-ins each).
const FAN_IN_BYTES: f64 = 456.0;
/// One completion event (20 fields) in the stream: 207 B measured the same way.
const EVENT_BYTES: f64 = 210.0;
/// Large values sit in jemalloc size classes, four per doubling: up to 25 % above their length.
const VALUE_SLACK: f64 = 1.25;

/// One slice's task latencies at one memory size.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceModel {
    pub units: (usize, usize),
    pub memory_mb: u32,
    /// The forward task, the backward task (for the last slice: forward + loss + backward in one), the update.
    pub forward: LogNormal,
    pub backward: LogNormal,
    pub update: LogNormal,
    /// Extra time of a slice's first task in a step: fetching the new weights.
    pub weights_ms: f64,
    /// The slice's weights decoded, bytes: what a container's weight cache holds per version.
    pub weight_bytes: f64,
    /// Invocation latency of every task (warm), and the cold-start extra with its probability.
    pub invoke_ms: f64,
    pub cold_ms: f64,
    pub cold_probability: f64,
    pub predicted_peak_mb: f64,
    /// The update's shards and the cached weight versions the memory allows, and each task kind's own peak.
    pub shards: usize,
    pub weight_cache: usize,
    pub task_peaks: TaskPeaks,
    /// Bytes one step leaves in the store for this slice at its peak.
    pub store_bytes: f64,
    pub last: bool,
    /// From a profile corrected by a previous run: its measured spread, drawn from by [`SliceModel::sample`].
    pub tails: Option<Arc<Tails>>,
}

/// A previous run's measured spread around the model's medians, split as it happened: a factor per step that all of
/// a step's tasks share (slow phases of the machine) and what is left to each task, by kind (forward, backward,
/// update). Monte Carlo draws a step's factor and each task's residual from them (a bootstrap), keeping the
/// measured tail — occasional tasks at 2–5× their usual time, which a log-normal fitted to the same ratios thins
/// out — and the way those tasks cluster in time, which independent draws would spread over every step.
#[derive(Clone, Debug, PartialEq)]
pub struct Tails {
    pub step: Vec<f64>,
    pub task: [Vec<f64>; 3],
}

impl Tails {
    /// From a previous run's observations; profiles written before step factors existed get none, and their
    /// ratios, divided by their median, as the residuals.
    fn of(o: &super::profile::Observed) -> Tails {
        if o.residuals.len() == 3 && !o.step_factors.is_empty() {
            return Tails {
                step: o.step_factors.clone(),
                task: [
                    o.residuals[0].clone(),
                    o.residuals[1].clone(),
                    o.residuals[2].clone(),
                ],
            };
        }
        let normalised = |ratios: &[f64]| {
            let (k, _) = correction(ratios);
            ratios
                .iter()
                .filter(|r| r.is_finite() && **r > 0.0)
                .map(|r| r / k)
                .collect::<Vec<f64>>()
        };
        Tails {
            step: Vec::new(),
            task: [
                normalised(&o.forward),
                normalised(&o.backward),
                normalised(&o.update),
            ],
        }
    }
}

fn pick<R: Rng>(values: &[f64], rng: &mut R) -> f64 {
    if values.is_empty() {
        1.0
    } else {
        values[rng.random_range(0..values.len())]
    }
}

impl SliceModel {
    /// One draw of a step's common factor (1 without a previous run's spread).
    pub fn step_factor<R: Rng>(&self, rng: &mut R) -> f64 {
        self.tails.as_ref().map_or(1.0, |t| pick(&t.step, rng))
    }

    /// One draw of the run time of this slice's task of kind `kind` (0 forward, 1 backward, 2 update), before the
    /// step's factor.
    pub fn sample<R: Rng>(&self, kind: usize, rng: &mut R) -> f64 {
        let dist = [&self.forward, &self.backward, &self.update][kind];
        match self.tails.as_ref().map(|t| &t.task[kind]) {
            // A kind the previous run has no samples of keeps its log-normal.
            Some(r) if !r.is_empty() && dist.median() > 0.0 => dist.median() * pick(r, rng),
            _ => dist.sample(rng),
        }
    }
}

/// What the plan fixes besides cuts and memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanShape {
    pub microbatches: usize,
    pub recompute: bool,
    pub become_successor: bool,
    /// Gradient clipping: the update waits for the step's clip barrier (a reduce shard, then an update shard).
    pub clip: bool,
    /// `plan.update_shards` when the config fixes one count for every slice (capped per slice), else the
    /// planner's choice.
    pub shards: Option<usize>,
    /// `plan.weight_cache` when the config fixes it, else the planner's choice.
    pub weight_cache: Option<usize>,
}

/// What each kind of task holds at its peak, bytes (runtime and weight cache not counted).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TaskPeaks {
    /// The forward; for the last slice the forward, loss and backward it runs as one task.
    pub forward: f64,
    /// The backward (0 for the last slice, whose `F` runs it).
    pub backward: f64,
    /// One update shard (with clipping: the optimizer half).
    pub update: f64,
    /// One reduce shard (plans that clip; 0 otherwise).
    pub reduce: f64,
}

impl TaskPeaks {
    pub fn largest(&self) -> f64 {
        self.forward
            .max(self.backward)
            .max(self.update)
            .max(self.reduce)
    }
}

/// The planner's memory choice for one slice at one memory size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryFit {
    pub shards: usize,
    pub weight_cache: usize,
    pub peak_mb: f64,
}

/// The codec's line (encode with `put`), or free when the profile has no codec points.
fn codec_fit(points: &[super::profile::TransferPoint], put: bool) -> TransferFit {
    if points.is_empty() {
        return TransferFit {
            fixed_ms: 0.0,
            bytes_per_ms: f64::INFINITY,
        };
    }
    super::profile::StoreProfile {
        store: "codec".into(),
        points: points.to_vec(),
    }
    .fit(put)
}

/// Prefix sums over units of one kind's fitted medians and median·σ, so any slice's sum is O(1).
struct Prefix {
    median: Vec<f64>,
    weighted_sigma: Vec<f64>,
}

impl Prefix {
    fn new(fits: impl Iterator<Item = LogNormal>) -> Prefix {
        let (mut median, mut weighted_sigma) = (vec![0.0], vec![0.0]);
        for f in fits {
            median.push(median.last().copied().unwrap_or(0.0) + f.median());
            weighted_sigma
                .push(weighted_sigma.last().copied().unwrap_or(0.0) + f.median() * f.sigma);
        }
        Prefix {
            median,
            weighted_sigma,
        }
    }

    /// The slice's sum as one log-normal (see [`sum_of`]).
    fn range(&self, a: usize, b: usize) -> LogNormal {
        let total = self.median[b] - self.median[a];
        if total <= 0.0 {
            return LogNormal::constant(0.0);
        }
        LogNormal {
            mu: total.ln(),
            sigma: (self.weighted_sigma[b] - self.weighted_sigma[a]) / total,
        }
    }
}

/// Builds task models from a profile for a platform.
pub struct TaskModel<'a> {
    pub profile: &'a Profile,
    pub platform: &'a Platform,
    put: TransferFit,
    get: TransferFit,
    encode: TransferFit,
    decode: TransferFit,
    overhead: LogNormal,
    accumulate: Prefix,
    forward: Prefix,
    backward: Prefix,
    update: Prefix,
    params: Vec<f64>,
    cache: Vec<f64>,
    /// Corrections from a previous run (forward, backward, update): ratio median and the log-spread to add.
    correction: [(f64, f64); 3],
    /// The same run's spread, for [`SliceModel::sample`].
    tails: Option<Arc<Tails>>,
}

/// The median and log-spread of observed ratios; (1, 0) when there are none.
pub(crate) fn correction(ratios: &[f64]) -> (f64, f64) {
    let d = LogNormal::fit(ratios);
    if ratios.is_empty() || !d.mu.is_finite() {
        (1.0, 0.0)
    } else {
        (d.median(), d.sigma)
    }
}

/// `d` scaled by a correction, its spread widened (independent log-normal factors).
fn corrected(d: LogNormal, (k, sigma): (f64, f64)) -> LogNormal {
    let s = d.scaled(k);
    LogNormal {
        mu: s.mu,
        sigma: (s.sigma * s.sigma + sigma * sigma).sqrt(),
    }
}

/// Prefix sums of a per-unit quantity.
fn prefix(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut out = vec![0.0];
    for v in values {
        out.push(out.last().copied().unwrap_or(0.0) + v);
    }
    out
}

/// Bytes and times of one slice, before they become distributions.
struct SliceSizes {
    params: f64,
    cache: f64,
    input: f64,
    output: f64,
}

impl<'a> TaskModel<'a> {
    pub fn new(profile: &'a Profile, platform: &'a Platform) -> TaskModel<'a> {
        let u = &profile.units;
        TaskModel {
            profile,
            platform,
            put: profile.store.fit(true),
            get: profile.store.fit(false),
            encode: codec_fit(&profile.codec, true),
            decode: codec_fit(&profile.codec, false),
            accumulate: Prefix::new(u.iter().map(|x| LogNormal::fit(&x.accumulate_ms))),
            // On the local invoker every task also costs the runtime's own work (driver, invoker, handler,
            // thread hops) on the machine's shared cores, measured apart from the store's round trips. On Lambda
            // the handler's part runs on the task's own function and is not modelled (tens of µs against a 25 ms
            // invoke).
            overhead: match platform.kind {
                PlatformKind::Local => sum_of(&[
                    LogNormal::fit(&profile.task_overhead_ms),
                    LogNormal::fit(&profile.runtime_task_samples()),
                ]),
                PlatformKind::Lambda => LogNormal::fit(&profile.task_overhead_ms),
            },
            forward: Prefix::new(u.iter().map(|x| LogNormal::fit(&x.forward_ms))),
            backward: Prefix::new(u.iter().map(|x| LogNormal::fit(&x.backward_ms))),
            update: Prefix::new(u.iter().map(|x| LogNormal::fit(&x.update_ms))),
            params: prefix(u.iter().map(|x| x.param_bytes as f64)),
            cache: prefix(u.iter().map(|x| x.cache_bytes as f64)),
            correction: match &profile.observed {
                Some(o) => [
                    correction(&o.forward),
                    correction(&o.backward),
                    correction(&o.update),
                ],
                None => [(1.0, 0.0); 3],
            },
            tails: profile.observed.as_ref().map(|o| Arc::new(Tails::of(o))),
        }
    }

    pub fn units(&self) -> usize {
        self.profile.units.len()
    }

    fn sizes(&self, (a, b): (usize, usize)) -> SliceSizes {
        let u = &self.profile.units;
        SliceSizes {
            params: self.params[b] - self.params[a],
            cache: self.cache[b] - self.cache[a],
            input: if a == 0 {
                0.0
            } else {
                u[a - 1].output_bytes as f64
            },
            output: u[b - 1].output_bytes as f64,
        }
    }

    /// What a slice (the model's `first`, its `last`) holds in the store at its peak: two versions of its weights and optimizer state, each
    /// micro-batch's parameter gradients, output, input and (without recompute) layer caches — for the first slice
    /// the data of the step and of the two the driver feeds ahead — plus Redis's own bytes for every key, fan-in
    /// set and the stream's unread events (two steps' worth: the driver trims it as steps end).
    fn store_bytes(
        &self,
        first: bool,
        shape: PlanShape,
        z: &SliceSizes,
        slots: f64,
        last: bool,
    ) -> f64 {
        let m = shape.microbatches as f64;
        let cached = !shape.recompute;
        let data = if first {
            3.0 * self.profile.input_bytes as f64
        } else {
            z.input
        };
        let cache = if cached { z.cache } else { 0.0 };
        let values = 2.0 * (1.0 + slots) * z.params + m * (z.params + z.output + data + cache);
        let per_microbatch_keys = 2.0 // output (or loss), parameter gradients
            + f64::from(u8::from(!first)) // the gradient sent back
            + f64::from(u8::from(cached))
            + if first { 6.0 } else { 0.0 } // inputs and targets of three steps
            + f64::from(u8::from(last)); // targets
        let keys = 4.0 + 1.0 + m * per_microbatch_keys;
        let fan_ins = 1.0 + m * (2.0 + f64::from(u8::from(!last))); // U; F of this and the next step; B
        let events = 2.0 * (1.0 + m * (1.0 + f64::from(u8::from(!last))));
        VALUE_SLACK * values + KEY_BYTES * keys + FAN_IN_BYTES * fan_ins + EVENT_BYTES * events
    }

    /// Time to move `bytes` one way with a function of `memory_mb` (the slower of the store's measured rate and
    /// the function's network share), plus encoding them (put) or decoding them (get), scaled by the vCPU share.
    fn transfer_ms(&self, put: bool, bytes: f64, memory_mb: u32) -> f64 {
        if bytes <= 0.0 {
            return 0.0;
        }
        let (fit, codec) = if put {
            (&self.put, &self.encode)
        } else {
            (&self.get, &self.decode)
        };
        let codec_ms = codec.ms(bytes)
            * self
                .platform
                .compute_slowdown(memory_mb, self.profile.threads);
        let store = fit.ms(bytes) + codec_ms;
        match self.platform.bandwidth_bytes_per_ms(memory_mb) {
            Some(bw) => store.max(fit.fixed_ms + bytes / bw + codec_ms),
            None => store,
        }
    }

    /// The most shards units `units` can be cut into (one per 4096-element chunk of each unit).
    pub fn max_shards(&self, (a, b): (usize, usize)) -> usize {
        self.profile.units[a..b]
            .iter()
            .map(|u| (u.param_bytes as usize / 4).div_ceil(models::shard::NORM_CHUNK))
            .sum::<usize>()
            .max(1)
    }

    /// What each kind of task of slice `units` holds at its peak, bytes, with the update as `shards` shards (the
    /// runtime and the weight cache come on top: [`TaskModel::peak_mb`]).
    pub fn task_peaks(&self, units: (usize, usize), shape: PlanShape, shards: usize) -> TaskPeaks {
        let (_, b) = units;
        let z = self.sizes(units);
        let slots = self.profile.optimizer_slots as f64;
        let shard = z.params / shards.max(1) as f64;
        // A forward that missed the cache holds the weights' encoded shards while it decodes them.
        let forward = 2.0 * z.params + z.cache + z.input + 2.0 * z.output;
        // Weights, gradients and their encodings (one shard cut out at a time), the layer caches and the tensors
        // crossing the slice's two boundaries.
        let backward = 3.0 * z.params + shard + 2.0 * z.cache + 2.0 * z.input + 2.0 * z.output;
        // The streaming sum holds the running sum, one micro-batch's shard and its bytes; the optimizer then the
        // sum, the shard's weights and state, and the encoded new weights and state.
        let sum = 3.0 * shard;
        let update = sum.max((3.0 + 2.0 * slots) * shard);
        let reduce = if shape.clip { 4.0 * shard } else { 0.0 };
        if b == self.profile.units.len() {
            // The last slice's `F` computes the loss and runs the backward in the same task; there is no `B`. It
            // holds what a backward does (measured: 445 MB against 446 predicted, experiments/update_memory).
            return TaskPeaks {
                forward: backward,
                backward: 0.0,
                update,
                reduce,
            };
        }
        TaskPeaks {
            forward,
            backward,
            update,
            reduce,
        }
    }

    /// The memory a function running `units` needs at its peak, MB: the runtime, the weight versions its container
    /// keeps beside the one a task works on (`weight_cache − 1`), and its largest task.
    pub fn peak_mb(
        &self,
        units: (usize, usize),
        shape: PlanShape,
        shards: usize,
        weight_cache: usize,
    ) -> f64 {
        let z = self.sizes(units);
        // Without this term the 8-unit MNIST MLP's workers measured 13–21 × their slice's parameters (median 15)
        // where the model gave 13 × (experiments/README.md, Lambda memory), a shortfall the fixed `runtime_mb` hid
        // for small slices only. A container shared by slices keeps at most that many versions' worth of the slice
        // it serves (`slice_worker::weight_cache`), so the bound holds there too.
        let cached_versions = weight_cache.saturating_sub(1) as f64 * z.params;
        let largest = self.task_peaks(units, shape, shards).largest();
        self.platform.runtime_mb + (cached_versions + largest) / 1e6
    }

    /// The most cached weight versions (`weight_cache` when the plan fixes it), and with them the fewest update
    /// shards, with which slice `units` fits `memory_mb`; `None` when nothing does. The cache goes last because a
    /// miss costs every forward and backward a read and decode of the slice's whole weights, where one more shard
    /// costs one more small invocation running beside the others; fewer shards first because past the point where
    /// the update stops being the largest task more shards save nothing.
    pub fn memory_fit(
        &self,
        units: (usize, usize),
        shape: PlanShape,
        memory_mb: u32,
    ) -> Option<MemoryFit> {
        let caches: Vec<usize> = match shape.weight_cache {
            Some(c) => vec![c],
            None => (0..=WEIGHT_CACHE).rev().collect(),
        };
        let most = self.max_shards(units);
        let shard_counts: Vec<usize> = match shape.shards {
            Some(k) => vec![k.min(most)],
            None => (0..)
                .map(|i| 1usize << i)
                .take_while(|&k| k < most)
                .chain([most])
                .collect(),
        };
        for &cache in &caches {
            for &shards in &shard_counts {
                let peak_mb = self.peak_mb(units, shape, shards, cache);
                if peak_mb <= f64::from(memory_mb) {
                    return Some(MemoryFit {
                        shards,
                        weight_cache: cache,
                        peak_mb,
                    });
                }
            }
        }
        None
    }

    /// The transfer parts (ms) of the forward, backward and update tasks, and the weight fetch.
    fn transfers(
        &self,
        units: (usize, usize),
        memory_mb: u32,
        shape: PlanShape,
        last: bool,
        shards: usize,
    ) -> [f64; 4] {
        let z = self.sizes(units);
        let get = |b: f64| self.transfer_ms(false, b, memory_mb);
        let put = |b: f64| self.transfer_ms(true, b, memory_mb);
        let slots = self.profile.optimizer_slots as f64;
        let m = shape.microbatches as f64;
        let forward = if last {
            get(z.input) + put(z.params + z.input)
        } else {
            get(z.input) + put(z.output + if shape.recompute { 0.0 } else { z.cache })
        };
        let backward = if last {
            0.0
        } else {
            get(z.output + if shape.recompute { z.input } else { z.cache })
                + put(z.params + z.input)
        };
        // One shard's update: its share of every micro-batch's gradient, of the weights and of the state.
        // With clipping the shard's sum goes through the store once more (the reduce puts it, the update gets it).
        let k = shards.max(1) as f64;
        let clip = if shape.clip { 1.0 } else { 0.0 };
        let update =
            get((m + slots + clip) * z.params / k) + put((1.0 + slots + clip) * z.params / k);
        [forward, backward, update, get(z.params)]
    }

    /// Median busy time of a slice per step and its share of the step's critical path (ms), for the planner's
    /// stand-in objective.
    pub fn estimate(
        &self,
        units: (usize, usize),
        memory_mb: u32,
        shape: PlanShape,
        last: bool,
        shards: usize,
    ) -> (f64, f64) {
        let slow = self
            .platform
            .compute_slowdown(memory_mb, self.profile.threads);
        let (a, b) = units;
        let [tf, tb, tu, tw] = self.transfers(units, memory_mb, shape, last, shards);
        let o = self.overhead.median() + self.platform_invoke_ms();
        let k = shards.max(1) as f64;
        let fwd = self.forward.range(a, b).median() * slow;
        let bwd = self.backward.range(a, b).median() * slow;
        let upd = (self.update.range(a, b).median()
            + shape.microbatches as f64 * self.accumulate.range(a, b).median())
            * slow
            / k;
        let f = o + tf + fwd + if last { bwd } else { 0.0 };
        let bk = if last {
            0.0
        } else {
            o + tb + bwd + if shape.recompute { fwd } else { 0.0 }
        };
        // One shard (with clipping: its reduce and update halves, two invocations, and the barrier between).
        let halves = if shape.clip { 2.0 } else { 1.0 };
        let u = halves * o + tu + upd;
        let [cf, cb, cu] = self.correction;
        let (f, bk, u) = (f * cf.0, bk * cb.0, u * cu.0);
        let m = shape.microbatches as f64;
        (m * (f + bk) + k * u + tw, f + bk + u + tw)
    }

    fn platform_invoke_ms(&self) -> f64 {
        match self.platform.kind {
            PlatformKind::Lambda => {
                self.platform.invoke_ms
                    + self.platform.cold_start_probability * self.platform.cold_start_ms
            }
            PlatformKind::Local => 0.0,
        }
    }

    /// Task models of slice `units` on a function of `memory_mb`.
    pub fn slice(
        &self,
        units: (usize, usize),
        memory_mb: u32,
        shape: PlanShape,
        last: bool,
    ) -> SliceModel {
        let slow = self
            .platform
            .compute_slowdown(memory_mb, self.profile.threads);
        let (a, b) = units;
        let fwd = self.forward.range(a, b).scaled(slow);
        let bwd = self.backward.range(a, b).scaled(slow);
        // The memory decides the shards and the cache; a slice that fits nowhere keeps the most shards and no cache
        // (its peak, above its memory, is what the caller reports).
        let fit = self.memory_fit(units, shape, memory_mb).unwrap_or_else(|| {
            let shards = shape
                .shards
                .unwrap_or(usize::MAX)
                .min(self.max_shards(units));
            let weight_cache = shape.weight_cache.unwrap_or(0);
            MemoryFit {
                shards,
                weight_cache,
                peak_mb: self.peak_mb(units, shape, shards, weight_cache),
            }
        });
        let upd = sum_of(&[
            self.update.range(a, b),
            self.accumulate
                .range(a, b)
                .scaled(shape.microbatches as f64),
        ])
        .scaled(slow / fit.shards as f64);
        let [tf, tb, tu, tw] = self.transfers(units, memory_mb, shape, last, fit.shards);
        let overhead = self.overhead;
        let forward = if last {
            sum_of(&[overhead, LogNormal::constant(tf), fwd, bwd])
        } else {
            sum_of(&[overhead, LogNormal::constant(tf), fwd])
        };
        let backward = if last {
            LogNormal::constant(0.0)
        } else if shape.recompute {
            sum_of(&[overhead, LogNormal::constant(tb), bwd, fwd])
        } else {
            sum_of(&[overhead, LogNormal::constant(tb), bwd])
        };
        let halves = if shape.clip { 2.0 } else { 1.0 };
        let update = sum_of(&[overhead.scaled(halves), LogNormal::constant(tu), upd]);
        let [cf, cb, cu] = self.correction;
        let (forward, backward, update) = (
            corrected(forward, cf),
            corrected(backward, cb),
            corrected(update, cu),
        );
        let (invoke_ms, cold_ms, cold_probability) = match self.platform.kind {
            PlatformKind::Lambda => (
                self.platform.invoke_ms,
                self.platform.cold_start_ms,
                self.platform.cold_start_probability,
            ),
            // The local invoker's invoke is a spawn: part of the measured overhead.
            PlatformKind::Local => (0.0, 0.0, 0.0),
        };
        let z = self.sizes(units);
        let slots = self.profile.optimizer_slots as f64;
        let store_bytes = self.store_bytes(units.0 == 0, shape, &z, slots, last);
        SliceModel {
            units,
            memory_mb,
            forward,
            backward,
            update,
            weights_ms: tw,
            weight_bytes: z.params,
            invoke_ms,
            cold_ms,
            cold_probability,
            predicted_peak_mb: fit.peak_mb,
            shards: fit.shards,
            weight_cache: fit.weight_cache,
            task_peaks: self.task_peaks(units, shape, fit.shards),
            store_bytes,
            last,
            tails: self.tails.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lognormal_fit_and_sampling_agree() {
        let samples: Vec<f64> = [10.0, 11.0, 9.5, 10.2, 12.0, 9.8].to_vec();
        let d = LogNormal::fit(&samples);
        assert!((d.median() - 10.38).abs() < 0.1, "{}", d.median());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut draws: Vec<f64> = (0..20_000).map(|_| d.sample(&mut rng)).collect();
        draws.sort_by(f64::total_cmp);
        assert!((draws[10_000] / d.median() - 1.0).abs() < 0.01);
        assert!((LogNormal::constant(3.0).sample(&mut rng) - 3.0).abs() < 1e-12);
        let s = sum_of(&[LogNormal::constant(2.0), LogNormal::constant(3.0)]);
        assert!((s.median() - 5.0).abs() < 1e-12 && s.sigma == 0.0);
    }
}
