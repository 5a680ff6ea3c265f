//! Runs: what a `trainer fit` does with a validated config. [`fit`] and [`resume`] pick the in-process loop
//! ([`local`]) or the split-run driver ([`split`]); both keep the same record ([`record`]) in the same run folder
//! ([`dir`], which owns every write into it, checkpoints included — their format is [`checkpoint`]'s).
//!
//! Floors inside (each imports only from those before it): `evaluate` → `record` → `checkpoint` → `dir` →
//! `resume` → `local`, `split` → `task_cost` (the runtime's cost per task, by a short split run) → this
//! dispatcher. Below the whole floor: `config`, `error`, `planner`, `job`, `profiling`.

pub mod checkpoint;
pub mod dir;
pub mod evaluate;
mod local;
mod observe;
pub mod record;
pub mod resume;
pub mod split;
pub mod task_cost;
mod vocabulary;

pub use observe::observe_run;

use crate::config::Config;
use crate::error::RunError;
use dir::RunDir;
use record::{Observer, Summary};
use std::sync::atomic::AtomicBool;

/// Trains `cfg`, writing the run folder `out`: in this process for one slice, else as a split run through the
/// configured store and invoker. `stop` ends the run after the current step (a split run: after the steps already
/// started), with a checkpoint to resume from.
pub fn fit(
    cfg: &Config,
    out: &RunDir,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> Result<Summary, RunError> {
    if cfg.plan.is_split() {
        return split::fit_split(cfg, out, observer, stop);
    }
    local::fit(cfg, out, observer, stop)
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
    let cfg = &resume::check_same_config(cfg, out.path())?;
    if cfg.plan.is_split() {
        return split::resume_split(cfg, out, observer, stop);
    }
    local::resume(cfg, out, observer, stop)
}
