//! # slice-worker: the function
//!
//! Owns (once the distributed-runtime issue lands) the task protocol, the `Store` trait with its Redis and in-memory
//! implementations, the executor that runs one forward / backward / update task of one slice, the successor logic
//! (fan-out, fan-in claims, "becoming" the next task) and the invokers (local pool, AWS Lambda).
//!
//! Must not know about: the planner or the CLI. It keeps no state between tasks except an explicit warm-container
//! cache of weights keyed by version.
//!
//! Today it only re-exports the numerical core it will execute, so the dependency arrow
//! `trainer → coordinator → slice-worker → models, data` already holds.

pub use data;
pub use models;

#[cfg(test)]
mod tests {
    #[test]
    fn dependency_arrow_reaches_the_numerical_core() {
        let spec = crate::models::ModelSpec::Mlp {
            widths: vec![4, 3, 2],
            activation: crate::models::Activation::Relu,
        };
        assert_eq!(spec.build().expect("valid spec").units().len(), 2);
    }
}
