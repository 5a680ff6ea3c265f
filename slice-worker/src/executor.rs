//! The executor: runs one task of one slice, writes its outputs, records its completion in the dependency sets of
//! its successors, and returns the successors whose inputs are now complete (the WuKong rule: whoever completes a
//! fan-in starts it, exactly once). Every successor, single-input ones included, is started through its dependency
//! set, so a retried or duplicated task never starts anything twice.
//!
//! Tasks are idempotent. Before any work, one round trip asks whether the task is *superseded* (its slice's update
//! for that step is done: `done:{slice}:{step}`) — then it does nothing — or whether its outputs already exist (an
//! earlier attempt or delivery got that far) — then it only re-records its completions, which count once. Weights
//! and optimizer state are versioned by step, so a duplicated update can never apply the optimizer twice.
//!
//! With the plan's *recompute* option (the default) a forward task stores just its output and the backward re-runs
//! its slice's forward from the slice input — bit-identical caches, because every kernel is deterministic; without
//! it the forward also stores its layer caches (`models::cache_codec`) and the backward reads them instead. The last slice's forward *becomes* its backward in the same invocation (the loss head lives
//! there), so logits never travel.
//!
//! *Why one long file*: the three task kinds share one idempotence protocol (superseded / outputs exist, outputs
//! written before the mark, completions recorded after) that is easiest to check when every kind's body is beside it.

use crate::codec::{
    decode_caches, decode_optimizer, decode_params, decode_plan, decode_targets, decode_tensor,
    encode_caches, encode_loss, encode_optimizer, encode_params, encode_tensor,
};
use crate::dag::{self, successors};
use crate::event::Skip;
use crate::plan::RunPlan;
use crate::store::{Keys, Store, StoreError};
use crate::task::{TaskId, TaskPayload};
use crate::weight_cache::{WeightCache, Weights};
use bytes::Bytes;
use models::train::{add_in_order, first_non_finite};
use models::{Model, ModelError, Tensor, UnitTensors};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::dag::forward_dependencies;

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{task}: {source}")]
    Model { task: String, source: ModelError },
    #[error("{task}: input {key} is missing from the store")]
    Missing { task: String, key: String },
    #[error("run {0:?} is unknown here (no plan in the store): refusing the task")]
    UnknownRun(String),
    #[error("run {run}: the plan under {key} is unusable: {reason}")]
    BadPlan {
        run: String,
        key: String,
        reason: String,
    },
    #[error("run {run}: task {task} is not part of the plan")]
    NotInPlan { run: String, task: String },
    #[error("the handler crashed: {0}")]
    Crashed(String),
    /// Deterministic: running the task again gives the same values.
    #[error("{task}: {what} is not finite (NaN or infinity) at step {step}, slice {slice}: lower train.lr (gradient clipping, train.grad_clip, needs an in-process run)")]
    NotFinite {
        task: String,
        what: String,
        step: u64,
        slice: usize,
    },
}

impl TaskError {
    /// Whether the run cannot go on: retrying the task would fail the same way.
    pub fn is_fatal(&self) -> bool {
        matches!(self, TaskError::NotFinite { .. })
    }
}

/// What a finished task reports.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Tasks whose last input this one recorded: the caller starts them (each is returned by exactly one call).
    pub successors: Vec<TaskId>,
    /// Set when the task did no work.
    pub skipped: Option<Skip>,
    /// The micro-batch's share of the batch loss (last slice only).
    pub loss: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Time spent reading inputs (and checking what exists).
    pub fetch: Duration,
    /// Time spent writing outputs, recording completions and cleaning up.
    pub store: Duration,
    /// Whether the slice's weights came from this container's cache instead of the store.
    pub weights_cached: bool,
}

struct RunCtx {
    plan: RunPlan,
    model: Model,
    keys: Keys,
}

impl RunCtx {
    /// The safety-net TTL of every key the run writes.
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.plan.ttl_s)
    }
}

/// One function instance (a container). Keeps nothing between tasks but caches: the parsed plan of each run it has
/// seen, and the last few weight versions it read or wrote.
pub struct Worker {
    store: Arc<dyn Store>,
    runs: Mutex<HashMap<String, Arc<RunCtx>>>,
    weights: Mutex<WeightCache>,
}

/// Records `done` in the dependency set of `next` (which waits for `needed` inputs) and returns whether this call
/// completed the set — then the caller starts `next`, and no other caller ever will.
pub async fn record_completion(
    store: &dyn Store,
    keys: &Keys,
    done: &str,
    next: TaskId,
    needed: usize,
    ttl: Duration,
) -> Result<bool, StoreError> {
    store
        .complete_dependency(&keys.dependencies(&next.to_string()), done, needed, ttl)
        .await
}

impl Worker {
    pub fn new(store: Arc<dyn Store>) -> Worker {
        Worker {
            store,
            runs: Mutex::new(HashMap::new()),
            weights: Mutex::new(WeightCache::default()),
        }
    }

    async fn run_ctx(&self, run: &str) -> Result<Arc<RunCtx>, TaskError> {
        if let Some(ctx) = self.runs.lock().unwrap_or_else(|e| e.into_inner()).get(run) {
            return Ok(ctx.clone());
        }
        let keys = Keys::new(run).ok_or_else(|| TaskError::UnknownRun(run.into()))?;
        let bytes = self
            .store
            .get(&keys.plan())
            .await?
            .ok_or_else(|| TaskError::UnknownRun(run.into()))?;
        let plan: RunPlan = decode_plan(&bytes).map_err(|e| TaskError::BadPlan {
            run: run.into(),
            key: keys.plan(),
            reason: e.to_string(),
        })?;
        let model = plan.model.build().map_err(|e| TaskError::BadPlan {
            run: run.into(),
            key: keys.plan(),
            reason: e.to_string(),
        })?;
        let ctx = Arc::new(RunCtx { plan, model, keys });
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.into(), ctx.clone());
        Ok(ctx)
    }

    /// The plan of run `run` (read from the store once per container).
    pub async fn plan(&self, run: &str) -> Result<RunPlan, TaskError> {
        Ok(self.run_ctx(run).await?.plan.clone())
    }

    async fn fetch(&self, task: &TaskId, key: &str, out: &mut Outcome) -> Result<Bytes, TaskError> {
        let t0 = Instant::now();
        let v = self.store.get(key).await;
        out.fetch += t0.elapsed();
        let v = v?.ok_or_else(|| TaskError::Missing {
            task: task.to_string(),
            key: key.into(),
        })?;
        out.bytes_in += v.len() as u64;
        Ok(v)
    }

    async fn put_many(
        &self,
        items: Vec<(String, Bytes)>,
        ttl: Duration,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        out.bytes_out += items.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        let t0 = Instant::now();
        let r = self.store.put_many(items, ttl).await;
        out.store += t0.elapsed();
        Ok(r?)
    }

    /// Runs one task.
    pub async fn execute(&self, payload: &TaskPayload) -> Result<Outcome, TaskError> {
        let ctx = self.run_ctx(&payload.run).await?;
        let task = payload.task;
        if !dag::is_valid(&ctx.plan, task) {
            return Err(TaskError::NotInPlan {
                run: payload.run.clone(),
                task: task.to_string(),
            });
        }
        let mut out = Outcome::default();
        let (step, slice) = (task.step(), task.slice());
        let (superseded_key, output_key) = match task {
            TaskId::U { .. } => (ctx.keys.done(slice, step + 1), ctx.keys.done(slice, step)),
            TaskId::F { mb, .. } if slice < ctx.plan.last_slice() => (
                ctx.keys.done(slice, step),
                ctx.keys.activation(step, slice, mb),
            ),
            TaskId::F { mb, .. } | TaskId::B { mb, .. } => (
                ctx.keys.done(slice, step),
                ctx.keys.param_grads(step, slice, mb),
            ),
        };
        let probe = [superseded_key, output_key];
        out.skipped = self.probe(&probe, &mut out).await?;
        if out.skipped == Some(Skip::Superseded) {
            return Ok(out);
        }
        if out.skipped.is_none() {
            let work = match task {
                TaskId::F { step, slice, mb } if slice == ctx.plan.last_slice() => {
                    self.backward(&ctx, step, slice, mb, &mut out).await
                }
                TaskId::F { step, slice, mb } => {
                    self.forward(&ctx, step, slice, mb, &mut out).await
                }
                TaskId::B { step, slice, mb } => {
                    self.backward(&ctx, step, slice, mb, &mut out).await
                }
                TaskId::U { step, slice } => self.update(&ctx, step, slice, &mut out).await,
            };
            if let Err(e) = work {
                // An input can vanish because another delivery of this task finished meanwhile and its update
                // cleaned up (a late duplicate): then the work is done already. Anything else is a failure.
                if !matches!(e, TaskError::Missing { .. }) {
                    return Err(e);
                }
                out.skipped = self.probe(&probe, &mut out).await?;
                match out.skipped {
                    None => return Err(e),
                    Some(Skip::Superseded) => return Ok(out),
                    Some(Skip::OutputsExist) => {}
                }
            }
        }
        self.record_successors(&ctx, task, &mut out).await?;
        Ok(out)
    }

    /// One round trip: is the task superseded (`keys[0]` exists), or are its outputs there (`keys[1]`)?
    async fn probe(
        &self,
        keys: &[String; 2],
        out: &mut Outcome,
    ) -> Result<Option<Skip>, TaskError> {
        let t0 = Instant::now();
        let found = self.store.exists_many(keys).await;
        out.fetch += t0.elapsed();
        Ok(match found?.as_slice() {
            [true, _] => Some(Skip::Superseded),
            [false, true] => Some(Skip::OutputsExist),
            _ => None,
        })
    }

    /// Records `task`'s completion towards every successor in one round trip; the ones it completed go into
    /// `out.successors`.
    async fn record_successors(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let next = successors(&ctx.plan, task);
        let sets: Vec<(String, usize)> = next
            .iter()
            .map(|(t, needed)| (ctx.keys.dependencies(&t.to_string()), *needed))
            .collect();
        let t0 = Instant::now();
        let fired = self
            .store
            .complete_dependencies(&sets, &task.to_string(), ctx.ttl())
            .await;
        out.store += t0.elapsed();
        for ((t, _), fired) in next.iter().zip(fired?) {
            if fired {
                out.successors.push(*t);
            }
        }
        Ok(())
    }

    fn model_err(task: TaskId) -> impl FnOnce(ModelError) -> TaskError {
        move |source| TaskError::Model {
            task: task.to_string(),
            source,
        }
    }

    fn cached_weights(&self, key: &str) -> Option<Weights> {
        let mut cache = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key)
    }

    fn cache_weights(&self, key: String, weights: Weights) {
        let mut cache = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        cache.put(key, weights);
    }

    async fn slice_params(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        slice: usize,
        version: u64,
        out: &mut Outcome,
    ) -> Result<Weights, TaskError> {
        let key = ctx.keys.weights(slice, version);
        if let Some(w) = self.cached_weights(&key) {
            out.weights_cached = true;
            return Ok(w);
        }
        let bytes = self.fetch(&task, &key, out).await?;
        let w = decode_params(&ctx.model, ctx.plan.slice_range(slice), &bytes, &key)
            .map_err(Self::model_err(task))?;
        let w = Arc::new(w);
        self.cache_weights(key, w.clone());
        Ok(w)
    }

    async fn slice_input(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<Tensor<f32>, TaskError> {
        let key = if slice == 0 {
            ctx.keys.inputs(step, mb)
        } else {
            ctx.keys.activation(step, slice - 1, mb)
        };
        let bytes = self.fetch(&task, &key, out).await?;
        decode_tensor(&bytes, &key).map_err(Self::model_err(task))
    }

    async fn forward(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::F { step, slice, mb };
        let params = self.slice_params(ctx, task, slice, step - 1, out).await?;
        let x = self.slice_input(ctx, task, step, slice, mb, out).await?;
        let range = ctx.plan.slice_range(slice);
        let mut outputs = Vec::with_capacity(2);
        let y = if ctx.plan.recompute {
            ctx.model.infer(range, &params, x)
        } else {
            ctx.model
                .forward(range, &params, x)
                .and_then(|(y, caches)| {
                    let bytes = encode_caches(caches)?;
                    outputs.push((ctx.keys.cache(step, slice, mb), bytes));
                    Ok(y)
                })
        }
        .map_err(Self::model_err(task))?;
        let bytes = encode_tensor(&y).map_err(Self::model_err(task))?;
        // The activation last: its presence is the "outputs exist" mark.
        outputs.push((ctx.keys.activation(step, slice, mb), bytes));
        self.put_many(outputs, ctx.ttl(), out).await
    }

    /// Backward of `slice` on micro-batch `mb` (for the last slice: its forward, the loss, then its backward).
    async fn backward(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = dag::backward_node(&ctx.plan, step, slice, mb);
        let last = slice == ctx.plan.last_slice();
        let range = ctx.plan.slice_range(slice);
        let params = self.slice_params(ctx, task, slice, step - 1, out).await?;
        let (y, caches) = if last || ctx.plan.recompute {
            let x = self.slice_input(ctx, task, step, slice, mb, out).await?;
            let (y, caches) = ctx
                .model
                .forward(range.clone(), &params, x)
                .map_err(Self::model_err(task))?;
            (Some(y), caches)
        } else {
            let key = ctx.keys.cache(step, slice, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            let caches = decode_caches(&bytes, &key).map_err(Self::model_err(task))?;
            (None, caches)
        };
        let mut outputs = Vec::with_capacity(3);
        let dy = if let Some(y) = y.as_ref().filter(|_| last) {
            let key = ctx.keys.targets(step, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            let targets = decode_targets(&bytes, &key).map_err(Self::model_err(task))?;
            let lg = ctx
                .model
                .loss(y, &targets, ctx.plan.batch_size)
                .map_err(Self::model_err(task))?;
            out.loss = Some(lg.loss);
            outputs.push((ctx.keys.loss(step, mb), encode_loss(lg.loss)));
            lg.dlogits
        } else {
            let key = ctx.keys.gradient(step, slice, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            decode_tensor(&bytes, &key).map_err(Self::model_err(task))?
        };
        drop(y);
        let (dx, grads) = ctx
            .model
            .backward(range.clone(), &params, &caches, dy)
            .map_err(Self::model_err(task))?;
        drop(caches);
        if let Some(dx) = dx.filter(|_| slice > 0) {
            let bytes = encode_tensor(&dx).map_err(Self::model_err(task))?;
            outputs.push((ctx.keys.gradient(step, slice - 1, mb), bytes));
        }
        let pg = encode_params(&ctx.model, range, &grads).map_err(Self::model_err(task))?;
        // Parameter gradients last: their presence is the "outputs exist" mark, and a pipeline runs in order.
        outputs.push((ctx.keys.param_grads(step, slice, mb), pg));
        self.put_many(outputs, ctx.ttl(), out).await
    }

    async fn update(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::U { step, slice };
        let range = ctx.plan.slice_range(slice);
        let plan = &ctx.plan;
        let slots = plan.optimizer.slots();
        let keys: Vec<String> = (0..plan.microbatches)
            .map(|m| ctx.keys.param_grads(step, slice, m))
            .collect();
        let t0 = Instant::now();
        let fetched = self.store.get_many(&keys).await;
        out.fetch += t0.elapsed();
        let mut acc: Option<UnitTensors<f32>> = None;
        for (key, bytes) in keys.iter().zip(fetched?) {
            let bytes = bytes.ok_or_else(|| TaskError::Missing {
                task: task.to_string(),
                key: key.clone(),
            })?;
            out.bytes_in += bytes.len() as u64;
            let g = decode_params(&ctx.model, range.clone(), &bytes, key)
                .map_err(Self::model_err(task))?;
            // Micro-batch order, whatever order the backward tasks finished in: the sum is bit-identical to the
            // single-process one.
            add_in_order(&mut acc, g);
        }
        let grads = acc.unwrap_or_else(|| unreachable!("a plan has at least one micro-batch"));
        if let Some(name) = first_non_finite(&ctx.model, range.clone(), &grads) {
            return Err(TaskError::NotFinite {
                task: task.to_string(),
                what: format!("the gradient of {name}"),
                step,
                slice,
            });
        }
        let mut params =
            UnitTensors::clone(&*self.slice_params(ctx, task, slice, step - 1, out).await?);
        let okey = ctx.keys.optimizer(slice, step - 1);
        let obytes = self.fetch(&task, &okey, out).await?;
        let mut state = decode_optimizer(&ctx.model, range.clone(), slots, &obytes, &okey)
            .map_err(Self::model_err(task))?;
        let lr = plan.schedule.lr(plan.lr, step - 1, plan.steps);
        plan.optimizer
            .step_units(lr, step, &mut params, &grads, &mut state);
        let w = encode_params(&ctx.model, range.clone(), &params).map_err(Self::model_err(task))?;
        let o = encode_optimizer(&ctx.model, range, slots, &state, step)
            .map_err(Self::model_err(task))?;
        let wkey = ctx.keys.weights(slice, step);
        // One pipeline, in order: state, weights, then the `done` mark — whoever sees the mark may rely on both.
        let versioned = vec![
            (ctx.keys.optimizer(slice, step), o),
            (wkey.clone(), w),
            (ctx.keys.done(slice, step), Bytes::from_static(b"1")),
        ];
        self.put_many(versioned, ctx.ttl(), out).await?;
        // This container will likely run the slice's next forward: keep the new version decoded.
        self.cache_weights(wkey, Arc::new(params));
        let t0 = Instant::now();
        let cleaned = self.clean_step(ctx, step, slice).await;
        out.store += t0.elapsed();
        cleaned
    }

    /// What step `step` of slice `slice` no longer needs once its update is done: the previous version, every
    /// micro-batch's inputs and gradients, and the previous step's dependency sets (a late duplicate that records
    /// into a deleted set is superseded first, so it cannot fire anything).
    async fn clean_step(&self, ctx: &RunCtx, step: u64, slice: usize) -> Result<(), TaskError> {
        let k = &ctx.keys;
        let mut dead = Vec::new();
        if !ctx.plan.keeps(step - 1) {
            dead.extend([k.weights(slice, step - 1), k.optimizer(slice, step - 1)]);
        }
        for mb in 0..ctx.plan.microbatches {
            dead.push(k.param_grads(step, slice, mb));
            dead.push(k.gradient(step, slice, mb));
            dead.push(k.cache(step, slice, mb));
            dead.push(if slice == 0 {
                k.inputs(step, mb)
            } else {
                k.activation(step, slice - 1, mb)
            });
            if slice == ctx.plan.last_slice() {
                dead.push(k.targets(step, mb));
            }
        }
        if step > ctx.plan.first_step {
            let old = step - 1;
            let mut tasks: Vec<TaskId> = (0..ctx.plan.microbatches)
                .flat_map(|mb| {
                    [
                        TaskId::F {
                            step: old,
                            slice,
                            mb,
                        },
                        TaskId::B {
                            step: old,
                            slice,
                            mb,
                        },
                    ]
                })
                .collect();
            tasks.push(TaskId::U { step: old, slice });
            for t in tasks {
                let set = k.dependencies(&t.to_string());
                dead.push(Keys::fired(&set));
                dead.push(set);
            }
        }
        self.store.delete(&dead).await?;
        Ok(())
    }
}
