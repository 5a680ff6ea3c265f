//! `trainer calibrate`: measures on deployed functions the constants the latency and cost model assumes of the
//! platform — invoke latency, cold-start time, CPU per memory size, bandwidth to the store per memory size, and
//! their spread — and writes them as a `[platform]` table the planner then uses (`platform.calibrated`).
//!
//! It deploys one function per memory size of its own (`{prefix}-calibrate-{memory}mb`, with the config's
//! `[lambda]` settings and `runtime.store`), measures each in turn, and deletes them (unless `--keep`). On the
//! emulator the constants it recovers are the emulator's `[platform]` plus what the emulator really costs (a new
//! instance's init is a process start on this machine), which `tests/tests/calibrate.rs` checks.
//!
//! Floors: `fit` (samples → medians, a line up to a cap) and `request` (what to measure, what it costs) → `measure`
//! (the probes) → `result` (constants and the file) → this file (deploy, measure, delete).

pub mod fit;
pub mod measure;
pub mod request;
pub mod result;

use crate::config::Config;
use crate::deploy::{self, FunctionPlan};
use crate::error::RunError;
use measure::{Measurements, Prober};
use request::Request;
use slice_worker::invoker::lambda::LambdaClient;
use slice_worker::store::Store;
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// The functions a calibration deploys.
pub fn functions(cfg: &Config, request: &Request) -> Vec<FunctionPlan> {
    request
        .sizes
        .iter()
        .map(|&mb| FunctionPlan {
            name: Request::function(cfg, mb),
            memory_mb: mb,
            slices: Vec::new(),
        })
        .collect()
}

/// Deploys the calibration functions from `zip`, measures them, and deletes them (unless `request.keep`) —
/// whether the measurement succeeded or not; says each step on `progress`.
pub async fn calibrate(
    cfg: &Config,
    request: &Request,
    client: &LambdaClient,
    store: &dyn Store,
    zip: &Path,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<Measurements, RunError> {
    request.validate(&cfg.platform)?;
    let local = measure::local_burn_rate();
    let iterations = (request.burn_ms * local).round().max(1.0) as u64;
    progress(&format!(
        "this machine's core: {local:.0} burn iterations per ms; a burn is {iterations} iterations ({} ms here)",
        request.burn_ms
    ));
    let functions = functions(cfg, request);
    let deployed = deploy::apply(cfg, client, &functions, zip, stop, progress).await;
    let measured = match deployed {
        Ok(()) => {
            let prober = Prober {
                cfg,
                request,
                client,
                store,
                id: format!("{}-{}", std::process::id(), unix_s()),
                iterations,
                stop,
            };
            prober.measure(progress).await.map(|mut m| {
                m.local_burn_per_ms = local;
                m
            })
        }
        Err(e) => Err(e),
    };
    if !request.keep {
        // A stop request must not leave functions behind: delete whatever was made.
        let never = AtomicBool::new(false);
        deploy::destroy(client, &functions, &never, progress).await?;
    }
    measured
}

fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
