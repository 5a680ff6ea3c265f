//! The functions' instances and the account's concurrency as a whole-run simulation sees them.
//!
//! Each function keeps its idle instances oldest-idle first — the emulator hands an invocation the instance that
//! has waited longest (`emulator/src/scheduler.rs`), and so spreads work over every instance it has — and an
//! instance idle longer than the reap time is gone: the next invocation that finds no live idle instance starts a
//! new one (a cold start). At most `limit` invocations hold an instance at once on the account; what waits for a
//! slot is the caller's queue.

use std::collections::VecDeque;

/// How an invocation found its instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Warm,
    Cold,
}

/// The instance an invocation got: new or kept, and which (numbered from 0 in the order they started), so that
/// the caller can keep what an instance carries from one invocation to the next (its warm-up, its caches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    pub start: Start,
    pub instance: usize,
}

/// Every function's idle instances and the account's busy slots.
pub struct Fleet {
    /// Per function, its idle instances: when each went idle, and which, oldest first.
    idle: Vec<VecDeque<(f64, usize)>>,
    /// Instances started so far (the next one's number).
    started: usize,
    busy: usize,
    limit: usize,
    reap_ms: f64,
    /// The most invocations that held an instance at once.
    pub peak_busy: usize,
    pub cold_starts: u64,
    /// Idle instances found past the reap time when an invocation looked for one.
    pub reaped: u64,
}

impl Fleet {
    /// `functions` functions with no instance, an account of `limit` concurrent invocations (at least 1), idle
    /// instances reaped after `reap_ms`.
    pub fn new(functions: usize, limit: usize, reap_ms: f64) -> Fleet {
        Fleet {
            idle: vec![VecDeque::new(); functions],
            busy: 0,
            started: 0,
            limit: limit.max(1),
            reap_ms,
            peak_busy: 0,
            cold_starts: 0,
            reaped: 0,
        }
    }

    /// `n` instances of `function` brought up before the run (a warm pool), idle since `at`.
    pub fn bring_up(&mut self, function: usize, n: usize, at: f64) {
        for _ in 0..n {
            self.idle[function].push_back((at, self.started));
            self.started += 1;
        }
    }

    /// How many instances were ever started (warm pool included): every instance number is below it.
    pub fn instances(&self) -> usize {
        self.started
    }

    /// Whether one more invocation may hold an instance now.
    pub fn has_room(&self) -> bool {
        self.busy < self.limit
    }

    /// Takes a slot, and an instance of `function` at `now`: the longest-idle one still alive, else a new one.
    pub fn take(&mut self, function: usize, now: f64) -> Taken {
        self.busy += 1;
        self.peak_busy = self.peak_busy.max(self.busy);
        let idle = &mut self.idle[function];
        while let Some((since, instance)) = idle.pop_front() {
            if now - since <= self.reap_ms {
                return Taken {
                    start: Start::Warm,
                    instance,
                };
            }
            self.reaped += 1;
        }
        self.cold_starts += 1;
        self.started += 1;
        Taken {
            start: Start::Cold,
            instance: self.started - 1,
        }
    }

    /// Gives a slot back; `function`'s `instance` waits idle from `now` unless it died with its invocation.
    pub fn release(&mut self, function: usize, now: f64, lives: bool, instance: usize) {
        self.busy = self.busy.saturating_sub(1);
        if lives {
            self.idle[function].push_back((now, instance));
        }
    }

    /// Instances idle at `now` and not yet past the reap time, over every function.
    pub fn alive_idle(&self, now: f64) -> usize {
        self.idle
            .iter()
            .map(|q| {
                q.iter()
                    .filter(|(since, _)| now - since <= self.reap_ms)
                    .count()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_reused_while_warm_and_started_anew_once_reaped() {
        let mut fleet = Fleet::new(2, 10, 100.0);
        assert_eq!(
            fleet.take(0, 0.0),
            Taken {
                start: Start::Cold,
                instance: 0
            }
        );
        fleet.release(0, 5.0, true, 0);
        // Another function has no instance of its own.
        assert_eq!(
            fleet.take(1, 6.0),
            Taken {
                start: Start::Cold,
                instance: 1
            }
        );
        fleet.release(1, 7.0, true, 1);
        assert_eq!(
            fleet.take(0, 105.0),
            Taken {
                start: Start::Warm,
                instance: 0
            }
        );
        fleet.release(0, 110.0, true, 0);
        let anew = fleet.take(0, 210.1);
        assert_eq!(
            anew,
            Taken {
                start: Start::Cold,
                instance: 2
            },
            "idle 100.1 ms past 100"
        );
        assert_eq!((fleet.cold_starts, fleet.reaped), (3, 1));
        // A crashed instance is not given back.
        fleet.release(0, 220.0, false, 2);
        assert_eq!(fleet.take(0, 221.0).instance, 3);
        assert_eq!(fleet.instances(), 4);
    }

    #[test]
    fn the_account_limit_bounds_busy_slots_and_the_pool_starts_warm() {
        let mut fleet = Fleet::new(1, 2, 1e9);
        fleet.bring_up(0, 2, -1.0);
        assert_eq!(fleet.alive_idle(0.0), 2);
        assert_eq!(
            fleet.take(0, 0.0),
            Taken {
                start: Start::Warm,
                instance: 0
            }
        );
        assert!(fleet.has_room());
        assert_eq!(
            fleet.take(0, 0.0),
            Taken {
                start: Start::Warm,
                instance: 1
            }
        );
        assert!(!fleet.has_room());
        fleet.release(0, 1.0, true, 1);
        assert!(fleet.has_room());
        assert_eq!((fleet.peak_busy, fleet.cold_starts), (2, 0));
    }
}
