//! `trainer report DIR`: a sweep folder (its `results.json`) or a run folder (its `summary.json`) turned into
//! `report.md` with its tables and SVG + PNG plots beside it, and `report.html`, the same in one self-contained file.

mod font;
mod format;
mod html;
mod inputs;
mod plots;
mod run;
mod sweep;

use anyhow::{bail, Context, Result};
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
