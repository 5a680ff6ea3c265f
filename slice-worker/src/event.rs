//! The completion event: one per task execution (per delivery, per attempt), appended to the run's Redis Stream by
//! whoever ran the task, read by the run driver and written by it, one JSON line each, to `events.jsonl`.
//!
//! Times are milliseconds: `invoke_ms` from the invocation to the start of the handler (queueing under the
//! concurrency limit plus any cold start), then the handler's `fetch_ms` (reading inputs), `compute_ms` and
//! `store_ms` (writing outputs, recording completions, cleaning up), which add up to `run_ms`; `cpu_ms` is the part
//! of `run_ms` the handler spent on a CPU. Of `fetch_ms`, `probe_ms` is the idempotence probe's round trips, and of
//! `store_ms`, `record_ms` the fan-in record: the protocol's own calls, apart from the tensor bytes.

use crate::task::TaskId;
use rand::RngExt;
use serde::{Deserialize, Serialize};

/// How an execution ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Did the work and recorded its completions.
    Ran,
    /// Did no work.
    Skipped(Skip),
    /// The handler returned an error; the run driver retries with a new attempt number.
    Failed(String),
    /// The task found that the run cannot go on (non-finite gradients): the run driver stops the run with this
    /// reason instead of retrying a computation that would give the same values.
    Fatal(String),
    /// Injected by the local invoker: the container died. The platform's log, not the task's: the run driver does
    /// not act on it (it cannot see crashes on a real platform either), only records it.
    Crashed(Crash),
}

/// Why a task did no work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Its slice's update for the step is done: nothing downstream needs it.
    Superseded,
    /// An earlier attempt or delivery wrote its outputs; this one only re-recorded its completions.
    OutputsExist,
}

/// When an injected crash killed the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crash {
    /// Before the handler ran: nothing was written.
    Before,
    /// After the handler wrote its outputs and recorded its completions, before it reported.
    After,
}

/// One task execution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    #[serde(with = "as_text")]
    pub task: TaskId,
    pub attempt: u32,
    /// The container that ran it, e.g. `slice-1#3`.
    pub worker: String,
    /// Whether this execution started a new container (a cold start).
    pub cold: bool,
    /// Whether it ran in the invocation of its predecessor (the *become* option) instead of its own.
    pub became: bool,
    pub status: Status,
    /// Successors whose last input this execution recorded (each task appears in exactly one event's list).
    #[serde(with = "list_as_text")]
    pub fired: Vec<TaskId>,
    /// Tasks its invocation started for the task that fired this one (a wide fan-out started as a tree,
    /// [`crate::fanout`]); on the invocation's first task only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub relayed: u32,
    pub weights_cached: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub invoke_ms: f64,
    pub fetch_ms: f64,
    pub compute_ms: f64,
    pub store_ms: f64,
    /// Of `fetch_ms`: the idempotence probe (which keys exist). 0 in files written before it existed.
    #[serde(default)]
    pub probe_ms: f64,
    /// Of `store_ms`: recording completions in the successors' dependency sets. 0 in files written before it existed.
    #[serde(default)]
    pub record_ms: f64,
    pub run_ms: f64,
    /// CPU time the handler's thread used (the handler runs on one thread): `run_ms` minus waiting, including
    /// waiting for a core that other tasks share. 0 where unknown.
    #[serde(default)]
    pub cpu_ms: f64,
    /// When the handler started, milliseconds since the Unix epoch (for timelines).
    #[serde(default)]
    pub start_unix_ms: f64,
    /// Heap live when the task started (cached weight versions, the runtime's own), bytes; 0 where unknown (the
    /// local invoker's containers share a process).
    #[serde(default)]
    pub heap_start_bytes: u64,
    /// The most heap the task held at once beyond `heap_start_bytes` — what the planner's task peak predicts.
    #[serde(default)]
    pub heap_peak_bytes: u64,
    /// The micro-batch loss (last slice), exact bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// The step's global gradient norm before clipping (the clip task `C`), exact bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Random, one per report: the same report appended twice to the stream (an `XADD` retried after its reply was
    /// lost) has the same id, another execution another one. 0 in files written before it existed.
    #[serde(default)]
    pub report_id: u64,
}

impl TaskEvent {
    /// An execution of `task` by `worker` that has not reported anything yet: warm, own invocation, no bytes, no
    /// times, nothing fired.
    pub fn new(task: TaskId, attempt: u32, worker: String, status: Status) -> TaskEvent {
        TaskEvent {
            task,
            attempt,
            worker,
            cold: false,
            became: false,
            status,
            fired: Vec::new(),
            relayed: 0,
            weights_cached: false,
            bytes_in: 0,
            bytes_out: 0,
            invoke_ms: 0.0,
            fetch_ms: 0.0,
            compute_ms: 0.0,
            store_ms: 0.0,
            probe_ms: 0.0,
            record_ms: 0.0,
            run_ms: 0.0,
            cpu_ms: 0.0,
            start_unix_ms: 0.0,
            heap_start_bytes: 0,
            heap_peak_bytes: 0,
            loss: None,
            grad_norm: None,
            report_id: rand::rng().random::<u64>().max(1),
        }
    }

    /// The stream fields: one, `e`, holding the JSON (streams store flat string pairs; one JSON field keeps the
    /// schema in one place).
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let json =
            serde_json::to_string(self).unwrap_or_else(|e| unreachable!("plain struct: {e}"));
        vec![("e", json)]
    }

    /// Parses the fields written by [`TaskEvent::to_fields`].
    pub fn from_fields(fields: &[(String, String)]) -> Result<TaskEvent, String> {
        let json = fields
            .iter()
            .find(|(k, _)| k == "e")
            .map(|(_, v)| v)
            .ok_or("event without its `e` field")?;
        serde_json::from_str(json).map_err(|e| format!("malformed event {json:?}: {e}"))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

mod as_text {
    use crate::task::TaskId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &TaskId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TaskId, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod list_as_text {
    use crate::task::TaskId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &[TaskId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ts.iter().map(|t| t.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TaskId>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_stream_fields() {
        let e = TaskEvent {
            task: TaskId::B {
                step: 3,
                slice: 1,
                mb: 2,
            },
            attempt: 2,
            worker: "slice-1#0".into(),
            cold: true,
            became: false,
            status: Status::Skipped(Skip::OutputsExist),
            fired: vec![TaskId::U {
                step: 3,
                slice: 1,
                shard: 2,
            }],
            relayed: 3,
            weights_cached: false,
            bytes_in: 10,
            bytes_out: 20,
            invoke_ms: 0.5,
            fetch_ms: 1.0,
            compute_ms: 2.0,
            store_ms: 0.25,
            probe_ms: 0.125,
            record_ms: 0.0625,
            run_ms: 3.25,
            cpu_ms: 3.0,
            start_unix_ms: 1.8e12,
            heap_start_bytes: 3 << 20,
            heap_peak_bytes: 5 << 20,
            loss: Some(0.1 + 0.2),
            grad_norm: Some(2.5),
            report_id: u64::MAX,
        };
        let fields: Vec<(String, String)> = e
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert!(
            fields[0].1.contains("\"task\":\"B(3,1,2)\""),
            "{}",
            fields[0].1
        );
        let back = TaskEvent::from_fields(&fields).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.loss.map(f64::to_bits), e.loss.map(f64::to_bits));
        assert!(TaskEvent::from_fields(&[]).is_err());
        // Events written before report ids existed still parse (id 0: no copy check).
        let old = fields[0]
            .1
            .replace(",\"report_id\":18446744073709551615", "");
        assert_ne!(old, fields[0].1);
        let back = TaskEvent::from_fields(&[("e".into(), old)]).unwrap();
        assert_eq!(back.report_id, 0);
        assert_ne!(
            TaskEvent::new(e.task, 1, "w".into(), Status::Ran).report_id,
            TaskEvent::new(e.task, 1, "w".into(), Status::Ran).report_id
        );
        assert!(TaskEvent::from_fields(&[("e".into(), "{".into())]).is_err());
    }
}
