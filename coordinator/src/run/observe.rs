//! `trainer profile --events RUN`: reads a finished split run's folder (plan, resolved config, events) and hands
//! them to the planner's [`crate::planner::observe::observe`].

use super::dir::{read_events, read_run_plan};
use crate::config::Config;
use crate::error::RunError;
use crate::planner::observe::observe;
use crate::planner::profile::{Observed, Profile};
use slice_worker::store::StoreUrl;
use std::path::Path;

/// Measured ÷ modelled task times of the split run in `run_dir` (its `plan.json` and `events.jsonl`), with the
/// model built from `profile` for the local invoker the run used.
pub fn observe_run(cfg: &Config, profile: &Profile, run_dir: &Path) -> Result<Observed, RunError> {
    let (plan, _) = read_run_plan(run_dir)?;
    let path = run_dir.join("config.resolved.toml");
    let text = std::fs::read_to_string(&path).map_err(crate::error::io(&path))?;
    let resolved: toml::Value = toml::from_str(&text)
        .map_err(|e| RunError::Mismatch(format!("{}: {e}", path.display())))?;
    let store = resolved
        .get("runtime")
        .and_then(|r| r.get("store"))
        .and_then(|s| s.as_str())
        .map_or(Ok(StoreUrl::Memory), StoreUrl::parse)
        .map_err(|e| RunError::Mismatch(format!("{}: runtime.store: {e}", path.display())))?;
    let memory_store = !store.is_shared();
    let events = read_events(run_dir)?;
    let run = run_dir.display().to_string();
    observe(cfg, profile, &run, &plan, &events, memory_store)
}
