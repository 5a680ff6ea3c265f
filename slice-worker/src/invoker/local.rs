//! The `local` invoker: a stand-in for the platform in this process.
//!
//! Like Lambda it has one *function* per slice, each with its own pool of *containers* (a [`Worker`] with its
//! caches); an invocation takes an idle container of its function or starts a new one (a cold start, with an
//! optional delay); at most `concurrency` invocations run at once; an `Event` invocation returns at once. It injects
//! the faults a real platform has — containers that crash before or after doing the work, events delivered twice —
//! from a seeded hash, so a faulty run is reproducible.

use super::faults::{Fault, Faults};
use crate::event::{Status, TaskEvent};
use crate::executor::Worker;
use crate::store::{Keys, Store};
use crate::task::TaskPayload;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// How the local invoker behaves.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// How many invocations may run at once (the account's concurrency limit).
    pub concurrency: usize,
    pub faults: Faults,
    /// The *become* option: a task that completes the inputs of a successor on its own slice (a backward that
    /// completes the update, an update that completes a next-step forward) runs it in the same invocation, in the
    /// same warm container, instead of invoking it.
    pub become_successor: bool,
    /// TTL of the event stream.
    pub event_ttl: Duration,
}

struct Container {
    id: String,
    worker: Arc<Worker>,
}

/// Runs tasks in this process on the tokio runtime.
pub struct LocalInvoker {
    store: Arc<dyn Store>,
    opts: LocalOptions,
    permits: Arc<Semaphore>,
    /// Idle containers per function (slice).
    idle: Mutex<HashMap<usize, Vec<Container>>>,
    started: AtomicU64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl LocalInvoker {
    pub fn new(store: Arc<dyn Store>, opts: LocalOptions) -> Arc<LocalInvoker> {
        Arc::new(LocalInvoker {
            store,
            permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            opts,
            idle: Mutex::new(HashMap::new()),
            started: AtomicU64::new(0),
        })
    }

    /// Starts a task asynchronously (like an `Event` invocation): returns at once. The task, when done, appends its
    /// completion event to the run's stream and starts its successors the same way.
    pub fn invoke(self: &Arc<Self>, payload: TaskPayload) {
        let faults = &self.opts.faults;
        if faults.duplicated(payload.task, payload.attempt) {
            let delay = faults.duplicate_delay(payload.task, payload.attempt);
            self.deliver(payload.clone(), 1, delay);
        }
        self.deliver(payload, 0, Duration::ZERO);
    }

    fn deliver(self: &Arc<Self>, payload: TaskPayload, delivery: u32, delay: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            me.run_invocation(payload, delivery).await;
        });
    }

    /// An idle container of `function`, or a new one (cold).
    async fn container(&self, function: usize) -> (Container, bool) {
        let warm = self
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&function)
            .and_then(Vec::pop);
        if let Some(c) = warm {
            return (c, false);
        }
        if !self.opts.faults.cold_start.is_zero() {
            tokio::time::sleep(self.opts.faults.cold_start).await;
        }
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        let c = Container {
            id: format!("slice-{function}#{n}"),
            worker: Arc::new(Worker::new(self.store.clone())),
        };
        (c, true)
    }

    async fn report(&self, run: &str, event: &TaskEvent) {
        if let Some(keys) = Keys::new(run) {
            // A lost event is recovered by the run driver's deadline, like a lost report on a real platform.
            let _ = self
                .store
                .append_event(&keys.events(), &event.to_fields(), self.opts.event_ttl)
                .await;
        }
    }

    /// Runs the handler on a blocking-pool thread, like a function's own process: the handler computes for
    /// milliseconds, and on an async worker it would hold back the tasks queued behind it there (tokio keeps the
    /// last task a worker spawned in a slot no other worker may take — measured: a started backward waited 11 ms
    /// for the update its own invocation became, beside an idle core).
    async fn run_handler(
        &self,
        worker: &Arc<Worker>,
        payload: &TaskPayload,
    ) -> (
        Result<crate::executor::Outcome, crate::executor::TaskError>,
        Duration,
    ) {
        let (worker, payload) = (worker.clone(), payload.clone());
        let handle = tokio::runtime::Handle::current();
        let run = move || {
            let cpu = crate::cpu_clock::ThreadCpu::start();
            let result = handle.block_on(worker.execute(&payload));
            (result, cpu.elapsed())
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(done) => done,
            // The handler panicked: a crash of the function, reported as its failure.
            Err(e) => (
                Err(crate::executor::TaskError::Crashed(e.to_string())),
                Duration::ZERO,
            ),
        }
    }

    async fn run_invocation(self: Arc<Self>, payload: TaskPayload, delivery: u32) {
        let queued = Instant::now();
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        let function = payload.task.slice();
        let (container, mut cold) = self.container(function).await;
        let mut invoke = queued.elapsed();
        let mut became = false;
        let mut next = Some(payload);
        while let Some(p) = next.take() {
            let fault = self.opts.faults.fault(p.task, p.attempt, delivery);
            let mut event = TaskEvent::new(p.task, p.attempt, container.id.clone(), Status::Ran);
            event.cold = cold;
            event.became = became;
            event.invoke_ms = ms(invoke);
            if fault == Fault::CrashBefore {
                // The container is gone with its caches.
                event.status = Status::Crashed("before".into());
                self.report(&p.run, &event).await;
                return;
            }
            let started = Instant::now();
            event.start_unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3);
            let (result, cpu) = self.run_handler(&container.worker, &p).await;
            let run = started.elapsed();
            event.run_ms = ms(run);
            event.cpu_ms = ms(cpu);
            match result {
                Ok(outcome) => {
                    event.fired = outcome.successors.clone();
                    event.status = match outcome.skipped {
                        Some(skip) => Status::Skipped(skip.as_str().into()),
                        None => Status::Ran,
                    };
                    event.weights_cached = outcome.weights_cached;
                    event.bytes_in = outcome.bytes_in;
                    event.bytes_out = outcome.bytes_out;
                    event.fetch_ms = ms(outcome.fetch);
                    event.store_ms = ms(outcome.store);
                    event.compute_ms = ms(run.saturating_sub(outcome.fetch + outcome.store));
                    event.loss = outcome.loss;
                    if fault == Fault::CrashAfter {
                        event.status = Status::Crashed("after".into());
                        self.report(&p.run, &event).await;
                        return;
                    }
                    self.report(&p.run, &event).await;
                    let mut successors = outcome.successors;
                    if self.opts.become_successor {
                        if let Some(i) = successors.iter().position(|t| t.slice() == function) {
                            let task = successors.remove(i);
                            next = Some(TaskPayload {
                                run: p.run.clone(),
                                task,
                                attempt: 1,
                            });
                        }
                    }
                    for task in successors {
                        self.invoke(TaskPayload {
                            run: p.run.clone(),
                            task,
                            attempt: 1,
                        });
                    }
                }
                Err(e) => {
                    event.status = Status::Failed(e.to_string());
                    self.report(&p.run, &event).await;
                }
            }
            (cold, became, invoke) = (false, true, Duration::ZERO);
        }
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(function)
            .or_default()
            .push(container);
    }
}
