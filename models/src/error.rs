//! One structured error type for the numerical core.

use thiserror::Error;

/// Everything that can go wrong in `models`: bad specs, tensors of the wrong shape, bad labels, bad checkpoints.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A model spec that cannot be built (e.g. `widths` with fewer than two entries).
    #[error("invalid model spec: {field}: {reason}")]
    Spec { field: String, reason: String },
    /// A tensor reached a unit or layer with a shape it cannot take.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        what: String,
        expected: String,
        got: Vec<usize>,
    },
    /// A class label or token id outside the model's range.
    #[error("{what}: value {value} at position {index} is outside 0..{limit}")]
    Label {
        what: String,
        index: usize,
        value: f64,
        limit: usize,
    },
    /// A checkpoint that is missing a tensor, has an extra one, or stores one with the wrong shape or dtype.
    #[error("checkpoint {source_name}: tensor `{tensor}`: {reason}")]
    Checkpoint {
        source_name: String,
        tensor: String,
        reason: String,
    },
    /// A safetensors buffer that cannot be parsed at all.
    #[error("checkpoint {source_name}: not a valid safetensors file: {reason}")]
    Format { source_name: String, reason: String },
    /// A range of units outside the model.
    #[error("unit range {start}..{end} is not inside 0..{units}")]
    Range {
        start: usize,
        end: usize,
        units: usize,
    },
    /// Reading or writing a checkpoint file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for the crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Shorthand for a shape error.
pub(crate) fn shape_err(
    what: impl Into<String>,
    expected: impl Into<String>,
    got: &[usize],
) -> ModelError {
    ModelError::Shape {
        what: what.into(),
        expected: expected.into(),
        got: got.to_vec(),
    }
}
