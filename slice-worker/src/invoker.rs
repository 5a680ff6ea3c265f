//! Invokers start tasks. The `local` invoker (the embedded default) behaves like the platform: each invocation runs
//! the same handler code as the function binary will, at most `concurrency` at a time, and a finished task starts
//! its successors itself — no scheduler in the loop.

use crate::executor::Worker;
use crate::store::{Keys, Store};
use crate::task::TaskPayload;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Runs tasks in this process on the tokio runtime.
pub struct LocalInvoker {
    worker: Arc<Worker>,
    store: Arc<dyn Store>,
    permits: Arc<Semaphore>,
    event_ttl: Duration,
}

impl LocalInvoker {
    pub fn new(
        store: Arc<dyn Store>,
        concurrency: usize,
        event_ttl: Duration,
    ) -> Arc<LocalInvoker> {
        Arc::new(LocalInvoker {
            worker: Arc::new(Worker::new(store.clone())),
            store,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            event_ttl,
        })
    }

    /// Starts a task asynchronously (like an `Event` invocation): returns at once. The task, when done, appends its
    /// completion event (or its error) to the run's stream and starts its successors the same way.
    pub fn invoke(self: &Arc<Self>, payload: TaskPayload) {
        let me = self.clone();
        tokio::spawn(async move {
            let queued = Instant::now();
            let Ok(_permit) = me.permits.clone().acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            let result = me.worker.execute(&payload).await;
            let Some(keys) = Keys::new(&payload.run) else {
                return;
            };
            let mut fields = vec![
                ("task", payload.task.to_string()),
                ("attempt", payload.attempt.to_string()),
                ("worker", "local".to_string()),
                (
                    "invoke_ms",
                    format!("{:.3}", (started - queued).as_secs_f64() * 1e3),
                ),
                (
                    "run_ms",
                    format!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
                ),
            ];
            match result {
                Ok(outcome) => {
                    fields.push(("bytes_in", outcome.bytes_in.to_string()));
                    fields.push(("bytes_out", outcome.bytes_out.to_string()));
                    if let Some(loss) = outcome.loss {
                        // Exact bits: the driver sums these per step.
                        fields.push(("loss_bits", loss.to_bits().to_string()));
                    }
                    let _ = me
                        .store
                        .append_event(&keys.events(), &fields, me.event_ttl)
                        .await;
                    for task in outcome.successors {
                        me.invoke(TaskPayload {
                            run: payload.run.clone(),
                            task,
                            attempt: 1,
                        });
                    }
                }
                Err(e) => {
                    fields.push(("error", e.to_string()));
                    let _ = me
                        .store
                        .append_event(&keys.events(), &fields, me.event_ttl)
                        .await;
                }
            }
        });
    }
}
