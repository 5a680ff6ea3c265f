//! What `trainer fit --resume RUN_DIR` needs from a run folder besides its checkpoint ([`super::checkpoint`]): the
//! run's own config to compare with, its metrics and events cut back to the checkpoint's step, and the point the
//! run goes on from. It must not train (that is [`super::resume`]).

use super::checkpoint::{corrupt, load_checkpoint};
use super::record::Observer;
use crate::config::Config;
use crate::error::{io, RunError};
use crate::job::initial_state;
use data::Dataset;
use models::{Model, OptimizerSpec, OptimizerState, UnitTensors};
use std::path::Path;

/// Refuses to resume the run in `dir` with another config than its own (`config.resolved.toml`), naming the first
/// section that differs. Returns the config to resume with: `cfg` with what it left to the planner (`slices =
/// "auto"`, `microbatches = "auto"`) taken from the run's own choices, so a resumed run never plans again.
pub fn check_same_config(cfg: &Config, dir: &Path) -> Result<Config, RunError> {
    let path = dir.join("config.resolved.toml");
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let theirs: Config = toml::from_str(&text)
        .map_err(|e| corrupt(&path, format!("not a run's resolved config: {e}")))?;
    let mut effective = cfg.clone();
    if cfg.plan.slices == crate::config::Slices::Auto && cfg.plan.cuts.is_none() {
        effective.plan.cuts = theirs.plan.cuts.clone();
    }
    if cfg.train.microbatches == crate::config::Microbatches::Auto {
        effective.train.microbatches = theirs.train.microbatches;
    }
    let mut ours = effective.clone();
    ours.data = cfg.data.resolved();
    // The store URL is kept without its password in the run folder.
    ours.runtime.store = cfg.runtime.store.without_password();
    let (a, b) = (
        toml::Value::try_from(&ours).map_err(|e| corrupt(&path, e))?,
        toml::Value::try_from(&theirs).map_err(|e| corrupt(&path, e))?,
    );
    if let (Some(a), Some(b)) = (a.as_table(), b.as_table()) {
        for (key, value) in a {
            if b.get(key) != Some(value) {
                return Err(RunError::Mismatch(format!(
                    "the config's [{key}] differs from the run's ({}): resume with the run's own config, e.g. \
                     `trainer fit {} --resume {}`",
                    path.display(),
                    path.display(),
                    dir.display()
                )));
            }
        }
    }
    Ok(effective)
}

/// The weights, optimizer state and step a resumed run starts from: the run folder's checkpoint, or step 0 (the
/// seed's initial weights) when the run stopped before its first one. Refuses a run that already finished, and one
/// whose checkpoint was trained on another vocabulary than `ds` now gives (the corpus file changed).
pub(crate) fn resume_point(
    cfg: &Config,
    out: &Path,
    (model, ds): (&Model, &dyn Dataset),
    opt: &OptimizerSpec,
    total: u64,
    observer: &mut dyn Observer,
) -> Result<(UnitTensors<f32>, OptimizerState<f32>, u64), RunError> {
    match load_checkpoint(out, model, opt)? {
        Some(ck) if ck.train.step >= total => Err(RunError::Mismatch(format!(
            "{}: the run already finished its {total} steps (checkpoint at step {})",
            out.display(),
            ck.train.step
        ))),
        Some(ck) => {
            super::vocabulary::check(out, ck.train.vocabulary_sha256.as_deref(), ds)?;
            Ok((ck.params, ck.state, ck.train.step))
        }
        None => {
            observer.warn(&format!(
                "{}: no checkpoint yet; starting again from step 0 (the seed's initial weights)",
                out.display()
            ));
            let (params, state) = initial_state(model, opt, cfg.train.seed);
            Ok((params, state, 0))
        }
    }
}
