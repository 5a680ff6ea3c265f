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
//! A slice's update runs as `K` shards ([`models::shard`]): `U(t,s,k)` streams shard `k` of each micro-batch's
//! gradient in micro-batch order, applies the optimizer to its shard and writes shard `k` of the next weights and
//! optimizer state. A plan that clips splits it in two around the step's clip barrier: `R(t,s,k)` sums and reports
//! the shard's chunk sums of squares, `C(t)` turns all of them into the clip factor, `U(t,s,k)` scales the sum and
//! updates.
//!
//! This file holds the protocol every kind shares (superseded / outputs exist, outputs written before the mark,
//! completions recorded after: [`Worker::execute`]); the kinds' bodies are `weights.rs` (a slice's weights from its
//! shards, through the container's cache), `passes.rs` (F, B), `update.rs` (R, C, U) and `clean.rs` (what a
//! finished update deletes).

mod clean;
mod passes;
mod update;
mod weights;

use crate::codec::decode_plan;
use crate::dag::{self, successors};
use crate::event::Skip;
use crate::plan::RunPlan;
use crate::store::{Keys, Store, StoreError};
use crate::task::{TaskId, TaskPayload};
use crate::weight_cache::WeightCache;
use bytes::Bytes;
use models::shard::SliceLayout;
use models::{Model, ModelError};
use std::collections::HashMap;
use std::ops::Range;
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
    #[error("{task}: {what} is not finite (NaN or infinity) at step {step}, slice {slice}: lower train.lr or clip gradients (train.grad_clip)")]
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
    /// The step's global gradient norm before clipping (the clip task only).
    pub grad_norm: Option<f64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Time spent reading inputs (and checking what exists).
    pub fetch: Duration,
    /// Time spent writing outputs, recording completions and cleaning up.
    pub store: Duration,
    /// Of `fetch`, the idempotence probe's round trips (what exists) — protocol, not tensor bytes.
    pub probe: Duration,
    /// Of `store`, recording completions in the successors' dependency sets (the fan-in script).
    pub record: Duration,
    /// Whether the slice's weights came from this container's cache instead of the store.
    pub weights_cached: bool,
}

struct RunCtx {
    plan: RunPlan,
    model: Model,
    keys: Keys,
    /// Each slice's flat parameter layout and its shards' ranges in it.
    layouts: Vec<SliceLayout>,
    shards: Vec<Vec<Range<usize>>>,
}

impl RunCtx {
    /// The safety-net TTL of every key the run writes.
    fn ttl(&self) -> Duration {
        Duration::from_secs(self.plan.ttl_s)
    }

    /// How many shards slice `slice`'s update has.
    fn shard_count(&self, slice: usize) -> usize {
        self.shards[slice].len()
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
        let bad = |reason: String| TaskError::BadPlan {
            run: run.into(),
            key: keys.plan(),
            reason,
        };
        let model = plan.model.build().map_err(|e| bad(e.to_string()))?;
        plan.check(&model).map_err(bad)?;
        let layouts: Vec<SliceLayout> = (0..plan.slices.len())
            .map(|s| SliceLayout::new(&model, plan.slice_range(s)))
            .collect();
        let shards = layouts
            .iter()
            .enumerate()
            .map(|(s, l)| l.shards(plan.shard_count(s)).map_err(&bad))
            .collect::<Result<Vec<_>, _>>()?;
        let ctx = Arc::new(RunCtx {
            plan,
            model,
            keys,
            layouts,
            shards,
        });
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
        let probe = Self::probe_keys(&ctx, task);
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
                TaskId::R { step, slice, shard } => {
                    self.reduce(&ctx, step, slice, shard, &mut out).await
                }
                TaskId::C { step } => self.clip(&ctx, step, &mut out).await,
                TaskId::U { step, slice, shard } => {
                    self.update(&ctx, step, slice, shard, &mut out).await
                }
            };
            if let Err(e) = work {
                // An input can vanish because another delivery of this task finished meanwhile and its update
                // cleaned up (a late duplicate): then the work is done already. Anything else is a failure.
                if !matches!(e, TaskError::Missing { .. }) {
                    return Err(e);
                }
                out.skipped = self.probe(&probe, &mut out).await?;
                if out.skipped.is_none() && self.any_update_shard_done(&ctx, task, &mut out).await?
                {
                    out.skipped = Some(Skip::Superseded);
                }
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

    /// What the idempotence probe asks of `task`: the key whose presence supersedes it, and the key written last
    /// among its outputs. A forward or backward is superseded once its slice's first update shard of that step is
    /// done (every shard waits for all of them); an update or reduce once the update after it is; the clip barrier
    /// once slice 0's first update shard of its step is done (its completions are recorded in one atomic call, so
    /// that shard's start proves every update was released).
    fn probe_keys(ctx: &RunCtx, task: TaskId) -> [String; 2] {
        let k = &ctx.keys;
        match task {
            TaskId::U { step, slice, shard } => {
                [k.done(slice, step + 1, shard), k.done(slice, step, shard)]
            }
            TaskId::R { step, slice, shard } => {
                [k.done(slice, step, shard), k.norm_sums(step, slice, shard)]
            }
            TaskId::C { step } => [k.done(0, step, 0), k.clip(step)],
            TaskId::F { step, slice, mb } if slice < ctx.plan.last_slice() => {
                [k.done(slice, step, 0), k.activation(step, slice, mb)]
            }
            TaskId::F { step, slice, mb } | TaskId::B { step, slice, mb } => {
                let last_shard = ctx.shard_count(slice) - 1;
                [
                    k.done(slice, step, 0),
                    k.param_grads(step, slice, mb, last_shard),
                ]
            }
        }
    }

    /// Whether any update shard that waits for `task` is done — asked only after an input went missing. The probe
    /// checks shard 0's mark alone (one key), but with K > 1 shards another shard can finish first and delete its
    /// part of the inputs (its weights of the previous version, its gradient shards): a late duplicate of a forward
    /// or backward then finds an input gone while shard 0 is still running. Every shard waits for every forward and
    /// backward of its step and slice (and the clip barrier for all of them), so any shard's mark supersedes the
    /// task just as shard 0's does.
    async fn any_update_shard_done(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        out: &mut Outcome,
    ) -> Result<bool, TaskError> {
        let k = &ctx.keys;
        let marks: Vec<String> = match task {
            TaskId::F { step, slice, .. } | TaskId::B { step, slice, .. } => (0..ctx
                .shard_count(slice))
                .map(|shard| k.done(slice, step, shard))
                .collect(),
            TaskId::C { step } => ctx
                .plan
                .update_shards()
                .map(|(slice, shard)| k.done(slice, step, shard))
                .collect(),
            // A reduce or update shard is superseded by its own shard's next mark, which the probe asks.
            TaskId::R { .. } | TaskId::U { .. } => return Ok(false),
        };
        let t0 = Instant::now();
        let found = self.store.exists_many(&marks).await;
        out.fetch += t0.elapsed();
        out.probe += t0.elapsed();
        Ok(found?.into_iter().any(|done| done))
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
        out.probe += t0.elapsed();
        Ok(match found?.as_slice() {
            [true, _] => Some(Skip::Superseded),
            [false, true] => Some(Skip::OutputsExist),
            _ => None,
        })
    }

    /// Values under `keys` in one round trip, each required: a missing one fails the task, naming it.
    async fn fetch_all(
        &self,
        task: TaskId,
        keys: &[String],
        out: &mut Outcome,
    ) -> Result<Vec<Bytes>, TaskError> {
        let t0 = Instant::now();
        let fetched = self.store.get_many(keys).await;
        out.fetch += t0.elapsed();
        keys.iter()
            .zip(fetched?)
            .map(|(key, v)| {
                let v = v.ok_or_else(|| TaskError::Missing {
                    task: task.to_string(),
                    key: key.clone(),
                })?;
                out.bytes_in += v.len() as u64;
                Ok(v)
            })
            .collect()
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
        out.record += t0.elapsed();
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
}
