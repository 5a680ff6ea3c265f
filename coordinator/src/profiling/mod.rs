//! `trainer profile`: measures what one task of each kind costs on this machine and its configured store — each
//! unit's forward, backward and update inside a whole pass at the planned micro-batch size, the store's put/get time
//! by value size, encode/decode time by size, the per-task overhead — into a [`Profile`]; and [`plan_config`],
//! which profiles quickly when no profile is given and plans. Above the planner (it produces the planner's input),
//! below the runs (a split run profiles quickly at its start to predict itself).

use crate::config::{Config, Microbatches};
use crate::error::RunError;
use crate::job::Job;
use crate::planner::profile::{Profile, StoreProfile, TransferPoint, UnitProfile};
use crate::planner::search::PlanOutcome;
use bytes::Bytes;
use data::{Batch, Dataset, Sampler};
use models::Model;
use slice_worker::store::{Keys, Store};
use std::time::{Duration, Instant};

fn time_ms<R>(f: impl FnOnce() -> R) -> (R, f64) {
    let t0 = Instant::now();
    let r = f();
    (r, t0.elapsed().as_secs_f64() * 1e3)
}

/// Where a profile says how far it got: each phase and, for the units, each measured round (always from the
/// calling thread); the caller decides what to print and how often.
pub type ProfileProgress<'a> = &'a mut dyn FnMut(&str);

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
    progress: ProfileProgress<'_>,
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
    let started = Instant::now();
    // Every copy measures the same rounds at once; the first sends each round it finished to the calling thread,
    // which reports it.
    let measure =
        |rounds: Option<std::sync::mpsc::Sender<usize>>| -> Result<Vec<[Vec<f64>; 4]>, RunError> {
            let mut out: Vec<[Vec<f64>; 4]> = vec![Default::default(); n];
            // One untimed round first: allocator and caches warm, as in a warm container.
            for rep in 0..=reps {
                let mut times = vec![[0.0f64; 4]; n];
                let mut h = mb.inputs.clone();
                let mut caches = Vec::with_capacity(n);
                for (u, time) in times.iter_mut().enumerate() {
                    let (res, ms) =
                        time_ms(|| model.forward(u..u + 1, &params[u..u + 1], h.clone()));
                    let (y, c) = res?;
                    time[0] = ms;
                    caches.push(c);
                    h = y;
                }
                let mut dy = h.mapv(|_| 1e-3f32);
                // A task keeps every unit's gradients until it encodes them all: fresh memory each time, as here.
                let mut kept = Vec::with_capacity(n);
                for u in (0..n).rev() {
                    let (res, ms) = time_ms(|| {
                        model.backward(u..u + 1, &params[u..u + 1], &caches[u], dy.clone())
                    });
                    let (dx, grads) = res?;
                    times[u][1] = ms;
                    let mut acc = Some(grads.clone());
                    let (_, a_ms) =
                        time_ms(|| models::train::add_in_order(&mut acc, grads.clone()));
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
                if let Some(tx) = &rounds {
                    // The receiver outlives the scope; a failed send only loses a progress line.
                    let _ = tx.send(rep + 1);
                }
            }
            Ok(out)
        };
    let (tx, rx) = std::sync::mpsc::channel();
    let runs: Vec<Result<Vec<[Vec<f64>; 4]>, RunError>> = std::thread::scope(|scope| {
        let measure = &measure;
        let mut tx = Some(tx);
        let handles: Vec<_> = (0..copies)
            .map(|_| {
                let rounds = tx.take();
                scope.spawn(move || measure(rounds))
            })
            .collect();
        // Ends when the reporting copy finishes (its sender dropped).
        for round in rx.iter() {
            progress(&format!(
                "units: round {round} of {} measured ({n} units, {copies} copies at once, {:.1} s)",
                reps + 1,
                started.elapsed().as_secs_f64()
            ));
        }
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
            let (b, e_ms) = time_ms(|| slice_worker::codec::encode_tensor(&t));
            let b = b?;
            let (back, d_ms) = time_ms(|| slice_worker::codec::decode_tensor(&b, "profile"));
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
                return Err(RunError::StoreData(format!(
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
            .exists_many(&[keys.done(1, i as u64, 0), keys.activation(i as u64, 1, 0)])
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
    match t.microbatches {
        Microbatches::Auto => {
            let c = crate::config::microbatch_candidates(t.batch_size);
            c[c.len() / 2]
        }
        Microbatches::Count(m) => m,
    }
}

/// Samples of everything in the quick profile a split run takes at its start when no `plan.profile` is named: two
/// such profiles one after the other predicted the same step within 2.5–4.5 % at 7 samples (0.6–0.9 s each), and
/// 3–15 % apart at 3 (experiments/local_model).
pub const QUICK_PROFILE_REPS: usize = 7;

/// Profiles `cfg`'s model on this machine and its configured store, `reps` samples of everything.
pub fn profile(cfg: &Config, reps: usize) -> Result<Profile, RunError> {
    profile_reporting(cfg, reps, &mut |_| {})
}

/// [`profile`], saying how far it got on `progress`.
pub fn profile_reporting(
    cfg: &Config,
    reps: usize,
    progress: ProfileProgress<'_>,
) -> Result<Profile, RunError> {
    cfg.validate()?;
    let Job { ds, sampler, .. } = Job::open(cfg)?;
    profile_with(cfg, &first_batch(ds.as_ref(), &sampler)?, reps, progress)
}

/// [`profile_reporting`] on a batch the caller already has.
pub fn profile_with(
    cfg: &Config,
    batch: &Batch,
    reps: usize,
    progress: ProfileProgress<'_>,
) -> Result<Profile, RunError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    rt.block_on(profile_async(cfg, batch, reps, progress))
}

/// [`profile_with`] from inside an async runtime (the run driver's).
pub async fn profile_async(
    cfg: &Config,
    batch: &Batch,
    reps: usize,
    progress: ProfileProgress<'_>,
) -> Result<Profile, RunError> {
    let model = cfg.model.build()?;
    // One compute thread: under load every task gets about one core (concurrent tasks share the thread pool), and
    // a function's vCPU share scales from there.
    let threads = models::matmul::threads();
    models::matmul::set_threads(1);
    let microbatches = profiled_microbatches(cfg);
    let units = profile_units(cfg, &model, batch, reps.max(1), microbatches, progress);
    models::matmul::set_threads(threads);
    let units = units?;
    let store = slice_worker::store::open(&cfg.runtime.store).await?;
    progress(&format!(
        "store: put and get at {} value sizes ({})",
        SIZES.len(),
        store.describe()
    ));
    let (store, task_overhead_ms) = profile_store(store.as_ref(), reps.max(1)).await?;
    progress("codec: encode and decode at each value size");
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
        runtime_task_ms: Vec::new(),
        observed: None,
    })
}

/// Plans `cfg` with `profile`, or with a fresh quick profile of this machine (3 samples of everything) when there
/// is none; returns the profile used and the plan.
pub fn plan_config(
    cfg: &Config,
    profile: Option<Profile>,
) -> Result<(Profile, PlanOutcome), RunError> {
    cfg.validate()?;
    let Job { ds, sampler, .. } = Job::open(cfg)?;
    let profile = match profile {
        Some(p) => p,
        None => profile_with(
            cfg,
            &first_batch(ds.as_ref(), &sampler)?,
            QUICK_PROFILE_REPS,
            &mut |_| {},
        )?,
    };
    let outcome = crate::planner::plan_for(cfg, &profile, sampler.steps_per_epoch() as u64)?;
    Ok((profile, outcome))
}
