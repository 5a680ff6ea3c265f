//! The task protocol: a payload small enough for any invoke API, naming the run, the task and the attempt.
//! Everything heavy (weights, activations, gradients, optimizer state) is read from the store.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One task of a training step. Steps count from 1; weights version `v` are the weights after `v` updates, so step
/// `t` reads version `t − 1` and its update writes version `t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum TaskId {
    /// Forward of `slice` on micro-batch `mb` in `step`.
    F { step: u64, slice: usize, mb: usize },
    /// Backward of `slice` on micro-batch `mb` in `step`.
    B { step: u64, slice: usize, mb: usize },
    /// Optimizer update of `slice` at the end of `step`.
    U { step: u64, slice: usize },
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::F { step, slice, mb } => write!(f, "F({step},{slice},{mb})"),
            TaskId::B { step, slice, mb } => write!(f, "B({step},{slice},{mb})"),
            TaskId::U { step, slice } => write!(f, "U({step},{slice})"),
        }
    }
}

/// What an invocation carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPayload {
    pub run: String,
    pub task: TaskId,
    pub attempt: u32,
}

impl TaskPayload {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("plain struct serialises: {e}"))
    }

    /// Parses a payload, naming what is wrong.
    pub fn from_json(text: &str) -> Result<TaskPayload, String> {
        serde_json::from_str(text).map_err(|e| format!("malformed task payload: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_small_and_round_trip() {
        let p = TaskPayload {
            run: "r-1".into(),
            task: TaskId::B {
                step: 12,
                slice: 3,
                mb: 7,
            },
            attempt: 2,
        };
        let json = p.to_json();
        assert!(json.len() < 100, "{json}");
        assert_eq!(TaskPayload::from_json(&json).unwrap(), p);
        assert!(TaskPayload::from_json("{\"run\": 1}")
            .unwrap_err()
            .contains("malformed"));
        assert_eq!(p.task.to_string(), "B(12,3,7)");
    }
}
