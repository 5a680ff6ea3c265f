//! Injected platform faults for the local invoker, decided by a hash of (seed, task, attempt, delivery) — never by
//! timing or thread — so a run's faults are the same every time it is run with the same seed.

use crate::task::TaskId;
use std::time::Duration;

/// What the local invoker does wrong on purpose.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a delivery's container crashes, half the time before running the handler, half the time
    /// after it wrote its outputs and recorded its completions but before it reported or started its successors.
    pub fault_rate: f64,
    /// Probability that an invocation is delivered twice (at-least-once delivery).
    pub duplicate_rate: f64,
    /// Extra latency of starting a new container.
    pub cold_start: Duration,
    /// Probability that a delivery is stuck for `stall` before its handler runs (a frozen container): the run
    /// driver's deadline invokes the task again meanwhile, and the stuck delivery wakes up late — re-ordered after
    /// its own retry, perhaps after its step finished.
    pub stall_rate: f64,
    pub stall: Duration,
    pub seed: u64,
}

/// The fate of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    CrashBefore,
    CrashAfter,
}

impl Faults {
    /// Whether `task`'s invocation `attempt` is delivered a second time.
    pub fn duplicated(&self, task: TaskId, attempt: u32) -> bool {
        uniform(self.seed, task, attempt, u32::MAX) < self.duplicate_rate
    }

    /// How long after the first delivery the second one arrives (up to 20 ms): sometimes while the first still
    /// runs, sometimes after it finished.
    pub fn duplicate_delay(&self, task: TaskId, attempt: u32) -> Duration {
        Duration::from_secs_f64(0.020 * uniform(self.seed, task, attempt, u32::MAX - 1))
    }

    /// How long delivery `delivery` of `task`'s invocation `attempt` is stuck before it runs (zero: not stuck).
    pub fn stalled(&self, task: TaskId, attempt: u32, delivery: u32) -> Duration {
        if uniform(self.seed, task, attempt, u32::MAX - 2 - delivery) < self.stall_rate {
            self.stall
        } else {
            Duration::ZERO
        }
    }

    /// What happens to delivery `delivery` (0 = the first) of `task`'s invocation `attempt`.
    pub fn fault(&self, task: TaskId, attempt: u32, delivery: u32) -> Fault {
        let u = uniform(self.seed, task, attempt, delivery);
        if u >= self.fault_rate {
            Fault::None
        } else if u < self.fault_rate / 2.0 {
            Fault::CrashBefore
        } else {
            Fault::CrashAfter
        }
    }
}

/// A uniform number in [0, 1) from the hash of its key.
fn uniform(seed: u64, task: TaskId, attempt: u32, delivery: u32) -> f64 {
    let (kind, step, slice, mb) = match task {
        TaskId::F { step, slice, mb } => (1u64, step, slice, mb),
        TaskId::B { step, slice, mb } => (2, step, slice, mb),
        // A whole slice's update (shard 0) draws what it drew before shards existed.
        TaskId::U { step, slice, shard } => (3, step, slice, shard),
        TaskId::R { step, slice, shard } => (4, step, slice, shard),
        TaskId::C { step } => (5, step, 0, 0),
    };
    let mut h = seed;
    for part in [
        kind,
        step,
        slice as u64,
        mb as u64,
        attempt.into(),
        delivery.into(),
    ] {
        h = splitmix64(h ^ part);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rates_are_met_and_decisions_repeat() {
        let f = Faults {
            fault_rate: 0.2,
            duplicate_rate: 0.3,
            cold_start: Duration::ZERO,
            stall_rate: 0.05,
            stall: Duration::from_millis(7),
            seed: 5,
        };
        let (mut before, mut after, mut dup, mut stuck) = (0, 0, 0, 0);
        let n = 20_000;
        for i in 0..n {
            let t = TaskId::F {
                step: i / 100 + 1,
                slice: (i % 7) as usize,
                mb: (i % 100) as usize,
            };
            match f.fault(t, 1, 0) {
                Fault::CrashBefore => before += 1,
                Fault::CrashAfter => after += 1,
                Fault::None => {}
            }
            dup += usize::from(f.duplicated(t, 1));
            stuck += usize::from(!f.stalled(t, 1, 0).is_zero());
            assert_eq!(f.fault(t, 1, 0), f.fault(t, 1, 0));
        }
        let rate = |k: usize| k as f64 / n as f64;
        assert!((rate(before) - 0.1).abs() < 0.01, "{before}");
        assert!((rate(after) - 0.1).abs() < 0.01, "{after}");
        assert!((rate(dup) - 0.3).abs() < 0.015, "{dup}");
        assert!((rate(stuck) - 0.05).abs() < 0.008, "{stuck}");
        let none = Faults::default();
        assert_eq!(
            none.fault(
                TaskId::U {
                    step: 1,
                    slice: 0,
                    shard: 0
                },
                1,
                0
            ),
            Fault::None
        );
        assert!(!none.duplicated(
            TaskId::U {
                step: 1,
                slice: 0,
                shard: 0
            },
            1
        ));
        assert!(none
            .stalled(
                TaskId::U {
                    step: 1,
                    slice: 0,
                    shard: 0
                },
                1,
                0
            )
            .is_zero());
    }
}
