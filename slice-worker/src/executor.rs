//! The executor: runs one task of one slice, writes its outputs, records its completion in the dependency sets of
//! its successors, and returns the successors whose inputs are now complete (the WuKong rule: whoever completes a
//! fan-in starts it, exactly once).
//!
//! Backward recomputes its slice's forward from the slice input (the *recompute* option, the only one so far): a
//! forward task stores just its output, and the recomputed caches are bit-identical because every kernel is
//! deterministic. The last slice's forward *becomes* its backward in the same invocation (the loss head lives
//! there), so logits never travel.

use crate::plan::RunPlan;
use crate::store::{Keys, Store, StoreError};
use crate::task::{TaskId, TaskPayload};
use crate::wire::{decode_targets, decode_tensor, encode_tensor};
use bytes::Bytes;
use models::checkpoint::{
    optimizer_from_bytes, optimizer_to_bytes, params_from_bytes, params_to_bytes,
};
use models::train::add_in_order;
use models::{Model, ModelError, Tensor, UnitTensors};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    #[error("run {run}: bad plan: {reason}")]
    BadPlan { run: String, reason: String },
}

/// What a finished task reports.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Tasks this one completed the inputs of: the caller starts them.
    pub successors: Vec<TaskId>,
    /// The micro-batch's share of the batch loss (last slice only).
    pub loss: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
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

/// One function instance. Keeps nothing between tasks but the parsed plan of each run it has seen (a warm
/// container's cache; the plan never changes during a run).
pub struct Worker {
    store: Arc<dyn Store>,
    runs: Mutex<HashMap<String, Arc<RunCtx>>>,
}

/// How many inputs `F(t, s, m)` waits for: the previous slice's output (or, for slice 0, the driver's data marker)
/// and, after the first step, the update of its own slice.
pub fn forward_dependencies(step: u64) -> usize {
    if step == 1 {
        1
    } else {
        2
    }
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
    /// Records `done` towards `next` and queues `next` as a successor if that completed its inputs.
    async fn complete(
        &self,
        ctx: &RunCtx,
        done: TaskId,
        next: TaskId,
        needed: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let ttl = ctx.ttl();
        if record_completion(
            self.store.as_ref(),
            &ctx.keys,
            &done.to_string(),
            next,
            needed,
            ttl,
        )
        .await?
        {
            out.successors.push(next);
        }
        Ok(())
    }

    pub fn new(store: Arc<dyn Store>) -> Worker {
        Worker {
            store,
            runs: Mutex::new(HashMap::new()),
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
        let plan: RunPlan = serde_json::from_slice(&bytes).map_err(|e| TaskError::BadPlan {
            run: run.into(),
            reason: e.to_string(),
        })?;
        let model = plan.model.build().map_err(|e| TaskError::BadPlan {
            run: run.into(),
            reason: e.to_string(),
        })?;
        let ctx = Arc::new(RunCtx { plan, model, keys });
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.into(), ctx.clone());
        Ok(ctx)
    }

    async fn fetch(&self, task: &TaskId, key: &str, out: &mut Outcome) -> Result<Bytes, TaskError> {
        let v = self
            .store
            .get(key)
            .await?
            .ok_or_else(|| TaskError::Missing {
                task: task.to_string(),
                key: key.into(),
            })?;
        out.bytes_in += v.len() as u64;
        Ok(v)
    }

    async fn put(
        &self,
        key: String,
        value: Bytes,
        ttl: Duration,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        out.bytes_out += value.len() as u64;
        Ok(self.store.put(&key, value, ttl).await?)
    }

    /// Runs one task.
    pub async fn execute(&self, payload: &TaskPayload) -> Result<Outcome, TaskError> {
        let ctx = self.run_ctx(&payload.run).await?;
        let mut out = Outcome::default();
        match payload.task {
            TaskId::F { step, slice, mb } if slice == ctx.plan.last_slice() => {
                self.backward(&ctx, step, slice, mb, &mut out).await?;
            }
            TaskId::F { step, slice, mb } => self.forward(&ctx, step, slice, mb, &mut out).await?,
            TaskId::B { step, slice, mb } => self.backward(&ctx, step, slice, mb, &mut out).await?,
            TaskId::U { step, slice } => self.update(&ctx, step, slice, &mut out).await?,
        }
        Ok(out)
    }

    fn model_err(task: TaskId) -> impl FnOnce(ModelError) -> TaskError {
        move |source| TaskError::Model {
            task: task.to_string(),
            source,
        }
    }

    async fn slice_params(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        slice: usize,
        version: u64,
        out: &mut Outcome,
    ) -> Result<UnitTensors<f32>, TaskError> {
        let key = ctx.keys.weights(slice, version);
        let bytes = self.fetch(&task, &key, out).await?;
        params_from_bytes(&ctx.model, ctx.plan.slice_range(slice), &bytes, &key, true)
            .map_err(Self::model_err(task))
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
        let ttl = ctx.ttl();
        let params = self.slice_params(ctx, task, slice, step - 1, out).await?;
        let x = self.slice_input(ctx, task, step, slice, mb, out).await?;
        let y = ctx
            .model
            .infer(ctx.plan.slice_range(slice), &params, x)
            .map_err(Self::model_err(task))?;
        let bytes = encode_tensor(&y).map_err(Self::model_err(task))?;
        self.put(ctx.keys.activation(step, slice, mb), bytes, ttl, out)
            .await?;
        let next = TaskId::F {
            step,
            slice: slice + 1,
            mb,
        };
        self.complete(ctx, task, next, forward_dependencies(step), out)
            .await?;
        Ok(())
    }

    async fn backward(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::B { step, slice, mb };
        let ttl = ctx.ttl();
        let range = ctx.plan.slice_range(slice);
        let params = self.slice_params(ctx, task, slice, step - 1, out).await?;
        let x = self.slice_input(ctx, task, step, slice, mb, out).await?;
        let (y, caches) = ctx
            .model
            .forward(range.clone(), &params, x)
            .map_err(Self::model_err(task))?;
        let dy = if slice == ctx.plan.last_slice() {
            let key = ctx.keys.targets(step, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            let targets = decode_targets(&bytes, &key).map_err(Self::model_err(task))?;
            let lg = ctx
                .model
                .loss(&y, &targets, ctx.plan.batch_size)
                .map_err(Self::model_err(task))?;
            out.loss = Some(lg.loss);
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
        let pg = params_to_bytes(&ctx.model, range, &grads).map_err(Self::model_err(task))?;
        self.put(
            ctx.keys.param_grads(step, slice, mb),
            Bytes::from(pg),
            ttl,
            out,
        )
        .await?;
        if let Some(dx) = dx.filter(|_| slice > 0) {
            let bytes = encode_tensor(&dx).map_err(Self::model_err(task))?;
            self.put(ctx.keys.gradient(step, slice - 1, mb), bytes, ttl, out)
                .await?;
            out.successors.push(TaskId::B {
                step,
                slice: slice - 1,
                mb,
            });
        }
        self.complete(
            ctx,
            task,
            TaskId::U { step, slice },
            ctx.plan.microbatches,
            out,
        )
        .await?;
        Ok(())
    }

    async fn update(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::U { step, slice };
        let ttl = ctx.ttl();
        let range = ctx.plan.slice_range(slice);
        let plan = &ctx.plan;
        let slots = plan.optimizer.slots();
        // Weights are versioned: if version `step` exists, this update already ran (a retry or a duplicate delivery)
        // and must not apply the optimizer twice; it only re-records its completions, which count once.
        if !self.store.exists(&ctx.keys.weights(slice, step)).await? {
            let keys: Vec<String> = (0..plan.microbatches)
                .map(|m| ctx.keys.param_grads(step, slice, m))
                .collect();
            let mut acc: Option<UnitTensors<f32>> = None;
            for (key, bytes) in keys.iter().zip(self.store.get_many(&keys).await?) {
                let bytes = bytes.ok_or_else(|| TaskError::Missing {
                    task: task.to_string(),
                    key: key.clone(),
                })?;
                out.bytes_in += bytes.len() as u64;
                let g = params_from_bytes(&ctx.model, range.clone(), &bytes, key, true)
                    .map_err(Self::model_err(task))?;
                add_in_order(&mut acc, g);
            }
            let grads = acc.unwrap_or_else(|| unreachable!("at least one micro-batch"));
            let mut params = self.slice_params(ctx, task, slice, step - 1, out).await?;
            let okey = ctx.keys.optimizer(slice, step - 1);
            let obytes = self.fetch(&task, &okey, out).await?;
            let (mut state, _) =
                optimizer_from_bytes::<f32>(&ctx.model, range.clone(), slots, &obytes, &okey)
                    .map_err(Self::model_err(task))?;
            let lr = plan.schedule.lr(plan.lr, step - 1, plan.steps);
            for ((p, g), s) in params.iter_mut().zip(&grads).zip(state.iter_mut()) {
                plan.optimizer.step(lr, step, p, g, s);
            }
            let w = params_to_bytes(&ctx.model, range.clone(), &params)
                .map_err(Self::model_err(task))?;
            let o = optimizer_to_bytes(
                &ctx.model,
                range,
                slots,
                &state,
                format!("{{\"step\":{step}}}"),
            )
            .map_err(Self::model_err(task))?;
            out.bytes_out += (w.len() + o.len()) as u64;
            // One pipeline, optimizer state first: whoever sees weights version `step` (the "already done" mark
            // above) may rely on state version `step`. Pipelined commands run in order.
            let versioned = vec![
                (ctx.keys.optimizer(slice, step), Bytes::from(o)),
                (ctx.keys.weights(slice, step), Bytes::from(w)),
            ];
            self.store.put_many(versioned, ttl).await?;
            self.clean_step(ctx, step, slice).await?;
        }
        if step < plan.steps {
            for mb in 0..plan.microbatches {
                let next = TaskId::F {
                    step: step + 1,
                    slice,
                    mb,
                };
                self.complete(ctx, task, next, forward_dependencies(step + 1), out)
                    .await?;
            }
        }
        Ok(())
    }

    /// What step `step` of slice `slice` no longer needs once its update is done.
    async fn clean_step(&self, ctx: &RunCtx, step: u64, slice: usize) -> Result<(), TaskError> {
        let k = &ctx.keys;
        let mut dead = vec![k.weights(slice, step - 1), k.optimizer(slice, step - 1)];
        for mb in 0..ctx.plan.microbatches {
            dead.push(k.param_grads(step, slice, mb));
            dead.push(k.gradient(step, slice, mb));
            dead.push(if slice == 0 {
                k.inputs(step, mb)
            } else {
                k.activation(step, slice - 1, mb)
            });
            if slice == ctx.plan.last_slice() {
                dead.push(k.targets(step, mb));
            }
        }
        // Dependency sets and their fired flags stay (a few bytes each, until the run's cleanup or their TTL): deleting
        // them would let a late duplicate delivery start a successor a second time.
        self.store.delete(&dead).await?;
        Ok(())
    }
}
