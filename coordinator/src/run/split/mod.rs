//! The run driver of a split run: writes the plan, the initial weights and optimizer state and the micro-batches
//! (two steps ahead) to the store, starts the first leaves, then only *follows* the event stream — tasks start each
//! other. At the end it pulls the final weights back, checkpoints, evaluates and deletes the run's keys.
//!
//! Floors (each imports only from those before it): [`deadlines`] (when a due task is late) → [`tracker`] (the run
//! as its events show it) → [`status`] (`status.json`) → `driver` (what
//! an attempt holds, and its few store calls) → `warm_pool` (instances brought up before the first step), `qos`
//! (the run on the account governor) → `invoker` (the invoker a run starts its tasks with) → `setup` (planner choices, store, starting point, plan, invoker) →
//! `steps` (the step loop) → this file (launching, and going on from the checkpoint after a lost store).

pub mod admission;
pub mod deadlines;
mod driver;
mod invoker;
mod qos;
mod setup;
pub mod status;
mod steps;
pub mod tracker;
mod warm_pool;

use crate::config::Config;
use crate::error::RunError;
use crate::run::dir::RunDir;
use crate::run::record::{Observer, Summary};
use setup::Launch;
use slice_worker::store::StoreUrl;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Trains `cfg` as a split run (`plan.slices > 1` or `plan.cuts`) through the configured store and invoker.
pub fn fit_split(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    run_split(cfg, out, observer, stop, Launch::Fresh)
}

/// Continues the split run in `out` from its last checkpoint (see [`crate::run::resume`]; `cfg` is the config it
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
            .map_err(RunError::Runtime)
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
            Err(e) if e.store_lost() && !out.path().join("plan.json").exists() => break Err(e),
            Err(e) if e.store_lost() && restarts < cfg.runtime.store_restarts => {
                restarts += 1;
                let why = e.to_string();
                observer.warn(&format!(
                    "{why}\nwaiting up to {} s for the store, then restarting from the last checkpoint \
                     (restart {restarts} of at most {})",
                    cfg.runtime.store_wait_s, cfg.runtime.store_restarts
                ));
                let waited = runtime().and_then(|rt| {
                    rt.block_on(wait_for_store(
                        &cfg.runtime.store,
                        Duration::from_secs_f64(cfg.runtime.store_wait_s * cfg.emulator.dilation),
                    ))
                });
                if let Err(e) = waited {
                    break Err(RunError::StoreLost(format!(
                        "{why}; then: {e}. The run folder's checkpoint is intact: resume once the store is back"
                    )));
                }
                launch = Launch::Resume;
            }
            Err(e) if e.store_lost() => {
                break Err(RunError::StoreLost(format!(
                    "{e} (after {restarts} restart(s) from the checkpoint; runtime.store_restarts = {}). The \
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
async fn wait_for_store(url: &StoreUrl, wait: Duration) -> Result<(), RunError> {
    let started = Instant::now();
    loop {
        match slice_worker::store::open(url).await {
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

/// One attempt of the split run: set up, run the steps, then stop the invoker and delete the run's keys.
async fn drive(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
    threads: usize,
    launch: Launch,
    restarts: u32,
) -> Result<Summary, RunError> {
    let setup::Prepared {
        driver,
        logs,
        from,
        old_prefix,
        lock,
    } = setup::prepare(cfg, out, observer, launch, restarts, threads).await?;
    let _held = lock;
    let result = steps::run_steps(&driver, logs, observer, stop, from).await;
    // Any failure on a restarted store (a task out of attempts for want of its inputs, a missing loss) is that
    // restart's doing: reported as such, so that the run goes on from its checkpoint.
    let result = match result {
        Err(e) if !e.store_lost() => match driver.check_instance().await {
            Err(lost) => Err(lost),
            Ok(()) => Err(e),
        },
        r => r,
    };
    // No task may still be running when the runtime goes (a handler stalled on a lost store gives up within the
    // store's retry window).
    driver
        .invoker
        .close(
            (slice_worker::store::RETRY_FOR + Duration::from_secs(5))
                .mul_f64(cfg.emulator.dilation),
        )
        .await;
    // Whatever happened, the run's keys go (the TTL is only a safety net) — unless the store was lost: then there
    // is nothing to reach, and the next attempt or `--resume` deletes what is left before it starts.
    if result.as_ref().is_err_and(RunError::store_lost) {
        return result;
    }
    if let Some(governor) = &driver.governor {
        // The run's share of the account goes back now (a finished run has already left; this one is for the rest),
        // and the interrupted run's too, whose chains may still be asking for slots.
        let runs = std::iter::once(driver.plan.run_id.as_str()).chain(
            old_prefix
                .as_deref()
                .and_then(|p| p.strip_prefix("run:")?.strip_suffix(':')),
        );
        for run in runs {
            let _ = governor.unregister(run).await;
        }
    }
    let store = &driver.store;
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
