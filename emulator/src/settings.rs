//! What the emulator is told: the resource rules that turn a function's memory into CPU, the account's concurrency,
//! the instance life cycle, prices, and seeded faults. Plain data; the defaults are Lambda's.

use crate::cgroup::Limits;
use std::path::PathBuf;
use std::time::Duration;

/// Lambda's rule from memory to CPU ("at 1,769 MB, a function has the equivalent of one vCPU", up to 6 vCPUs at
/// 10,240 MB; AWS Lambda developer guide, "Configuring function memory") — the `[platform]` table's `mb_per_vcpu`
/// and `max_vcpus`, so that the emulator and the planner's model apply the same rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resources {
    pub mb_per_vcpu: f64,
    pub max_vcpus: f64,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            mb_per_vcpu: 1769.0,
            max_vcpus: 6.0,
        }
    }
}

impl Resources {
    /// The CPU and memory of a function of `memory_mb` (Lambda's MB are MiB).
    pub fn limits(&self, memory_mb: u32) -> Limits {
        Limits {
            vcpus: (f64::from(memory_mb) / self.mb_per_vcpu).min(self.max_vcpus),
            memory_bytes: u64::from(memory_mb) << 20,
        }
    }
}

/// Lambda's prices, USD (us-east-1 list prices, x86_64, first tier — the `[pricing]` table's defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    pub usd_per_gb_s: f64,
    pub usd_per_request: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            usd_per_gb_s: 0.000_016_666_7,
            usd_per_request: 0.000_000_2,
        }
    }
}

/// How instances are confined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Confinement {
    /// cgroups where this machine lets the emulator make them, else resident-memory polling (said once, and
    /// marked on every invocation record).
    #[default]
    Auto,
    /// Resident-memory polling only: no CPU quota, memory checked every [`crate::instance::MEMORY_POLL`].
    RssPolling,
}

/// Everything but the functions.
#[derive(Clone, Debug)]
pub struct Settings {
    pub resources: Resources,
    pub prices: Prices,
    pub confinement: Confinement,
    /// The account's concurrency limit (`GetAccountSettings`' `ConcurrentExecutions`; Lambda's default 1,000).
    pub account_concurrency: usize,
    /// Concurrency kept for functions without a reservation (Lambda: 100; here at most a tenth of the account).
    pub unreserved_minimum: usize,
    /// An instance idle this long is reaped; its function's next invocation is a cold start. Lambda does not
    /// publish its own (observed: minutes); 10 minutes by default.
    pub idle_reap: Duration,
    /// Freeze instances between invocations, as Lambda does (they get no CPU until the next one).
    pub freeze: bool,
    /// Where instance logs, unpacked packages and `events.jsonl` (one line per invocation) go; a temporary folder
    /// when `None`.
    pub dir: Option<PathBuf>,
    /// Address to serve on (`127.0.0.1:0`: a free port).
    pub listen: std::net::SocketAddr,
    pub faults: Faults,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resources: Resources::default(),
            prices: Prices::default(),
            confinement: Confinement::Auto,
            account_concurrency: 1000,
            unreserved_minimum: 100,
            idle_reap: Duration::from_secs(600),
            freeze: true,
            dir: None,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            faults: Faults::default(),
        }
    }
}

/// Seeded fault injection; each rate is a probability per occasion.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    pub seed: u64,
    /// An `Invoke` answered 429 `TooManyRequestsException` (the caller should back off and retry).
    pub throttle_rate: f64,
    /// An `Event` queued twice (asynchronous delivery is at-least-once).
    pub duplicate_rate: f64,
    /// A handler's successful response turned into a function error (the work is done; the platform retries).
    pub error_rate: f64,
    /// An instance killed (SIGKILL) within 20 ms of receiving an invocation.
    pub crash_rate: f64,
    /// An instance stopped (SIGSTOP) on receiving an invocation, so that the function times out.
    pub timeout_rate: f64,
}

impl Faults {
    /// Decision number `n`: true with probability `rate` (a hash of the seed and `n`).
    pub fn draw(&self, n: u64, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let mut x = self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        (x >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_buys_cpu_by_the_platform_rule() {
        let r = Resources::default();
        assert_eq!(r.limits(1769).vcpus, 1.0);
        assert!((r.limits(885).vcpus - 0.5003).abs() < 1e-3);
        assert!((r.limits(10_240).vcpus - 5.789).abs() < 1e-3);
        assert_eq!(r.limits(20_000).vcpus, 6.0);
        assert_eq!(r.limits(256).memory_bytes, 256 * 1024 * 1024);
    }

    #[test]
    fn fault_draws_follow_their_rate() {
        let f = Faults {
            seed: 7,
            ..Faults::default()
        };
        let hits = (0..10_000).filter(|&n| f.draw(n, 0.2)).count();
        assert!((1_800..2_200).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|n| f.draw(n, 0.0)));
    }
}
