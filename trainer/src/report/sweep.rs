//! The report of a sweep folder (`results.json`): one function per section, in the order they appear.

use super::format::{figure, list, ms, usd};
use super::inputs::{loss_curve, read_json, timeline_bars};
use super::plots::{self, Groups};
use anyhow::Result;
use coordinator::sweep::results::{Pick, Results, Row, RowStatus};
use std::fmt::Write as _;
use std::path::Path;

/// `report.md` of the sweep in `dir`, its plots written into `out`.
pub(super) fn sweep_report(dir: &Path, out: &Path) -> Result<String> {
    let results: Results = read_json(&dir.join("results.json"))?;
    let mut md = String::new();
    overview(&mut md, &results);
    latency_and_cost(&mut md, &results);
    what_the_runs_did(&mut md, &results);
    if let Some(r) = &results.reference {
        against_one_function(&mut md, r);
    }
    if let Some(p) = &results.pick {
        the_pick(&mut md, p);
    }
    failed_points(&mut md, &results.points);
    let _ = writeln!(md, "\n## Plots\n");
    let groups = groups(&results.points);
    if !groups.is_empty() {
        split_plots(&mut md, out, &results, &groups)?;
    }
    memory_plot(&mut md, out, &results)?;
    quantile_plot(&mut md, out, &results.points)?;
    loss_plot(&mut md, dir, out, &results)?;
    timeline_plot(&mut md, dir, out, &results)?;
    Ok(md)
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

/// The title, what was swept, and the legend of the columns.
fn overview(md: &mut String, results: &Results) {
    let rows = &results.points;
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
}

/// Every point's measured, predicted and projected step time and cost.
fn latency_and_cost(md: &mut String, results: &Results) {
    let rows = &results.points;
    let _ = writeln!(md, "\n## Latency and cost\n");
    let _ = writeln!(
        md,
        "| point | status | memory MB | measured on | measured p50 / p95 ms | predicted p50 / p95 ms | projected Lambda p50 / p95 ms | (a) measured USD/step | (a) predicted USD/step | (b) projected USD/step | (a) USD/epoch | (b) USD/epoch |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows.iter().chain(&results.reference) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} / {} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {:.3e} | {:.3e} | {} | {:.3e} |",
            r.point,
            r.status,
            list(&r.memory_mb),
            r.measured_on.label(),
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
}

/// Every point's split and what its run did.
fn what_the_runs_did(md: &mut String, results: &Results) {
    let rows = &results.points;
    let _ = writeln!(md, "\n## What the runs did\n");
    let _ = writeln!(
        md,
        "| point | slices (unit bounds) | micro-batches | recompute | become | tasks | cold starts | retries | bytes/step | GB-s/step (a) | GB-s/step (b) | predicted peak MB | measured peak MB | final loss | weights = reference |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows.iter().chain(&results.reference) {
        let peaks: Vec<String> = r
            .predicted_peak_mb
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} | {} | {} | {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} |",
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
            r.measured_peak_mb.as_ref().map_or("–".into(), |v| v
                .iter()
                .map(|p| format!("{p:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")),
            r.final_loss.map_or("–".into(), |v| format!("{v:.4}")),
            r.same_weights_as_reference
                .map_or("–", |v| if v { "yes" } else { "NO" }),
        );
    }
}

/// The in-process reference against one big function and a VM.
fn against_one_function(md: &mut String, r: &Row) {
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

/// The planner's pick against the best measured point.
fn the_pick(md: &mut String, p: &Pick) {
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

/// Points whose runs failed, with their errors.
fn failed_points(md: &mut String, rows: &[Row]) {
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
}

/// Step latency and cost against the number of slices.
fn split_plots(md: &mut String, out: &Path, results: &Results, groups: &Groups) -> Result<()> {
    plots::save(&plots::LatencyVsSlices { groups }, out, "latency_vs_slices")?;
    figure(
        md,
        "latency_vs_slices",
        "Step latency against slices: measured points, predicted p50–p95 band, Lambda projection",
    );
    plots::save(
        &plots::CostVsSlices {
            groups,
            reference: results.reference.as_ref(),
        },
        out,
        "cost_vs_slices",
    )?;
    figure(
        md,
        "cost_vs_slices",
        "Cost per step against slices: (a) measured (here, or emulated), (a) predicted, (b) projected for Lambda",
    );
    Ok(())
}

/// Memory given to each slice against the model's peak.
fn memory_plot(md: &mut String, out: &Path, results: &Results) -> Result<()> {
    let rows = &results.points;
    plots::save(
        &plots::MemoryPerSlice {
            rows,
            cap_mb: f64::from(results.memory_cap_mb),
        },
        out,
        "memory_per_slice",
    )?;
    figure(
        md,
        "memory_per_slice",
        "Memory per slice: given (bars) against the model's peak (dots) and the cap",
    );
    Ok(())
}

/// Predicted against measured step quantiles.
fn quantile_plot(md: &mut String, out: &Path, rows: &[Row]) -> Result<()> {
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
            md,
            "quantiles",
            "Predicted against measured step latency (p50 circles, p95 triangles)",
        );
    }
    Ok(())
}

/// The training loss of every point that ran.
fn loss_plot(md: &mut String, dir: &Path, out: &Path, results: &Results) -> Result<()> {
    let rows = &results.points;
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
            md,
            "loss",
            "Training loss of every point (split runs reproduce the reference's bytes)",
        );
    }
    Ok(())
}

/// The task timeline of the planner's pick, else of the point with the most slices.
fn timeline_plot(md: &mut String, dir: &Path, out: &Path, results: &Results) -> Result<()> {
    let rows = &results.points;
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
                md,
                "timeline",
                &format!(
                    "Tasks per slice over time, point {} (cold starts marked)",
                    r.point
                ),
            );
        }
    }
    Ok(())
}
