//! # e2e-tests
//!
//! End-to-end tests across crates live in `tests/tests/`. This library holds only their support code: a real
//! `redis-server` started on a free loopback port ([`redis_server::RedisServer`]), a local AWS Lambda with real
//! worker processes ([`lambda_emulator::Emulator`]), a proxy that loses a reply on purpose
//! ([`lossy_proxy::LossyProxy`]), and moto's server ([`moto_server::MotoServer`]), a third party's model of AWS's
//! control-plane APIs that `trainer deploy` is checked against, and the worker packaged as a deploy uploads it
//! ([`worker_package`]). No product code belongs here.

pub mod lambda_emulator;
pub mod lossy_proxy;
pub mod moto_server;
pub mod redis_server;
pub mod worker_package;
