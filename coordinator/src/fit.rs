//! The single-process reference run: the same kernels and the same order of operations as the split path
//! ([`crate::split`]) — each micro-batch's gradients computed separately and summed in micro-batch order with
//! [`models::train::add_in_order`], then one update per unit — so that a split run ends with the same bits.

use crate::config::Config;
use crate::error::RunError;
use crate::evaluate::{evaluate, Evaluation};
use crate::run_dir::RunDir;
use data::{Dataset, Sampler, Task};
use models::train::{
    add_in_order, clip_factor, first_non_finite, global_norm, microbatch_gradients, scale,
    step_in_place, unit_sums_of_squares,
};
use models::{LossKind, Model, OptimizerState, UnitTensors};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub lr: f64,
    pub wall_ms: f64,
    /// Global gradient norm before clipping (only when clipping is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<Evaluation>,
}

/// Hooks for whoever shows progress (the CLI draws a bar; tests stay quiet).
pub trait Observer {
    fn started(&mut self, _total_steps: u64, _batch_size: usize) {}
    /// Something the user should know that does not stop the run.
    fn warn(&mut self, _message: &str) {}
    fn step(&mut self, _record: &StepRecord) {}
    fn finished(&mut self, _summary: &Summary) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// `summary.json`, written once when the run ends.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub steps: u64,
    pub epochs: f64,
    pub batch_size: usize,
    pub microbatches: usize,
    pub seed: u64,
    pub params: u64,
    pub final_train_loss: f64,
    /// Mean training loss over the last (up to) 50 steps: less noisy than the last step alone.
    pub final_train_loss_avg50: f64,
    /// Classification: accuracy of the final weights on the whole test set, as a fraction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Language model: mean per-token loss of the final weights on the whole validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_token_accuracy: Option<f64>,
    pub wall_s: f64,
    pub train_s: f64,
    pub step_ms_p50: f64,
    pub step_ms_p95: f64,
    pub samples_per_s: f64,
    pub threads: usize,
    /// Split runs: what the task runtime did (from the events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::tracker::RuntimeStats>,
    /// Split runs: the latency model's prediction for this run beside what it measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibration::Calibration>,
}

/// The checkpointed training state stored beside the optimizer tensors.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimizer steps taken; the weights are version `step`.
    pub step: u64,
    pub epoch: u64,
    pub seed: u64,
    pub batch_size: usize,
    pub microbatches: usize,
    /// How the data order is derived: a permutation per epoch keyed by (seed, epoch).
    pub data_order: String,
}

/// Checks that the model's input, output and the dataset agree, naming the keys to change.
pub(crate) fn check_fit(model: &Model, ds: &dyn Dataset) -> Result<(), RunError> {
    let sample = ds.sample_shape();
    let input = model.input_shape();
    let out = model.shape_at(model.units().len());
    match (ds.task(), model.loss_kind()) {
        (Task::Classification { classes }, LossKind::Classification) => {
            if sample.iter().product::<usize>() != input.iter().product::<usize>() {
                return Err(RunError::Mismatch(format!(
                    "{} samples have shape {sample:?} but the model takes {input:?} (model.widths[0] or model.kind)",
                    ds.name()
                )));
            }
            if out.last() != Some(&classes) {
                return Err(RunError::Mismatch(format!(
                    "{} has {classes} classes but the model outputs {out:?} (last entry of model.widths)",
                    ds.name()
                )));
            }
        }
        (Task::NextToken { vocab, context }, LossKind::NextToken) => {
            if out.last() != Some(&vocab) {
                return Err(RunError::Mismatch(format!(
                    "{} has a vocabulary of {vocab} but model.vocab gives {:?}",
                    ds.name(),
                    out.last()
                )));
            }
            if context > input[0] {
                return Err(RunError::Mismatch(format!(
                    "data.context = {context} exceeds model.context = {}",
                    input[0]
                )));
            }
        }
        (task, _) => {
            return Err(RunError::Mismatch(format!(
                "{} poses {task:?}; model.kind {:?} cannot learn it",
                ds.name(),
                model.spec()
            )))
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The model, the data set, the step-to-batch sampler and the number of steps of a validated config.
pub(crate) fn open_training(
    cfg: &Config,
) -> Result<(Model, Box<dyn Dataset>, Sampler, u64), RunError> {
    let model = cfg.model.build()?;
    let ds = data::open(&cfg.data)?;
    check_fit(&model, ds.as_ref())?;
    let t = &cfg.train;
    let sampler = Sampler::new(t.seed, ds.train_len(), t.batch_size)?;
    let total = total_steps(cfg, sampler.steps_per_epoch() as u64);
    Ok((model, ds, sampler, total))
}

/// The steps `cfg` trains: `train.steps`, or `train.epochs` (default 1) of `steps_per_epoch`.
pub(crate) fn total_steps(cfg: &Config, steps_per_epoch: u64) -> u64 {
    let t = &cfg.train;
    t.steps
        .unwrap_or_else(|| t.epochs.unwrap_or(1) * steps_per_epoch)
}

impl TrainState {
    /// The training state after `step` steps of `cfg`, in epoch `epoch`.
    pub fn new(cfg: &Config, step: u64, epoch: u64) -> TrainState {
        let t = &cfg.train;
        TrainState {
            step,
            epoch,
            seed: t.seed,
            batch_size: t.batch_size,
            microbatches: t.microbatches,
            data_order: "epoch_order(seed, epoch) over the train split; batch k of the epoch"
                .into(),
        }
    }
}

/// What a finished run measured, for its summary.
pub(crate) struct RunFigures {
    pub total: u64,
    pub steps_per_epoch: usize,
    pub losses: Vec<f64>,
    pub step_ms: Vec<f64>,
    pub started: Instant,
    pub train_s: f64,
    pub threads: usize,
}

/// `summary.json` of a finished run (monolithic or split).
pub(crate) fn summarize(
    cfg: &Config,
    model: &Model,
    run: &RunFigures,
    eval: &Evaluation,
) -> Summary {
    let t = &cfg.train;
    let mut sorted = run.step_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let tail = &run.losses[run.losses.len().saturating_sub(50)..];
    let lm = model.loss_kind() == LossKind::NextToken;
    Summary {
        steps: run.total,
        epochs: run.total as f64 / run.steps_per_epoch as f64,
        batch_size: t.batch_size,
        microbatches: t.microbatches,
        seed: t.seed,
        params: model.costs().iter().map(|c| c.params).sum(),
        final_train_loss: run.losses.last().copied().unwrap_or(f64::NAN),
        final_train_loss_avg50: tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        test_accuracy: (!lm).then_some(eval.accuracy),
        test_loss: (!lm).then_some(eval.loss),
        val_loss: lm.then_some(eval.loss),
        val_token_accuracy: lm.then_some(eval.accuracy),
        wall_s: run.started.elapsed().as_secs_f64(),
        train_s: run.train_s,
        step_ms_p50: percentile(&sorted, 0.5),
        step_ms_p95: percentile(&sorted, 0.95),
        samples_per_s: (run.total as f64 * t.batch_size as f64) / run.train_s.max(1e-9),
        threads: run.threads,
        runtime: None,
        calibration: None,
    }
}

/// Trains `cfg` in this process, writing the run folder `out`. `stop` ends the run after the current step.
pub fn fit(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    if cfg.plan.is_split() {
        return crate::split::fit_split(cfg, out, observer, stop);
    }
    let started = Instant::now();
    cfg.validate()?;
    let (model, ds, sampler, total) = open_training(cfg)?;
    let opt = cfg.train.optimizer_spec();
    out.create(cfg)?;
    let _lock = out.lock()?;
    let metrics = out.jsonl_writer("metrics.jsonl")?;
    let (params, state) = initial_state(&model, &opt, cfg.train.seed);
    let from = Start {
        model,
        ds,
        sampler,
        total,
        params,
        state,
        done: 0,
        losses: Vec::new(),
        metrics,
        started,
    };
    train_from(cfg, out, observer, stop, from)
}

/// Continues the run in `out` from its last checkpoint (verified against `checkpoint.json`; a run that stopped
/// before its first checkpoint starts again from the seed's initial weights) to the config's last step, ending with
/// the bytes an uninterrupted run would have: the data order, the optimizer state and the step counter all come
/// from the checkpoint. `cfg` must be the run's own config (what it left to the planner is taken from the run). A
/// split run continues under a fresh store namespace after deleting what the interrupted one left in the store.
pub fn resume(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    cfg.validate()?;
    let cfg = &crate::resume::check_same_config(cfg, out.path())?;
    if cfg.plan.is_split() {
        return crate::split::resume_split(cfg, out, observer, stop);
    }
    let started = Instant::now();
    let (model, ds, sampler, total) = open_training(cfg)?;
    let opt = cfg.train.optimizer_spec();
    let _lock = out.lock()?;
    let (params, state, done) = resume_point(cfg, out, &model, &opt, total, observer)?;
    let losses = crate::resume::keep_metrics_up_to(out.path(), done)?;
    let metrics = out.jsonl_appender("metrics.jsonl")?;
    let from = Start {
        model,
        ds,
        sampler,
        total,
        params,
        state,
        done,
        losses,
        metrics,
        started,
    };
    train_from(cfg, out, observer, stop, from)
}

/// Step 0: the seed's initial weights (PyTorch's initialisation) and a fresh optimizer state.
pub(crate) fn initial_state(
    model: &Model,
    opt: &models::OptimizerSpec,
    seed: u64,
) -> (UnitTensors<f32>, OptimizerState<f32>) {
    let params: UnitTensors<f32> = model.init(seed);
    let state = params.iter().map(|p| opt.init_state(p)).collect();
    (params, state)
}

/// The weights, optimizer state and step a resumed run starts from: the run folder's checkpoint, or step 0 (the
/// seed's initial weights) when the run stopped before its first one. Refuses a run that already finished.
pub(crate) fn resume_point(
    cfg: &Config,
    out: &RunDir,
    model: &Model,
    opt: &models::OptimizerSpec,
    total: u64,
    observer: &mut dyn Observer,
) -> Result<(UnitTensors<f32>, OptimizerState<f32>, u64), RunError> {
    match crate::resume::load_checkpoint(out.path(), model, opt)? {
        Some(ck) if ck.train.step >= total => Err(RunError::Mismatch(format!(
            "{}: the run already finished its {total} steps (checkpoint at step {})",
            out.path().display(),
            ck.train.step
        ))),
        Some(ck) => Ok((ck.params, ck.state, ck.train.step)),
        None => {
            observer.warn(&format!(
                "{}: no checkpoint yet; starting again from step 0 (the seed's initial weights)",
                out.path().display()
            ));
            let (params, state) = initial_state(model, opt, cfg.train.seed);
            Ok((params, state, 0))
        }
    }
}

/// No checkpoint holds a NaN or an infinity: the one-micro-batch step does not check its gradients, so the weights
/// are checked before each write (11.6 MB for the 784-1024-1024-1024-10 MLP: about half a millisecond).
fn check_weights(model: &Model, params: &UnitTensors<f32>, step: u64) -> Result<(), RunError> {
    match first_non_finite(model, 0..model.units().len(), params) {
        Some(param) => Err(RunError::NotFiniteWeight { step, param }),
        None => Ok(()),
    }
}

/// Where the in-process loop starts: after `done` steps with these weights and optimizer state.
struct Start {
    model: Model,
    ds: Box<dyn Dataset>,
    sampler: Sampler,
    total: u64,
    params: UnitTensors<f32>,
    state: OptimizerState<f32>,
    done: u64,
    /// Losses of the steps already done (for the summary's averages).
    losses: Vec<f64>,
    metrics: crate::run_dir::JsonlWriter,
    started: Instant,
}

fn train_from(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    from: Start,
) -> Result<Summary, RunError> {
    let Start {
        model,
        ds,
        sampler,
        total,
        mut params,
        mut state,
        done,
        mut losses,
        mut metrics,
        started,
    } = from;
    let t = &cfg.train;
    let opt = t.optimizer_spec();
    let schedule = t.schedule_spec();
    let threads = models::matmul::threads();
    observer.started(total, t.batch_size);

    let mut step_ms = Vec::with_capacity(total as usize);
    let mut epoch = sampler.epoch(done.saturating_sub(1));
    let train_start = Instant::now();
    for step in done + 1..=total {
        let t0 = Instant::now();
        let (e, indices) = sampler.indices(step - 1);
        epoch = e;
        let batch = ds.train_batch(&indices)?;
        let lr = schedule.lr(t.lr, step - 1, total);
        let (loss, grad_norm) = if t.microbatches == 1 && t.grad_clip.is_none() {
            // One micro-batch, unclipped: each unit is updated as soon as its gradients are ready (the same
            // bits as gradients then update, which the branch below and the distributed update task compute).
            // Its gradients are not checked for NaN or infinity (that pass cost about as much as the update): one
            // there spoils the weights, and the next step's loss or the check before a checkpoint stops the run.
            let mb = batch
                .split(1)?
                .into_iter()
                .next()
                .unwrap_or_else(|| unreachable!("one micro-batch"));
            let targets: Vec<u32> = mb.targets.iter().copied().collect();
            let r = step_in_place(
                &model,
                &opt,
                lr,
                step,
                &mut params,
                &mut state,
                mb.inputs,
                &targets,
                t.batch_size,
            )?;
            if !r.loss.is_finite() {
                return Err(RunError::NotFinite { step, loss: r.loss });
            }
            (r.loss, None)
        } else {
            let mut grads: Option<UnitTensors<f32>> = None;
            let mut loss = 0.0;
            for mb in batch.split(t.microbatches)? {
                let targets: Vec<u32> = mb.targets.iter().copied().collect();
                let r = microbatch_gradients(&model, &params, mb.inputs, &targets, t.batch_size)?;
                loss += r.loss;
                add_in_order(&mut grads, r.grads);
            }
            if !loss.is_finite() {
                return Err(RunError::NotFinite { step, loss });
            }
            let mut grads = grads.unwrap_or_else(|| unreachable!("at least one micro-batch"));
            if let Some(param) = first_non_finite(&model, 0..model.units().len(), &grads) {
                return Err(RunError::NotFiniteGradient { step, param });
            }
            let grad_norm = t.grad_clip.map(|max| {
                let norm = global_norm(&unit_sums_of_squares(&grads));
                scale(&mut grads, clip_factor(norm, max));
                norm
            });
            opt.step_units(lr, step, &mut params, &grads, &mut state);
            (loss, grad_norm)
        };
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        step_ms.push(wall_ms);
        losses.push(loss);
        let eval = if t.eval_every > 0 && step % t.eval_every == 0 && step != total {
            Some(evaluate(&model, &params, ds.as_ref(), t.eval_samples, 500)?)
        } else {
            None
        };
        let record = StepRecord {
            step,
            epoch,
            loss,
            lr,
            wall_ms,
            grad_norm,
            eval,
        };
        metrics.write(&record)?;
        observer.step(&record);
        let stopping = stop.load(Ordering::Relaxed) && step != total;
        let periodic =
            cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0 && step != total;
        if periodic || stopping {
            check_weights(&model, &params, step)?;
            out.checkpoint(
                &model,
                &params,
                &opt,
                &state,
                &TrainState::new(cfg, step, epoch),
            )?;
        }
        if stopping {
            return Err(RunError::Interrupted { step });
        }
    }
    let train_s = train_start.elapsed().as_secs_f64();
    let final_state = TrainState::new(cfg, total, epoch);
    check_weights(&model, &params, total)?;
    out.checkpoint(&model, &params, &opt, &state, &final_state)?;
    let eval = evaluate(&model, &params, ds.as_ref(), None, 500)?;
    let run = RunFigures {
        total,
        steps_per_epoch: sampler.steps_per_epoch(),
        losses,
        step_ms,
        started,
        train_s,
        threads,
    };
    let summary = summarize(cfg, &model, &run, &eval);
    out.write_json("summary.json", &summary)?;
    observer.finished(&summary);
    Ok(summary)
}
