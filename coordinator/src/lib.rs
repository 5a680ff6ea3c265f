//! # coordinator: plans and drives runs
//!
//! Owns (as later issues land) profiling, the probability model of task latency and cost, the planner that picks the
//! split, the DAG builder (static schedules per leaf) and the run driver (uploads weights, seeds leaf tasks, follows
//! completion events, retries, checkpoints, metrics).
//!
//! Must not know about: the CLI. It reaches the numerical core only through `slice-worker`.

pub use slice_worker;

#[cfg(test)]
mod tests {
    #[test]
    fn reaches_the_worker() {
        // The arrow trainer → coordinator → slice-worker → models holds at the type level.
        let units = crate::slice_worker::models::ModelSpec::LeNet5
            .build()
            .expect("valid spec")
            .units()
            .len();
        assert_eq!(units, 5);
    }
}
