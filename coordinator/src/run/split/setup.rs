//! Setting up one attempt of a split run: what the config leaves to the planner decided (or taken from the run
//! being resumed), the slices, the model's prediction for the run, the store and the point the run starts from
//! (deleting what an interrupted run left), the run plan the tasks read, the run folder's files, and the invoker.

use super::driver::Driver;
use super::invoker::{lambda_on_this_host, open_invoker, Opened};
use super::qos;
use crate::config::{Config, ConfigError, InvokerKind, Microbatches, Slices, UpdateShards};
use crate::error::RunError;
use crate::job::{initial_state, Job};
use crate::planner::calibration::predict_with_peaks;
use crate::planner::profile::{read_profile_for, Profile};
use crate::planner::search::PlanOutcome;
use crate::planner::simulate::StepPrediction;
use crate::profiling::{first_batch, profile_async, QUICK_PROFILE_REPS};
use crate::run::dir::{read_run_plan, JsonlWriter, RunDir, RunLock};
use crate::run::record::Observer;
use crate::run::resume::resume_point;
use data::Batch;
use models::{OptimizerState, UnitTensors};
use slice_worker::plan::RunPlan;
use slice_worker::store::{Keys, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a split run begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Launch {
    /// A new run in a new folder, from the seed's initial weights.
    Fresh,
    /// The run in the folder, from its last checkpoint, under a fresh store namespace.
    Resume,
}

/// Where the steps of a split run start: weights and optimizer state of version `plan.first_step - 1`, the losses
/// of the steps before it, and how often the run restarted after losing its store.
pub(super) struct StartingPoint {
    pub params: UnitTensors<f32>,
    pub state: OptimizerState<f32>,
    pub losses: Vec<f64>,
    pub restarts: u32,
}

/// The run folder's two logs, open for this attempt.
pub(super) struct Logs {
    pub metrics: JsonlWriter,
    pub events: JsonlWriter,
}

/// A split run's attempt, ready to run its steps.
pub(super) struct Prepared<'a> {
    pub driver: Driver<'a>,
    pub logs: Logs,
    pub from: StartingPoint,
    /// The namespace of the interrupted run this one resumes, deleted again at the end.
    pub old_prefix: Option<String>,
    /// The run folder's lock, held until the attempt ends.
    pub lock: RunLock,
}

/// Sets up one attempt of the split run of `cfg` in `out` (see the module doc).
pub(super) async fn prepare<'a>(
    cfg: &Config,
    out: &'a RunDir,
    observer: &mut dyn Observer,
    launch: Launch,
    restarts: u32,
    threads: usize,
) -> Result<Prepared<'a>, RunError> {
    let started = Instant::now();
    cfg.validate()?;
    let Job {
        model,
        ds,
        sampler,
        total,
    } = Job::open(cfg)?;
    // A resumed run keeps its plan (split, micro-batches, functions); only the namespace and first step change.
    let (previous, mut lock) = match launch {
        Launch::Fresh => (None, None),
        Launch::Resume => (Some(read_run_plan(out.path())?), Some(out.lock()?)),
    };
    let batch = first_batch(ds.as_ref(), &sampler)?;
    let steps_per_epoch = sampler.steps_per_epoch() as u64;
    let choices = resolve_choices(cfg, &model, &batch, previous.as_ref(), steps_per_epoch).await?;
    let cfg = choices.cfg;
    let slices = slices_of(&cfg, model.units().len())?;
    let cuts: Vec<usize> = slices.iter().skip(1).map(|s| s.0).collect();
    // The CPU check first (it needs no prediction, and a quick profile takes seconds), then the memory check.
    admit_on_emulator(&cfg, choices.planned.as_ref(), slices.len(), None, observer)?;
    let (predicted, planned_peak_mb) = predict_run(&cfg, choices.profile, &batch, &cuts).await?;
    admit_on_emulator(
        &cfg,
        choices.planned.as_ref(),
        slices.len(),
        Some(planned_peak_mb),
        observer,
    )?;
    let prediction = Some(predicted);
    let store = open_store(&cfg, observer).await?;
    // The server process the run's keys live in: if it changes, they are gone (or an older snapshot of them).
    let instance = store.instance().await?;
    let old_prefix = previous
        .as_ref()
        .and_then(|(old, _)| Keys::new(&old.run_id))
        .map(|k| k.prefix().to_string());
    let opt = cfg.train.optimizer_spec();
    let (params, state, done, losses) = match &previous {
        None => {
            let (params, state) = initial_state(&model, &opt, cfg.train.seed);
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
            let (params, state, done) = resume_point(
                &cfg,
                out.path(),
                (&model, ds.as_ref()),
                &opt,
                total,
                observer,
            )?;
            let losses = out.keep_metrics_up_to(done)?;
            out.keep_events_up_to(done)?;
            (params, state, done, losses)
        }
    };
    let functions = match &previous {
        Some((old, _)) => old.functions.clone(),
        None => functions_of(&cfg, choices.planned.as_ref(), slices.len()),
    };
    let shards = update_shards(&cfg, &model, &slices, choices.planned.as_ref())?;
    // The planner's cache: the fewest versions any chosen slice's memory allows.
    let planned_cache = choices
        .planned
        .as_ref()
        .and_then(|o| o.chosen.slices.iter().map(|s| s.weight_cache).min());
    let base = run_plan(&cfg, slices, total, done + 1, functions)?;
    let plan = RunPlan {
        shards,
        weight_cache: cfg
            .plan
            .weight_cache
            .or(planned_cache)
            .unwrap_or(base.weight_cache),
        ..base
    };
    plan.check(&model).map_err(|e| ConfigError {
        field: "plan.update_shards".into(),
        reason: e,
    })?;
    let plan_json = plan_record(&plan, previous.as_ref().map(|(_, v)| v), choices.planned);
    let logs = match launch {
        Launch::Fresh => {
            out.create(&cfg)?;
            lock = Some(out.lock()?);
            out.write_tokenizer(ds.as_ref())?;
            out.write_json("plan.json", &plan_json)?;
            Logs {
                metrics: out.jsonl_writer("metrics.jsonl")?,
                events: out.jsonl_writer("events.jsonl")?,
            }
        }
        Launch::Resume => {
            out.write_json("plan.json", &plan_json)?;
            Logs {
                metrics: out.jsonl_appender("metrics.jsonl")?,
                events: out.jsonl_appender("events.jsonl")?,
            }
        }
    };
    let ttl = Duration::from_secs(plan.ttl_s);
    let Opened {
        invoker,
        warm_pool,
        governor,
    } = open_invoker(&cfg, store.clone(), &plan, ttl, observer).await?;
    let keys = Keys::new(&plan.run_id).unwrap_or_else(|| unreachable!("digits and a dash"));
    let lock = lock.unwrap_or_else(|| unreachable!("both launches lock the folder"));
    Ok(Prepared {
        driver: Driver {
            cfg,
            out,
            model,
            ds,
            sampler,
            plan,
            keys,
            store,
            invoker,
            ttl,
            prediction,
            instance,
            started,
            threads,
            warm_pool,
            governor,
        },
        logs,
        from: StartingPoint {
            params,
            state,
            losses,
            restarts,
        },
        old_prefix,
        lock,
    })
}

/// The config as the run uses it, with what it left to the planner decided, and what decided it.
struct Choices {
    cfg: Config,
    /// The planner's outcome, when it chose the split.
    planned: Option<PlanOutcome>,
    /// The profile the planner used or `plan.profile` named, for the run's own prediction.
    profile: Option<Profile>,
}

/// The planner decides what the config leaves to it (`slices = "auto"`, `microbatches = "auto"`), from
/// `plan.profile` or a quick profile of this machine and store; a resumed run takes the choices it made before.
async fn resolve_choices(
    cfg: &Config,
    model: &models::Model,
    batch: &Batch,
    previous: Option<&(RunPlan, serde_json::Value)>,
    steps_per_epoch: u64,
) -> Result<Choices, RunError> {
    let auto_slices = cfg.plan.slices == Slices::Auto && cfg.plan.cuts.is_none();
    let mut planned = None;
    let mut profile = match &cfg.plan.profile {
        Some(path) => Some(read_profile_for(path, model)?),
        None => None,
    };
    let mut resolved = cfg.clone();
    if let Some((p, _)) = previous {
        resolved.train.microbatches = Microbatches::Count(p.microbatches);
        resolved.plan.cuts = Some(p.slices.iter().skip(1).map(|s| s.0).collect());
    } else if cfg.planner_picks_split() {
        let used = match profile.take() {
            Some(p) => p,
            None => profile_async(cfg, batch, QUICK_PROFILE_REPS, &mut |_| {}).await?,
        };
        let outcome = crate::planner::plan_for(cfg, &used, steps_per_epoch)?;
        resolved.train.microbatches = Microbatches::Count(outcome.chosen.microbatches);
        if auto_slices {
            resolved.plan.cuts = Some(outcome.chosen.cuts());
        }
        planned = Some(outcome);
        profile = Some(used);
    }
    Ok(Choices {
        cfg: resolved,
        planned,
        profile,
    })
}

/// The slices (unit ranges) of a config whose choices are resolved.
fn slices_of(cfg: &Config, units: usize) -> Result<Vec<(usize, usize)>, RunError> {
    match (&cfg.plan.cuts, cfg.plan.slices) {
        (Some(cuts), _) => RunPlan::slices_from_cuts(cuts, units),
        (None, Slices::Count(n)) => RunPlan::even_slices(n, units),
        (None, Slices::Auto) => unreachable!("auto slices were resolved into cuts"),
    }
    .map_err(|reason| {
        let field = if cfg.plan.cuts.is_some() {
            "plan.cuts"
        } else {
            "plan.slices"
        };
        RunError::Config(ConfigError {
            field: field.into(),
            reason,
        })
    })
}

/// The model's prediction for this very run, from `profile` (the planner's, or `plan.profile`), else from a quick
/// profile of this machine; and each slice's planned peak memory, MB.
async fn predict_run(
    cfg: &Config,
    profile: Option<Profile>,
    batch: &Batch,
    cuts: &[usize],
) -> Result<(StepPrediction, Vec<f64>), RunError> {
    let profile = match profile {
        Some(p) => p,
        None => profile_async(cfg, batch, QUICK_PROFILE_REPS, &mut |_| {}).await?,
    };
    predict_with_peaks(cfg, &profile, cuts)
}

/// A Lambda run whose endpoint is an emulator on this host: refused (naming the numbers and the smallest dilation
/// that would do) when it asked for a dilation and its fleet does not fit the host at it (`admission`). Without
/// one (D = 1: a rehearsal for its bytes, not its times) the run goes on with the same words as a warning.
fn admit_on_emulator(
    cfg: &Config,
    planned: Option<&PlanOutcome>,
    slices: usize,
    planned_peak_mb: Option<Vec<f64>>,
    observer: &mut dyn Observer,
) -> Result<(), RunError> {
    if !(cfg.runtime.invoker == InvokerKind::Lambda && lambda_on_this_host(cfg)) {
        return Ok(());
    }
    let memory = planned.map(|o| o.chosen.slices.iter().map(|s| s.memory_mb).collect());
    let fleet = super::admission::Fleet {
        memory_mb: cfg
            .lambda
            .functions(memory, slices)
            .into_iter()
            .map(|(_, mb)| mb)
            .collect(),
        planned_peak_mb,
        tasks_at_once: super::admission::Fleet::tasks_at_once(cfg)?,
    };
    let host = super::admission::Host::this();
    match super::admission::admit(&fleet, &cfg.platform, &cfg.emulator, host) {
        Ok(()) => Ok(()),
        Err(reason) if cfg.emulator.dilation == 1.0 => {
            observer.warn(&format!(
                "{reason} (at emulator.dilation = 1 the run goes on: its bytes are the run's, its times are not \
                 Lambda's)"
            ));
            Ok(())
        }
        Err(reason) => Err(RunError::Config(crate::config::ConfigError {
            field: "emulator.dilation".into(),
            reason,
        })),
    }
}

/// The configured store; one that may evict live keys is warned about.
async fn open_store(cfg: &Config, observer: &mut dyn Observer) -> Result<Arc<dyn Store>, RunError> {
    let store =
        slice_worker::store::open_dilated(&cfg.runtime.store, cfg.emulator.dilation).await?;
    if let Some(warning) = store.eviction_warning().await? {
        observer.warn(&warning);
    }
    Ok(store)
}

/// The Lambda function of each slice: the planner's memory for the slice when it chose the split, else
/// `lambda.memory_mb` (none on the local invoker).
fn functions_of(cfg: &Config, planned: Option<&PlanOutcome>, slices: usize) -> Vec<String> {
    if cfg.runtime.invoker != InvokerKind::Lambda {
        return Vec::new();
    }
    let memory = planned.map(|o| o.chosen.slices.iter().map(|s| s.memory_mb).collect());
    cfg.lambda
        .functions(memory, slices)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// How many shards each slice's update runs as: `plan.update_shards` as given (a count for every slice capped by
/// what each slice can be cut into), or for `"auto"` the planner's choice — one per slice when it did not choose.
fn update_shards(
    cfg: &Config,
    model: &models::Model,
    slices: &[(usize, usize)],
    planned: Option<&PlanOutcome>,
) -> Result<Vec<usize>, ConfigError> {
    let most = |&(a, b): &(usize, usize)| models::shard::SliceLayout::new(model, a..b).max_shards();
    match &cfg.plan.update_shards {
        UpdateShards::Each(k) => Ok(slices.iter().map(|s| (*k).min(most(s))).collect()),
        UpdateShards::PerSlice(v) if v.len() != slices.len() => Err(ConfigError {
            field: "plan.update_shards".into(),
            reason: format!(
                "{} counts for {} slices: give one per slice",
                v.len(),
                slices.len()
            ),
        }),
        UpdateShards::PerSlice(v) => Ok(v.clone()),
        UpdateShards::Auto => Ok(match planned {
            Some(o) if o.chosen.slices.len() == slices.len() => {
                o.chosen.slices.iter().map(|s| s.shards.max(1)).collect()
            }
            _ => vec![1; slices.len()],
        }),
    }
}

/// The run plan the tasks read, under a fresh namespace, starting at step `first_step`.
fn run_plan(
    cfg: &Config,
    slices: Vec<(usize, usize)>,
    total: u64,
    first_step: u64,
    functions: Vec<String>,
) -> Result<RunPlan, ConfigError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let t = &cfg.train;
    Ok(RunPlan {
        run_id: format!("{}-{nanos}", std::process::id()),
        model: cfg.model.clone(),
        slices,
        microbatches: t.microbatches.resolved()?,
        batch_size: t.batch_size,
        steps: total,
        first_step,
        optimizer: t.optimizer_spec(),
        schedule: t.schedule_spec(),
        lr: t.lr,
        // A day of the undilated world (on an emulator at dilation D, D days of this one).
        ttl_s: Duration::from_secs(24 * 3600)
            .mul_f64(cfg.emulator.dilation)
            .as_secs(),
        keep_every: [t.eval_every, cfg.checkpoint.every]
            .into_iter()
            .filter(|&p| p > 0)
            .collect(),
        recompute: cfg.plan.recompute,
        become_successor: cfg.plan.become_successor,
        shards: Vec::new(),
        grad_clip: t.grad_clip,
        weight_cache: cfg
            .plan
            .weight_cache
            .unwrap_or(slice_worker::weight_cache::WEIGHT_CACHE),
        functions,
        fanout_width: cfg.runtime.fanout_width,
        slot_lease_ms: cfg.governed().then(|| qos::lease(cfg).as_millis() as u64),
    })
}

/// `plan.json`: the run plan the tasks read and, for `slices = "auto"`, the planner's choice and alternatives
/// (kept when a resumed run rewrites it with its new namespace and first step).
fn plan_record(
    plan: &RunPlan,
    previous: Option<&serde_json::Value>,
    planned: Option<PlanOutcome>,
) -> serde_json::Value {
    let mut plan_json =
        serde_json::to_value(plan).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
    let planner = match (previous, planned) {
        (Some(old_json), _) => old_json.get("planner").cloned(),
        (None, Some(o)) => {
            Some(serde_json::to_value(o).unwrap_or_else(|e| unreachable!("plain struct: {e}")))
        }
        (None, None) => None,
    };
    if let (Some(o), Some(map)) = (planner, plan_json.as_object_mut()) {
        map.insert("planner".into(), o);
    }
    plan_json
}
