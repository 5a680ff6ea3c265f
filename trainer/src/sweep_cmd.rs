//! `trainer sweep SWEEP.toml`: runs (or resumes) a sweep and prints where its results are.

use anyhow::Result;
use coordinator::sweep::platform::PointPlatform;
use coordinator::sweep::{results::RowStatus, run_sweep as sweep, spec::Sweep, Hooks, Options};
use std::path::{Path, PathBuf};

/// `runs/sweep-<file stem>`: the same folder every time, so running the sweep again resumes it.
fn default_out(file: &Path) -> PathBuf {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "sweep".into());
    PathBuf::from("runs").join(format!("sweep-{stem}"))
}

pub fn run_sweep(
    file: &Path,
    out: Option<PathBuf>,
    predict_only: bool,
    retry_failed: bool,
    quiet: bool,
) -> Result<()> {
    let spec = Sweep::read(file)?;
    crate::threads::set_threads(spec.base.runtime.threads)?;
    let out = out.unwrap_or_else(|| default_out(file));
    let stop = crate::signals::install(
        "stopping the point in progress (its run checkpoints), then the sweep",
        format!(
            "Results so far are in {}; run the same command again to resume",
            out.display()
        ),
    )?;
    let mut progress = crate::progress::Progress::new(quiet);
    let mut log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let opts = Options {
        out: out.clone(),
        predict_only,
        retry_failed,
    };
    // Points on the emulator need the worker binary: found (or refused) before anything runs.
    let mut emulated = match &spec.spec.emulator {
        Some(e) if !predict_only => {
            Some(crate::sweep_emulator::EmulatedPoints::new(e, &spec.base)?)
        }
        _ => None,
    };
    let hooks = Hooks {
        observer: &mut progress,
        log: &mut log,
        stop: &stop,
        platform: emulated.as_mut().map(|p| p as &mut dyn PointPlatform),
    };
    let results = sweep(&spec, &opts, hooks).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(results so far are in {}; run the same command again to resume)",
            out.display()
        )
    })?;
    let failed = results
        .points
        .iter()
        .filter(|r| r.status == RowStatus::Failed)
        .count();
    if !quiet {
        if let Some(p) = &results.pick {
            let miss = p
                .miss
                .map_or("not measured".into(), |m| format!("{:+.1} %", m * 100.0));
            eprintln!(
                "planner's pick ({}): {}; best measured: {} ({miss})",
                p.objective, p.planner_pick, p.best_measured
            );
        }
        eprintln!(
            "{} points ({failed} failed): {}/results.csv; `trainer report {}` draws the plots",
            results.points.len(),
            out.display(),
            out.display()
        );
    }
    println!("{}", out.join("results.json").display());
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} points failed: their errors are in {}/results.csv (the others finished; \
             --retry-failed runs the failed ones again)",
            results.points.len(),
            out.display()
        );
    }
    Ok(())
}
