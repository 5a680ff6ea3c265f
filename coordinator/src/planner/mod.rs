//! The planner: from a measured profile and a platform model to a split.
//!
//! - [`profile`] measures this machine (per-unit compute, store transfers, scheduling overhead) → `profile.json`;
//! - [`platform`] says what a function of a memory size gets and costs (documented, overridable defaults);
//! - [`latency`] turns both into per-task latency distributions and per-slice memory needs;
//! - [`simulate`] gives a step's latency quantiles and cost by Monte Carlo over the step's task graph;
//! - [`search`] picks cuts, slice count and memory per slice for the objective.

pub mod latency;
pub mod platform;
pub mod profile;
pub mod search;
pub mod simulate;
