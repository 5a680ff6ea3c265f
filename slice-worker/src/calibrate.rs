//! The probes `trainer calibrate` sends a deployed function to measure what the platform gives it — CPU by a fixed
//! amount of integer work on some threads, the asynchronous invoke latency by the moment the handler starts —
//! and their answers. Each answer carries the function's time dilation (`TRAINER_DILATION`, set by the emulator),
//! so that the caller can say every time in the platform's undilated clock.
//!
//! (The transfer probes, `{"read": KEY}` and `{"write": KEY, "bytes": N}`, are older and answered in `main.rs`.)

use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What a calibration probe asks (`{"probe": {"burn": {...}}}` or `{"probe": {"stamp": {...}}}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Probe {
    /// Run `iterations` steps of a dependent integer chain on each of `threads` threads, and time it.
    Burn { iterations: u64, threads: usize },
    /// Write the handler's start time, Unix ms, into `key` (it lives ten minutes).
    Stamp { key: String },
}

impl Probe {
    /// The invocation payload that asks for it.
    pub fn payload(&self) -> Vec<u8> {
        serde_json::json!({ "probe": self })
            .to_string()
            .into_bytes()
    }
}

/// A burn's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Burned {
    /// Wall time of the whole burn on the function's clock (dilated where the function runs dilated).
    pub ms: f64,
    pub iterations: u64,
    pub threads: usize,
    /// The chains' end values, xor-ed: what keeps the work from being optimised away, and a check that it ran.
    pub checksum: u64,
    pub dilation: f64,
}

/// A stamp's answer (the same time is in the key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub unix_ms: f64,
    pub dilation: f64,
}

/// One thread's chain: xorshift64, each step depending on the last, so that neither the compiler nor the CPU can
/// do two at once — its rate is one core's, whatever the memory system.
fn chain(iterations: u64, seed: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// `iterations` steps on each of `threads` threads (at least one), their end values xor-ed.
pub fn checksum(iterations: u64, threads: usize) -> u64 {
    std::thread::scope(|s| {
        let chains: Vec<_> = (0..threads.max(1) as u64)
            .map(|t| s.spawn(move || chain(iterations, t)))
            .collect();
        chains
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| unreachable!("a chain does not panic"))
            })
            .fold(0, |a, b| a ^ b)
    })
}

/// Runs a burn and times it.
pub fn burn(iterations: u64, threads: usize, dilation: f64) -> Burned {
    let started = Instant::now();
    let checksum = checksum(iterations, threads);
    Burned {
        ms: started.elapsed().as_secs_f64() * 1e3,
        iterations,
        threads: threads.max(1),
        checksum,
        dilation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burn_does_its_work_on_every_thread_and_says_so() {
        // xorshift64 from a seed never returns to zero, and each thread's seed differs: the checksum of two threads
        // is neither thread's alone, and the same work gives the same checksum.
        let one = checksum(1000, 1);
        let two = checksum(1000, 2);
        assert_ne!(one, 0);
        assert_ne!(one, two);
        assert_eq!(two, checksum(1000, 2));
        assert_eq!(one ^ chain(1000, 1), two);
        let b = burn(1000, 0, 2.0);
        assert_eq!((b.threads, b.checksum, b.dilation), (1, one, 2.0));
    }

    #[test]
    fn probes_are_written_as_the_worker_reads_them() {
        let p = Probe::Burn {
            iterations: 5,
            threads: 2,
        };
        let v: serde_json::Value = serde_json::from_slice(&p.payload()).expect("json");
        assert_eq!(v["probe"]["burn"]["threads"], 2);
        let back: Probe = serde_json::from_value(v["probe"].clone()).expect("probe");
        assert_eq!(back, p);
        let stamp = Probe::Stamp { key: "k".into() };
        let v: serde_json::Value = serde_json::from_slice(&stamp.payload()).expect("json");
        assert_eq!(v, serde_json::json!({"probe": {"stamp": {"key": "k"}}}));
        assert!(
            serde_json::from_value::<Probe>(serde_json::json!({"burn": {"iterations": 1}}))
                .is_err()
        );
    }
}
