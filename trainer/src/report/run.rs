//! The report of a finished run folder (`summary.json`, and for a split run `events.jsonl` and `plan.json`): one
//! function per section, in the order they appear.

use super::format::{figure, list};
use super::inputs::{loss_curve, read_json, timeline_bars};
use super::plots;
use anyhow::Result;
use coordinator::config::Config;
use serde_json::{Map, Value};
use slice_worker::event::TaskEvent;
use std::fmt::Write as _;
use std::path::Path;

/// A point of the predicted-against-measured plot: label, predicted, measured, whether it is a p95.
type Mark = (String, f64, f64, bool);

/// `report.md` of the run in `dir`, its plots written into `out`.
pub(super) fn run_report_md(dir: &Path, out: &Path) -> Result<String> {
    let summary: Value = read_json(&dir.join("summary.json"))?;
    let mut md = String::new();
    summary_table(&mut md, dir, &summary);
    let mut marks = Vec::new();
    if let Some(c) = summary.get("calibration").filter(|v| !v.is_null()) {
        marks = calibration(&mut md, c);
    }
    if let Some(rt) = summary.get("runtime").and_then(Value::as_object) {
        runtime_table(&mut md, rt);
    }
    if dir.join("events.jsonl").is_file() {
        let events = coordinator::run::dir::read_events(dir)?;
        let plan: Value = read_json(&dir.join("plan.json"))?;
        measured_cost(&mut md, dir, &summary, &plan, &events);
        split_timeline(&mut md, out, &plan, &events)?;
    } else {
        let _ = writeln!(md, "\n## Plots\n");
    }
    if !marks.is_empty() {
        quantile_plot(&mut md, out, marks)?;
    }
    loss_plot(&mut md, dir, out)?;
    Ok(md)
}

/// The title and the summary's headline figures.
fn summary_table(md: &mut String, dir: &Path, summary: &Value) {
    let _ = writeln!(md, "# Run report: {}\n", dir.display());
    let _ = writeln!(md, "| | |\n|---|---|");
    for key in [
        "steps",
        "epochs",
        "batch_size",
        "microbatches",
        "params",
        "final_train_loss",
        "final_train_loss_avg50",
        "test_accuracy",
        "val_loss",
        "step_ms_p50",
        "step_ms_p95",
        "samples_per_s",
        "wall_s",
    ] {
        if let Some(v) = summary.get(key).filter(|v| !v.is_null()) {
            let _ = writeln!(md, "| {key} | {v} |");
        }
    }
}

/// The run's prediction against its measurement on this machine; returns the plot's marks.
fn calibration(md: &mut String, c: &Value) -> Vec<Mark> {
    let mut marks = Vec::new();
    let _ = writeln!(md, "\n## Predicted against measured (this machine)\n");
    let _ = writeln!(md, "| | predicted | measured | error |\n|---|---|---|---|");
    for key in [
        "step_ms_p50",
        "step_ms_p95",
        "forward_ms_p50",
        "backward_ms_p50",
        "update_ms_p50",
    ] {
        let p = c["predicted"][key].as_f64().unwrap_or(f64::NAN);
        let m = c["measured"][key].as_f64().unwrap_or(f64::NAN);
        let e = c["relative_error"][key].as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(md, "| {key} | {p:.2} | {m:.2} | {:+.1} % |", e * 100.0);
        if key.starts_with("step") {
            marks.push(("step".to_string(), p, m, key.ends_with("p95")));
        } else {
            marks.push((key.trim_end_matches("_ms_p50").to_string(), p, m, false));
        }
    }
    marks
}

/// The task runtime's counters.
fn runtime_table(md: &mut String, rt: &Map<String, Value>) {
    let _ = writeln!(md, "\n## What the task runtime did\n\n| | |\n|---|---|");
    for (k, v) in rt {
        let _ = writeln!(md, "| {k} | {v} |");
    }
}

/// Cost (a) of a split run: its measured task durations times the memory price of each slice's function.
fn measured_cost(md: &mut String, dir: &Path, summary: &Value, plan: &Value, events: &[TaskEvent]) {
    let cfg_text = std::fs::read_to_string(dir.join("config.resolved.toml")).ok();
    let cfg: Option<Config> = cfg_text.and_then(|t| toml::from_str(&t).ok());
    if let Some(cfg) = cfg {
        let slices = plan["slices"].as_array().map_or(1, Vec::len);
        let memory: Vec<u32> = match plan["planner"]["slices"].as_array() {
            Some(s) => s
                .iter()
                .map(|s| s["memory_mb"].as_u64().unwrap_or(0) as u32)
                .collect(),
            None => vec![cfg.lambda.memory_mb; slices],
        };
        let steps = summary["steps"].as_u64().unwrap_or(1);
        let mean = summary["train_s"].as_f64().unwrap_or(0.0) * 1e3 / steps.max(1) as f64;
        let cost =
            coordinator::planner::costs::measured_cost(events, &memory, steps, mean, &cfg.pricing);
        let _ = writeln!(
            md,
            "\n## Cost (a): measured task durations here × memory price\n"
        );
        let _ = writeln!(
            md,
            "Memory per slice {} MB: {:.4} GB-s and {:.1} requests per step, {:.3e} USD per step (store included).\n",
            list(&memory),
            cost.gb_seconds_per_step,
            cost.requests_per_step,
            cost.cost_usd_per_step
        );
    }
}

/// The task timeline of a split run's last steps.
fn split_timeline(md: &mut String, out: &Path, plan: &Value, events: &[TaskEvent]) -> Result<()> {
    let slices = plan["slices"].as_array().map_or(1, Vec::len);
    let (bars, first, last) = timeline_bars(events);
    plots::save(
        &plots::Timeline {
            title: format!("Timeline: steps {first}–{last}"),
            slices,
            bars,
        },
        out,
        "timeline",
    )?;
    let _ = writeln!(md, "\n## Plots\n");
    figure(
        md,
        "timeline",
        "Tasks per slice over time (cold starts marked)",
    );
    Ok(())
}

/// Predicted against measured: step quantiles and task-kind medians.
fn quantile_plot(md: &mut String, out: &Path, marks: Vec<Mark>) -> Result<()> {
    plots::save(&plots::Quantiles { marks }, out, "quantiles")?;
    figure(
        md,
        "quantiles",
        "Predicted against measured: step p50 and p95, task-kind medians",
    );
    Ok(())
}

/// The training loss.
fn loss_plot(md: &mut String, dir: &Path, out: &Path) -> Result<()> {
    let curve = loss_curve(dir)?;
    if !curve.is_empty() {
        plots::save(
            &plots::LossCurves {
                curves: vec![("loss".into(), curve)],
            },
            out,
            "loss",
        )?;
        figure(md, "loss", "Training loss");
    }
    Ok(())
}
