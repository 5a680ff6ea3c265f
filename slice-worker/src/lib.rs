//! # slice-worker: the function
//!
//! Owns the [`store::Store`] trait with its Redis and in-memory implementations, the task graph ([`dag`]), the task
//! protocol and completion events, the executor that runs one forward / backward / update task of one slice, the
//! invocation body every host shares ([`handler`]: report, *become*, start successors — as a tree above a width,
//! [`fanout`]) and the invokers (the local
//! pool with injected faults; AWS Lambda through the SDK). The `slice-worker` binary (`src/main.rs`) is the function:
//! the same handler under the Lambda runtime; [`alloc`] is the allocator setting it and `trainer` start with; [`warm`]
//! is a warm pool's probe on an instance; [`calibrate`] the probes `trainer calibrate` measures a platform with.
//!
//! Must not know about: the planner or the CLI. It keeps no state between tasks except an explicit warm-container
//! cache of weights keyed by version ([`weight_cache`], bounded by the size of the slice it serves).

pub mod alloc;
pub mod calibrate;
pub mod codec;
pub mod cpu_clock;
pub mod dag;
pub mod event;
pub mod executor;
pub mod fanout;
pub mod governor;
pub mod handler;
pub mod invoker;
pub mod plan;
pub mod store;
pub mod task;
pub mod warm;
pub mod weight_cache;
