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
    /// Optimizer update of shard `shard` of `slice`'s parameters at the end of `step` (it also sums the shard's
    /// gradients over the micro-batches, unless the plan clips: then [`TaskId::R`] has).
    U {
        step: u64,
        slice: usize,
        #[serde(default)]
        shard: usize,
    },
    /// Reduce of shard `shard` of `slice` in `step` (plans that clip only): the shard's gradients summed over the
    /// micro-batches, and their chunk sums of squares for the global norm.
    R {
        step: u64,
        slice: usize,
        shard: usize,
    },
    /// The clip barrier of `step` (plans that clip only): the global norm from every reduce shard, the clip factor for
    /// every update shard. It runs on slice 0's function.
    C { step: u64 },
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::F { step, slice, mb } => write!(f, "F({step},{slice},{mb})"),
            TaskId::B { step, slice, mb } => write!(f, "B({step},{slice},{mb})"),
            TaskId::U { step, slice, shard } => write!(f, "U({step},{slice},{shard})"),
            TaskId::R { step, slice, shard } => write!(f, "R({step},{slice},{shard})"),
            TaskId::C { step } => write!(f, "C({step})"),
        }
    }
}

impl TaskId {
    pub fn step(&self) -> u64 {
        match *self {
            TaskId::F { step, .. }
            | TaskId::B { step, .. }
            | TaskId::U { step, .. }
            | TaskId::R { step, .. }
            | TaskId::C { step } => step,
        }
    }

    /// The slice whose function runs the task (slice 0 for the clip barrier).
    pub fn slice(&self) -> usize {
        match *self {
            TaskId::F { slice, .. }
            | TaskId::B { slice, .. }
            | TaskId::U { slice, .. }
            | TaskId::R { slice, .. } => slice,
            TaskId::C { .. } => 0,
        }
    }

    /// Which kind of task this is.
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskId::F { .. } => TaskKind::Forward,
            TaskId::B { .. } => TaskKind::Backward,
            TaskId::U { .. } => TaskKind::Update,
            TaskId::R { .. } => TaskKind::Reduce,
            TaskId::C { .. } => TaskKind::Clip,
        }
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;

    /// Parses the display form: `F(3,1,0)`, `B(3,1,0)`, `U(3,1,0)` (also `U(3,1)`, shard 0, as runs before sharded
    /// updates wrote it), `R(3,1,0)`, `C(3)`.
    fn from_str(s: &str) -> Result<TaskId, String> {
        let bad = || {
            format!(
                "{s:?} is not a task id (F(step,slice,mb), B(step,slice,mb), U(step,slice,shard), \
                 R(step,slice,shard) or C(step))"
            )
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
                shard: 0,
            }),
            (b'U', &[step, slice, shard]) => Ok(TaskId::U {
                step,
                slice: u(slice)?,
                shard: u(shard)?,
            }),
            (b'R', &[step, slice, shard]) => Ok(TaskId::R {
                step,
                slice: u(slice)?,
                shard: u(shard)?,
            }),
            (b'C', &[step]) => Ok(TaskId::C { step }),
            _ => Err(bad()),
        }
    }
}

/// The kinds of task, for what is measured and planned per kind (latency, memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Forward,
    Backward,
    Update,
    Reduce,
    Clip,
}

impl TaskKind {
    pub const ALL: [TaskKind; 5] = [
        TaskKind::Forward,
        TaskKind::Backward,
        TaskKind::Update,
        TaskKind::Reduce,
        TaskKind::Clip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Forward => "forward",
            TaskKind::Backward => "backward",
            TaskKind::Update => "update",
            TaskKind::Reduce => "reduce",
            TaskKind::Clip => "clip",
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
    /// Successors of the task that fired this one, for this invocation to start before it runs its own task: a
    /// wide fan-out started as a tree ([`crate::fanout`]). Each starts as attempt 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relay: Vec<TaskId>,
    /// The account governor's slot this invocation holds ([`crate::governor`]); it gives it back when it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
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
            relay: Vec::new(),
            slot: None,
        }
    }

    /// The payload carrying `relay` for its receiver to start.
    pub fn relaying(mut self, relay: Vec<TaskId>) -> TaskPayload {
        self.relay = relay;
        self
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
            relay: Vec::new(),
            slot: None,
        };
        let json = p.to_json();
        assert!(json.len() < 100, "{json}");
        assert_eq!(TaskPayload::from_json(&json).unwrap(), p);
        // A relay of 31 forwards (the most a 1,024-wide fan-out at width 32 hands one invocation) stays far below
        // Lambda's 256 KB asynchronous payload limit.
        let relay: Vec<TaskId> = (0..31)
            .map(|mb| TaskId::F {
                step: 12,
                slice: 0,
                mb,
            })
            .collect();
        let relaying = p.clone().relaying(relay);
        let json = relaying.to_json();
        assert!(json.len() < 4096, "{} bytes", json.len());
        assert_eq!(TaskPayload::from_json(&json).unwrap(), relaying);
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
            TaskId::U {
                step: 9,
                slice: 2,
                shard: 3,
            },
            TaskId::R {
                step: 9,
                slice: 2,
                shard: 1,
            },
            TaskId::C { step: 4 },
        ] {
            assert_eq!(t.to_string().parse::<TaskId>(), Ok(t));
        }
        // An older run's update id, and payload, name shard 0.
        let old = TaskId::U {
            step: 9,
            slice: 2,
            shard: 0,
        };
        assert_eq!("U(9,2)".parse::<TaskId>(), Ok(old));
        let json = r#"{"run":"r","task":{"kind":"U","step":9,"slice":2},"attempt":1}"#;
        assert_eq!(TaskPayload::from_json(json).unwrap().task, old);
        for bad in [
            "", "F", "F()", "U(1)", "C(1,2)", "R(1,2)", "X(1,2)", "F(1,2,x)", "F(1,2,3",
        ] {
            assert!(bad.parse::<TaskId>().is_err(), "{bad}");
        }
    }
}
