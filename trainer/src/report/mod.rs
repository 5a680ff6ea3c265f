//! `trainer report DIR`: a sweep folder (its `results.json`) or a run folder (its `summary.json`) turned into
//! `report.md` with its tables and SVG + PNG plots beside it, and `report.html`, the same in one self-contained file.

mod font;
mod html;
mod plots;

use anyhow::{bail, Context, Result};
use coordinator::config::Config;
use coordinator::sweep::results::{Results, Row, RowStatus};
use plots::{Bar, Groups};
use serde_json::Value;
use slice_worker::event::TaskEvent;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes the report of `dir` into `out` (default: `dir`); returns the path of `report.md`.
pub fn run_report(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let out = out.unwrap_or(dir);
    let is_sweep = dir.join("results.json").is_file();
    if !is_sweep && !dir.join("summary.json").is_file() {
        bail!(
            "{}: neither a sweep folder (results.json) nor a finished run folder (summary.json)",
            dir.display()
        );
    }
    font::ensure()?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let md = if is_sweep {
        sweep_report(dir, out)?
    } else {
        run_report_md(dir, out)?
    };
    let path = out.join("report.md");
    models::checkpoint::write_atomic(&path, md.as_bytes())?;
    let page = html::to_html(&md, out)?;
    models::checkpoint::write_atomic(&out.join("report.html"), page.as_bytes())?;
    Ok(path)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{}: unexpected contents", path.display()))
}

/// `(step, loss)` of a run folder's `metrics.jsonl` (empty if it has none).
fn loss_curve(run: &Path) -> Result<Vec<(f64, f64)>> {
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
fn timeline_bars(events: &[TaskEvent]) -> (Vec<Bar>, u64, u64) {
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

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

fn usd(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3e}"))
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" / ")
}

/// Lines of the charts: points that differ only in their split.
fn groups(rows: &[Row]) -> Groups {
    let mut groups: Groups = Vec::new();
    for r in rows.iter().filter(|r| r.status != RowStatus::Failed) {
        let label = match r.point.split_once('-') {
            Some((_, rest)) => rest.to_string(),
            None => "points".to_string(),
        };
        match groups.iter_mut().find(|(l, _)| *l == label) {
            Some((_, v)) => v.push(r.clone()),
            None => groups.push((label, vec![r.clone()])),
        }
    }
    for (_, v) in &mut groups {
        v.sort_by_key(|r| r.slices);
    }
    groups
}

fn figure(md: &mut String, name: &str, caption: &str) {
    let _ = writeln!(
        md,
        "![{caption}]({name}.png)\n\n*{caption}* ([SVG]({name}.svg))\n"
    );
}

fn sweep_report(dir: &Path, out: &Path) -> Result<String> {
    let results: Results = read_json(&dir.join("results.json"))?;
    let rows = &results.points;
    let groups = groups(rows);
    let mut md = String::new();
    let _ = writeln!(md, "# Sweep report\n");
    let _ = writeln!(
        md,
        "Sweep `{}`: {} points, {} units, {} steps per epoch, memory cap {} MB.\n",
        results.sweep_file,
        rows.len(),
        results.units,
        results.steps_per_epoch,
        results.memory_cap_mb
    );
    let _ = writeln!(md, "What the columns mean:\n");
    for l in &results.legend {
        let _ = writeln!(md, "- {l}");
    }
    let _ = writeln!(md, "\n## Latency and cost\n");
    let _ = writeln!(
        md,
        "| point | status | memory MB | measured p50 / p95 ms | predicted p50 / p95 ms | projected Lambda p50 / p95 ms | (a) measured USD/step | (a) predicted USD/step | (b) projected USD/step | (a) USD/epoch | (b) USD/epoch |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().chain(&results.reference) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {:.3e} | {:.3e} | {} | {:.3e} |",
            r.point,
            r.status,
            list(&r.memory_mb),
            ms(r.measured_step_ms_p50),
            ms(r.measured_step_ms_p95),
            r.predicted_step_ms_p50,
            r.predicted_step_ms_p95,
            r.projected_step_ms_p50,
            r.projected_step_ms_p95,
            usd(r.measured_cost_usd_per_step),
            r.predicted_cost_usd_per_step,
            r.projected_cost_usd_per_step,
            usd(r.measured_cost_usd_per_epoch),
            r.projected_cost_usd_per_epoch,
        );
    }
    let _ = writeln!(md, "\n## What the runs did\n");
    let _ = writeln!(
        md,
        "| point | slices (unit bounds) | micro-batches | recompute | become | tasks | cold starts | retries | bytes/step | GB-s/step (a) | GB-s/step (b) | predicted peak MB | final loss | weights = reference |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows.iter().chain(&results.reference) {
        let peaks: Vec<String> = r
            .predicted_peak_mb
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} |",
            r.point,
            r.slices,
            list(&r.bounds),
            r.microbatches,
            r.recompute,
            r.become_successor,
            r.tasks.map_or("–".into(), |v| v.to_string()),
            r.cold_starts.map_or("–".into(), |v| v.to_string()),
            r.retries.map_or("–".into(), |v| v.to_string()),
            r.bytes_per_step.map_or("–".into(), |v| format!("{:.0}", v)),
            r.measured_gb_seconds_per_step
                .map_or("–".into(), |v| format!("{v:.4}")),
            r.projected_gb_seconds_per_step,
            peaks.join(" / "),
            r.final_loss.map_or("–".into(), |v| format!("{v:.4}")),
            r.same_weights_as_reference
                .map_or("–", |v| if v { "yes" } else { "NO" }),
        );
    }
    if let Some(r) = &results.reference {
        let _ = writeln!(md, "\n## Against one big function and a VM\n");
        let _ = writeln!(
            md,
            "The base config trained in one process here: step p50 {} ms. On one function of {} MB that costs {} per step \
             (a); the platform model projects {:.3e} for one slice through the task runtime on Lambda (b); on a VM \
             (`pricing.vm_usd_per_hour`) the same step costs {}.\n",
            ms(r.measured_step_ms_p50),
            list(&r.memory_mb),
            usd(r.measured_cost_usd_per_step),
            r.projected_cost_usd_per_step,
            usd(r.vm_cost_usd_per_step),
        );
    }
    if let Some(p) = &results.pick {
        let _ = writeln!(md, "\n## The planner's pick\n");
        let miss = p
            .miss
            .map_or("not measured".into(), |m| format!("{:+.1} %", m * 100.0));
        let _ = writeln!(
            md,
            "Objective `{}` at quantile {}: the model ranks **{}** best; the best measured point is **{}**; the pick's \
             measured value is {} from the best.\n",
            p.objective, p.quantile, p.planner_pick, p.best_measured, miss
        );
    }
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.status == RowStatus::Failed)
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n## Failed points\n");
        for r in failed {
            let _ = writeln!(
                md,
                "- **{}**: {}",
                r.point,
                r.error.as_deref().unwrap_or("?")
            );
        }
    }
    let _ = writeln!(md, "\n## Plots\n");
    if !groups.is_empty() {
        plots::save(
            &plots::LatencyVsSlices { groups: &groups },
            out,
            "latency_vs_slices",
        )?;
        figure(&mut md, "latency_vs_slices", "Step latency against slices: measured points, predicted p50–p95 band, Lambda projection");
        plots::save(
            &plots::CostVsSlices {
                groups: &groups,
                reference: results.reference.as_ref(),
            },
            out,
            "cost_vs_slices",
        )?;
        figure(&mut md, "cost_vs_slices", "Cost per step against slices: (a) measured here, (a) predicted, (b) projected for Lambda");
    }
    plots::save(
        &plots::MemoryPerSlice {
            rows,
            cap_mb: f64::from(results.memory_cap_mb),
        },
        out,
        "memory_per_slice",
    )?;
    figure(
        &mut md,
        "memory_per_slice",
        "Memory per slice: given (bars) against the model's peak (dots) and the cap",
    );
    let marks: Vec<(String, f64, f64, bool)> = rows
        .iter()
        .filter_map(|r| {
            Some([
                (
                    r.point.clone(),
                    r.predicted_step_ms_p50,
                    r.measured_step_ms_p50?,
                    false,
                ),
                (
                    r.point.clone(),
                    r.predicted_step_ms_p95,
                    r.measured_step_ms_p95?,
                    true,
                ),
            ])
        })
        .flatten()
        .collect();
    if !marks.is_empty() {
        plots::save(&plots::Quantiles { marks }, out, "quantiles")?;
        figure(
            &mut md,
            "quantiles",
            "Predicted against measured step latency (p50 circles, p95 triangles)",
        );
    }
    let mut curves = Vec::new();
    for r in rows.iter().chain(&results.reference) {
        if let Some(d) = &r.dir {
            let c = loss_curve(&dir.join(d))?;
            if !c.is_empty() {
                curves.push((r.point.clone(), c));
            }
        }
    }
    if !curves.is_empty() {
        plots::save(&plots::LossCurves { curves }, out, "loss")?;
        figure(
            &mut md,
            "loss",
            "Training loss of every point (split runs reproduce the reference's bytes)",
        );
    }
    // The timeline of the planner's pick, else of the point with the most slices.
    let shown = results
        .pick
        .as_ref()
        .and_then(|p| {
            rows.iter()
                .find(|r| r.point == p.planner_pick && r.dir.is_some())
        })
        .or_else(|| {
            rows.iter()
                .filter(|r| r.dir.is_some() && r.status == RowStatus::Done)
                .max_by_key(|r| r.slices)
        });
    if let Some(r) = shown {
        let run = dir.join(r.dir.as_deref().unwrap_or_default());
        if run.join("events.jsonl").is_file() {
            let (bars, first, last) = timeline_bars(&coordinator::run::dir::read_events(&run)?);
            plots::save(
                &plots::Timeline {
                    title: format!("Timeline of {}: steps {first}–{last}", r.point),
                    slices: r.slices,
                    bars,
                },
                out,
                "timeline",
            )?;
            figure(
                &mut md,
                "timeline",
                &format!(
                    "Tasks per slice over time, point {} (cold starts marked)",
                    r.point
                ),
            );
        }
    }
    Ok(md)
}

fn run_report_md(dir: &Path, out: &Path) -> Result<String> {
    let summary: Value = read_json(&dir.join("summary.json"))?;
    let mut md = String::new();
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
    let mut marks = Vec::new();
    if let Some(c) = summary.get("calibration").filter(|v| !v.is_null()) {
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
    }
    if let Some(rt) = summary.get("runtime").and_then(Value::as_object) {
        let _ = writeln!(md, "\n## What the task runtime did\n\n| | |\n|---|---|");
        for (k, v) in rt {
            let _ = writeln!(md, "| {k} | {v} |");
        }
    }
    let is_split = dir.join("events.jsonl").is_file();
    if is_split {
        let events = coordinator::run::dir::read_events(dir)?;
        let cfg_text = std::fs::read_to_string(dir.join("config.resolved.toml")).ok();
        let cfg: Option<Config> = cfg_text.and_then(|t| toml::from_str(&t).ok());
        let plan: Value = read_json(&dir.join("plan.json"))?;
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
            let cost = coordinator::planner::costs::measured_cost(
                &events,
                &memory,
                steps,
                mean,
                &cfg.pricing,
            );
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
        let slices = plan["slices"].as_array().map_or(1, Vec::len);
        let (bars, first, last) = timeline_bars(&events);
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
            &mut md,
            "timeline",
            "Tasks per slice over time (cold starts marked)",
        );
    } else {
        let _ = writeln!(md, "\n## Plots\n");
    }
    if !marks.is_empty() {
        plots::save(&plots::Quantiles { marks }, out, "quantiles")?;
        figure(
            &mut md,
            "quantiles",
            "Predicted against measured: step p50 and p95, task-kind medians",
        );
    }
    let curve = loss_curve(dir)?;
    if !curve.is_empty() {
        plots::save(
            &plots::LossCurves {
                curves: vec![("loss".into(), curve)],
            },
            out,
            "loss",
        )?;
        figure(&mut md, "loss", "Training loss");
    }
    Ok(md)
}
