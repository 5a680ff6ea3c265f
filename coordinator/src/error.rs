//! Errors of a run, each naming what was wrong and where.

use slice_worker::store::StoreError;
use std::path::PathBuf;

/// Why a run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Model(#[from] models::ModelError),
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("run folder {0} already holds a run (metrics.jsonl exists); choose another --out")]
    RunExists(PathBuf),
    #[error("the model and the data do not fit together: {0}")]
    Mismatch(String),
    #[error("step {step}: the loss is {loss} (not finite); lower train.lr or set train.grad_clip")]
    NotFinite { step: u64, loss: f64 },
    #[error("step {step}: the gradient of {param} is not finite (NaN or infinity); lower train.lr or set train.grad_clip")]
    NotFiniteGradient { step: u64, param: String },
    #[error("step {step}: the weight {param} is not finite (NaN or infinity); lower train.lr or set train.grad_clip")]
    NotFiniteWeight { step: u64, param: String },
    /// A store call failed (the error names the store, its password redacted, and the command).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store answered, but a value the run needs is missing or malformed (the message names the key).
    #[error("{0}")]
    StoreData(String),
    /// No task reported for a long time and none is due: the run cannot go on.
    #[error("{0}")]
    Stalled(String),
    /// The async runtime that runs the tasks could not start.
    #[error("cannot start the task runtime: {0}")]
    Runtime(std::io::Error),
    /// The store restarted (what the run held there is gone) or stayed unreachable; the run folder's checkpoint is
    /// intact, so the run can go on from it.
    #[error("{0}")]
    StoreLost(String),
    #[error("task {task} failed: {reason}")]
    Task { task: String, reason: String },
    /// Stopped by request; `step` is the step the run folder's checkpoint holds (0: none yet, a resumed run starts
    /// from the seed's initial weights).
    #[error("stopped by request; the run folder's checkpoint holds step {step}, where a resumed run goes on")]
    Interrupted { step: u64 },
    /// A sweep file that cannot run (the reason names the key or the point).
    #[error("sweep {}: {reason}", file.display())]
    Sweep { file: PathBuf, reason: String },
    /// A Lambda management call failed (the message names the call and the function).
    #[error("deploy: {0}")]
    Deploy(String),
    /// A calibration that cannot run or whose measurements cannot be fitted (the message names the flag, the
    /// function or the probe).
    #[error("calibrate: {0}")]
    Calibrate(String),
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl RunError {
    /// Whether the store was lost under the run — it restarted, or a call still failed to connect after the store's
    /// own retries — so that the run's state there cannot be relied on, but its checkpoint can.
    pub fn store_lost(&self) -> bool {
        matches!(
            self,
            RunError::StoreLost(_) | RunError::Store(StoreError::Connection { .. })
        )
    }
}
