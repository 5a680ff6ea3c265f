//! The profile as data (`profile.json`): what one task of each kind costs on a machine, with its spread — per unit
//! the forward, backward and update time at the planned micro-batch size; the store's time by value size; the
//! per-task scheduling overhead (probe, fan-in record, completion event). The latency model fits its
//! distributions to these samples. Measuring it is `crate::profiling`'s job; this file only holds and reads it.

use crate::error::RunError;
use crate::stats::median;
use serde::{Deserialize, Serialize};

/// Everything the planner knows about this machine and model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Samples per micro-batch the unit times were measured at.
    pub microbatch: usize,
    /// Compute threads the unit times used (the profiler uses one).
    pub threads: usize,
    /// Optimizer state slots per parameter (SGD with momentum 1, AdamW 2, plain SGD 0).
    pub optimizer_slots: usize,
    /// Bytes of one micro-batch of model input as the driver stores it (0 in profiles written before it existed).
    #[serde(default)]
    pub input_bytes: u64,
    pub units: Vec<UnitProfile>,
    pub store: StoreProfile,
    /// Turning tensors into store values and back (safetensors encode / decode), by size: paid on every byte a
    /// task writes or reads, whatever the store. `put_ms` = encode, `get_ms` = decode.
    pub codec: Vec<TransferPoint>,
    /// Per-task scheduling overhead on the store: idempotence probe, fan-in record, completion event (ms).
    pub task_overhead_ms: Vec<f64>,
    /// The local runtime's own cost per task — driver, invoker, handler, thread hops — ms per step of a short split
    /// run of tiny tasks (`crate::run::task_cost`; `trainer profile` measures it). Empty in profiles that did not
    /// (a quick profile at `trainer fit`): the local model then takes [`DEFAULT_RUNTIME_TASK_MS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_task_ms: Vec<f64>,
    /// From a previous run's `events.jsonl` (`trainer profile --events RUN`): measured ÷ modelled task time, by
    /// kind. The model scales each kind by the median ratio and widens its spread by the ratios' spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<Observed>,
}

/// Measured ÷ modelled run time of each successful task of a previous run, by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The run folder the samples came from.
    pub run: String,
    pub forward: Vec<f64>,
    pub backward: Vec<f64>,
    pub update: Vec<f64>,
    /// Per steady step: the median of its tasks' ratios, each divided by its kind's median. Slow phases of a
    /// machine (page-fault storms, a neighbour's burst) slow every task running then, so a step's tasks are slow
    /// together; this is that common factor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_factors: Vec<f64>,
    /// Forward, backward and update ratios divided by their kind's median and their step's factor: what is left
    /// to each task on its own. Empty in profiles written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residuals: Vec<Vec<f64>>,
}

/// One unit, at the profile's micro-batch size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitProfile {
    pub name: String,
    pub forward_ms: Vec<f64>,
    pub backward_ms: Vec<f64>,
    pub update_ms: Vec<f64>,
    /// Adding one micro-batch's gradients into the running sum (an update does it M times).
    #[serde(default)]
    pub accumulate_ms: Vec<f64>,
    pub param_bytes: u64,
    /// The unit's output for one micro-batch.
    pub output_bytes: u64,
    /// What its forward keeps for backward, one micro-batch.
    pub cache_bytes: u64,
}

/// The store's time to move a value, by size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoreProfile {
    /// `"memory"` or the Redis URL with any password redacted.
    pub store: String,
    pub points: Vec<TransferPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransferPoint {
    pub bytes: u64,
    pub put_ms: Vec<f64>,
    pub get_ms: Vec<f64>,
}

/// The local runtime's cost per task where a profile did not measure it, ms: measured on a 2-core host (60–80 µs,
/// experiments/decisions.md "Latency model, open errors"; experiments/planner_calibration).
pub const DEFAULT_RUNTIME_TASK_MS: f64 = 0.07;

impl Profile {
    /// The local runtime's cost per task, ms: the measured samples, or [`DEFAULT_RUNTIME_TASK_MS`].
    pub fn runtime_task_samples(&self) -> Vec<f64> {
        if self.runtime_task_ms.is_empty() {
            vec![DEFAULT_RUNTIME_TASK_MS]
        } else {
            self.runtime_task_ms.clone()
        }
    }

    /// The profile as if measured at `samples` per micro-batch: compute and activation sizes scale linearly with
    /// the samples (parameters do not) — an approximation that ignores per-call fixed costs. At the profile's own
    /// size it is the profile unchanged (every factor is exactly 1).
    pub fn rescaled(&self, samples: usize) -> Profile {
        let k = samples as f64 / self.microbatch.max(1) as f64;
        let scale = |v: &[f64]| v.iter().map(|x| x * k).collect::<Vec<f64>>();
        let mut p = self.clone();
        p.microbatch = samples;
        p.input_bytes = (p.input_bytes as f64 * k).round() as u64;
        for u in &mut p.units {
            u.forward_ms = scale(&u.forward_ms);
            u.backward_ms = scale(&u.backward_ms);
            u.output_bytes = (u.output_bytes as f64 * k).round() as u64;
            u.cache_bytes = (u.cache_bytes as f64 * k).round() as u64;
        }
        p
    }
}

/// A line `ms = fixed + bytes / bytes_per_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransferFit {
    pub fixed_ms: f64,
    pub bytes_per_ms: f64,
}

impl TransferFit {
    pub fn ms(&self, bytes: f64) -> f64 {
        self.fixed_ms + bytes / self.bytes_per_ms
    }
}

impl StoreProfile {
    /// Least-squares line through the medians of `put_ms` (or `get_ms`) against bytes; a size without samples
    /// (a hand-edited profile) is left out rather than counted as 0 ms.
    pub fn fit(&self, put: bool) -> TransferFit {
        let pts: Vec<(f64, f64)> = self
            .points
            .iter()
            .map(|p| (p.bytes as f64, if put { &p.put_ms } else { &p.get_ms }))
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(bytes, samples)| (bytes, median(samples)))
            .collect();
        let n = pts.len() as f64;
        if pts.len() < 2 {
            return TransferFit {
                fixed_ms: pts.first().map_or(0.0, |p| p.1),
                bytes_per_ms: f64::INFINITY,
            };
        }
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let slope = (sxy / sxx).max(1e-12);
        TransferFit {
            fixed_ms: (my - slope * mx).max(0.0),
            bytes_per_ms: 1.0 / slope,
        }
    }
}

/// Reads a `profile.json`, naming the file in errors.
pub fn read_profile(path: &std::path::Path) -> Result<Profile, RunError> {
    let text = std::fs::read(path).map_err(crate::error::io(path))?;
    serde_json::from_slice(&text).map_err(|e| {
        RunError::Mismatch(format!(
            "{}: not a profile written by `trainer profile`: {e}",
            path.display()
        ))
    })
}

/// [`read_profile`], checked against the model it is to plan: one profiled unit per model unit, same names.
pub fn read_profile_for(
    path: &std::path::Path,
    model: &models::Model,
) -> Result<Profile, RunError> {
    let profile = read_profile(path)?;
    let names: Vec<String> = model.costs().into_iter().map(|c| c.name).collect();
    let profiled: Vec<&String> = profile.units.iter().map(|u| &u.name).collect();
    if profiled.len() != names.len() || profiled.iter().zip(&names).any(|(a, b)| *a != b) {
        return Err(RunError::Mismatch(format!(
            "{}: profiled for another model ({} units, this config's model has {}): run `trainer profile` on this config",
            path.display(),
            profiled.len(),
            names.len()
        )));
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transfer_line_recovers_latency_and_bandwidth() {
        let points = [1u64 << 10, 1 << 20, 4 << 20]
            .iter()
            .map(|&b| TransferPoint {
                bytes: b,
                put_ms: vec![0.1 + b as f64 / 2e6; 3],
                get_ms: vec![0.2 + b as f64 / 1e6, 99.0, 0.2 + b as f64 / 1e6],
            })
            .collect();
        let s = StoreProfile {
            store: "memory".into(),
            points,
        };
        let put = s.fit(true);
        assert!((put.fixed_ms - 0.1).abs() < 1e-6 && (put.bytes_per_ms - 2e6).abs() < 1.0);
        let get = s.fit(false);
        assert!(
            (get.fixed_ms - 0.2).abs() < 1e-6,
            "the median ignores the outlier"
        );
        assert!((get.ms(1e6) - 1.2).abs() < 1e-6);
    }
}
