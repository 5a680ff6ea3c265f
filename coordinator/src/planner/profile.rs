//! `trainer profile`: what one task of each kind costs on this machine, measured, with its spread — per unit the
//! forward, backward and update time at the planned micro-batch size; the store's time by value size; the
//! per-task scheduling overhead (probe, fan-in record, completion event). Written as `profile.json`; the latency
//! model fits its distributions to these samples.

use crate::config::Config;
use crate::error::RunError;
use crate::fit::open_training;
use bytes::Bytes;
use data::{Batch, Dataset, Sampler};
use models::Model;
use serde::{Deserialize, Serialize};
use slice_worker::store::{Keys, MemoryStore, RedisStore, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the planner knows about this machine and model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Samples per micro-batch the unit times were measured at.
    pub microbatch: usize,
    /// Compute threads the unit times used (the profiler uses one).
    pub threads: usize,
    /// Optimizer state slots per parameter (SGD with momentum 1, AdamW 2, plain SGD 0).
    pub optimizer_slots: usize,
    /// Bytes of one micro-batch of model input as the driver stores it (0 in profiles written before it existed).
    #[serde(default)]
    pub input_bytes: u64,
    pub units: Vec<UnitProfile>,
    pub store: StoreProfile,
    /// Turning tensors into store values and back (safetensors encode / decode), by size: paid on every byte a
    /// task writes or reads, whatever the store. `put_ms` = encode, `get_ms` = decode.
    pub codec: Vec<TransferPoint>,
    /// Per-task scheduling overhead on the store: idempotence probe, fan-in record, completion event (ms).
    pub task_overhead_ms: Vec<f64>,
    /// From a previous run's `events.jsonl` (`trainer profile --events RUN`): measured ÷ modelled task time, by
    /// kind. The model scales each kind by the median ratio and widens its spread by the ratios' spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// Measured ÷ modelled run time of each successful task of a previous run, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The run folder the samples came from.
    pub run: String,
    pub forward: Vec<f64>,
    pub backward: Vec<f64>,
    pub update: Vec<f64>,
    /// Per steady step: the median of its tasks' ratios, each divided by its kind's median. Slow phases of a
    /// machine (page-fault storms, a neighbour's burst) slow every task running then, so a step's tasks are slow
    /// together; this is that common factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_factors: Vec<f64>,
    /// Forward, backward and update ratios divided by their kind's median and their step's factor: what is left
    /// to each task on its own. Empty in profiles written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residuals: Vec<Vec<f64>>,
}

/// One unit, at the profile's micro-batch size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitProfile {
    pub name: String,
    pub forward_ms: Vec<f64>,
    pub backward_ms: Vec<f64>,
    pub update_ms: Vec<f64>,
    /// Adding one micro-batch's gradients into the running sum (an update does it M times).
    #[serde(default)]
    pub accumulate_ms: Vec<f64>,
    pub param_bytes: u64,
    /// The unit's output for one micro-batch.
    pub output_bytes: u64,
    /// What its forward keeps for backward, one micro-batch.
    pub cache_bytes: u64,
}

/// The store's time to move a value, by size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreProfile {
    /// `"memory"` or the Redis URL with any password redacted.
    pub store: String,
    pub points: Vec<TransferPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferPoint {
    pub bytes: u64,
    pub put_ms: Vec<f64>,
    pub get_ms: Vec<f64>,
}

impl Profile {
    /// The profile as if measured at `samples` per micro-batch: compute and activation sizes scale linearly with
    /// the samples (parameters do not) — an approximation that ignores per-call fixed costs. At the profile's own
    /// size it is the profile unchanged (every factor is exactly 1).
    pub fn rescaled(&self, samples: usize) -> Profile {
        let k = samples as f64 / self.microbatch.max(1) as f64;
        let scale = |v: &[f64]| v.iter().map(|x| x * k).collect::<Vec<f64>>();
        let mut p = self.clone();
        p.microbatch = samples;
        p.input_bytes = (p.input_bytes as f64 * k).round() as u64;
        for u in &mut p.units {
            u.forward_ms = scale(&u.forward_ms);
            u.backward_ms = scale(&u.backward_ms);
            u.output_bytes = (u.output_bytes as f64 * k).round() as u64;
            u.cache_bytes = (u.cache_bytes as f64 * k).round() as u64;
        }
        p
    }
}

/// A line `ms = fixed + bytes / bytes_per_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransferFit {
    pub fixed_ms: f64,
    pub bytes_per_ms: f64,
}

impl TransferFit {
    pub fn ms(&self, bytes: f64) -> f64 {
        self.fixed_ms + bytes / self.bytes_per_ms
    }
}

/// The median of samples (0 for none).
pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

impl StoreProfile {
    /// Least-squares line through the medians of `put_ms` (or `get_ms`) against bytes.
    pub fn fit(&self, put: bool) -> TransferFit {
        let pts: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|p| {
                (
                    p.bytes as f64,
                    median(if put { &p.put_ms } else { &p.get_ms }),
                )
            })
            .collect();
        let n = pts.len() as f64;
        if pts.len() < 2 {
            return TransferFit {
                fixed_ms: pts.first().map_or(0.0, |p| p.1),
                bytes_per_ms: f64::INFINITY,
            };
        }
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = (sxy / sxx).max(1e-12);
        TransferFit {
            fixed_ms: (my - slope * mx).max(0.0),
            bytes_per_ms: 1.0 / slope,
        }
    }
}

fn time_ms<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t0 = Instant::now();
    let r = f();
    (r, t0.elapsed().as_secs_f64() * 1e3)
}

/// The first training batch of a run: what the profile measures on.
pub fn first_batch(ds: &dyn Dataset, sampler: &Sampler) -> Result<Batch, RunError> {
    let (_, indices) = sampler.indices(0);
    Ok(ds.train_batch(&indices)?)
}

/// Measures each unit's forward, backward and update `reps` times on the first micro-batch of `batch`.
fn profile_units(
    cfg: &Config,
    model: &Model,
    batch: &Batch,
    reps: usize,
    microbatches: usize,
) -> Result<Vec<UnitProfile>, RunError> {
    let t = &cfg.train;
    let mb = batch
        .split(microbatches)?
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!("split gives at least one micro-batch"));
    let params = model.init::<f32>(t.seed);
    let opt = t.optimizer_spec();
    let costs = model.costs();
    let n = costs.len();
    let samples = mb.inputs.shape()[0] as u64;
    // Each unit is timed inside a whole forward-then-backward pass over all units, as a task runs it: a unit
    // measured alone in a loop finds its weights and activations in the CPU caches, which a real task (sweeping
    // every unit of its slice before coming back) never does.
    // Under load, as in a run: one copy of the measurement per core, all at once (every task computes beside
    // others on this machine; alone, a unit runs faster than it ever will in a run).
    let copies = std::thread::available_parallelism().map_or(1, |n| n.get());
    let measure = || -> Result<Vec<[Vec<f64>; 4]>, RunError> {
        let mut out: Vec<[Vec<f64>; 4]> = vec![Default::default(); n];
        // One untimed round first: allocator and caches warm, as in a warm container.
        for rep in 0..=reps {
            let mut times = vec![[0.0f64; 4]; n];
            let mut h = mb.inputs.clone();
            let mut caches = Vec::with_capacity(n);
            for (u, time) in times.iter_mut().enumerate() {
                let (res, ms) = time_ms(|| model.forward(u..u + 1, &params[u..u + 1], h.clone()));
                let (y, c) = res?;
                time[0] = ms;
                caches.push(c);
                h = y;
            }
            let mut dy = h.mapv(|_| 1e-3f32);
            // A task keeps every unit's gradients until it encodes them all: fresh memory each time, as here.
            let mut kept = Vec::with_capacity(n);
            for u in (0..n).rev() {
                let (res, ms) =
                    time_ms(|| model.backward(u..u + 1, &params[u..u + 1], &caches[u], dy.clone()));
                let (dx, grads) = res?;
                times[u][1] = ms;
                let mut acc = Some(grads.clone());
                let (_, a_ms) = time_ms(|| models::train::add_in_order(&mut acc, grads.clone()));
                times[u][3] = a_ms;
                let mut fresh = params[u..u + 1].to_vec();
                let mut state: Vec<_> = fresh.iter().map(|q| opt.init_state(q)).collect();
                let (_, u_ms) = time_ms(|| {
                    for ((q, g), s) in fresh.iter_mut().zip(&grads).zip(state.iter_mut()) {
                        opt.step(t.lr, 1, q, g, s);
                    }
                });
                times[u][2] = u_ms;
                kept.push(grads);
                // The first unit returns no input gradient (nothing upstream needs it).
                if let Some(dx) = dx {
                    dy = dx;
                }
            }
            if rep > 0 {
                for (o, time) in out.iter_mut().zip(&times) {
                    for (v, ms) in o.iter_mut().zip(time) {
                        v.push(*ms);
                    }
                }
            }
        }
        Ok(out)
    };
    let runs: Vec<Result<Vec<[Vec<f64>; 4]>, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..copies).map(|_| scope.spawn(measure)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut all: Vec<[Vec<f64>; 4]> = vec![Default::default(); n];
    for run in runs {
        for (a, unit) in all.iter_mut().zip(run?) {
            for (v, samples) in a.iter_mut().zip(unit) {
                v.extend(samples);
            }
        }
    }
    let units = costs
        .iter()
        .zip(all)
        .map(
            |(cost, [forward_ms, backward_ms, update_ms, accumulate_ms])| UnitProfile {
                name: cost.name.clone(),
                forward_ms,
                backward_ms,
                update_ms,
                accumulate_ms,
                param_bytes: cost.param_bytes,
                output_bytes: cost.output_bytes_per_sample * samples,
                cache_bytes: cost.kept_bytes_per_sample * samples,
            },
        )
        .collect();
    Ok(units)
}

/// The value sizes the store and the codec are measured at.
const SIZES: [usize; 5] = [1 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20];

/// Times encoding a tensor of each size into store bytes and decoding it back.
fn profile_codec(reps: usize) -> Result<Vec<TransferPoint>, RunError> {
    let mut points = Vec::new();
    for bytes in SIZES {
        let t = models::Tensor::<f32>::from_elem(vec![bytes / 4], 0.5);
        let (mut enc, mut dec) = (Vec::new(), Vec::new());
        for rep in 0..=reps {
            let (b, e_ms) = time_ms(|| slice_worker::wire::encode_tensor(&t));
            let b = b?;
            let (back, d_ms) = time_ms(|| slice_worker::wire::decode_tensor(&b, "profile"));
            back?;
            if rep > 0 {
                enc.push(e_ms);
                dec.push(d_ms);
            }
        }
        points.push(TransferPoint {
            bytes: bytes as u64,
            put_ms: enc,
            get_ms: dec,
        });
    }
    Ok(points)
}

/// Times `put` and `get` of values of several sizes, and the per-task scheduling round trips.
async fn profile_store(
    store: &dyn Store,
    reps: usize,
) -> Result<(StoreProfile, Vec<f64>), RunError> {
    // A namespace of its own: several runs (or profiles) may share a store, even a process.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let keys = Keys::new(&format!("profile-{}-{nanos}-{n}", std::process::id()))
        .unwrap_or_else(|| unreachable!("digits and dashes"));
    let ttl = Duration::from_secs(300);
    let mut points = Vec::new();
    for bytes in SIZES {
        let value = Bytes::from(vec![1u8; bytes]);
        let key = keys.activation(1, 0, 0);
        let (mut put_ms, mut get_ms) = (Vec::new(), Vec::new());
        for rep in 0..=reps {
            let t0 = Instant::now();
            store.put(&key, value.clone(), ttl).await?;
            let p = t0.elapsed().as_secs_f64() * 1e3;
            let t0 = Instant::now();
            let got = store.get(&key).await?;
            let g = t0.elapsed().as_secs_f64() * 1e3;
            if got.map(|v| v.len()) != Some(bytes) {
                return Err(RunError::Store(format!(
                    "{}: a {bytes}-byte value did not come back whole",
                    store.describe()
                )));
            }
            if rep > 0 {
                put_ms.push(p);
                get_ms.push(g);
            }
        }
        points.push(TransferPoint {
            bytes: bytes as u64,
            put_ms,
            get_ms,
        });
    }
    let event = [(
        "e",
        "{\"task\":\"F(1,0,0)\",\"status\":\"ran\"}".to_string(),
    )];
    let mut overhead = Vec::new();
    for i in 0..(reps * 10).max(20) {
        let t0 = Instant::now();
        let task = format!("F({},1,0)", i + 1);
        store
            .exists_many(&[keys.done(1, i as u64), keys.activation(i as u64, 1, 0)])
            .await?;
        store
            .complete_dependencies(&[(keys.dependencies(&task), 1)], "F(1,0,0)", ttl)
            .await?;
        store.append_event(&keys.events(), &event, ttl).await?;
        overhead.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    store.delete_prefix(keys.prefix()).await?;
    Ok((
        StoreProfile {
            store: store.describe(),
            points,
        },
        overhead,
    ))
}

/// The micro-batch count the units are measured at: the config's, or for `"auto"` the middle candidate (the planner
/// rescales to the others).
pub fn profiled_microbatches(cfg: &Config) -> usize {
    let t = &cfg.train;
    if t.microbatches == crate::config::AUTO {
        let c = crate::config::microbatch_candidates(t.batch_size);
        c[c.len() / 2]
    } else {
        t.microbatches
    }
}

/// Profiles `cfg`'s model on this machine and its configured store, `reps` samples of everything.
pub fn profile(cfg: &Config, reps: usize) -> Result<Profile, RunError> {
    cfg.validate()?;
    let (_, ds, sampler, _) = open_training(cfg)?;
    profile_with(cfg, &first_batch(ds.as_ref(), &sampler)?, reps)
}

/// [`profile`] on a batch the caller already has.
pub fn profile_with(cfg: &Config, batch: &Batch, reps: usize) -> Result<Profile, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RunError::Store(format!("cannot start the I/O runtime: {e}")))?;
    rt.block_on(profile_async(cfg, batch, reps))
}

/// [`profile_with`] from inside an async runtime (the run driver's).
pub async fn profile_async(cfg: &Config, batch: &Batch, reps: usize) -> Result<Profile, RunError> {
    let model = cfg.model.build()?;
    // One compute thread: under load every task gets about one core (concurrent tasks share the thread pool), and
    // a function's vCPU share scales from there.
    let threads = models::matmul::threads();
    models::matmul::set_threads(1);
    let microbatches = profiled_microbatches(cfg);
    let units = profile_units(cfg, &model, batch, reps.max(1), microbatches);
    models::matmul::set_threads(threads);
    let units = units?;
    let store: Arc<dyn Store> = if cfg.runtime.store == "memory" {
        Arc::new(MemoryStore::new())
    } else {
        Arc::new(RedisStore::connect(&cfg.runtime.store).await?)
    };
    let (store, task_overhead_ms) = profile_store(store.as_ref(), reps.max(1)).await?;
    let microbatch = cfg.train.batch_size / microbatches;
    Ok(Profile {
        microbatch,
        threads: 1,
        optimizer_slots: cfg.train.optimizer_spec().slots().len(),
        // f32 features or u32 tokens: four bytes a value.
        input_bytes: (model.input_shape().iter().product::<usize>() * microbatch * 4) as u64,
        units,
        store,
        codec: profile_codec(reps.max(1))?,
        task_overhead_ms,
        observed: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transfer_line_recovers_latency_and_bandwidth() {
        let points = [1u64 << 10, 1 << 20, 4 << 20]
            .iter()
            .map(|&b| TransferPoint {
                bytes: b,
                put_ms: vec![0.1 + b as f64 / 2e6; 3],
                get_ms: vec![0.2 + b as f64 / 1e6, 99.0, 0.2 + b as f64 / 1e6],
            })
            .collect();
        let s = StoreProfile {
            store: "memory".into(),
            points,
        };
        let put = s.fit(true);
        assert!((put.fixed_ms - 0.1).abs() < 1e-6 && (put.bytes_per_ms - 2e6).abs() < 1.0);
        let get = s.fit(false);
        assert!(
            (get.fixed_ms - 0.2).abs() < 1e-6,
            "the median ignores the outlier"
        );
        assert!((get.ms(1e6) - 1.2).abs() < 1e-6);
    }
}
