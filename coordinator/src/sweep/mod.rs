//! `trainer sweep`: trains every point of a grid (split, memory, micro-batches, options) for a fixed number of
//! steps, each into its own run folder under `OUT/points/`, and sets what each run measured beside what the model
//! predicted for it ([`results`]). A sweep resumes where it stopped: a finished point (its `point.json`) is kept, an
//! interrupted one is moved aside and run again, a failed one stays failed unless asked to retry. A failed point is
//! recorded and the sweep goes on.

mod estimate;
pub mod merge;
mod pick;
pub mod platform;
mod predicted;
pub mod results;
pub mod spec;

use crate::config::Config;
use crate::error::{io, RunError};
use crate::job::total_steps;
use crate::planner::costs::{measured_cost, one_function_cost, vm_cost_per_step};
use crate::planner::profile::Profile;
use crate::run::dir::RunDir;
use crate::run::fit;
use crate::run::record::{Observer, Summary};
use pick::pick;
use platform::{PlatformFigures, PointPlatform};
use predicted::{predict, Predicted};
use results::{Results, Row, RowKind, RowStatus};
use serde::{Deserialize, Serialize};
use spec::{Point, Sweep};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// How to run a sweep.
pub struct Options {
    /// The sweep folder.
    pub out: PathBuf,
    /// Predictions only: no training, no run folders.
    pub predict_only: bool,
    /// Run failed points again when resuming.
    pub retry_failed: bool,
}

/// What a finished point leaves in its folder: its row, and the config it ran (by hash) so a resumed sweep with
/// another config does not reuse it.
#[derive(Serialize, Deserialize)]
struct PointRecord {
    config_sha256: String,
    row: Row,
}

const POINT_RECORD: &str = "point.json";

fn config_hash(cfg: &Config) -> String {
    let text =
        toml::to_string(cfg).unwrap_or_else(|e| unreachable!("a parsed config serialises: {e}"));
    crate::run::checkpoint::sha256(text.as_bytes())
}

fn weights_sha(dir: &Path) -> Option<String> {
    data::sha256_file(&dir.join("model.safetensors")).ok()
}

/// Fills a row's measured columns from a finished split run.
fn measured(
    row: &mut Row,
    summary: &Summary,
    dir: &Path,
    cfg: &Config,
    steps_per_epoch: u64,
) -> Result<(), RunError> {
    let (p50, p95) = match &summary.calibration {
        Some(c) => (c.measured.step_ms_p50, c.measured.step_ms_p95),
        None => (summary.step_ms_p50, summary.step_ms_p95),
    };
    row.measured_step_ms_p50 = Some(p50);
    row.measured_step_ms_p95 = Some(p95);
    row.measured_train_s = Some(summary.train_s);
    let steps = summary.steps.max(1);
    if let Some(rt) = &summary.runtime {
        row.tasks = Some(rt.tasks_ran + rt.tasks_skipped + rt.tasks_failed);
        row.cold_starts = Some(rt.cold_starts);
        row.retries = Some(rt.retries);
        row.bytes_per_step = Some((rt.bytes_in + rt.bytes_out) as f64 / steps as f64);
    }
    let mean_step_ms = summary.train_s * 1e3 / steps as f64;
    let cost = measured_cost(
        &crate::run::dir::read_events(dir)?,
        &row.memory_mb,
        steps,
        mean_step_ms,
        &cfg.pricing,
    );
    row.measured_gb_seconds_per_step = Some(cost.gb_seconds_per_step);
    row.measured_cost_usd_per_step = Some(cost.cost_usd_per_step);
    row.measured_cost_usd_per_epoch = Some(cost.cost_usd_per_step * steps_per_epoch as f64);
    row.final_loss = Some(summary.final_train_loss);
    row.weights_sha256 = weights_sha(dir);
    Ok(())
}

/// Replaces a row's bill with what the platform it ran on billed (every invocation's billed duration, init
/// included, at its memory) and adds the platform's own figures.
fn measured_on_platform(
    row: &mut Row,
    figures: &PlatformFigures,
    cfg: &Config,
    mean_step_ms: f64,
    steps_per_epoch: u64,
) {
    let cost = crate::planner::costs::priced(
        figures.gb_seconds,
        figures.requests as f64,
        row.steps,
        mean_step_ms,
        &cfg.pricing,
    );
    row.measured_gb_seconds_per_step = Some(cost.gb_seconds_per_step);
    row.measured_cost_usd_per_step = Some(cost.cost_usd_per_step);
    row.measured_cost_usd_per_epoch = Some(cost.cost_usd_per_step * steps_per_epoch as f64);
    row.cold_starts = Some(figures.cold_starts);
    let functions = cfg
        .lambda
        .functions(Some(row.memory_mb.clone()), row.slices);
    row.measured_peak_mb = Some(
        functions
            .iter()
            .map(|(name, _)| figures.peak_mb.get(name).copied().unwrap_or(f64::NAN))
            .collect(),
    );
    row.outside_cpu_s = Some(figures.outside_cpu_s);
}

/// Moves an unfinished point folder aside (`NAME.interrupted`, replacing an older one) so the point can run again.
fn set_aside(dir: &Path) -> Result<(), RunError> {
    let aside = dir.with_extension("interrupted");
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(io(&aside))?;
    }
    std::fs::rename(dir, &aside).map_err(io(dir))
}

/// The profile the predictions use: the sweep's or base's, else `OUT/profile.json` from an earlier start, else a
/// fresh one of this machine — returned to be kept there (the sweep writes nothing before every point checks out).
fn sweep_profile(
    sweep: &Sweep,
    training: &crate::job::Job,
    out: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(Profile, PathBuf, bool), RunError> {
    let crate::job::Job {
        model, ds, sampler, ..
    } = training;
    if let Some(path) = &sweep.profile {
        return Ok((
            crate::planner::profile::read_profile_for(path, model)?,
            path.clone(),
            false,
        ));
    }
    let kept = out.join("profile.json");
    if kept.exists() {
        return Ok((
            crate::planner::profile::read_profile_for(&kept, model)?,
            kept,
            false,
        ));
    }
    log("profiling this machine for the predictions (kept as profile.json in the sweep folder)");
    let batch = crate::profiling::first_batch(ds.as_ref(), sampler)?;
    let profile = crate::profiling::profile_with(
        &sweep.base,
        &batch,
        crate::profiling::QUICK_PROFILE_REPS,
        &mut |line| log(&format!("  profile: {line}")),
    )?;
    Ok((profile, kept, true))
}

/// What a sweep reports to and checks while it runs: the observer of each fit, one log line per point, the stop
/// flag, and the platform the points train on (none: the local invoker).
pub struct Hooks<'a> {
    pub observer: &'a mut dyn Observer,
    pub log: &'a mut dyn FnMut(&str),
    pub stop: &'a AtomicBool,
    pub platform: Option<&'a mut dyn PointPlatform>,
}

/// Runs (or resumes) `sweep` into `opts.out`; writes `results.json` and `results.csv` after every point. `log`
/// hears one line per point; `observer` sees each fit. A sweep with `[emulator]` needs `hooks.platform`.
pub fn run_sweep(sweep: &Sweep, opts: &Options, mut hooks: Hooks<'_>) -> Result<Results, RunError> {
    if sweep.spec.emulator.is_some() && hooks.platform.is_none() && !opts.predict_only {
        return Err(RunError::Sweep {
            file: sweep.file.clone(),
            reason: "emulator: this caller cannot start the Lambda emulator the sweep names (trainer sweep can)"
                .into(),
        });
    }
    let points = sweep.points()?;
    let out = &opts.out;
    let training = crate::job::Job::open(&sweep.base)?;
    let (profile, profile_path, new_profile) =
        sweep_profile(sweep, &training, out, &mut *hooks.log)?;
    let profile_path = std::path::absolute(&profile_path).map_err(io(&profile_path))?;
    let crate::job::Job { model, sampler, .. } = &training;
    let units = model.units().len();
    let steps_per_epoch = sampler.steps_per_epoch() as u64;
    let planned = plan_points(sweep, &points, &profile_path, &profile, steps_per_epoch)?;
    (hooks.log)(&estimate::wall_time(
        sweep,
        &planned,
        steps_per_epoch,
        |p| out.join("points").join(&p.name).join(POINT_RECORD).exists(),
    ));
    std::fs::create_dir_all(out.join("points")).map_err(io(out))?;
    let record = RunDir::new(out);
    let sweep_text = std::fs::read(&sweep.file).map_err(io(&sweep.file))?;
    record.write_bytes("sweep.toml", &sweep_text)?;
    if new_profile {
        record.write_json("profile.json", &profile)?;
    }
    let mut results = empty_results(sweep, units, steps_per_epoch);
    let save = |results: &Results| -> Result<(), RunError> {
        record.write_json("results.json", results)?;
        record.write_bytes("results.csv", results::to_csv(results).as_bytes())
    };
    if sweep.spec.reference {
        let cfg = sweep.reference();
        let row = reference_row(
            &cfg,
            "reference",
            &profile,
            steps_per_epoch,
            units,
            opts,
            &mut hooks,
        )?;
        results.reference = Some(row);
        save(&results)?;
        // Every point's bytes are checked: the reference again at each other micro-batch count of the grid.
        let others: std::collections::BTreeSet<usize> = points
            .iter()
            .filter_map(|p| match p.config.train.microbatches {
                crate::config::Microbatches::Count(m) => Some(m),
                crate::config::Microbatches::Auto => None,
            })
            .filter(|&m| crate::config::Microbatches::Count(m) != cfg.train.microbatches)
            .collect();
        for m in others {
            let mut at_m = cfg.clone();
            at_m.train.microbatches = crate::config::Microbatches::Count(m);
            let name = format!("reference-m{m}");
            let row = reference_row(
                &at_m,
                &name,
                &profile,
                steps_per_epoch,
                units,
                opts,
                &mut hooks,
            )?;
            results.bytes_references.push(row);
            save(&results)?;
        }
    }
    let references: Vec<Row> = results
        .reference
        .iter()
        .chain(&results.bytes_references)
        .cloned()
        .collect();
    for (i, (point, p)) in planned.iter().enumerate() {
        let label = format!("[{}/{}] {}", i + 1, planned.len(), point.name);
        let steps = total_steps(&point.config, steps_per_epoch);
        if opts.predict_only {
            let row = p.row(
                &point.name,
                RowKind::Point,
                RowStatus::Predicted,
                &point.config,
                &point.bounds,
                steps,
            );
            results.points.push(row);
            continue;
        }
        let dir = out.join("points").join(&point.name);
        let hash = config_hash(&point.config);
        if let Some(row) = finished(&dir, &hash, opts.retry_failed, &point.name)? {
            (hooks.log)(&format!("{label}: {} earlier, kept", row.status));
            results.points.push(row);
            continue;
        }
        if dir.exists() {
            (hooks.log)(&format!(
                "{label}: unfinished folder moved to {}.interrupted",
                point.name
            ));
            set_aside(&dir)?;
        }
        let row = p.row(
            &point.name,
            RowKind::Point,
            RowStatus::Done,
            &point.config,
            &point.bounds,
            steps,
        );
        let trained = train_point(
            point,
            row,
            &label,
            &dir,
            &references,
            steps_per_epoch,
            &mut hooks,
        );
        let row = match trained {
            Ok(row) => row,
            Err(e) => {
                save(&results)?;
                return Err(e);
            }
        };
        RunDir::new(&dir).write_json(
            POINT_RECORD,
            &PointRecord {
                config_sha256: hash,
                row: row.clone(),
            },
        )?;
        results.points.push(row);
        save(&results)?;
    }
    results.pick = pick(&results.points, &sweep.base);
    save(&results)?;
    Ok(results)
}

/// Every point predicted (and its memory checked) before anything trains; each run will predict itself from the
/// sweep's profile instead of profiling again at its start.
fn plan_points(
    sweep: &Sweep,
    points: &[Point],
    profile_path: &Path,
    profile: &Profile,
    steps_per_epoch: u64,
) -> Result<Vec<(Point, Predicted)>, RunError> {
    let mut planned = Vec::new();
    for point in points {
        let mut point = point.clone();
        point.config.plan.profile = Some(profile_path.to_path_buf());
        let p = predict(sweep, &point, profile, steps_per_epoch)?;
        if sweep.spec.emulator.is_some() {
            admit(sweep, &point, &p)?;
        }
        planned.push((point, p));
    }
    Ok(planned)
}

/// A point on the emulator that this host cannot hold at the sweep's dilation is refused before anything runs,
/// with the numbers and the smallest dilation that would do.
fn admit(sweep: &Sweep, point: &Point, p: &Predicted) -> Result<(), RunError> {
    use crate::run::split::admission::{admit, Fleet, Host};
    let cfg = &point.config;
    let fleet = Fleet {
        memory_mb: p.memory_mb().to_vec(),
        planned_peak_mb: Some(p.lambda_peaks_mb()),
        tasks_at_once: Fleet::tasks_at_once(cfg)?,
    };
    admit(&fleet, &cfg.platform, &cfg.emulator, Host::this()).map_err(|reason| RunError::Sweep {
        file: sweep.file.clone(),
        reason: format!("point {}: emulator.dilation: {reason}", point.name),
    })
}

/// The results of a sweep before any point ran.
fn empty_results(sweep: &Sweep, units: usize, steps_per_epoch: u64) -> Results {
    Results {
        sweep_file: sweep.file.display().to_string(),
        units,
        steps_per_epoch,
        memory_cap_mb: sweep
            .base
            .plan
            .memory_cap_mb
            .unwrap_or(sweep.base.platform.max_memory_mb),
        points: Vec::new(),
        reference: None,
        bytes_references: Vec::new(),
        pick: None,
        legend: results::legend(),
    }
}

/// Trains one point into `dir`: its row with what the run measured, or marked failed with the run's error. An error
/// returned stops the sweep (interrupted, or a failure while the stop flag is set).
fn train_point(
    point: &Point,
    mut row: Row,
    label: &str,
    dir: &Path,
    references: &[Row],
    steps_per_epoch: u64,
    hooks: &mut Hooks<'_>,
) -> Result<Row, RunError> {
    (hooks.log)(&format!("{label}: training {} steps", row.steps));
    row.dir = Some(format!("points/{}", point.name));
    let started = std::time::Instant::now();
    let mut cfg = point.config.clone();
    if let Some(platform) = hooks.platform.as_deref_mut() {
        let functions = cfg
            .lambda
            .functions(Some(row.memory_mb.clone()), row.slices);
        platform.start_point(&mut cfg, &functions, &dir.join("emulator"))?;
        row.measured_on = platform.measured_on();
    }
    let trained = fit(&cfg, &RunDir::new(dir), hooks.observer, hooks.stop);
    let figures = match hooks.platform.as_deref_mut() {
        Some(platform) => Some(platform.finish_point()?),
        None => None,
    };
    row.wall_s = Some(started.elapsed().as_secs_f64());
    match trained {
        Ok(summary) => {
            measured(&mut row, &summary, dir, &cfg, steps_per_epoch)?;
            if let Some(f) = &figures {
                let mean_step_ms = summary.train_s * 1e3 / summary.steps.max(1) as f64;
                measured_on_platform(&mut row, f, &cfg, mean_step_ms, steps_per_epoch);
            }
            if let Some(r) = references
                .iter()
                .find(|r| r.microbatches == row.microbatches)
            {
                row.same_weights_as_reference =
                    Some(r.weights_sha256.is_some() && r.weights_sha256 == row.weights_sha256);
            }
        }
        Err(e @ RunError::Interrupted { .. }) => return Err(e),
        Err(e) if hooks.stop.load(Ordering::Relaxed) => return Err(e),
        Err(e) => {
            (hooks.log)(&format!("{label}: failed: {e}"));
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            row.status = RowStatus::Failed;
            row.error = Some(e.to_string());
        }
    }
    Ok(row)
}

/// The row of a point finished earlier in `dir`, if it ran this very config (and did not fail, unless failures
/// are kept).
fn finished(
    dir: &Path,
    hash: &str,
    retry_failed: bool,
    name: &str,
) -> Result<Option<Row>, RunError> {
    let path = dir.join(POINT_RECORD);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&path).map_err(io(&path))?;
    let rec: PointRecord = serde_json::from_slice(&text).map_err(|e| {
        RunError::Mismatch(format!("{}: not a sweep point record: {e}", path.display()))
    })?;
    if rec.config_sha256 != hash {
        return Err(RunError::Mismatch(format!(
            "point {name} in {} ran another config than this sweep gives it now: sweep into a new folder \
             (--out), or delete that point's folder to run it again",
            dir.display()
        )));
    }
    if rec.row.status == RowStatus::Failed && retry_failed {
        set_aside(dir)?;
        return Ok(None);
    }
    Ok(Some(rec.row))
}

/// The in-process run of the base config (`name`: `reference`, or `reference-m{M}` at another micro-batch count):
/// the bytes the points must reproduce, and the one-function and VM comparisons.
fn reference_row(
    cfg: &Config,
    name: &str,
    profile: &Profile,
    steps_per_epoch: u64,
    units: usize,
    opts: &Options,
    hooks: &mut Hooks<'_>,
) -> Result<Row, RunError> {
    let biggest = cfg.plan.memory_cap_mb.unwrap_or(cfg.platform.max_memory_mb);
    let bounds = vec![0, units];
    let steps = total_steps(cfg, steps_per_epoch);
    let mut row = Predicted::of(cfg, profile, steps_per_epoch, &bounds, vec![biggest])?.row(
        name,
        RowKind::Reference,
        RowStatus::Predicted,
        cfg,
        &bounds,
        steps,
    );
    if opts.predict_only {
        return Ok(row);
    }
    let dir = opts.out.join("points").join(name);
    let hash = config_hash(cfg);
    if let Some(done) = finished(&dir, &hash, opts.retry_failed, name)? {
        (hooks.log)(&format!("{name}: {} earlier, kept", done.status));
        return Ok(done);
    }
    if dir.exists() {
        set_aside(&dir)?;
    }
    (hooks.log)(&format!(
        "{name}: training the base config in one process at {} micro-batches, {} steps",
        cfg.train.microbatches, row.steps
    ));
    row.dir = Some(format!("points/{name}"));
    let summary = fit(cfg, &RunDir::new(&dir), hooks.observer, hooks.stop)?;
    row.status = RowStatus::Done;
    row.measured_step_ms_p50 = Some(summary.step_ms_p50);
    row.measured_step_ms_p95 = Some(summary.step_ms_p95);
    let cost = one_function_cost(summary.step_ms_p50, biggest, &cfg.pricing);
    row.measured_gb_seconds_per_step = Some(cost.gb_seconds_per_step);
    row.measured_cost_usd_per_step = Some(cost.cost_usd_per_step);
    row.measured_cost_usd_per_epoch = Some(cost.cost_usd_per_step * steps_per_epoch as f64);
    row.vm_cost_usd_per_step = Some(vm_cost_per_step(summary.step_ms_p50, &cfg.pricing));
    row.final_loss = Some(summary.final_train_loss);
    row.weights_sha256 = weights_sha(&dir);
    RunDir::new(&dir).write_json(
        POINT_RECORD,
        &PointRecord {
            config_sha256: hash,
            row: row.clone(),
        },
    )?;
    Ok(row)
}
