//! # e2e-tests
//!
//! End-to-end tests across crates live in `tests/tests/`. This library holds only their support code: a real
//! `redis-server` started on a free loopback port ([`redis_server::RedisServer`]), a local AWS Lambda with real
//! worker processes ([`lambda_emulator::Emulator`]), and a proxy that loses a reply on purpose
//! ([`lossy_proxy::LossyProxy`]). No product code belongs here.

pub mod lambda_emulator;
pub mod lossy_proxy;
pub mod redis_server;
