//! # e2e-tests
//!
//! End-to-end tests across crates live in `tests/tests/`. This library holds only their support code: a real
//! `redis-server` started on a free loopback port ([`redis_server::RedisServer`]). No product code belongs here.

pub mod redis_server;
