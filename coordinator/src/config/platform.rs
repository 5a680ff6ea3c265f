//! The platform model: what a function of a given memory size gets (vCPU share, network bandwidth, start-up
//! latency) and what it costs. Every default says where it comes from; `[platform]` and `[pricing]` override any.

use serde::{Deserialize, Serialize};

/// `[platform]`: the function platform (defaults: AWS Lambda, x86_64).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Platform {
    /// `"lambda"`: functions get a CPU share by memory size. `"local"`: the local invoker on this machine —
    /// memory does not buy CPU; at most `cores` tasks compute at once.
    pub kind: PlatformKind,
    /// Smallest and largest memory size, MB (Lambda: 128–10,240 MB; AWS Lambda developer guide, "Configuring
    /// function memory").
    pub min_memory_mb: u32,
    pub max_memory_mb: u32,
    /// The planner's memory grid step, MB (Lambda accepts any 1 MB step; 64 MB keeps the search small).
    pub memory_step_mb: u32,
    /// Memory per vCPU: "at 1,769 MB, a function has the equivalent of one vCPU" (AWS Lambda developer guide).
    pub mb_per_vcpu: f64,
    /// Most vCPUs a function can have: 6 at 10,240 MB (same guide).
    pub max_vcpus: f64,
    /// Network bandwidth of a function, MB/s, growing linearly with memory up to a cap. Assumption from published
    /// measurements of Lambda-to-ElastiCache/S3 throughput (roughly 50–80 MB/s for small functions, ~600 MB/s at the
    /// top); override with your own measurement.
    pub bandwidth_mb_s_at_1gb: f64,
    pub max_bandwidth_mb_s: f64,
    /// Time from an asynchronous `Invoke` to the handler starting on a warm function, ms (assumption; the local
    /// invoker's is measured by `trainer profile`).
    pub invoke_ms: f64,
    /// Probability that an invocation of a steady step lands on a new container, and a cold start's extra latency,
    /// ms (assumption for a small Rust binary on `provided.al2023`). The probability is 0 by default: the cold
    /// starts a run has come from its instances' life cycle — the first step without a warm pool, growing past the
    /// instances it has, reaping after `idle_reap_s` — which the whole-run simulator draws; charged as 1 % of every
    /// invocation it put cold starts into the p95 of steps that had none (0 of 1,400 tasks cold in an emulated
    /// run, experiments/sweeps_emulated). Set it for an account whose instances are recycled under a steady load.
    pub cold_start_probability: f64,
    pub cold_start_ms: f64,
    /// How long an idle instance is kept before it is reaped, s. AWS does not document it; 600 is the emulator's
    /// default (`trainer emulate --idle-reap-s`). Used by the whole-run simulator: a run that pauses longer than
    /// this between invocations of a function starts its instances cold again.
    pub idle_reap_s: f64,
    /// A new instance's warm-up: its invocation after `n` others runs `1 + warmup_extra · exp(−n / warmup_tasks)`
    /// times its steady time (heap growth, store connections, caches). Measured on the emulator: an instance's
    /// first tasks ran 1.74, 1.51, 1.27, 1.28, 1.06 × the median of their kind, then 1.0 (8 instances, 280
    /// tasks; experiments/run_simulator); used by the whole-run simulator, not by the steady step's.
    pub warmup_extra: f64,
    pub warmup_tasks: f64,
    /// Memory the worker process needs besides the tensors the model counts, MB: binary, runtime, SDK client, Redis
    /// connections, and the pages the allocator keeps (it never returns freed memory, `slice_worker::alloc`). The
    /// MNIST MLP's workers held 13–40 MB more than their counted tensors, the most at the smallest slices
    /// (experiments/README.md, Lambda memory); 64 covers that with room.
    pub runtime_mb: f64,
    /// `"local"` only: how many tasks can compute at once (this machine's cores; 0 = detect).
    pub cores: usize,
    /// A file `trainer calibrate` wrote: its `[platform]` keys fill those this table does not set (resolved when
    /// the config is read, relative to the config's folder; kept as an absolute path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<std::path::PathBuf>,
}

/// Which platform the model describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    #[default]
    Lambda,
    Local,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            kind: PlatformKind::Lambda,
            min_memory_mb: 128,
            max_memory_mb: 10_240,
            memory_step_mb: 64,
            mb_per_vcpu: 1769.0,
            max_vcpus: 6.0,
            bandwidth_mb_s_at_1gb: 75.0,
            max_bandwidth_mb_s: 600.0,
            invoke_ms: 25.0,
            cold_start_probability: 0.0,
            cold_start_ms: 300.0,
            idle_reap_s: 600.0,
            warmup_extra: 0.75,
            warmup_tasks: 2.0,
            runtime_mb: 64.0,
            cores: 0,
            calibrated: None,
        }
    }
}

/// `[pricing]`, USD (defaults: AWS us-east-1 list prices, x86_64, from the Lambda and ElastiCache pricing pages).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pricing {
    /// Per GB-second of function time ($0.0000166667, first pricing tier).
    pub usd_per_gb_s: f64,
    /// Per request ($0.20 per million).
    pub usd_per_request: f64,
    /// The Redis node per hour (ElastiCache `cache.r7g.large`, $0.219 on demand).
    pub store_usd_per_hour: f64,
    /// A VM for comparisons, per hour (EC2 `c7i.2xlarge`, $0.357 on demand).
    pub vm_usd_per_hour: f64,
}

impl Default for Pricing {
    fn default() -> Self {
        Pricing {
            usd_per_gb_s: 0.000_016_666_7,
            usd_per_request: 0.000_000_2,
            store_usd_per_hour: 0.219,
            vm_usd_per_hour: 0.357,
        }
    }
}

impl Pricing {
    /// Every price finite and not negative; errors name the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (k, v) in [
            ("usd_per_gb_s", self.usd_per_gb_s),
            ("usd_per_request", self.usd_per_request),
            ("store_usd_per_hour", self.store_usd_per_hour),
            ("vm_usd_per_hour", self.vm_usd_per_hour),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((
                    format!("pricing.{k}"),
                    format!("must be a price of 0 or more, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

impl Platform {
    /// The memory sizes the planner considers, MB.
    pub fn memory_grid(&self, cap_mb: Option<u32>) -> Vec<u32> {
        let top = cap_mb.map_or(self.max_memory_mb, |c| c.min(self.max_memory_mb));
        let step = self.memory_step_mb.max(1);
        let mut sizes: Vec<u32> = (0..)
            .map(|i| self.min_memory_mb + i * step)
            .take_while(|&m| m <= top)
            .collect();
        if sizes.last() != Some(&top) && top >= self.min_memory_mb {
            sizes.push(top);
        }
        sizes
    }

    /// The vCPU share of a function with `memory_mb`.
    pub fn vcpus(&self, memory_mb: u32) -> f64 {
        (f64::from(memory_mb) / self.mb_per_vcpu).min(self.max_vcpus)
    }

    /// How much slower than the profile a function of `memory_mb` computes (≥ 1 when it has fewer vCPUs than
    /// the profile used; never faster than the profile — speed-ups beyond what was measured are not assumed).
    pub fn compute_slowdown(&self, memory_mb: u32, profile_threads: usize) -> f64 {
        match self.kind {
            PlatformKind::Local => 1.0,
            PlatformKind::Lambda => {
                let used = profile_threads.max(1) as f64;
                used / self.vcpus(memory_mb).min(used)
            }
        }
    }

    /// Network bandwidth of a function, bytes per ms (`None` for the local platform: the profile's store
    /// measurements apply as they are).
    pub fn bandwidth_bytes_per_ms(&self, memory_mb: u32) -> Option<f64> {
        match self.kind {
            PlatformKind::Local => None,
            PlatformKind::Lambda => {
                let mb_s = (self.bandwidth_mb_s_at_1gb * f64::from(memory_mb) / 1024.0)
                    .min(self.max_bandwidth_mb_s);
                Some(mb_s * 1e6 / 1e3)
            }
        }
    }

    /// Cores that compute at once on the local platform.
    pub fn local_cores(&self) -> usize {
        if self.cores > 0 {
            self.cores
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Checks the numbers, naming the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, why: String| Err((format!("platform.{k}"), why));
        if self.min_memory_mb == 0 || self.min_memory_mb > self.max_memory_mb {
            return bad(
                "min_memory_mb",
                format!(
                    "must be positive and at most max_memory_mb ({} > {})",
                    self.min_memory_mb, self.max_memory_mb
                ),
            );
        }
        for (k, v) in [
            ("mb_per_vcpu", self.mb_per_vcpu),
            ("max_vcpus", self.max_vcpus),
            ("bandwidth_mb_s_at_1gb", self.bandwidth_mb_s_at_1gb),
            ("max_bandwidth_mb_s", self.max_bandwidth_mb_s),
            ("idle_reap_s", self.idle_reap_s),
            ("warmup_tasks", self.warmup_tasks),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(k, format!("must be positive, got {v}"));
            }
        }
        if !(self.warmup_extra.is_finite() && self.warmup_extra >= 0.0) {
            return bad(
                "warmup_extra",
                format!("must be 0 or more, got {}", self.warmup_extra),
            );
        }
        if !(0.0..=1.0).contains(&self.cold_start_probability) {
            return bad(
                "cold_start_probability",
                format!("must be in [0, 1], got {}", self.cold_start_probability),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_shares_follow_memory() {
        let p = Platform::default();
        assert!((p.vcpus(1769) - 1.0).abs() < 1e-9);
        assert!(
            (p.vcpus(10_240) - 10_240.0 / 1769.0).abs() < 1e-9,
            "linear in memory up to the cap"
        );
        assert_eq!(
            Platform {
                mb_per_vcpu: 1000.0,
                ..Platform::default()
            }
            .vcpus(10_240),
            6.0
        );
        // Half a vCPU computes twice as slow as a one-thread profile; more vCPUs never beat the profile.
        assert!((p.compute_slowdown(884, 1) - 2.0012).abs() < 1e-3);
        assert_eq!(p.compute_slowdown(10_240, 1), 1.0);
        assert_eq!(p.compute_slowdown(10_240, 2), 1.0);
        let grid = p.memory_grid(Some(1000));
        assert_eq!(grid.first(), Some(&128));
        assert_eq!(grid.last(), Some(&1000));
        assert!(grid.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 64));
        assert_eq!(p.memory_grid(None).len(), 159);
    }
}
