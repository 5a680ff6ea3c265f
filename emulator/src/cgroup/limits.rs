//! What an instance may use, and what it used: the numbers its group is given and read back.

/// What one instance may use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// CPU, in cores' worth of time per wall second.
    pub vcpus: f64,
    pub memory_bytes: u64,
}

/// The scheduler period of a CPU quota, µs (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    /// The quota per [`CPU_PERIOD_US`], µs (at least the kernel's 1 ms minimum).
    pub fn cpu_quota_us(&self) -> u64 {
        ((self.vcpus * CPU_PERIOD_US as f64).round() as u64).max(1_000)
    }
}

/// An instance's counters, read from its group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// CPU time of every process in the group, ns.
    pub cpu_ns: u64,
    /// Time the group was held back by its quota, ns.
    pub throttled_ns: u64,
    /// Peak memory charged to the group (`None` where the kernel keeps no peak: cgroup v2 before Linux 5.19).
    pub peak_bytes: Option<u64>,
    /// Processes the kernel killed for the group's memory limit.
    pub oom_kills: u64,
}
