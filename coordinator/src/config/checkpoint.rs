//! `[checkpoint]`: how often a run writes its weights.

use serde::{Deserialize, Serialize};

/// `[checkpoint]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Write `model.safetensors` and `optimizer.safetensors` every this many steps (0 = only at the end).
    #[serde(default)]
    pub every: u64,
}
