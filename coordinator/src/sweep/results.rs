//! One row per sweep point — measured beside predicted — and the sweep's `results.json` and `results.csv`.
//!
//! Three kinds of number, never mixed: *measured* (where the row says it was measured — this machine's local
//! invoker, or the Lambda emulator at a time dilation, undilated — from the run's summary and events or the
//! emulator's bill), *predicted* (the latency model for the platform the row was measured on: what the measurement
//! should show) and *projected* (the platform model for real Lambda: vCPU share by memory, invoke and cold-start
//! latency). Costs: `measured_cost` is (a), the measured
//! task durations here × the price of the memory each function was given; `projected_cost` is (b), the model's
//! projection for Lambda.

use crate::config::Microbatches;
use serde::{Deserialize, Serialize};

/// What a row stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowKind {
    /// A point of the grid.
    #[default]
    Point,
    /// The in-process run of the base config.
    Reference,
}

/// How far a row got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// Predicted only (`--predict-only`, or not run yet).
    #[default]
    Predicted,
    /// Trained and measured.
    Done,
    /// Its run failed (see `error`).
    Failed,
}

impl RowKind {
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Point => "point",
            RowKind::Reference => "reference",
        }
    }
}

impl RowStatus {
    pub fn name(self) -> &'static str {
        match self {
            RowStatus::Predicted => "predicted",
            RowStatus::Done => "done",
            RowStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for RowStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a row's `measured_*` figures come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "platform")]
pub enum MeasuredOn {
    /// This machine, every slice in one process (the local invoker).
    #[default]
    Local,
    /// The Lambda emulator at time dilation `dilation`: each function with its memory's CPU, memory and
    /// bandwidth, times undilated, costs from the emulator's bill.
    Emulator { dilation: f64 },
}

impl MeasuredOn {
    /// A short label for tables and plots.
    pub fn label(&self) -> String {
        match self {
            MeasuredOn::Local => "local".into(),
            MeasuredOn::Emulator { dilation } => format!("emulated (D = {dilation})"),
        }
    }
}

/// A row of `results.csv` / an entry of `results.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub point: String,
    pub kind: RowKind,
    pub status: RowStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The run folder, relative to the sweep folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    pub slices: usize,
    /// Unit boundaries of the slices (`0 … units`).
    pub bounds: Vec<usize>,
    pub microbatches: Microbatches,
    pub recompute: bool,
    #[serde(rename = "become")]
    pub become_successor: bool,
    pub steps: u64,
    /// Memory each slice's function is given, MB.
    pub memory_mb: Vec<u32>,
    /// The model's peak memory of each slice, MB (the local invoker runs every slice in one process: a per-slice
    /// RSS is measured only on Lambda or its emulator).
    pub predicted_peak_mb: Vec<f64>,
    /// Where the `measured_*` figures were taken.
    #[serde(default)]
    pub measured_on: MeasuredOn,
    /// On the emulator: the peak memory of each slice's function, MB (its instances' cgroup high-water mark; slices
    /// that share a function — the same memory size — show the same figure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_peak_mb: Option<Vec<f64>>,
    /// On the emulator: CPU the driver and the emulator used outside the instances and the store, seconds (what
    /// the emulated world does not account for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_cpu_s: Option<f64>,
    /// The point's wall time on this host, seconds (on the emulator: dilated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_s: Option<f64>,
    pub measured_step_ms_p50: Option<f64>,
    pub measured_step_ms_p95: Option<f64>,
    /// The step loop's wall time, from the first invocation to the last step's end, s (undilated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_train_s: Option<f64>,
    /// The whole run on Lambda as the run simulator predicts it (first step, wall time, cold starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_run: Option<crate::planner::whole_run::RunPrediction>,
    pub predicted_step_ms_p50: f64,
    pub predicted_step_ms_p95: f64,
    pub projected_step_ms_p50: f64,
    pub projected_step_ms_p95: f64,
    /// Task executions (ran, skipped, failed), cold starts and driver retries over the run.
    pub tasks: Option<u64>,
    pub cold_starts: Option<u64>,
    pub retries: Option<u64>,
    /// Bytes read and written through the store per step.
    pub bytes_per_step: Option<f64>,
    /// (a) measured here.
    pub measured_gb_seconds_per_step: Option<f64>,
    pub measured_cost_usd_per_step: Option<f64>,
    pub measured_cost_usd_per_epoch: Option<f64>,
    /// (a) as the model predicts it for this machine (what `measured_cost` should show).
    pub predicted_cost_usd_per_step: f64,
    /// (b) projected for Lambda.
    pub projected_gb_seconds_per_step: f64,
    pub projected_cost_usd_per_step: f64,
    pub projected_cost_usd_per_epoch: f64,
    /// Reference only: the in-process step on a VM at `pricing.vm_usd_per_hour`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_cost_usd_per_step: Option<f64>,
    pub final_loss: Option<f64>,
    /// sha256 of the final `model.safetensors`.
    pub weights_sha256: Option<String>,
    /// Whether the weights equal the in-process bytes at the point's micro-batch count (the reference, or the
    /// `bytes_references` run at that count).
    pub same_weights_as_reference: Option<bool>,
}

/// The planner's pick among the points against the best measured point, for the sweep's objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    /// `latency` (measured step time at `quantile`) or `cost` (measured cost (a) per step).
    pub objective: String,
    pub quantile: f64,
    /// The point the model ranks best (from its predictions for this machine).
    pub planner_pick: String,
    pub best_measured: String,
    /// The pick's measured value ÷ the best measured value − 1 (0 when the pick is the best; none before
    /// anything was measured).
    pub miss: Option<f64>,
}

/// `results.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub sweep_file: String,
    pub units: usize,
    pub steps_per_epoch: u64,
    /// The most memory a function may have, MB (plan.memory_cap_mb, else the platform's maximum).
    pub memory_cap_mb: u32,
    pub points: Vec<Row>,
    pub reference: Option<Row>,
    /// The reference trained again at each other micro-batch count of the grid: the bytes the points with that
    /// count must reproduce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bytes_references: Vec<Row>,
    pub pick: Option<Pick>,
    /// What the columns mean (copied into every results.json so it stands alone).
    pub legend: Vec<String>,
}

pub fn legend() -> Vec<String> {
    [
        "measured_*: where measured_on says — local: this machine's local invoker; emulator: the Lambda emulator at time dilation D (each function its memory's CPU, memory and bandwidth; times undilated, GB-seconds and cost from its bill) — steady state after warm-up steps",
        "predicted_*: the latency model for the platform the row was measured on (what measured_* should show; on the emulator, Lambda's)",
        "projected_*: the platform model for AWS Lambda (vCPU share by memory, invoke and cold-start latency)",
        "measured_cost (a): measured task durations here x the price of the memory each function was given, + requests + store",
        "projected_cost (b): the platform model's projection for real Lambda",
        "reference: the base config trained in one process; vm_cost prices its step on a VM, its measured_cost on one function of the largest memory",
        "predicted_peak_mb: the model's peak per slice; measured_peak_mb: each slice's function's peak on the emulator",
        "outside_cpu_s: on the emulator, the CPU the driver and the emulator used beside the instances and the store; wall_s: the point's wall time here (dilated)",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(";")
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_default()
}

/// Quotes a CSV field when it must be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: the points, then the reference; lists joined with `;`.
pub fn to_csv(results: &Results) -> String {
    let header = [
        "point",
        "kind",
        "status",
        "slices",
        "bounds",
        "microbatches",
        "recompute",
        "become",
        "steps",
        "memory_mb",
        "predicted_peak_mb",
        "measured_on",
        "measured_peak_mb",
        "measured_step_ms_p50",
        "measured_step_ms_p95",
        "predicted_step_ms_p50",
        "predicted_step_ms_p95",
        "projected_step_ms_p50",
        "projected_step_ms_p95",
        "tasks",
        "cold_starts",
        "retries",
        "bytes_per_step",
        "measured_gb_seconds_per_step",
        "measured_cost_usd_per_step",
        "measured_cost_usd_per_epoch",
        "predicted_cost_usd_per_step",
        "projected_gb_seconds_per_step",
        "projected_cost_usd_per_step",
        "projected_cost_usd_per_epoch",
        "vm_cost_usd_per_step",
        "final_loss",
        "weights_sha256",
        "same_weights_as_reference",
        "outside_cpu_s",
        "wall_s",
        "measured_train_s",
        "projected_train_s",
        "projected_first_step_ms",
        "projected_cold_starts",
        "error",
    ];
    let mut out = header.join(",");
    out.push('\n');
    for r in results
        .points
        .iter()
        .chain(&results.reference)
        .chain(&results.bytes_references)
    {
        let peaks: Vec<String> = r
            .predicted_peak_mb
            .iter()
            .map(|p| format!("{p:.1}"))
            .collect();
        let cells = [
            r.point.clone(),
            r.kind.name().to_string(),
            r.status.name().to_string(),
            r.slices.to_string(),
            list(&r.bounds),
            r.microbatches.to_string(),
            r.recompute.to_string(),
            r.become_successor.to_string(),
            r.steps.to_string(),
            list(&r.memory_mb),
            list(&peaks),
            r.measured_on.label(),
            r.measured_peak_mb.as_ref().map_or(String::new(), |v| {
                list(&v.iter().map(|p| format!("{p:.1}")).collect::<Vec<_>>())
            }),
            opt(&r.measured_step_ms_p50),
            opt(&r.measured_step_ms_p95),
            r.predicted_step_ms_p50.to_string(),
            r.predicted_step_ms_p95.to_string(),
            r.projected_step_ms_p50.to_string(),
            r.projected_step_ms_p95.to_string(),
            opt(&r.tasks),
            opt(&r.cold_starts),
            opt(&r.retries),
            opt(&r.bytes_per_step),
            opt(&r.measured_gb_seconds_per_step),
            opt(&r.measured_cost_usd_per_step),
            opt(&r.measured_cost_usd_per_epoch),
            r.predicted_cost_usd_per_step.to_string(),
            r.projected_gb_seconds_per_step.to_string(),
            r.projected_cost_usd_per_step.to_string(),
            r.projected_cost_usd_per_epoch.to_string(),
            opt(&r.vm_cost_usd_per_step),
            opt(&r.final_loss),
            opt(&r.weights_sha256),
            opt(&r.same_weights_as_reference),
            opt(&r.outside_cpu_s),
            opt(&r.wall_s),
            opt(&r.measured_train_s),
            opt(&r.projected_run.as_ref().map(|x| x.wall_s_for(r.steps))),
            opt(&r.projected_run.as_ref().map(|x| x.first_step_ms)),
            opt(&r
                .projected_run
                .as_ref()
                .map(|x| x.cold_starts + x.warm_pool_instances as f64)),
            opt(&r.error),
        ];
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_one_line_per_row_with_every_column_and_quotes_errors() {
        let row = Row {
            point: "s2".into(),
            kind: RowKind::Point,
            status: RowStatus::Failed,
            error: Some("task F(1,0,0) failed: \"boom\", twice".into()),
            bounds: vec![0, 2, 4],
            memory_mb: vec![512, 1024],
            ..Row::default()
        };
        let results = Results {
            sweep_file: "s.toml".into(),
            units: 4,
            steps_per_epoch: 10,
            memory_cap_mb: 10_240,
            points: vec![row.clone(), row],
            reference: None,
            bytes_references: Vec::new(),
            pick: None,
            legend: legend(),
        };
        let csv = to_csv(&results);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns = lines[0].split(',').count();
        assert!(lines[1].contains("0;2;4") && lines[1].contains("512;1024"));
        assert!(
            lines[1].ends_with("\"task F(1,0,0) failed: \"\"boom\"\", twice\""),
            "{}",
            lines[1]
        );
        // Every column present: the unquoted part splits into the header's count minus the error's own commas.
        let before_error = lines[1].rsplit_once(",\"").map(|(a, _)| a).unwrap_or("");
        assert_eq!(before_error.split(',').count() + 1, columns);
    }
}
