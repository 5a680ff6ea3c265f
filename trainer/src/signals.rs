//! Stop requests (Ctrl-C, SIGTERM): the first raises a flag the running job checks — a fit finishes its started
//! steps within `runtime.stop_grace_s` and checkpoints, a sweep stops its point that way, a deploy stops between
//! functions — and a second stops the process at once, saying how to go on. Nothing a second request interrupts is
//! left half-written: checkpoints are swapped in by renames, a run folder's logs are cut back on resume, and a
//! sweep's results are written whole per point.

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// The exit status of a process stopped by a second request (128 + SIGINT, as shells report it).
const STOPPED_AT_ONCE: i32 = 130;

/// Installs the handler; `going_on` says how to continue after a stop at once (e.g. the `--resume` command).
/// Returns the flag the first request raises.
pub fn install(job: &str, going_on: String) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let requests = AtomicU32::new(0);
    let job = job.to_string();
    ctrlc::set_handler(move || {
        if requests.fetch_add(1, Ordering::SeqCst) == 0 {
            flag.store(true, Ordering::SeqCst);
            eprintln!("\nstop requested: {job} (press Ctrl-C again to stop at once)");
        } else {
            eprintln!("\nstopped at once. {going_on}");
            std::process::exit(STOPPED_AT_ONCE);
        }
    })
    .context("cannot install the Ctrl-C / SIGTERM handler")?;
    Ok(stop)
}
