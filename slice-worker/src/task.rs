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

impl TaskId {
    pub fn step(&self) -> u64 {
        match *self {
            TaskId::F { step, .. } | TaskId::B { step, .. } | TaskId::U { step, .. } => step,
        }
    }

    pub fn slice(&self) -> usize {
        match *self {
            TaskId::F { slice, .. } | TaskId::B { slice, .. } | TaskId::U { slice, .. } => slice,
        }
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;

    /// Parses the display form: `F(3,1,0)`, `B(3,1,0)`, `U(3,1)`.
    fn from_str(s: &str) -> Result<TaskId, String> {
        let bad = || {
            format!("{s:?} is not a task id (F(step,slice,mb), B(step,slice,mb) or U(step,slice))")
        };
        let inner = s
            .get(1..)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        let nums = inner
            .split(',')
            .map(|n| n.trim().parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(bad)?;
        let u = |n: u64| usize::try_from(n).map_err(|_| bad());
        match (s.as_bytes()[0], nums.as_slice()) {
            (b'F', &[step, slice, mb]) => Ok(TaskId::F {
                step,
                slice: u(slice)?,
                mb: u(mb)?,
            }),
            (b'B', &[step, slice, mb]) => Ok(TaskId::B {
                step,
                slice: u(slice)?,
                mb: u(mb)?,
            }),
            (b'U', &[step, slice]) => Ok(TaskId::U {
                step,
                slice: u(slice)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// What an invocation carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPayload {
    pub run: String,
    pub task: TaskId,
    pub attempt: u32,
    /// When the invoker sent it, ms since the Unix epoch (set for platforms whose invocation latency cannot be
    /// timed on one clock: the receiving worker reports `now − sent` as the event's `invoke_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_unix_ms: Option<u64>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl TaskPayload {
    /// The payload of `task`'s invocation `attempt` in run `run`, not yet sent.
    pub fn new(run: &str, task: TaskId, attempt: u32) -> TaskPayload {
        TaskPayload {
            run: run.to_string(),
            task,
            attempt,
            sent_unix_ms: None,
        }
    }

    /// The payload marked as sent now.
    pub fn stamped(mut self) -> TaskPayload {
        self.sent_unix_ms = Some(unix_ms());
        self
    }

    /// Time since it was sent (zero if it was not stamped, or the clocks disagree).
    pub fn since_sent(&self) -> std::time::Duration {
        self.sent_unix_ms.map_or(std::time::Duration::ZERO, |sent| {
            std::time::Duration::from_millis(unix_ms().saturating_sub(sent))
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("plain struct serialises: {e}"))
    }

    /// Parses a payload, naming what is wrong.
    pub fn from_json(text: &str) -> Result<TaskPayload, String> {
        let p: TaskPayload =
            serde_json::from_str(text).map_err(|e| format!("malformed task payload: {e}"))?;
        if p.attempt == 0 {
            return Err(format!(
                "malformed task payload: attempt 0 of {} (attempts count from 1)",
                p.task
            ));
        }
        Ok(p)
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
            sent_unix_ms: None,
        };
        let json = p.to_json();
        assert!(json.len() < 100, "{json}");
        assert_eq!(TaskPayload::from_json(&json).unwrap(), p);
        assert!(TaskPayload::from_json("{\"run\": 1}")
            .unwrap_err()
            .contains("malformed"));
        assert_eq!(p.task.to_string(), "B(12,3,7)");
        for t in [
            p.task,
            TaskId::F {
                step: 1,
                slice: 0,
                mb: 0,
            },
            TaskId::U { step: 9, slice: 2 },
        ] {
            assert_eq!(t.to_string().parse::<TaskId>(), Ok(t));
        }
        for bad in ["", "F", "F()", "U(1,2,3)", "X(1,2)", "F(1,2,x)", "F(1,2,3"] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad}");
        }
    }
}
