//! One invocation of the function, whatever hosts it — a container of the local invoker or a worker process under
//! the Lambda runtime: start the tasks its payload relays (while the task runs), run the task, report its
//! completion event, run the successor on its own slice in the same invocation if the plan says *become*, and start
//! every other successor in an invocation of its own — all at once up to the fan-out width, as a tree above it
//! ([`crate::fanout`]).
//!
//! The hosts differ only in how they run the handler (a blocking-pool thread, or inline in a worker process), how
//! they start an invocation (a spawned local delivery, or an asynchronous Lambda `Invoke`) and which faults they
//! inject; [`Host`] says those three things.

use crate::alloc::HeapMark;
use crate::event::{Crash, Status, TaskEvent};
use crate::executor::{Outcome, TaskError};
use crate::fanout;
use crate::governor::{Admission, Governor};
use crate::invoker::Fault;
use crate::store::{Keys, Store};
use crate::task::{TaskId, TaskPayload};
use async_trait::async_trait;
use std::time::{Duration, Instant};

/// What distinguishes one host of the handler from another.
#[async_trait]
pub trait Host: Send + Sync {
    /// Runs the handler for `payload`; returns its result and the CPU time it used (zero if unknown).
    async fn execute(&self, payload: &TaskPayload) -> (Result<Outcome, TaskError>, Duration);

    /// Starts `payload` in an invocation of its own, without waiting for it (an `Event` invoke). An error means
    /// the platform refused it after retries: the run driver's deadline recovers the task.
    async fn start(&self, payload: TaskPayload) -> Result<(), String>;

    /// Whether nothing else runs in this process while a task does, so that the heap's peak during the task is the
    /// task's own (a worker process; not the local invoker, whose containers share one process).
    fn runs_alone(&self) -> bool {
        false
    }

    /// The fault the platform injects into this execution (only the local invoker injects any).
    fn fault(&self, _payload: &TaskPayload) -> Fault {
        Fault::None
    }
}

/// The invocation as the platform started it.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The instance running it, e.g. `slice-1#3` or a Lambda log stream.
    pub worker: String,
    /// Whether this invocation started the instance.
    pub cold: bool,
    /// From the invoke call to the handler's start.
    pub invoke: Duration,
    /// Run a completed successor on the same slice here instead of invoking it.
    pub become_successor: bool,
    /// TTL of the run's event stream.
    pub event_ttl: Duration,
    /// Invokes this invocation has in flight at once before a fan-out becomes a tree ([`crate::fanout`]).
    pub fanout_width: usize,
    /// The account governor, when the run is governed: successors are started with a slot or queued, and this
    /// invocation's slot is renewed while it runs and given back when it ends.
    pub governor: Option<Governor>,
}

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Ended {
    /// Every task it ran succeeded (or was skipped as already done).
    Done,
    /// A task failed; its event says why and the run driver retries it with a new attempt.
    Failed { task: String, reason: String },
    /// The (injected) crash killed the instance: the host must not reuse it.
    Crashed,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Appends `event` to the run's stream. A lost event is recovered by the run driver's deadline, like a lost report
/// on a real platform, so a failure here is only logged by the caller's platform (not retried).
async fn report(store: &dyn Store, run: &str, event: &TaskEvent, ttl: Duration) {
    if let Some(keys) = Keys::new(run) {
        let _ = store
            .append_event(&keys.events(), &event.to_fields(), ttl)
            .await;
    }
}

/// Starts `tasks` (attempt 1 each) as [`fanout::starts`] plans them, every invoke in flight at once; the last
/// refusal, if any invoke was refused after the platform's retries, as the invocation's failure (the refused task is
/// late, not lost: the run driver's deadline invokes it again).
async fn start_all(
    host: &dyn Host,
    run: &str,
    tasks: Vec<TaskId>,
    width: usize,
    governor: Option<&Governor>,
) -> Ended {
    let invokes = fanout::starts(tasks, width)
        .into_iter()
        .map(|s| async move {
            let mut payload = TaskPayload::new(run, s.task, 1).relaying(s.relay);
            if let Some(g) = governor {
                match g.admit(&payload).await {
                    Ok(Admission::Slot(slot)) => payload.slot = Some(slot),
                    // Its driver starts it when a slot is granted; a dead run starts nothing more.
                    Ok(Admission::Queued | Admission::Dead) => return Ok(()),
                    // The store that holds the slots is the store the task needs: unreachable, the task could not
                    // run anyway; the driver's deadline invokes it again.
                    Err(e) => return Err((s.task, format!("the account governor: {e}"))),
                }
            }
            host.start(payload).await.map_err(|reason| (s.task, reason))
        });
    let refused = futures_util::future::join_all(invokes)
        .await
        .into_iter()
        .filter_map(Result::err)
        .next_back();
    match refused {
        // Not the invoking task's failure: its work is done and recorded.
        Some((task, reason)) => Ended::Failed {
            task: task.to_string(),
            reason: format!("could not be started: {reason}"),
        },
        None => Ended::Done,
    }
}

/// Runs `first` and whatever it becomes, and starts the tasks it relays meanwhile; see the module doc.
pub async fn run(
    host: &dyn Host,
    store: &dyn Store,
    mut first: TaskPayload,
    inv: Invocation,
) -> Ended {
    let relay = std::mem::take(&mut first.relay);
    let relayed = relay.len() as u32;
    let run = first.run.clone();
    let governor = inv.governor.clone();
    let slot = first.slot.take();
    // Relayed invokes first in the join, so that they are sent before the task's first computation.
    let work = async {
        tokio::join!(
            start_all(host, &run, relay, inv.fanout_width, governor.as_ref()),
            run_tasks(host, store, first, &inv, relayed)
        )
    };
    let (relayed, ended) = match (&governor, &slot) {
        (Some(g), Some(slot)) => {
            // The slot outlives a long task only if renewed; a worker that dies stops renewing and it expires.
            let renew = async {
                loop {
                    tokio::time::sleep(g.slot_ttl() / 3).await;
                    let _ = g.renew(slot).await;
                }
            };
            tokio::select! {
                done = work => done,
                never = renew => never,
            }
        }
        _ => work.await,
    };
    if let (Some(g), Some(slot)) = (&governor, &slot) {
        // Not given back (the store gone): it expires with its lease. This run's tasks granted the freed slots
        // start from here, without waiting for the driver's poll.
        if let Ok(granted) = g.release(slot, &run).await {
            for task in granted {
                let _ = host.start(task.payload).await;
            }
        }
    }
    match (ended, relayed) {
        (Ended::Done, refused @ Ended::Failed { .. }) => refused,
        (ended, _) => ended,
    }
}

/// Runs `first` and whatever it becomes; `relayed`: the tasks this invocation starts for the one that fired `first`.
async fn run_tasks(
    host: &dyn Host,
    store: &dyn Store,
    first: TaskPayload,
    inv: &Invocation,
    relayed: u32,
) -> Ended {
    let function = first.task.slice();
    let (mut cold, mut became, mut invoke) = (inv.cold, false, inv.invoke);
    let mut next = Some(first);
    let mut ended = Ended::Done;
    while let Some(p) = next.take() {
        let fault = host.fault(&p);
        let mut event = TaskEvent::new(p.task, p.attempt, inv.worker.clone(), Status::Ran);
        event.cold = cold;
        event.became = became;
        event.invoke_ms = ms(invoke);
        if !became {
            event.relayed = relayed;
        }
        if fault == Fault::CrashBefore {
            event.status = Status::Crashed(Crash::Before);
            report(store, &p.run, &event, inv.event_ttl).await;
            return Ended::Crashed;
        }
        let started = Instant::now();
        event.start_unix_ms = unix_ms();
        let heap = host.runs_alone().then(HeapMark::start);
        let (result, cpu) = host.execute(&p).await;
        let run = started.elapsed();
        event.run_ms = ms(run);
        event.cpu_ms = ms(cpu);
        if let Some(used) = heap.and_then(|m| m.read()) {
            event.heap_start_bytes = used.start as u64;
            event.heap_peak_bytes = used.peak_above_start as u64;
        }
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                event.status = if e.is_fatal() {
                    Status::Fatal(e.to_string())
                } else {
                    Status::Failed(e.to_string())
                };
                report(store, &p.run, &event, inv.event_ttl).await;
                return Ended::Failed {
                    task: p.task.to_string(),
                    reason: e.to_string(),
                };
            }
        };
        event.fired = outcome.successors.clone();
        event.status = match &outcome.skipped {
            Some(skip) => Status::Skipped(*skip),
            None => Status::Ran,
        };
        event.weights_cached = outcome.weights_cached;
        event.bytes_in = outcome.bytes_in;
        event.bytes_out = outcome.bytes_out;
        event.fetch_ms = ms(outcome.fetch);
        event.store_ms = ms(outcome.store);
        event.probe_ms = ms(outcome.probe);
        event.record_ms = ms(outcome.record);
        event.compute_ms = ms(run.saturating_sub(outcome.fetch + outcome.store));
        event.loss = outcome.loss;
        event.grad_norm = outcome.grad_norm;
        if fault == Fault::CrashAfter {
            // Outputs written and completions recorded, but the instance dies before reporting or starting
            // anything: the successors this task completed are recovered by the driver's deadline.
            event.status = Status::Crashed(Crash::After);
            report(store, &p.run, &event, inv.event_ttl).await;
            return Ended::Crashed;
        }
        report(store, &p.run, &event, inv.event_ttl).await;
        let mut successors = outcome.successors;
        if inv.become_successor {
            if let Some(i) = successors.iter().position(|t| t.slice() == function) {
                next = Some(TaskPayload::new(&p.run, successors.remove(i), 1));
            }
        }
        if let refused @ Ended::Failed { .. } = start_all(
            host,
            &p.run,
            successors,
            inv.fanout_width,
            inv.governor.as_ref(),
        )
        .await
        {
            ended = refused;
        }
        (cold, became, invoke) = (false, true, Duration::ZERO);
    }
    ended
}
