//! The run driver of a split run: writes the plan, the initial weights and optimizer state and the micro-batches
//! (two steps ahead) to the store, starts the first leaves, then only *follows* the event stream — tasks start each
//! other. At the end it pulls the final weights back, checkpoints, evaluates and deletes the run's keys.

use crate::config::Config;
use crate::error::RunError;
use crate::evaluate::evaluate;
use crate::fit::{open_training, summarize, Observer, RunFigures, StepRecord, Summary, TrainState};
use crate::run_dir::RunDir;
use bytes::Bytes;
use data::{Dataset, Sampler};
use models::checkpoint::{
    optimizer_from_bytes, optimizer_to_bytes, params_from_bytes, params_to_bytes,
};
use models::{Model, OptimizerState, UnitTensors};
use slice_worker::executor::{forward_dependencies, record_completion};
use slice_worker::invoker::LocalInvoker;
use slice_worker::plan::RunPlan;
use slice_worker::store::{Keys, MemoryStore, RedisStore, Store, StoreError};
use slice_worker::task::{TaskId, TaskPayload};
use slice_worker::wire::{encode_targets, encode_tensor};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the driver waits without any event before it declares the run stuck.
const STALL: Duration = Duration::from_secs(120);

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(e.to_string())
    }
}

/// Parses `"U(3,1)"` / `"B(3,1,0)"` into its kind and numbers.
fn parse_task(s: &str) -> Option<(char, Vec<u64>)> {
    let kind = s.chars().next()?;
    let inner = s.get(2..s.len().checked_sub(1)?)?;
    let nums = inner
        .split(',')
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((kind, nums))
}

struct Driver<'a> {
    cfg: &'a Config,
    model: Model,
    ds: Box<dyn Dataset>,
    sampler: Sampler,
    plan: RunPlan,
    keys: Keys,
    store: Arc<dyn Store>,
    invoker: Arc<LocalInvoker>,
    ttl: Duration,
}

impl Driver<'_> {
    /// Writes step `step`'s micro-batches and records the data marker in each leaf's dependency set.
    async fn feed(&self, step: u64) -> Result<(), RunError> {
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
        for m in 0..self.plan.microbatches {
            let leaf = TaskId::F {
                step,
                slice: 0,
                mb: m,
            };
            let needed = forward_dependencies(step);
            if record_completion(
                self.store.as_ref(),
                &self.keys,
                "data",
                leaf,
                needed,
                self.ttl,
            )
            .await?
            {
                self.invoker.invoke(TaskPayload {
                    run: self.plan.run_id.clone(),
                    task: leaf,
                    attempt: 1,
                });
            }
        }
        Ok(())
    }

    /// Pulls the final weights and optimizer state of every slice back into whole-model order.
    async fn pull(
        &self,
        version: u64,
    ) -> Result<(UnitTensors<f32>, OptimizerState<f32>), RunError> {
        let slots = self.plan.optimizer.slots();
        let (mut params, mut state) = (Vec::new(), Vec::new());
        for s in 0..self.plan.slices.len() {
            let range = self.plan.slice_range(s);
            let (wk, ok) = (
                self.keys.weights(s, version),
                self.keys.optimizer(s, version),
            );
            let mut both = self
                .store
                .get_many(&[wk.clone(), ok.clone()])
                .await?
                .into_iter();
            let mut take = |key: &str| {
                both.next()
                    .flatten()
                    .ok_or_else(|| RunError::Store(format!("{key} missing at the end of the run")))
            };
            let (w, o) = (take(&wk)?, take(&ok)?);
            params.extend(params_from_bytes(
                &self.model,
                range.clone(),
                &w,
                &wk,
                true,
            )?);
            state.extend(optimizer_from_bytes(&self.model, range, slots, &o, &ok)?.0);
        }
        Ok((params, state))
    }
}

/// Trains `cfg` as a split run (`plan.slices > 1` or `plan.cuts`) through the configured store and the local invoker.
pub fn fit_split(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    let threads = models::matmul::threads();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()
        .map_err(|e| RunError::Store(format!("cannot start the task runtime: {e}")))?;
    rt.block_on(drive(cfg, out, observer, stop, threads))
}

async fn drive(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    threads: usize,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    cfg.validate()?;
    let (model, ds, sampler, total) = open_training(cfg)?;
    let units = model.units().len();
    let slices = match &cfg.plan.cuts {
        Some(cuts) => RunPlan::slices_from_cuts(cuts, units),
        None => RunPlan::even_slices(cfg.plan.slices, units),
    }
    .map_err(|reason| {
        let field = if cfg.plan.cuts.is_some() {
            "plan.cuts"
        } else {
            "plan.slices"
        };
        RunError::Config(crate::config::ConfigError {
            field: field.into(),
            reason,
        })
    })?;
    let t = &cfg.train;
    let store: Arc<dyn Store> = if cfg.runtime.store == "memory" {
        Arc::new(MemoryStore::new())
    } else {
        let redis = RedisStore::connect(&cfg.runtime.store).await?;
        let policy = redis.maxmemory_policy().await?;
        if policy != "noeviction" {
            observer.warn(&format!(
                "{}: maxmemory-policy is {policy:?}; under memory pressure Redis may evict live keys (they carry TTLs). Use noeviction.",
                redis.describe()
            ));
        }
        Arc::new(redis)
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_id = format!("{}-{nanos}", std::process::id());
    let keys = Keys::new(&run_id).unwrap_or_else(|| unreachable!("digits and a dash"));
    let ttl = Duration::from_secs(24 * 3600);
    let plan = RunPlan {
        run_id: run_id.clone(),
        model: cfg.model.clone(),
        slices,
        microbatches: t.microbatches,
        batch_size: t.batch_size,
        steps: total,
        optimizer: t.optimizer_spec(),
        schedule: t.schedule_spec(),
        lr: t.lr,
        ttl_s: ttl.as_secs(),
    };
    out.create(cfg)?;
    out.write_json("plan.json", &plan)?;
    let mut metrics = out.metrics_writer()?;
    let invoker = LocalInvoker::new(store.clone(), cfg.runtime.concurrency, ttl);
    let driver = Driver {
        cfg,
        model,
        ds,
        sampler,
        plan,
        keys,
        store: store.clone(),
        invoker,
        ttl,
    };
    let result = run_steps(&driver, out, &mut metrics, observer, stop, started, threads).await;
    // Whatever happened, the run's keys go (the TTL is only a safety net).
    let cleanup = store.delete_prefix(driver.keys.prefix()).await;
    let summary = result?;
    cleanup?;
    Ok(summary)
}

async fn run_steps(
    d: &Driver<'_>,
    out: &RunDir,
    metrics: &mut crate::run_dir::MetricsWriter,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    started: Instant,
    threads: usize,
) -> Result<Summary, RunError> {
    let (plan, keys, store) = (&d.plan, &d.keys, &d.store);
    let opt = &plan.optimizer;
    let plan_json = serde_json::to_vec(plan).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
    store
        .put(&keys.plan(), Bytes::from(plan_json), d.ttl)
        .await?;
    let params = d.model.init::<f32>(d.cfg.train.seed);
    let mut items = Vec::new();
    for s in 0..plan.slices.len() {
        let range = plan.slice_range(s);
        let state: Vec<_> = params[range.clone()]
            .iter()
            .map(|p| opt.init_state(p))
            .collect();
        items.push((
            keys.weights(s, 0),
            Bytes::from(params_to_bytes(
                &d.model,
                range.clone(),
                &params[range.clone()],
            )?),
        ));
        items.push((
            keys.optimizer(s, 0),
            Bytes::from(optimizer_to_bytes(
                &d.model,
                range,
                opt.slots(),
                &state,
                "{\"step\":0}".into(),
            )?),
        ));
    }
    store.put_many(items, d.ttl).await?;
    observer.started(plan.steps, plan.batch_size);
    let train_start = Instant::now();
    d.feed(1).await?;
    d.feed(2).await?;

    let slices = plan.slices.len();
    let last = slices - 1;
    let mut updates: BTreeMap<u64, usize> = BTreeMap::new();
    let mut losses_mb: BTreeMap<u64, BTreeMap<u64, f64>> = BTreeMap::new();
    let (mut losses, mut step_ms) = (Vec::new(), Vec::new());
    let mut done_steps = 0u64;
    let mut step_start = Instant::now();
    let mut cursor = "0".to_string();
    let mut last_event = Instant::now();
    while done_steps < plan.steps {
        if stop.load(Ordering::Relaxed) {
            return Err(RunError::Interrupted { step: done_steps });
        }
        let events = store
            .read_events(&keys.events(), &cursor, 1000, Duration::from_millis(200))
            .await?;
        if events.is_empty() && last_event.elapsed() > STALL {
            return Err(RunError::Store(format!(
                "no task finished for {} s after step {done_steps}",
                STALL.as_secs()
            )));
        }
        for e in events {
            last_event = Instant::now();
            cursor = e.id.clone();
            let field = |name: &str| {
                e.fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            let task = field("task").unwrap_or("?");
            if let Some(err) = field("error") {
                return Err(RunError::Task {
                    task: task.to_string(),
                    reason: err.to_string(),
                });
            }
            let Some((kind, nums)) = parse_task(task) else {
                continue;
            };
            if let Some(bits) = field("loss_bits").and_then(|b| b.parse::<u64>().ok()) {
                if nums.get(1) == Some(&(last as u64)) {
                    losses_mb
                        .entry(nums[0])
                        .or_default()
                        .insert(nums[2], f64::from_bits(bits));
                }
            }
            if kind == 'U' {
                let n = updates.entry(nums[0]).or_insert(0);
                *n += 1;
            }
        }
        // Steps complete in order (step t+1's updates need step t's weights).
        while updates.get(&(done_steps + 1)) == Some(&slices) {
            done_steps += 1;
            let step = done_steps;
            d.feed(step + 2).await?;
            // Sum the micro-batch losses in micro-batch order, as the single-process path does.
            let loss: f64 = losses_mb
                .remove(&step)
                .map(|m| m.values().fold(0.0, |a, &l| a + l))
                .unwrap_or(f64::NAN);
            if !loss.is_finite() {
                return Err(RunError::NotFinite { step, loss });
            }
            let wall_ms = step_start.elapsed().as_secs_f64() * 1e3;
            step_start = Instant::now();
            let lr = plan.schedule.lr(plan.lr, step - 1, plan.steps);
            let record = StepRecord {
                step,
                epoch: d.sampler.epoch(step - 1),
                loss,
                lr,
                wall_ms,
                grad_norm: None,
                eval: None,
            };
            metrics.write(&record)?;
            observer.step(&record);
            losses.push(loss);
            step_ms.push(wall_ms);
        }
    }
    let train_s = train_start.elapsed().as_secs_f64();
    let (params, state) = d.pull(plan.steps).await?;
    let train_state = TrainState::new(d.cfg, plan.steps, d.sampler.epoch(plan.steps - 1));
    out.checkpoint(&d.model, &params, opt, &state, &train_state)?;
    let eval = evaluate(&d.model, &params, d.ds.as_ref(), None, 500)?;
    let run = RunFigures {
        total: plan.steps,
        steps_per_epoch: d.sampler.steps_per_epoch(),
        losses,
        step_ms,
        started,
        train_s,
        threads,
    };
    let summary = summarize(d.cfg, &d.model, &run, &eval);
    out.write_json("summary.json", &summary)?;
    observer.finished(&summary);
    Ok(summary)
}
