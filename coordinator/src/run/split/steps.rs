//! The steps of one attempt of a split run: the plan and the starting weights into the store, the first two steps
//! fed, then the loop that only *follows* the event stream — each event into `events.jsonl` and the tracker, overdue
//! tasks invoked again, and each finished step fed forward, measured, checkpointed or evaluated when the plan keeps
//! its version — until the last step, or a stop request, ends it with a checkpoint.

use super::deadlines::{Deadlines, Initial, Policy};
use super::driver::Driver;
use super::setup::{Logs, StartingPoint};
use super::status::{State, StatusWriter, EVERY};
use super::tracker::{Invoke, Tracker, Why};
use crate::config::{DeadlineMode, InvokerKind};
use crate::error::RunError;
use crate::planner::calibration::{compare, TaskTimes};
use crate::run::evaluate::evaluate;
use crate::run::record::{
    summarize, Observer, QosStats, RunFigures, StepRecord, Summary, TrainState,
};
use models::shard::SliceLayout;
use models::{OptimizerState, UnitTensors};
use slice_worker::codec::{encode_plan, encode_slice_shards};
use slice_worker::event::TaskEvent;
use slice_worker::store::{StoreError, StreamEntry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the driver waits without any event, while no task is due, before it declares the run stuck (a due task
/// is bounded by its deadline and attempts instead).
const STALL: Duration = Duration::from_secs(120);

/// How often the driver asks whether the store is still the server process the run started on.
const INSTANCE_CHECK: Duration = Duration::from_millis(500);

/// The longest the driver waits for an event before it looks at its deadlines again, and the shortest.
const MAX_WAIT: Duration = Duration::from_millis(100);
const MIN_WAIT: Duration = Duration::from_millis(1);

/// How long one read of the event stream blocks in the store.
const READ_BLOCK: Duration = Duration::from_millis(100);

/// How many late tasks the driver names in warnings before it only counts them.
const LATE_WARNINGS: usize = 5;

/// What the loop keeps between events.
struct Progress {
    tracker: Tracker,
    /// The last finished step, and the last step fed (on a stop request no new step is fed; the steps already fed
    /// finish, and their weights are checkpointed).
    done_steps: u64,
    fed_up_to: u64,
    /// When a stop was requested: no step is fed after it, and the started ones get `runtime.stop_grace_s`.
    stopping: Option<Instant>,
    /// The step the run folder's checkpoint holds (where this attempt started, or its last periodic one).
    checkpointed: u64,
    /// Kept versions to delete: (once this step is done, this version).
    release: Vec<(u64, u64)>,
    /// The stream position read up to.
    cursor: String,
    /// The read of the stream in progress, if any (it may span several of the loop's wake-ups).
    reading: Option<tokio::task::JoinHandle<Result<Vec<StreamEntry>, StoreError>>>,
    last_event: Instant,
    instance_checked: Instant,
    step_start: Instant,
    /// Tasks that missed their deadline so far (the first few are named in warnings).
    late: usize,
    task_times: TaskTimes,
    status: StatusWriter,
    losses: Vec<f64>,
    step_ms: Vec<f64>,
}

/// Runs the steps of the attempt set up in `d` from `from`, writing `logs`; returns the summary of the finished run,
/// or [`RunError::Interrupted`] after a checkpoint when `stop` was raised.
pub(super) async fn run_steps(
    d: &Driver<'_>,
    mut logs: Logs,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    from: StartingPoint,
) -> Result<Summary, RunError> {
    let plan = &d.plan;
    let first = plan.first_step;
    let StartingPoint {
        params,
        state,
        losses,
        restarts,
    } = from;
    seed_store(d, params, state).await?;
    observer.started(plan.steps, plan.batch_size);
    let rt = &d.cfg.runtime;
    let mut tracker = Tracker::new(plan.clone(), deadlines(d), rt.concurrency, rt.max_attempts);
    tracker.stats.store_restarts = restarts;
    tracker.stats.warm_pool = d.warm_pool.clone();
    let train_start = Instant::now();
    d.feed(first, &mut tracker).await?;
    d.feed(first + 1, &mut tracker).await?;
    let mut p = Progress {
        tracker,
        done_steps: first - 1,
        fed_up_to: plan.steps.min(first + 1),
        stopping: None,
        checkpointed: first - 1,
        // The starting version of a resumed run is one to release when it falls on a kept step (its first update
        // leaves it in place).
        release: if first > 1 && plan.keeps(first - 1) {
            vec![(first, first - 1)]
        } else {
            Vec::new()
        },
        cursor: "0".to_string(),
        reading: None,
        last_event: Instant::now(),
        instance_checked: Instant::now(),
        step_start: Instant::now(),
        late: 0,
        task_times: TaskTimes::default(),
        status: StatusWriter::new(),
        losses,
        step_ms: Vec::new(),
    };
    let grace = Duration::from_secs_f64(d.cfg.runtime.stop_grace_s * d.cfg.emulator.dilation);
    while p.done_steps < plan.steps && !(p.stopping.is_some() && p.done_steps >= p.fed_up_to) {
        if stop.load(Ordering::Relaxed) && p.stopping.is_none() {
            p.stopping = Some(Instant::now());
            observer.warn(&format!(
                "stopping: finishing the step(s) already started (up to {}) for at most {} s \
                 (runtime.stop_grace_s), then writing a checkpoint; a second Ctrl-C stops at once",
                p.fed_up_to,
                grace.as_secs_f64()
            ));
        }
        if p.stopping.is_some_and(|at| at.elapsed() >= grace) {
            observer.warn(&format!(
                "the started steps did not finish within runtime.stop_grace_s = {} s: stopping after step {}",
                grace.as_secs_f64(),
                p.done_steps
            ));
            break;
        }
        let now = follow_events(d, &mut p, &mut logs).await?;
        retry_overdue(d, &mut p, now, observer)?;
        if now.duration_since(p.status.last_write) >= EVERY {
            write_status(d, &mut p, None)?;
        }
        // Steps complete in order (step t+1's updates need step t's weights).
        while p.tracker.step_done(p.done_steps + 1) {
            p.done_steps += 1;
            finish_step(d, &mut p, &mut logs, observer).await?;
        }
    }
    // The last step is done once its updates are, but a forward of it may still be appending its event: take the
    // stragglers in (for at most a second) so that events.jsonl and the summary count every task.
    if p.done_steps == plan.steps {
        for _ in 0..10 {
            if p.tracker.all_reported(plan.steps) {
                break;
            }
            follow_events(d, &mut p, &mut logs).await?;
        }
    }
    if p.done_steps < plan.steps {
        let stopped = checkpoint_stopped(d, &p).await;
        write_status(d, &mut p, Some(State::Ended))?;
        return Err(stopped);
    }
    write_status(d, &mut p, Some(State::Finished))?;
    finish_run(d, p, train_start, observer).await
}

/// Rewrites `status.json` (`state`: the run's end, else running or stopping).
fn write_status(d: &Driver<'_>, p: &mut Progress, state: Option<State>) -> Result<(), RunError> {
    let state = state.unwrap_or(if p.stopping.is_some() {
        State::Stopping
    } else {
        State::Running
    });
    let status = p.status.status(
        state,
        &p.tracker,
        (p.done_steps, d.plan.steps),
        d.cfg.runtime.concurrency,
    );
    p.status.last_write = Instant::now();
    d.out.write_json("status.json", &status)
}

/// A stopped run's checkpoint: the weights and state after the last finished step, when the store still has them
/// whole. The steps started after it may have run on past the grace period and replaced part of that version (an
/// update shard deletes the version it read); then the run folder's last checkpoint stands. Returns the
/// interruption, naming the step the run folder's checkpoint holds.
async fn checkpoint_stopped(d: &Driver<'_>, p: &Progress) -> RunError {
    let done = p.done_steps;
    if done == p.checkpointed {
        return RunError::Interrupted { step: done };
    }
    let written = match d.pull(done).await {
        Ok((params, state)) => {
            let ts = TrainState::new(&d.cfg, d.ds.as_ref(), done, d.sampler.epoch(done - 1));
            d.out
                .checkpoint(&d.model, &params, &d.plan.optimizer, &state, &ts)
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(()) => RunError::Interrupted { step: done },
        Err(RunError::StoreData(_)) => RunError::Interrupted {
            step: p.checkpointed,
        },
        Err(e) => e,
    }
}

/// The run's deadline policy (`runtime.deadline`, `runtime.task_timeout_s`), starting from the run's own prediction
/// of each task kind.
fn deadlines(d: &Driver<'_>) -> Deadlines {
    let rt = &d.cfg.runtime;
    // On an emulator at dilation D every wait stretches by D (the deadlines learn from this clock).
    let stretch = d.cfg.emulator.dilation;
    let timeout = Duration::from_secs_f64(rt.task_timeout_s * stretch);
    let policy = match rt.deadline {
        DeadlineMode::Auto => Policy::Auto { cap: timeout },
        DeadlineMode::Fixed => Policy::Fixed(timeout),
    };
    // A cold start on Lambda starts a process and reads the plan (about a second, or the platform's own figure);
    // the local invoker's is what the config injects.
    let slack_ms = match rt.invoker {
        InvokerKind::Lambda => d.cfg.platform.cold_start_ms.max(1000.0),
        InvokerKind::Local => 100.0 + rt.cold_start_ms as f64,
    };
    let initial = d.prediction.as_ref().map_or(Initial::NONE, |p| Initial {
        slice_ms: p
            .slice_slowest_ms
            .iter()
            .map(|kinds| kinds.map(|ms| ms * stretch))
            .collect(),
        slack_ms: slack_ms * stretch,
    });
    Deadlines::new(policy, initial)
}

/// The plan, and the weights and optimizer state the first step reads (version `first_step - 1`), into the store.
async fn seed_store(
    d: &Driver<'_>,
    params: UnitTensors<f32>,
    state: OptimizerState<f32>,
) -> Result<(), RunError> {
    let (plan, keys) = (&d.plan, &d.keys);
    d.store.put(&keys.plan(), encode_plan(plan), d.ttl).await?;
    let first = plan.first_step;
    let slots = plan.optimizer.slots();
    let mut items = Vec::new();
    for s in 0..plan.slices.len() {
        let range = plan.slice_range(s);
        let layout = SliceLayout::new(&d.model, range.clone());
        let ranges = layout
            .shards(plan.shard_count(s))
            .map_err(RunError::Mismatch)?;
        let shards = encode_slice_shards(
            &layout,
            &ranges,
            slots,
            (&params[range.clone()], &state[range]),
            first - 1,
        )?;
        for (k, (w, o)) in shards.into_iter().enumerate() {
            items.push((keys.weights(s, first - 1, k), w));
            items.push((keys.optimizer(s, first - 1, k), o));
        }
    }
    drop((params, state));
    d.store.put_many(items, d.ttl).await?;
    Ok(())
}

/// Reads the events that arrived (waiting up to 100 ms), checks now and then that the store is the one the run
/// started on, and hands each new event to `events.jsonl` and the tracker, invoking what the tracker retries.
/// Returns the time the events were read at.
async fn follow_events(
    d: &Driver<'_>,
    p: &mut Progress,
    logs: &mut Logs,
) -> Result<Instant, RunError> {
    // Wake for the next event, or for the earliest limit of a due task, whichever comes first. The read itself
    // outlives a wake-up for a limit: Redis ends a blocking read only on its own clock (10 times a second by
    // default), so a short BLOCK would return tens of milliseconds late.
    let wait = p
        .tracker
        .next_limit()
        .map_or(MAX_WAIT, |at| at.saturating_duration_since(Instant::now()))
        .clamp(MIN_WAIT, MAX_WAIT);
    let read = p.reading.get_or_insert_with(|| {
        let (store, stream, cursor) = (d.store.clone(), d.keys.events(), p.cursor.clone());
        tokio::spawn(async move { store.read_events(&stream, &cursor, 1000, READ_BLOCK).await })
    });
    let events = match tokio::time::timeout(wait, &mut *read).await {
        Err(_) => Vec::new(),
        Ok(joined) => {
            p.reading = None;
            joined.map_err(|e| RunError::Runtime(std::io::Error::other(e)))??
        }
    };
    let now = Instant::now();
    // Governed runs: start what was granted a slot; what still waits for one is not late.
    let queued = d.start_granted().await?;
    p.tracker.queued(&queued, now);
    if now.duration_since(p.instance_checked) > INSTANCE_CHECK {
        p.instance_checked = now;
        d.check_instance().await?;
    }
    let stall = STALL.mul_f64(d.cfg.emulator.dilation);
    if events.is_empty() && p.tracker.nothing_due() && p.last_event.elapsed() > stall {
        return Err(RunError::Stalled(format!(
            "no task reported for {} s after step {} and none is due",
            stall.as_secs(),
            p.done_steps
        )));
    }
    for entry in events {
        p.last_event = now;
        p.cursor = entry.id.clone();
        let mut event = TaskEvent::from_fields(&entry.fields).map_err(|reason| RunError::Task {
            task: format!("event {}", entry.id),
            reason,
        })?;
        if !p.tracker.first_copy(&event) {
            continue;
        }
        // The log and the task statistics hold undilated times (the tracker reads none of these durations: its
        // deadlines work on this process's clock).
        undilate(&mut event, d.cfg.emulator.dilation);
        logs.events.write(&event)?;
        p.task_times.record(&event);
        for again in p.tracker.event(&event, now)? {
            d.invoke(again.task, again.attempt);
        }
    }
    Ok(now)
}

/// Divides `event`'s durations by the time dilation (CPU time and timestamps stay as measured).
fn undilate(event: &mut TaskEvent, dilation: f64) {
    for ms in [
        &mut event.invoke_ms,
        &mut event.fetch_ms,
        &mut event.compute_ms,
        &mut event.store_ms,
        &mut event.probe_ms,
        &mut event.record_ms,
        &mut event.run_ms,
    ] {
        *ms /= dilation;
    }
}

/// Invokes again every due task past its deadline, and copies of stragglers (naming the first few late ones), or
/// fails with what stopped a task that is out of attempts, and what the platform said about it.
fn retry_overdue(
    d: &Driver<'_>,
    p: &mut Progress,
    now: Instant,
    observer: &mut dyn Observer,
) -> Result<(), RunError> {
    let overdue = p
        .tracker
        .overdue(now)
        .map_err(|e| match (e, d.invoker.last_refusal()) {
            (RunError::Task { task, reason }, Some(refused)) => RunError::Task {
                task,
                reason: format!("{reason}; the platform refused an invocation: {refused}"),
            },
            // Lambda reports nothing back from an asynchronous invocation that failed: only its log says why.
            (RunError::Task { task, reason }, None) if d.cfg.runtime.invoker == InvokerKind::Lambda => RunError::Task {
                task,
                reason: format!(
                    "{reason}; on Lambda a task killed for memory (Runtime.OutOfMemory: give its slice more \
                     memory) or by the function's timeout never reports — its function's log says which"
                ),
            },
            (e, _) => e,
        })?;
    for Invoke { task, attempt, why } in overdue {
        // Deadlines of milliseconds make late tasks routine under faults: only a fixed deadline's are worth a line.
        if why == Why::Late && d.cfg.runtime.deadline == DeadlineMode::Fixed {
            p.late += 1;
            if p.late <= LATE_WARNINGS {
                let more = if p.late == LATE_WARNINGS {
                    " (further ones are only counted: summary.json runtime.late_retries, events.jsonl)"
                } else {
                    ""
                };
                observer.warn(&format!(
                    "task {task} did not report within {:.2} s: invoking attempt {attempt}{more}",
                    d.cfg.runtime.task_timeout_s
                ));
            }
        }
        d.invoke(task, attempt);
    }
    Ok(())
}

/// Step `p.done_steps` has finished: feeds step + 2 (unless stopping), trims the stream, reads the loss, pulls a
/// kept version for its checkpoint or evaluation, releases a version no step reads any more, and writes the metrics
/// line.
async fn finish_step(
    d: &Driver<'_>,
    p: &mut Progress,
    logs: &mut Logs,
    observer: &mut dyn Observer,
) -> Result<(), RunError> {
    let (plan, keys) = (&d.plan, &d.keys);
    let step = p.done_steps;
    if p.stopping.is_none() {
        d.feed(step + 2, &mut p.tracker).await?;
        p.fed_up_to = (step + 2).min(plan.steps);
    }
    p.tracker.forget_before(step.saturating_sub(1));
    // The events read so far leave the stream (a long run would otherwise keep every one in the store).
    d.store.trim_events(&keys.events(), &p.cursor).await?;
    let loss = d.step_loss(step).await?;
    if !loss.is_finite() {
        return Err(RunError::NotFinite { step, loss });
    }
    let wall_ms = d
        .cfg
        .emulator
        .undilate_ms(p.step_start.elapsed().as_secs_f64() * 1e3);
    p.step_start = Instant::now();
    let lr = plan.schedule.lr(plan.lr, step - 1, plan.steps);
    let epoch = d.sampler.epoch(step - 1);
    let mut eval = None;
    if plan.keeps(step) && step != plan.steps {
        // A kept version: pull it for the periodic checkpoint and/or evaluation, then let it go.
        let (params, state) = d.pull(step).await?;
        let t = &d.cfg.train;
        let every = d.cfg.checkpoint.every;
        if every > 0 && step.is_multiple_of(every) {
            let ts = TrainState::new(&d.cfg, d.ds.as_ref(), step, epoch);
            d.out
                .checkpoint(&d.model, &params, &plan.optimizer, &state, &ts)?;
            p.checkpointed = step;
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
        p.release.push((step + 1, step));
    }
    if let Some(&(_, version)) = p.release.first().filter(|(after, _)| *after == step) {
        p.release.remove(0);
        let kept: Vec<String> = (0..plan.slices.len())
            .flat_map(|s| (0..plan.shard_count(s)).map(move |k| (s, k)))
            .flat_map(|(s, k)| [keys.weights(s, version, k), keys.optimizer(s, version, k)])
            .collect();
        d.store.delete(&kept).await?;
    }
    let record = StepRecord {
        step,
        epoch,
        loss,
        lr,
        wall_ms,
        grad_norm: p.tracker.take_grad_norm(step),
        eval,
    };
    logs.metrics.write(&record)?;
    observer.step(&record);
    p.status.step_done();
    write_status(d, p, None)?;
    p.losses.push(loss);
    p.step_ms.push(wall_ms);
    Ok(())
}

/// The last step is done: pulls the final weights, checkpoints, evaluates and writes `summary.json`.
async fn finish_run(
    d: &Driver<'_>,
    p: Progress,
    train_start: Instant,
    observer: &mut dyn Observer,
) -> Result<Summary, RunError> {
    let plan = &d.plan;
    let train_s = train_start.elapsed().as_secs_f64() / d.cfg.emulator.dilation;
    let (params, state) = d.pull(plan.steps).await?;
    let train_state = TrainState::new(
        &d.cfg,
        d.ds.as_ref(),
        plan.steps,
        d.sampler.epoch(plan.steps - 1),
    );
    d.out
        .checkpoint(&d.model, &params, &plan.optimizer, &state, &train_state)?;
    let eval = evaluate(&d.model, &params, d.ds.as_ref(), None, 500)?;
    let run = RunFigures {
        total: plan.steps,
        steps_per_epoch: d.sampler.steps_per_epoch(),
        losses: p.losses,
        step_ms: p.step_ms,
        started: d.started,
        train_s,
        threads: d.threads,
    };
    let mut summary = summarize(&d.cfg, &d.model, &run, &eval);
    let mut stats = p.tracker.stats.clone();
    if let Some(governor) = &d.governor {
        // The run's share goes back now rather than when its registration lapses.
        let counts = governor.unregister(&plan.run_id).await?;
        stats.qos = Some(QosStats {
            admitted: counts.admitted,
            queued: counts.queued,
            granted: counts.granted,
            queue_wait_ms: d.cfg.emulator.undilate_ms(counts.waited_ms as f64),
        });
    }
    summary.runtime = Some(stats);
    summary.calibration = d
        .prediction
        .as_ref()
        .map(|pred| compare(pred, &run.step_ms, &p.task_times));
    d.out.write_json("summary.json", &summary)?;
    observer.finished(&summary);
    Ok(summary)
}
