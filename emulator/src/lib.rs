//! Lambda in a box: the Invoke API that `aws-sdk-lambda` calls, the Runtime API that `lambda_runtime` polls and the
//! control-plane calls `trainer deploy` makes, over real worker processes — each confined by a cgroup to the CPU
//! (memory / 1,769 MB vCPU, at most 6) and memory of its function's size, frozen between invocations, reaped after
//! an idle time — and a bill of every invocation in `events.jsonl`, priced as AWS prices it.
//!
//! It owns the emulated platform and nothing of training: it knows no task, store or model, and no crate of the
//! workspace; the trainer (`trainer emulate`) and the tests start it. What it cannot emulate — the real network,
//! other tenants, Firecracker's own overheads, real cold-start tails — is said in the README ("Rehearse on the
//! emulator").
//!
//! Floors, bottom first: `dilation`, `settings`, `billing`, `package`, `http`, `cgroup/` (`files`, `mountinfo` → `v1`, `v2` →
//! `mod`) → `state` → `instance` → `scheduler` → `runtime_api`, `invoke_api`, `control_plane` → `server`.

pub mod billing;
pub mod cgroup;
mod confine;
mod control_plane;
pub mod dilation;
mod http;
pub mod instance;
mod invoke_api;
pub mod network;
pub mod package;
mod runtime_api;
mod scheduler;
mod server;
pub mod settings;
mod state;
mod store;

pub use billing::{Bill, Invocation};
pub use dilation::Dilation;
pub use server::{Emulator, FunctionSpec};
pub use settings::{
    Bandwidth, Confinement, Faults, Latency, Prices, Resources, Settings, StoreSettings,
};
pub use state::Stats;
