//! The local runtime's own cost per task, measured by running it: a few steps of a model too small to compute
//! anything, cut into hundreds of tasks a step, on the in-memory store through the local invoker at the config's
//! concurrency. A step's time × the cores the tasks could use ÷ its tasks is what the driver, the invoker, the
//! handler and the hops between threads cost one task on this machine — 60–80 µs on a 2-core host, where the
//! profile's store round trips alone are about 2 µs, so that a step of 1,088 tiny tasks was predicted at 3.0 ms
//! and measured at 44.9 (experiments/decisions.md, "Latency model, open errors").
//!
//! `trainer profile` keeps the samples in the profile (`runtime_task_ms`); the local platform's task model adds
//! them to every task.

use super::record::Quiet;
use crate::config::Config;
use crate::error::RunError;
use std::sync::atomic::AtomicBool;

/// Slices and micro-batches of the measuring run: 4 × 32 forwards, 3 × 32 backwards and 4 updates, 228 tasks a step.
const SLICES: usize = 4;
const MICROBATCHES: usize = 32;
/// Steps run; the first is left out (its workers and caches start). At 7 the cost moved 0.057–0.118 ms between
/// profiles on a 2-core host; at 16, 0.063–0.076.
const STEPS: u64 = 16;

/// The measuring run's config: a 4-unit MLP of width 8 on synthetic data, cut into [`SLICES`] slices, the local
/// invoker at `concurrency`, the in-memory store.
fn measuring_config(concurrency: usize, seed: u64) -> Result<Config, RunError> {
    let text = format!(
        r#"
model = {{ kind = "mlp", widths = [8, 8, 8, 8, 8] }}
data = {{ kind = "synthetic", synthetic = {{ features = 8, classes = 8, train_len = 1024, eval_len = 64 }} }}
train = {{ steps = {STEPS}, batch_size = {batch}, microbatches = {MICROBATCHES}, optimizer = "sgd", lr = 0.01, seed = {seed} }}
plan = {{ slices = {SLICES} }}
runtime = {{ concurrency = {concurrency}, store = "memory", invoker = "local" }}
"#,
        batch = MICROBATCHES * 2,
    );
    toml::from_str(&text)
        .map_err(|e| RunError::Mismatch(format!("the task-cost run's config: {e}")))
}

/// Per step after the first, the runtime's cost of one task, ms, measured by a short split run of tiny tasks at
/// `cfg.runtime.concurrency` on `cores` cores.
pub fn measure_task_cost(cfg: &Config, cores: usize) -> Result<Vec<f64>, RunError> {
    let concurrency = cfg.runtime.concurrency.max(1);
    let run_cfg = measuring_config(concurrency, cfg.train.seed)?;
    let folder = std::env::temp_dir().join(format!(
        "trainer-task-cost-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let out = super::dir::RunDir::new(&folder);
    let result = (|| {
        out.create(&run_cfg)?;
        let stop = AtomicBool::new(false);
        let summary = super::split::fit_split(&run_cfg, &out, &mut Quiet, &stop)?;
        let steps = super::dir::read_step_walls(&folder)?;
        let tasks = summary.runtime.as_ref().map_or(0, |r| r.tasks_ran).max(1) as f64
            / summary.steps.max(1) as f64;
        let used = concurrency.min(cores.max(1)) as f64;
        Ok(steps
            .iter()
            .skip(1)
            .map(|wall_ms| wall_ms * used / tasks)
            .collect())
    })();
    // The folder is ours alone; a failure to remove it leaves a temporary folder, nothing else.
    let _ = std::fs::remove_dir_all(&folder);
    result
}
