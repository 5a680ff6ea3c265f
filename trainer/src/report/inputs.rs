//! What the report reads from a run folder: JSON files, the loss curve, the task timeline.

use super::plots::Bar;
use anyhow::{Context, Result};
use serde_json::Value;
use slice_worker::event::TaskEvent;
use std::path::Path;

/// A JSON file, its path named in the error.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{}: unexpected contents", path.display()))
}

/// `(step, loss)` of a run folder's `metrics.jsonl` (empty if it has none).
pub(super) fn loss_curve(run: &Path) -> Result<Vec<(f64, f64)>> {
    let path = run.join("metrics.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l)
                .with_context(|| format!("{} line {}", path.display(), i + 1))?;
            Ok((
                v["step"].as_f64().unwrap_or(f64::NAN),
                v["loss"].as_f64().unwrap_or(f64::NAN),
            ))
        })
        .collect()
}

/// The bars of the last (up to) three steps of a run: steady state, readable.
pub(super) fn timeline_bars(events: &[TaskEvent]) -> (Vec<Bar>, u64, u64) {
    let last = events.iter().map(|e| e.task.step()).max().unwrap_or(0);
    let first = last.saturating_sub(2).max(1);
    let window: Vec<&TaskEvent> = events
        .iter()
        .filter(|e| e.task.step() >= first && e.start_unix_ms > 0.0)
        .collect();
    let t0 = window
        .iter()
        .map(|e| e.start_unix_ms)
        .fold(f64::INFINITY, f64::min);
    let bars = window
        .iter()
        .map(|e| {
            let kind = e.task.to_string().chars().next().unwrap_or('?');
            let start = e.start_unix_ms - t0;
            (e.task.slice(), start, start + e.run_ms, kind, e.cold)
        })
        .collect();
    (bars, first, last)
}
