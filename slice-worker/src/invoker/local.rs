//! The `local` invoker: a stand-in for the platform in this process.
//!
//! Like Lambda it has one *function* per slice, each with its own pool of *containers* (a [`Worker`] with its
//! caches); an invocation takes an idle container of its function or starts a new one (a cold start, with an
//! optional delay); at most `concurrency` invocations run at once; an `Event` invocation returns at once. It injects
//! the faults a real platform has — containers that crash before or after doing the work, events delivered twice —
//! from a seeded hash, so a faulty run is reproducible.

use super::faults::{Fault, Faults};
use crate::executor::{Outcome, TaskError, Worker};
use crate::handler::{self, Ended, Host, Invocation};
use crate::store::Store;
use crate::task::TaskPayload;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

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
    /// Invokes one invocation has in flight before a fan-out becomes a tree (`runtime.fanout_width`).
    pub fanout_width: usize,
    /// The account governor, when the run is governed (`[qos]`).
    pub governor: Option<crate::governor::Governor>,
}

struct Container {
    id: String,
    worker: Arc<Worker>,
}

/// Runs tasks in this process on the tokio runtime.
pub struct LocalInvoker {
    me: std::sync::Weak<LocalInvoker>,
    store: Arc<dyn Store>,
    opts: LocalOptions,
    permits: Arc<Semaphore>,
    /// Idle containers per function (slice).
    idle: Mutex<HashMap<usize, Vec<Container>>>,
    started: AtomicU64,
    /// Set by [`super::Invoker::close`]: deliveries that have not started are dropped.
    closed: AtomicBool,
    /// Invocations whose handler is running (on a blocking thread that the runtime cannot cancel).
    running: AtomicUsize,
    ended: Notify,
}

/// Counts one running invocation for as long as it lives.
struct Running(Arc<LocalInvoker>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify_waiters();
    }
}

impl LocalInvoker {
    pub fn new(store: Arc<dyn Store>, opts: LocalOptions) -> Arc<LocalInvoker> {
        Arc::new_cyclic(|me| LocalInvoker {
            me: me.clone(),
            store,
            permits: Arc::new(Semaphore::new(opts.concurrency.max(1))),
            opts,
            idle: Mutex::new(HashMap::new()),
            started: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            running: AtomicUsize::new(0),
            ended: Notify::new(),
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
        let delay = delay
            + self
                .opts
                .faults
                .stalled(payload.task, payload.attempt, delivery);
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

    async fn run_invocation(self: Arc<Self>, payload: TaskPayload, delivery: u32) {
        let queued = Instant::now();
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return;
        };
        // Counted before the check, so that `close` either sees this invocation running or it sees `closed`.
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(self.clone());
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        let function = payload.task.slice();
        let (container, cold) = self.container(function).await;
        let invocation = Invocation {
            worker: container.id.clone(),
            cold,
            invoke: queued.elapsed(),
            become_successor: self.opts.become_successor,
            event_ttl: self.opts.event_ttl,
            fanout_width: self.opts.fanout_width,
            governor: self.opts.governor.clone(),
        };
        let host = LocalHost {
            invoker: self.clone(),
            worker: container.worker.clone(),
            delivery,
        };
        let ended = handler::run(&host, self.store.as_ref(), payload, invocation).await;
        // A crashed container is gone with its caches; any other goes back to its function's idle pool.
        if ended != Ended::Crashed {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(function)
                .or_default()
                .push(container);
        }
    }
}

/// One container of the local invoker as the handler's host.
struct LocalHost {
    invoker: Arc<LocalInvoker>,
    worker: Arc<Worker>,
    delivery: u32,
}

#[async_trait]
impl Host for LocalHost {
    /// Runs the handler on a blocking-pool thread, like a function's own process: the handler computes for
    /// milliseconds, and on an async worker it would hold back the tasks queued behind it there (tokio keeps the
    /// task a worker spawned last in that worker's own slot — a started backward waited 11 ms beside an idle core
    /// for the update its own invocation became). The thread is the task's own while it runs, so the store's tensor
    /// calls block it directly ([`crate::store::TaskThread`]). A panic is a crash of the function, reported as its
    /// failure.
    async fn execute(&self, payload: &TaskPayload) -> (Result<Outcome, TaskError>, Duration) {
        let (worker, payload) = (self.worker.clone(), payload.clone());
        let handle = tokio::runtime::Handle::current();
        let run = move || {
            let _own = crate::store::TaskThread::enter();
            let cpu = crate::cpu_clock::ThreadCpu::start();
            let result = handle.block_on(worker.execute(&payload));
            (result, cpu.elapsed())
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(done) => done,
            Err(e) => (Err(TaskError::Crashed(e.to_string())), Duration::ZERO),
        }
    }

    async fn start(&self, payload: TaskPayload) -> Result<(), String> {
        self.invoker.invoke(payload);
        Ok(())
    }

    fn fault(&self, p: &TaskPayload) -> Fault {
        self.invoker
            .opts
            .faults
            .fault(p.task, p.attempt, self.delivery)
    }
}

impl super::Invoker for LocalInvoker {
    fn invoke(&self, payload: TaskPayload) {
        if let Some(me) = self.me.upgrade() {
            LocalInvoker::invoke(&me, payload);
        }
    }

    /// A handler runs on a blocking thread that waits on the runtime: dropping the runtime under it would leave
    /// that thread waiting forever, so the driver closes the invoker and lets running handlers finish first.
    fn close(
        &self,
        wait: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.closed.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + wait;
            while self.running.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                let ended = self.ended.notified();
                // Re-checked after registering, so a handler that ended in between is not missed.
                if self.running.load(Ordering::SeqCst) == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), ended).await;
            }
        })
    }
}
