//! The single-process reference run: the same kernels and the same order of operations as the split path
//! ([`super::split`]) — each micro-batch's gradients computed separately and summed in micro-batch order with
//! [`models::train::add_in_order`], then one update per unit — so that a split run ends with the same bits.

use super::dir::{JsonlWriter, RunDir};
use super::evaluate::evaluate;
use super::record::{summarize, Observer, RunFigures, StepRecord, Summary, TrainState};
use super::resume::resume_point;
use crate::config::{Config, TrainConfig};
use crate::error::RunError;
use crate::job::{initial_state, Job};
use data::Batch;
use models::train::{
    add_in_order, chunk_sums_of_squares, clip_factor, first_non_finite, global_norm,
    microbatch_gradients, scale, step_in_place,
};
use models::{Model, OptimizerSpec, OptimizerState, UnitTensors};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Trains `cfg` (one slice) in this process, writing the run folder `out`. `stop` ends the run after the current step.
pub(crate) fn fit(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    cfg.validate()?;
    let job = Job::open(cfg)?;
    let opt = cfg.train.optimizer_spec();
    out.create(cfg)?;
    let _lock = out.lock()?;
    out.write_tokenizer(job.ds.as_ref())?;
    let metrics = out.jsonl_writer("metrics.jsonl")?;
    let (params, state) = initial_state(&job.model, &opt, cfg.train.seed);
    let from = Start {
        job,
        params,
        state,
        done: 0,
        losses: Vec::new(),
        metrics,
        started,
    };
    train_from(cfg, out, observer, stop, from)
}

/// Continues the in-process run in `out` from its last checkpoint (see [`super::resume`]; `cfg` is the run's own
/// config, already checked against it).
pub(crate) fn resume(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    let started = Instant::now();
    let job = Job::open(cfg)?;
    let opt = cfg.train.optimizer_spec();
    let _lock = out.lock()?;
    let (params, state, done) = resume_point(
        cfg,
        out.path(),
        (&job.model, job.ds.as_ref()),
        &opt,
        job.total,
        observer,
    )?;
    let losses = out.keep_metrics_up_to(done)?;
    let metrics = out.jsonl_appender("metrics.jsonl")?;
    let from = Start {
        job,
        params,
        state,
        done,
        losses,
        metrics,
        started,
    };
    train_from(cfg, out, observer, stop, from)
}

/// No checkpoint holds a NaN or an infinity: the one-micro-batch step does not check its gradients, so the weights
/// are checked before each write (11.6 MB for the 784-1024-1024-1024-10 MLP: about half a millisecond).
fn check_weights(model: &Model, params: &UnitTensors<f32>, step: u64) -> Result<(), RunError> {
    match first_non_finite(model, 0..model.units().len(), params) {
        Some(param) => Err(RunError::NotFiniteWeight { step, param }),
        None => Ok(()),
    }
}

/// The weights and optimizer state one step updates in place.
struct Weights<'a> {
    params: &'a mut UnitTensors<f32>,
    state: &'a mut OptimizerState<f32>,
}

/// What every step of a run is made with, fixed for the run.
#[derive(Clone, Copy)]
struct StepRecipe<'a> {
    model: &'a Model,
    t: &'a TrainConfig,
    opt: &'a OptimizerSpec,
    microbatches: usize,
}

/// One optimizer step on `batch`: its loss and, with clipping, the gradients' global norm before clipping.
fn train_step(
    how: &StepRecipe<'_>,
    w: Weights<'_>,
    batch: Batch,
    step: u64,
    lr: f64,
) -> Result<(f64, Option<f64>), RunError> {
    let StepRecipe {
        model,
        t,
        opt,
        microbatches,
    } = *how;
    let Weights { params, state } = w;
    if microbatches == 1 && t.grad_clip.is_none() {
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
            model,
            opt,
            lr,
            step,
            params,
            state,
            mb.inputs,
            &targets,
            t.batch_size,
        )?;
        if !r.loss.is_finite() {
            return Err(RunError::NotFinite { step, loss: r.loss });
        }
        Ok((r.loss, None))
    } else {
        let mut grads: Option<UnitTensors<f32>> = None;
        let mut loss = 0.0;
        for mb in batch.split(microbatches)? {
            let targets: Vec<u32> = mb.targets.iter().copied().collect();
            let r = microbatch_gradients(model, params, mb.inputs, &targets, t.batch_size)?;
            loss += r.loss;
            add_in_order(&mut grads, r.grads);
        }
        if !loss.is_finite() {
            return Err(RunError::NotFinite { step, loss });
        }
        let mut grads = grads.unwrap_or_else(|| unreachable!("at least one micro-batch"));
        if let Some(param) = first_non_finite(model, 0..model.units().len(), &grads) {
            return Err(RunError::NotFiniteGradient { step, param });
        }
        let grad_norm = t.grad_clip.map(|max| {
            let norm = global_norm(&chunk_sums_of_squares(&grads));
            scale(&mut grads, clip_factor(norm, max));
            norm
        });
        opt.step_units(lr, step, params, &grads, state);
        Ok((loss, grad_norm))
    }
}

/// Where the in-process loop starts: after `done` steps with these weights and optimizer state.
struct Start {
    job: Job,
    params: UnitTensors<f32>,
    state: OptimizerState<f32>,
    done: u64,
    /// Losses of the steps already done (for the summary's averages).
    losses: Vec<f64>,
    metrics: JsonlWriter,
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
        job:
            Job {
                model,
                ds,
                sampler,
                total,
            },
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
    let recipe = StepRecipe {
        model: &model,
        t,
        opt: &opt,
        microbatches: t.microbatches.resolved()?,
    };
    let train_start = Instant::now();
    for step in done + 1..=total {
        let t0 = Instant::now();
        let (e, indices) = sampler.indices(step - 1);
        epoch = e;
        let batch = ds.train_batch(&indices)?;
        let lr = schedule.lr(t.lr, step - 1, total);
        let weights = Weights {
            params: &mut params,
            state: &mut state,
        };
        let (loss, grad_norm) = train_step(&recipe, weights, batch, step, lr)?;
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
                &TrainState::new(cfg, ds.as_ref(), step, epoch),
            )?;
        }
        if stopping {
            return Err(RunError::Interrupted { step });
        }
    }
    let train_s = train_start.elapsed().as_secs_f64();
    let final_state = TrainState::new(cfg, ds.as_ref(), total, epoch);
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
