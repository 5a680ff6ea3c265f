//! Invokers start tasks. The `lambda` invoker sends each to its slice's AWS Lambda function; the `local` invoker (the embedded default) behaves like the platform: each invocation runs
//! the same handler code as the function binary will, in a container that stays warm for its function, at most
//! `concurrency` at a time, with injectable faults; a finished task starts its successors itself — no scheduler in
//! the loop.

mod faults;
pub mod lambda;
mod local;

pub use faults::{Fault, Faults};
pub use lambda::{InvokeError, LambdaClient, LambdaInvoker, LambdaSettings};
pub use local::{LocalInvoker, LocalOptions};

use crate::task::TaskPayload;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Starts a task the way the platform's asynchronous invoke does: returns at once; the task, when done, reports
/// its completion event and starts its successors itself.
pub trait Invoker: Send + Sync {
    fn invoke(&self, payload: TaskPayload);

    /// Why the last invocation the platform refused was refused, if one was (the run driver adds it to a
    /// task's failure: a task that never started is not a slow task).
    fn last_refusal(&self) -> Option<String> {
        None
    }

    /// Starts nothing more and waits (up to `wait`) for the invocations running in this process to end: the run
    /// is over or abandoned, and its task runtime is about to go. Remote invocations are not waited for.
    fn close(&self, wait: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let _ = wait;
        Box::pin(async {})
    }
}
