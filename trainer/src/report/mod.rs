//! `trainer report DIR`: a sweep folder (its `results.json`) or a run folder (its `summary.json`) turned into
//! `report.md` with its tables and SVG + PNG plots beside it, and `report.html`, the same in one self-contained file.
//! `trainer report DIR DIR… --out OUT`: sweeps run in parts, joined into one `results.json` in OUT and reported.

mod font;
mod format;
mod html;
mod inputs;
mod plots;
mod run;
mod sweep;

use anyhow::{bail, Context, Result};
use coordinator::sweep::merge::{merge, Part};
use coordinator::sweep::results::{to_csv, Results};
use run::run_report_md;
use std::path::{Path, PathBuf};
use sweep::sweep_report;

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

/// Joins the sweep folders `dirs` (parts of one grid) into `out`'s `results.json` and `results.csv` and writes the
/// report of them there; returns the path of `report.md`.
pub fn merged_report(dirs: &[PathBuf], out: Option<&Path>) -> Result<PathBuf> {
    let Some(out) = out else {
        bail!("a report of several sweep folders needs --out: where to write the joined results and the report");
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let out_abs = std::path::absolute(out).with_context(|| format!("{}", out.display()))?;
    let mut parts = Vec::new();
    for dir in dirs {
        let folder = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
        if same_folder(&folder, &out_abs) {
            bail!(
                "--out {} is one of the sweep folders being joined: its results.json would be overwritten; \
                 choose another folder",
                out.display()
            );
        }
        let file = dir.join("results.json");
        if !file.is_file() {
            bail!(
                "{}: not a sweep folder (it has no results.json)",
                dir.display()
            );
        }
        let results: Results = inputs::read_json(&file)?;
        parts.push(Part { folder, results });
    }
    let merged = merge(parts)?;
    let json = serde_json::to_vec_pretty(&merged).context("results do not serialise")?;
    models::checkpoint::write_atomic(&out.join("results.json"), &json)?;
    models::checkpoint::write_atomic(&out.join("results.csv"), to_csv(&merged).as_bytes())?;
    run_report(out, None)
}

/// Whether two absolute paths name one folder (through links, where both exist).
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
