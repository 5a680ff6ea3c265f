//! # e2e-tests
//!
//! End-to-end tests across crates live in `tests/tests/`: the coordinator driving the numerical core on real data
//! today; real `redis-server` processes and the local invoker once the distributed runtime lands.
//! This crate has no library code of its own and must not grow any: shared test helpers belong beside the tests.
