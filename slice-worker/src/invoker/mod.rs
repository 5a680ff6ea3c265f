//! Invokers start tasks. The `local` invoker (the embedded default) behaves like the platform: each invocation runs
//! the same handler code as the function binary will, in a container that stays warm for its function, at most
//! `concurrency` at a time, with injectable faults; a finished task starts its successors itself — no scheduler in
//! the loop.

mod faults;
mod local;

pub use faults::{Fault, Faults};
pub use local::{LocalInvoker, LocalOptions};
