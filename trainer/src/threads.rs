//! The compute thread pool every subcommand sizes once, before any model code runs.

use anyhow::{Context, Result};

/// Start the global rayon pool and tell the matmul kernels how many threads they may use:
/// `requested`, or one per available core when it is 0. Returns the count chosen.
pub(crate) fn set_threads(requested: usize) -> Result<usize> {
    let n = if requested == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        requested
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .context("cannot start the compute thread pool")?;
    models::matmul::set_threads(n);
    Ok(n)
}
