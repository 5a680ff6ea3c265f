//! The run driver of a split run: writes the plan, the initial weights and optimizer state and the micro-batches
//! (two steps ahead) to the store, starts the first leaves, then only *follows* the event stream — tasks start each
//! other. At the end it pulls the final weights back, checkpoints, evaluates and deletes the run's keys.

use crate::config::{Config, Slices};
use crate::error::RunError;
use crate::evaluate::evaluate;
use crate::fit::{open_training, summarize, Observer, RunFigures, StepRecord, Summary, TrainState};
use crate::run_dir::RunDir;
use crate::tracker::Tracker;
use bytes::Bytes;
use data::{Dataset, Sampler};
use models::checkpoint::{
    optimizer_from_bytes, optimizer_to_bytes, params_from_bytes, params_to_bytes,
};
use models::{Model, OptimizerState, UnitTensors};
use slice_worker::event::TaskEvent;
use slice_worker::executor::{forward_dependencies, record_completion};
use slice_worker::invoker::{
    Faults, Invoker, LambdaClient, LambdaInvoker, LocalInvoker, LocalOptions,
};
use slice_worker::plan::RunPlan;
use slice_worker::store::{Keys, MemoryStore, RedisStore, Store, StoreError};
use slice_worker::task::{TaskId, TaskPayload};
use slice_worker::wire::{encode_targets, encode_tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the driver waits without any event, while no task is due, before it declares the run stuck (a due task
/// is bounded by its deadline and attempts instead).
const STALL: Duration = Duration::from_secs(120);

/// How often the driver asks whether the store is still the server process the run started on.
const INSTANCE_CHECK: Duration = Duration::from_millis(500);

/// How many late tasks the driver names in warnings before it only counts them.
const LATE_WARNINGS: usize = 5;

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        match e {
            // Still failing after the store's own retries: the run's state there cannot be relied on.
            StoreError::Connection { .. } => RunError::StoreLost(e.to_string()),
            e => RunError::Store(e.to_string()),
        }
    }
}

struct Driver<'a> {
    cfg: &'a Config,
    model: Model,
    ds: Box<dyn Dataset>,
    sampler: Sampler,
    plan: RunPlan,
    keys: Keys,
    store: Arc<dyn Store>,
    invoker: Arc<dyn Invoker>,
    ttl: Duration,
    /// The latency model's prediction for this run (local platform), for calibration.
    prediction: Option<crate::planner::simulate::StepPrediction>,
    /// The store's server process when the run started ([`Store::instance`]).
    instance: String,
}

impl Driver<'_> {
    /// Writes step `step`'s micro-batches, records the data marker in each leaf's dependency set and starts the
    /// leaves that completed; tells the tracker.
    async fn feed(&self, step: u64, tracker: &mut Tracker) -> Result<(), RunError> {
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
        let mut fired = Vec::new();
        for m in 0..self.plan.microbatches {
            let leaf = TaskId::F {
                step,
                slice: 0,
                mb: m,
            };
            let needed = forward_dependencies(&self.plan, step);
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
                fired.push(leaf);
                self.invoke(leaf, 1);
            }
        }
        tracker.fed(step, &fired, Instant::now());
        Ok(())
    }

    /// Fails with [`RunError::StoreLost`] when the store is no longer the server process the run started on: a
    /// restarted Redis has lost the run's weights, inputs and dependency sets (or holds an older snapshot of them),
    /// so nothing in flight can be trusted.
    async fn check_instance(&self) -> Result<(), RunError> {
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

    fn invoke(&self, task: TaskId, attempt: u32) {
        self.invoker
            .invoke(TaskPayload::new(&self.plan.run_id, task, attempt));
    }

    /// Step `step`'s loss: the micro-batch shares the last slice wrote, summed in micro-batch order as the
    /// single-process path does; their keys are deleted.
    async fn step_loss(&self, step: u64) -> Result<f64, RunError> {
        let keys: Vec<String> = (0..self.plan.microbatches)
            .map(|m| self.keys.loss(step, m))
            .collect();
        let values = self.store.get_many(&keys).await?;
        let mut loss = 0.0;
        for (key, v) in keys.iter().zip(values) {
            let bytes: [u8; 8] = v
                .as_deref()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    RunError::Store(format!("store key {key}: missing or not 8 bytes"))
                })?;
            loss += f64::from_le_bytes(bytes);
        }
        self.store.delete(&keys).await?;
        Ok(loss)
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
                both.next().flatten().ok_or_else(|| {
                    RunError::Store(format!("store key {key} missing at the end of the run"))
                })
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

/// How a split run begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// A new run in a new folder, from the seed's initial weights.
    Fresh,
    /// The run in the folder, from its last checkpoint, under a fresh store namespace.
    Resume,
}

/// Trains `cfg` as a split run (`plan.slices > 1` or `plan.cuts`) through the configured store and invoker.
pub fn fit_split(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    run_split(cfg, out, observer, stop, Launch::Fresh)
}

/// Continues the split run in `out` from its last checkpoint (see [`crate::fit::resume`]; `cfg` is the config it
/// returned, with the run's own planner choices).
pub(crate) fn resume_split(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    run_split(cfg, out, observer, stop, Launch::Resume)
}

/// Runs the split run, and when its Redis store is lost (restarted with its data gone, or unreachable past the
/// store's retries) waits for the store and goes on from the last checkpoint, up to `runtime.store_restarts`
/// times. Each attempt has its own task runtime, dropped with everything it still had in flight.
fn run_split(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    launch: Launch,
) -> Result<Summary, RunError> {
    // Tasks run side by side, one per core, each computing with `runtime.threads` threads (default 1): splitting
    // a micro-batch's small products over threads that other tasks need is slower (measured on the 8-unit MLP:
    // step p50 59–68 ms with 2 threads per task, 49–59 ms with 1). Results do not depend on it.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_task = if cfg.runtime.threads == 0 {
        1
    } else {
        cfg.runtime.threads
    };
    let previous = models::matmul::threads();
    models::matmul::set_threads(per_task);
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.max(2))
            .enable_all()
            .build()
            .map_err(|e| RunError::Store(format!("cannot start the task runtime: {e}")))
    };
    let mut launch = launch;
    let mut restarts = 0;
    let result = loop {
        let attempt = runtime().and_then(|rt| {
            let result = rt.block_on(drive(cfg, out, observer, stop, per_task, launch, restarts));
            // `drive` closed the invoker; whatever is still asleep in the runtime (delayed deliveries) goes.
            rt.shutdown_timeout(Duration::from_secs(1));
            result
        });
        match attempt {
            // Lost before the run began (no plan.json yet): nothing to go on from — an unreachable store.
            Err(RunError::StoreLost(why)) if !out.path().join("plan.json").exists() => {
                break Err(RunError::Store(why))
            }
            Err(RunError::StoreLost(why)) if restarts < cfg.runtime.store_restarts => {
                restarts += 1;
                observer.warn(&format!(
                    "{why}\nwaiting up to {} s for the store, then restarting from the last checkpoint \
                     (restart {restarts} of at most {})",
                    cfg.runtime.store_wait_s, cfg.runtime.store_restarts
                ));
                let waited = runtime().and_then(|rt| {
                    rt.block_on(wait_for_store(
                        &cfg.runtime.store,
                        Duration::from_secs_f64(cfg.runtime.store_wait_s),
                    ))
                });
                if let Err(e) = waited {
                    break Err(RunError::StoreLost(format!(
                        "{why}; then: {e}. The run folder's checkpoint is intact: resume once the store is back"
                    )));
                }
                launch = Launch::Resume;
            }
            Err(RunError::StoreLost(why)) => {
                break Err(RunError::StoreLost(format!(
                    "{why} (after {restarts} restart(s) from the checkpoint; runtime.store_restarts = {}). The \
                     run folder's checkpoint is intact",
                    cfg.runtime.store_restarts
                )))
            }
            other => break other,
        }
    };
    models::matmul::set_threads(previous);
    result
}

/// Waits until the store at `url` answers, trying every second for up to `wait`.
async fn wait_for_store(url: &str, wait: Duration) -> Result<(), RunError> {
    let started = Instant::now();
    loop {
        match RedisStore::connect(url).await {
            Ok(_) => return Ok(()),
            Err(e) if started.elapsed() >= wait => {
                return Err(RunError::StoreLost(format!(
                    "no answer within runtime.store_wait_s = {} s: {e}",
                    wait.as_secs_f64()
                )))
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

async fn drive(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    threads: usize,
    launch: Launch,
    restarts: u32,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    cfg.validate()?;
    let (model, ds, sampler, total) = open_training(cfg)?;
    let units = model.units().len();
    // A resumed run keeps its plan (split, micro-batches, functions); only the namespace and first step change.
    let (previous, mut lock) = match launch {
        Launch::Fresh => (None, None),
        Launch::Resume => (Some(read_run_plan(out)?), Some(out.lock()?)),
    };
    // The planner decides what the config leaves to it (`slices = "auto"`, `microbatches = "auto"`), from a quick
    // profile of this machine and store; the run then uses a resolved copy of the config with its choices.
    let batch = crate::planner::profile::first_batch(ds.as_ref(), &sampler)?;
    let auto_slices = cfg.plan.slices == Slices::Auto && cfg.plan.cuts.is_none();
    let mut planned = None;
    let mut profile_used = match &cfg.plan.profile {
        Some(path) => Some(crate::planner::read_profile_for(path, &model)?),
        None => None,
    };
    let mut resolved = cfg.clone();
    if let Some((p, _)) = &previous {
        resolved.train.microbatches = p.microbatches;
        resolved.plan.cuts = Some(p.slices.iter().skip(1).map(|s| s.0).collect());
    } else if cfg.planner_picks_split() {
        let profile = match profile_used.take() {
            Some(p) => p,
            None => crate::planner::profile::profile_async(cfg, &batch, 3).await?,
        };
        let outcome = crate::planner::plan_for(cfg, &profile, sampler.steps_per_epoch() as u64)?;
        resolved.train.microbatches = outcome.chosen.microbatches;
        if auto_slices {
            resolved.plan.cuts = Some(outcome.chosen.cuts());
        }
        planned = Some(outcome);
        profile_used = Some(profile);
    }
    let cfg = &resolved;
    let slices = match (&cfg.plan.cuts, cfg.plan.slices) {
        (Some(cuts), _) => RunPlan::slices_from_cuts(cuts, units),
        (None, Slices::Count(n)) => RunPlan::even_slices(n, units),
        (None, Slices::Auto) => unreachable!("auto slices were resolved into cuts above"),
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
    // The model's prediction for this very run, from a quick profile (reused from the planner when it ran).
    let cuts: Vec<usize> = slices.iter().skip(1).map(|s| s.0).collect();
    let prediction = match profile_used {
        Some(p) => Some(crate::calibration::predict(cfg, &p, &cuts)?),
        None => {
            let p = crate::planner::profile::profile_async(cfg, &batch, 3).await?;
            Some(crate::calibration::predict(cfg, &p, &cuts)?)
        }
    };
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
    // The server process the run's keys live in: if it changes, they are gone (or an older snapshot of them).
    let instance = store.instance().await?;
    let opt = t.optimizer_spec();
    let old_prefix = previous
        .as_ref()
        .and_then(|(old, _)| Keys::new(&old.run_id))
        .map(|k| k.prefix().to_string());
    let (params, state, done, losses) = match &previous {
        None => {
            let (params, state) = crate::fit::initial_state(&model, &opt, t.seed);
            (params, state, 0, Vec::new())
        }
        Some((old, _)) => {
            // What the interrupted run left in the store goes first: its tasks must find nothing to build on.
            let old_keys = Keys::new(&old.run_id).ok_or_else(|| {
                RunError::Mismatch(format!(
                    "{}: run_id {:?} is not a run id",
                    out.path().join("plan.json").display(),
                    old.run_id
                ))
            })?;
            store.delete_prefix(old_keys.prefix()).await?;
            let (params, state, done) =
                crate::fit::resume_point(cfg, out, &model, &opt, total, observer)?;
            let losses = crate::resume::keep_metrics_up_to(out.path(), done)?;
            crate::resume::keep_events_up_to(out.path(), done)?;
            (params, state, done, losses)
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run_id = format!("{}-{nanos}", std::process::id());
    let keys = Keys::new(&run_id).unwrap_or_else(|| unreachable!("digits and a dash"));
    let ttl = Duration::from_secs(24 * 3600);
    let slice_count = slices.len();
    let plan = RunPlan {
        run_id: run_id.clone(),
        model: cfg.model.clone(),
        slices,
        microbatches: t.microbatches,
        batch_size: t.batch_size,
        steps: total,
        first_step: done + 1,
        optimizer: opt,
        schedule: t.schedule_spec(),
        lr: t.lr,
        ttl_s: ttl.as_secs(),
        keep_every: [t.eval_every, cfg.checkpoint.every]
            .into_iter()
            .filter(|&p| p > 0)
            .collect(),
        recompute: cfg.plan.recompute,
        become_successor: cfg.plan.become_successor,
        functions: match &previous {
            Some((old, _)) => old.functions.clone(),
            None if cfg.runtime.invoker == "lambda" => {
                lambda_functions(cfg, planned.as_ref(), slice_count)
                    .into_iter()
                    .map(|(name, _)| name)
                    .collect()
            }
            None => Vec::new(),
        },
    };
    // plan.json: the run plan the tasks read and, for `slices = "auto"`, the planner's choice and alternatives
    // (kept when a resumed run rewrites it with its new namespace and first step).
    let mut plan_json =
        serde_json::to_value(&plan).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
    let planner = match (&previous, planned) {
        (Some((_, old_json)), _) => old_json.get("planner").cloned(),
        (None, Some(o)) => {
            Some(serde_json::to_value(o).unwrap_or_else(|e| unreachable!("plain struct: {e}")))
        }
        (None, None) => None,
    };
    if let (Some(o), Some(map)) = (planner, plan_json.as_object_mut()) {
        map.insert("planner".into(), o);
    }
    let (mut metrics, events_log) = match launch {
        Launch::Fresh => {
            out.create(cfg)?;
            lock = Some(out.lock()?);
            out.write_json("plan.json", &plan_json)?;
            (
                out.jsonl_writer("metrics.jsonl")?,
                out.jsonl_writer("events.jsonl")?,
            )
        }
        Launch::Resume => {
            out.write_json("plan.json", &plan_json)?;
            (
                out.jsonl_appender("metrics.jsonl")?,
                out.jsonl_appender("events.jsonl")?,
            )
        }
    };
    let r = &cfg.runtime;
    let invoker: Arc<dyn Invoker> = if r.invoker == "lambda" {
        let l = &cfg.lambda;
        let settings = slice_worker::invoker::LambdaSettings {
            region: l.region.clone(),
            profile: l.profile.clone(),
            endpoint_url: l.endpoint_url.clone(),
            static_credentials: None,
        };
        let client = LambdaClient::new(&settings, r.concurrency, Default::default()).await;
        LambdaInvoker::new(Arc::new(client), plan.functions.clone())
    } else {
        LocalInvoker::new(
            store.clone(),
            LocalOptions {
                concurrency: r.concurrency,
                faults: Faults {
                    fault_rate: r.fault_rate,
                    duplicate_rate: r.duplicate_rate,
                    cold_start: Duration::from_millis(r.cold_start_ms),
                    stall_rate: r.stall_rate,
                    // Stuck past the deadline: the driver's retry overtakes the stuck delivery.
                    stall: timeout_of(r.task_timeout_s) * 2,
                    seed: r.seed,
                },
                become_successor: cfg.plan.become_successor,
                event_ttl: ttl,
            },
        )
    };
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
        prediction,
        instance,
    };
    let from = StartingPoint {
        params,
        state,
        losses,
        restarts,
    };
    let _held = lock;
    let result = run_steps(
        &driver,
        out,
        &mut metrics,
        events_log,
        observer,
        stop,
        started,
        threads,
        from,
    )
    .await;
    // Any failure on a restarted store (a task out of attempts for want of its inputs, a missing loss) is that
    // restart's doing: reported as such, so that the run goes on from its checkpoint.
    let result = match result {
        Err(e) if !matches!(e, RunError::StoreLost(_)) => match driver.check_instance().await {
            Err(lost) => Err(lost),
            Ok(()) => Err(e),
        },
        r => r,
    };
    // No task may still be running when the runtime goes (a handler stalled on a lost store gives up within the
    // store's retry window).
    driver
        .invoker
        .close(slice_worker::store::RETRY_FOR + Duration::from_secs(5))
        .await;
    // Whatever happened, the run's keys go (the TTL is only a safety net) — unless the store was lost: then there
    // is nothing to reach, and the next attempt or `--resume` deletes what is left before it starts.
    if matches!(result, Err(RunError::StoreLost(_))) {
        return result;
    }
    let mut cleanup = store.delete_prefix(driver.keys.prefix()).await;
    // A task of the interrupted run may have outlived its deletion (on Lambda, a chain of tasks goes on for up to two
    // steps after its driver died) and written into the old namespace since: that goes too.
    if let (Ok(_), Some(old)) = (&cleanup, &old_prefix) {
        cleanup = store.delete_prefix(old).await;
    }
    let summary = result?;
    cleanup?;
    Ok(summary)
}

/// Where the steps of a split run start: weights and optimizer state of version `plan.first_step - 1`, the losses
/// of the steps before it, and how often the run restarted after losing its store.
struct StartingPoint {
    params: UnitTensors<f32>,
    state: OptimizerState<f32>,
    losses: Vec<f64>,
    restarts: u32,
}

/// The plan the run in `out` ran with (`plan.json`), typed and as written.
fn read_run_plan(out: &RunDir) -> Result<(RunPlan, serde_json::Value), RunError> {
    let path = out.path().join("plan.json");
    let text = std::fs::read(&path).map_err(crate::error::io(&path))?;
    let bad = |e: serde_json::Error| {
        RunError::Mismatch(format!("{}: not a split run's plan: {e}", path.display()))
    };
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(bad)?;
    let plan = serde_json::from_value(value.clone()).map_err(bad)?;
    Ok((plan, value))
}

/// The Lambda function of each slice and its memory ([`crate::config::LambdaConfig::function_name`]): the
/// planner's memory for the slice when it chose the split, else `lambda.memory_mb`.
pub fn lambda_functions(
    cfg: &Config,
    planned: Option<&crate::planner::search::PlanOutcome>,
    slices: usize,
) -> Vec<(String, u32)> {
    let memory: Vec<u32> = match planned {
        Some(o) => o.chosen.slices.iter().map(|s| s.memory_mb).collect(),
        None => vec![cfg.lambda.memory_mb; slices],
    };
    memory
        .into_iter()
        .enumerate()
        .map(|(i, mb)| (cfg.lambda.function_name(i, mb), mb))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn run_steps(
    d: &Driver<'_>,
    out: &RunDir,
    metrics: &mut crate::run_dir::JsonlWriter,
    mut events_log: crate::run_dir::JsonlWriter,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    started: Instant,
    threads: usize,
    from: StartingPoint,
) -> Result<Summary, RunError> {
    let (plan, keys, store) = (&d.plan, &d.keys, &d.store);
    let opt = &plan.optimizer;
    let plan_json = serde_json::to_vec(plan).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
    store
        .put(&keys.plan(), Bytes::from(plan_json), d.ttl)
        .await?;
    let first = plan.first_step;
    let StartingPoint {
        params,
        state,
        mut losses,
        restarts,
    } = from;
    let start_state = format!("{{\"step\":{}}}", first - 1);
    let mut items = Vec::new();
    for s in 0..plan.slices.len() {
        let range = plan.slice_range(s);
        items.push((
            keys.weights(s, first - 1),
            Bytes::from(params_to_bytes(
                &d.model,
                range.clone(),
                &params[range.clone()],
            )?),
        ));
        items.push((
            keys.optimizer(s, first - 1),
            Bytes::from(optimizer_to_bytes(
                &d.model,
                range.clone(),
                opt.slots(),
                &state[range].to_vec(),
                start_state.clone(),
            )?),
        ));
    }
    drop((params, state));
    store.put_many(items, d.ttl).await?;
    observer.started(plan.steps, plan.batch_size);
    let timeout = Duration::from_secs_f64(d.cfg.runtime.task_timeout_s);
    let mut tracker = Tracker::new(plan.clone(), timeout, d.cfg.runtime.max_attempts);
    tracker.stats.store_restarts = restarts;
    let train_start = Instant::now();
    d.feed(first, &mut tracker).await?;
    d.feed(first + 1, &mut tracker).await?;

    let mut step_ms: Vec<f64> = Vec::new();
    let slices = plan.slices.len();
    // Kept versions to delete: (once this step is done, this version). The starting version of a resumed run is
    // one when it falls on a kept step (its first update leaves it in place).
    let mut release: Vec<(u64, u64)> = Vec::new();
    if first > 1 && plan.keeps(first - 1) {
        release.push((first, first - 1));
    }
    let mut done_steps = first - 1;
    let mut instance_checked = Instant::now();
    let mut step_start = Instant::now();
    let mut cursor = "0".to_string();
    let mut last_event = Instant::now();
    let mut late = 0;
    let mut task_times = crate::calibration::TaskTimes::default();
    // On a stop request no new step is fed; the steps already fed finish, and their weights are checkpointed.
    let mut fed_up_to = plan.steps.min(first + 1);
    let mut stopping = false;
    while done_steps < plan.steps && !(stopping && done_steps >= fed_up_to) {
        if stop.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            observer.warn(&format!(
                "stopping: finishing the step(s) already started (up to {fed_up_to}), then writing a checkpoint"
            ));
        }
        let events = store
            .read_events(&keys.events(), &cursor, 1000, Duration::from_millis(100))
            .await?;
        let now = Instant::now();
        if now.duration_since(instance_checked) > INSTANCE_CHECK {
            instance_checked = now;
            d.check_instance().await?;
        }
        if events.is_empty() && tracker.nothing_due() && last_event.elapsed() > STALL {
            return Err(RunError::Store(format!(
                "no task reported for {} s after step {done_steps} and none is due",
                STALL.as_secs()
            )));
        }
        for entry in events {
            last_event = now;
            cursor = entry.id.clone();
            let event = TaskEvent::from_fields(&entry.fields).map_err(|reason| RunError::Task {
                task: format!("event {}", entry.id),
                reason,
            })?;
            if !tracker.first_copy(&event) {
                continue;
            }
            events_log.write(&event)?;
            task_times.record(&event);
            if let Some((task, attempt)) = tracker.event(&event, now)? {
                d.invoke(task, attempt);
            }
        }
        let overdue = tracker
            .overdue(now)
            .map_err(|e| match (e, d.invoker.last_refusal()) {
                (RunError::Task { task, reason }, Some(refused)) => RunError::Task {
                    task,
                    reason: format!("{reason}; the platform refused an invocation: {refused}"),
                },
                // Lambda reports nothing back from an asynchronous invocation that failed: only its log says why.
                (RunError::Task { task, reason }, None) if d.cfg.runtime.invoker == "lambda" => RunError::Task {
                    task,
                    reason: format!(
                        "{reason}; on Lambda a task killed for memory (Runtime.OutOfMemory: give its slice more \
                         memory) or by the function's timeout never reports — its function's log says which"
                    ),
                },
                (e, _) => e,
            })?;
        for (task, attempt) in overdue {
            late += 1;
            if late <= LATE_WARNINGS {
                let more = if late == LATE_WARNINGS {
                    " (further ones are only counted: summary.json runtime.retries, events.jsonl)"
                } else {
                    ""
                };
                observer.warn(&format!(
                    "task {task} did not report within {:.2} s: invoking attempt {attempt}{more}",
                    timeout.as_secs_f64()
                ));
            }
            d.invoke(task, attempt);
        }
        // Steps complete in order (step t+1's updates need step t's weights).
        while tracker.step_done(done_steps + 1) {
            done_steps += 1;
            let step = done_steps;
            if !stopping {
                d.feed(step + 2, &mut tracker).await?;
                fed_up_to = (step + 2).min(plan.steps);
            }
            tracker.forget_before(step.saturating_sub(1));
            // The events read so far leave the stream (a long run would otherwise keep every one in the store).
            store.trim_events(&keys.events(), &cursor).await?;
            let loss = d.step_loss(step).await?;
            if !loss.is_finite() {
                return Err(RunError::NotFinite { step, loss });
            }
            let wall_ms = step_start.elapsed().as_secs_f64() * 1e3;
            step_start = Instant::now();
            let lr = plan.schedule.lr(plan.lr, step - 1, plan.steps);
            let epoch = d.sampler.epoch(step - 1);
            let mut eval = None;
            if plan.keeps(step) && step != plan.steps {
                // A kept version: pull it for the periodic checkpoint and/or evaluation, then let it go.
                let (params, state) = d.pull(step).await?;
                let t = &d.cfg.train;
                let every = d.cfg.checkpoint.every;
                if every > 0 && step.is_multiple_of(every) {
                    let ts = TrainState::new(d.cfg, step, epoch);
                    out.checkpoint(&d.model, &params, opt, &state, &ts)?;
                }
                if t.eval_every > 0 && step.is_multiple_of(t.eval_every) {
                    eval = Some(evaluate(
                        &d.model,
                        &params,
                        d.ds.as_ref(),
                        t.eval_samples,
                        500,
                    )?);
                }
                // Step `step + 1` still reads this version; it goes once that step is done.
                release.push((step + 1, step));
            }
            if let Some(&(_, version)) = release.first().filter(|(after, _)| *after == step) {
                release.remove(0);
                let kept: Vec<String> = (0..slices)
                    .flat_map(|s| [keys.weights(s, version), keys.optimizer(s, version)])
                    .collect();
                store.delete(&kept).await?;
            }
            let record = StepRecord {
                step,
                epoch,
                loss,
                lr,
                wall_ms,
                grad_norm: None,
                eval,
            };
            metrics.write(&record)?;
            observer.step(&record);
            losses.push(loss);
            step_ms.push(wall_ms);
        }
    }
    if done_steps < plan.steps {
        // Stopped: the weights and state after the last finished step are consistent and still in the store.
        let (params, state) = d.pull(done_steps).await?;
        let ts = TrainState::new(d.cfg, done_steps, d.sampler.epoch(done_steps - 1));
        out.checkpoint(&d.model, &params, opt, &state, &ts)?;
        return Err(RunError::Interrupted { step: done_steps });
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
    let mut summary = summarize(d.cfg, &d.model, &run, &eval);
    summary.runtime = Some(tracker.stats.clone());
    summary.calibration = d
        .prediction
        .as_ref()
        .map(|p| crate::calibration::compare(p, &run.step_ms, &task_times));
    out.write_json("summary.json", &summary)?;
    observer.finished(&summary);
    Ok(summary)
}

/// `runtime.task_timeout_s` as a duration (validated positive and finite).
fn timeout_of(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}
