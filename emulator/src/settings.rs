//! What the emulator is told: the resource rules that turn a function's memory into CPU, the account's concurrency,
//! the instance life cycle, prices, and seeded faults. Plain data; the defaults are Lambda's.

use crate::cgroup::Limits;
use crate::dilation::Dilation;
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

/// Latencies Lambda adds that a process started on this host does not have, undilated: from an `Invoke` to the
/// handler's turn (the queue and the front end), and a new instance's provisioning before its init (the microVM and
/// the code download; not billed — Lambda bills the init that follows). The `[platform]` table's `invoke_ms` and
/// `cold_start_ms`; none by default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub invoke: Duration,
    pub cold_start: Duration,
}

/// The network bandwidth a function gets by its memory (the `[platform]` table's curve: linear in memory up to a
/// cap), MB/s of 10^6 bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bandwidth {
    pub mb_s_at_1gb: f64,
    pub max_mb_s: f64,
}

impl Default for Bandwidth {
    fn default() -> Self {
        Bandwidth {
            mb_s_at_1gb: 75.0,
            max_mb_s: 600.0,
        }
    }
}

impl Bandwidth {
    /// Bytes per second of a function with `memory_mb`, each way.
    pub fn bytes_per_s(&self, memory_mb: u32) -> f64 {
        (self.mb_s_at_1gb * f64::from(memory_mb) / 1024.0).min(self.max_mb_s) * 1e6
    }
}

/// A Redis server the emulator runs for the functions, in a cgroup of its own, so that it is slowed by the
/// dilation as they are and reachable from their network namespaces.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreSettings {
    /// Its CPU undilated, cores (Redis executes commands on one thread: 1).
    pub vcpus: f64,
    /// The `redis-server` to run.
    pub program: PathBuf,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            vcpus: 1.0,
            program: PathBuf::from("redis-server"),
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
    /// How many times slower the emulated world runs than the one it stands for ([`Dilation`]).
    pub dilation: Dilation,
    pub latency: Latency,
    /// Shape each instance's network to its memory's bandwidth (each instance in a network namespace of its own
    /// behind a shaped link); `None`: this host's loopback, unlimited.
    pub bandwidth: Option<Bandwidth>,
    /// A store to run beside the functions (`None`: the caller brings its own).
    pub store: Option<StoreSettings>,
}

impl Settings {
    /// What an instance of a function of `memory_mb` may use in the dilated world: its memory as it is (memory
    /// cannot be dilated), its CPU divided by the dilation.
    pub fn instance_limits(&self, memory_mb: u32) -> Limits {
        let undilated = self.resources.limits(memory_mb);
        Limits {
            vcpus: self.dilation.slow(undilated.vcpus),
            ..undilated
        }
    }

    /// The shaped rate of an instance's link, bytes per second, in the dilated world (`None`: not shaped).
    pub fn instance_bandwidth(&self, memory_mb: u32) -> Option<f64> {
        self.bandwidth
            .map(|b| self.dilation.slow(b.bytes_per_s(memory_mb)))
    }
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
            dilation: Dilation::default(),
            latency: Latency::default(),
            bandwidth: None,
            store: None,
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
    fn dilation_divides_cpu_and_bandwidth_but_not_memory() {
        let s = Settings {
            dilation: Dilation::new(4.0).expect("valid"),
            bandwidth: Some(Bandwidth::default()),
            ..Settings::default()
        };
        let l = s.instance_limits(1769);
        assert_eq!(l.vcpus, 0.25);
        assert_eq!(l.memory_bytes, 1769 << 20);
        // 75 MB/s at 1,024 MB, ÷ 4.
        assert_eq!(s.instance_bandwidth(1024), Some(75e6 / 4.0));
        assert_eq!(s.instance_bandwidth(10_240), Some(600e6 / 4.0));
        assert_eq!(Settings::default().instance_bandwidth(1024), None);
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
