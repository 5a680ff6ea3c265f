//! The driver of one attempt of a split run, once it is set up: what it holds (the resolved config, the model and
//! data, the run plan, its store and invoker) and the few things it does to the store besides following the event
//! stream — feed a step's micro-batches and start its leaves, invoke a task, read a step's loss, pull weights back,
//! notice a restarted store.

use crate::config::Config;
use crate::error::RunError;
use crate::planner::simulate::StepPrediction;
use crate::run::dir::RunDir;
use crate::run::record::WarmPool;
use crate::run::split::tracker::Tracker;
use data::{Dataset, Sampler};
use models::shard::SliceLayout;
use models::{Model, OptimizerState, UnitTensors};
use slice_worker::codec::{decode_loss, decode_slice_shards, encode_targets, encode_tensor};
use slice_worker::executor::{forward_dependencies, record_completion};
use slice_worker::governor::{Admission, Governor};
use slice_worker::invoker::Invoker;
use slice_worker::plan::RunPlan;
use slice_worker::store::{Keys, Store};
use slice_worker::task::{TaskId, TaskPayload};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything one attempt of a split run works with.
pub(super) struct Driver<'a> {
    /// The config with the planner's choices written in (`config.resolved.toml`).
    pub cfg: Config,
    pub out: &'a RunDir,
    pub model: Model,
    pub ds: Box<dyn Dataset>,
    pub sampler: Sampler,
    pub plan: RunPlan,
    pub keys: Keys,
    pub store: Arc<dyn Store>,
    pub invoker: Arc<dyn Invoker>,
    pub ttl: Duration,
    /// The latency model's prediction for this run (local platform), for calibration.
    pub prediction: Option<StepPrediction>,
    /// The store's server process when the run started ([`Store::instance`]).
    pub instance: String,
    /// When the run (this attempt) started, and the compute threads of each task: for the summary.
    pub started: Instant,
    pub threads: usize,
    /// What the warm pool did before the first step (runs on Lambda).
    pub warm_pool: Option<WarmPool>,
    /// The account governor, when the run is governed: every invocation is admitted with a slot or queued.
    pub governor: Option<Governor>,
}

impl Driver<'_> {
    /// Writes step `step`'s micro-batches, records the data marker in each leaf's dependency set and starts the
    /// leaves that completed; tells the tracker.
    pub async fn feed(&self, step: u64, tracker: &mut Tracker) -> Result<(), RunError> {
        if step > self.plan.steps {
            return Ok(());
        }
        let (_, indices) = self.sampler.indices(step - 1);
        let batch = self.ds.train_batch(&indices)?;
        let mut items = Vec::new();
        for (m, mb) in batch.split(self.plan.microbatches)?.into_iter().enumerate() {
            items.push((self.keys.inputs(step, m), encode_tensor(&mb.inputs)?));
            items.push((self.keys.targets(step, m), encode_targets(&mb.targets)?));
        }
        self.store.put_many(items, self.ttl).await?;
        // Every leaf's data record in flight at once (M store round trips in the time of one); each leaf that
        // completed is invoked as soon as its record answers.
        let needed = forward_dependencies(&self.plan, step, 0);
        let records = (0..self.plan.microbatches).map(|mb| async move {
            let leaf = TaskId::F { step, slice: 0, mb };
            let complete = record_completion(
                self.store.as_ref(),
                &self.keys,
                "data",
                leaf,
                needed,
                self.ttl,
            )
            .await?;
            if complete {
                self.invoke(leaf, 1);
            }
            Ok::<_, RunError>(complete.then_some(leaf))
        });
        let mut fired = Vec::new();
        for leaf in futures_util::future::join_all(records).await {
            fired.extend(leaf?);
        }
        for again in tracker.fed(step, &fired, Instant::now()) {
            self.invoke(again.task, again.attempt);
        }
        Ok(())
    }

    /// Fails with [`RunError::StoreLost`] when the store is no longer the server process the run started on: a
    /// restarted Redis has lost the run's weights, inputs and dependency sets (or holds an older snapshot of them),
    /// so nothing in flight can be trusted.
    pub async fn check_instance(&self) -> Result<(), RunError> {
        let now = self.store.instance().await?;
        if now != self.instance {
            return Err(RunError::StoreLost(format!(
                "store {} restarted during the run (server run_id {} → {}): what the run held there is gone",
                self.store.describe(),
                self.instance,
                now
            )));
        }
        Ok(())
    }

    /// Invokes `task` (attempt `attempt`) on its function — on a governed run with a slot, or it waits in the
    /// run's queue until [`Driver::start_granted`] starts it.
    pub fn invoke(&self, task: TaskId, attempt: u32) {
        let payload = TaskPayload::new(&self.plan.run_id, task, attempt);
        let Some(governor) = self.governor.clone() else {
            self.invoker.invoke(payload);
            return;
        };
        let invoker = self.invoker.clone();
        tokio::spawn(async move {
            match governor.admit(&payload).await {
                Ok(Admission::Slot(slot)) => invoker.invoke(TaskPayload {
                    slot: Some(slot),
                    ..payload
                }),
                Ok(Admission::Queued | Admission::Dead) => {}
                // The store that holds the slots is unreachable: invoking without one keeps the task going; the
                // store's loss is the driver's to notice.
                Err(_) => invoker.invoke(payload),
            }
        });
    }

    /// A governed run's poll of the governor (which also renews the run's registration): starts the queued tasks
    /// granted a slot; returns the tasks still queued (waiting, not late).
    pub async fn start_granted(&self) -> Result<Vec<TaskId>, RunError> {
        let Some(governor) = &self.governor else {
            return Ok(Vec::new());
        };
        let Some(poll) = governor
            .take(&self.plan.run_id, governor.slot_ttl())
            .await?
        else {
            return Err(RunError::Stalled(format!(
                "the account governor no longer knows run {} (its registration lapsed: the driver was held up \
                 longer than qos.lease_s); resume it",
                self.plan.run_id
            )));
        };
        for granted in poll.granted {
            self.invoker.invoke(granted.payload);
        }
        Ok(poll.queued.iter().map(|p| p.task).collect())
    }

    /// Step `step`'s loss: the micro-batch shares the last slice wrote, summed in micro-batch order as the
    /// single-process path does; their keys are deleted.
    pub async fn step_loss(&self, step: u64) -> Result<f64, RunError> {
        let keys: Vec<String> = (0..self.plan.microbatches)
            .map(|m| self.keys.loss(step, m))
            .collect();
        let values = self.store.get_many(&keys).await?;
        let mut loss = 0.0;
        for (key, v) in keys.iter().zip(values) {
            let bytes =
                v.ok_or_else(|| RunError::StoreData(format!("store key {key}: missing")))?;
            loss += decode_loss(&bytes, key)?;
        }
        self.store.delete(&keys).await?;
        Ok(loss)
    }

    /// Pulls the weights and optimizer state of version `version` of every slice back into whole-model order,
    /// each slice assembled from its shards.
    pub async fn pull(
        &self,
        version: u64,
    ) -> Result<(UnitTensors<f32>, OptimizerState<f32>), RunError> {
        let slots = self.plan.optimizer.slots();
        let (mut params, mut state) = (Vec::new(), Vec::new());
        for s in 0..self.plan.slices.len() {
            let layout = SliceLayout::new(&self.model, self.plan.slice_range(s));
            let ranges = layout
                .shards(self.plan.shard_count(s))
                .map_err(RunError::Mismatch)?;
            let keys: Vec<String> = (0..ranges.len())
                .flat_map(|k| {
                    [
                        self.keys.weights(s, version, k),
                        self.keys.optimizer(s, version, k),
                    ]
                })
                .collect();
            let mut values = self.store.get_many(&keys).await?.into_iter();
            let mut shards = Vec::with_capacity(ranges.len());
            for pair in keys.chunks(2) {
                let mut take = |key: &String| {
                    values
                        .next()
                        .flatten()
                        .map(|v| (key.clone(), v))
                        .ok_or_else(|| {
                            RunError::StoreData(format!(
                                "store key {key} missing at the end of the run"
                            ))
                        })
                };
                shards.push((take(&pair[0])?, take(&pair[1])?));
            }
            let (p, o) = decode_slice_shards(&layout, &ranges, slots, shards)?;
            params.extend(p);
            state.extend(o);
        }
        Ok((params, state))
    }
}
