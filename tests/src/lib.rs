//! # e2e-tests
//!
//! End-to-end tests across crates live in `tests/tests/`. This library holds only their support code: a real
//! `redis-server` started on a free loopback port ([`redis_server::RedisServer`]) and a local AWS Lambda with real
//! worker processes ([`lambda_emulator::Emulator`]). No product code belongs here.

pub mod lambda_emulator;
pub mod redis_server;
