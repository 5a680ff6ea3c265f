//! Whether a fleet fits this host on the emulator at its time dilation D: the CPU its tasks are given while a step's
//! micro-batches compute at once, plus the store's, divided by D, must leave room for the driver and the emulator;
//! and the memory its warm instances keep must fit — memory cannot be dilated (limits may overcommit the host, as a
//! cloud host's do, but the planned peaks must fit). A fleet that does not fit is refused with the numbers and, for
//! CPU, the smallest D that would fit.
//!
//! The estimate: a step's M micro-batches each occupy one slice's task at a time (they move through the slices as a
//! wavefront), so at most M tasks compute at once (fewer where `runtime.concurrency` caps them), each with the vCPU
//! of the largest slice's function; every slice's function keeps up to that many warm instances (frozen between invocations, their pages kept), each at its planned peak.

use crate::config::{EmulatorConfig, Platform};

/// Cores kept for the run's driver and the emulator itself (their CPU is not the emulated world's).
pub const RESERVED_CORES: f64 = 0.25;

/// The share of this host's memory the instances' planned peaks may take (the rest: the store, the driver, the OS).
pub const MEMORY_SHARE: f64 = 0.8;

/// The fleet of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Fleet {
    /// Each slice's function memory, MB.
    pub memory_mb: Vec<u32>,
    /// Each slice's planned peak (the planner's per-task memory), MB; `None` before the run's prediction (the
    /// memory check waits for it).
    pub planned_peak_mb: Option<Vec<f64>>,
    /// Tasks computing at once: the micro-batches, at most `runtime.concurrency`.
    pub tasks_at_once: usize,
}

impl Fleet {
    /// A config's tasks at once (its micro-batch count resolved).
    pub fn tasks_at_once(cfg: &crate::config::Config) -> Result<usize, crate::error::RunError> {
        Ok(cfg
            .train
            .microbatches
            .resolved()?
            .min(cfg.runtime.concurrency.max(1)))
    }
}

/// What this host has.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Host {
    pub cores: f64,
    pub memory_mb: f64,
}

impl Host {
    /// This machine: its online cores and its `MemTotal`.
    pub fn this() -> Host {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|k| k.parse::<f64>().ok())
            })
            .map_or(f64::INFINITY, |kib| kib / 1024.0);
        Host { cores, memory_mb }
    }
}

/// Refuses `fleet` at `emulator.dilation` on `host` where it does not fit; the error names the numbers.
pub fn admit(
    fleet: &Fleet,
    platform: &Platform,
    emulator: &EmulatorConfig,
    host: Host,
) -> Result<(), String> {
    let m = fleet.tasks_at_once.max(1) as f64;
    let widest = fleet
        .memory_mb
        .iter()
        .map(|&mb| platform.vcpus(mb))
        .fold(0.0, f64::max);
    let undilated = m * widest + emulator.store_vcpus;
    let d = emulator.dilation;
    let room = host.cores - RESERVED_CORES;
    if undilated / d > room {
        let smallest = (undilated / room).ceil();
        return Err(format!(
            "the fleet needs {:.2} cores at emulator.dilation = {d} ({} tasks at once x {widest:.2} vCPU of \
             the largest function + {} of the store, / {d}), and this host has {} cores less {RESERVED_CORES} for \
             the driver and the emulator: the smallest dilation that fits is {smallest}",
            undilated / d,
            fleet.tasks_at_once,
            emulator.store_vcpus,
            host.cores
        ));
    }
    let Some(planned) = &fleet.planned_peak_mb else {
        return Ok(());
    };
    let peaks: f64 = planned.iter().map(|p| m * p).sum();
    let allowed = host.memory_mb * MEMORY_SHARE;
    if peaks > allowed {
        return Err(format!(
            "the fleet's warm instances would hold {peaks:.0} MB at their planned peaks ({} per slice's function, \
             peaks {:?} MB), more than {:.0}% of this host's {:.0} MB; memory cannot be dilated — fewer \
             micro-batches or a smaller model",
            fleet.tasks_at_once,
            planned
                .iter()
                .map(|p| p.round() as u64)
                .collect::<Vec<_>>(),
            MEMORY_SHARE * 100.0,
            host.memory_mb
        ));
    }
    Ok(())
}

/// Whether `endpoint_url` is a Lambda on this host (an emulator): loopback or the emulator's bridge subnets.
pub fn is_on_this_host(endpoint_url: &str) -> bool {
    let host = endpoint_url
        .split("://")
        .nth(1)
        .unwrap_or(endpoint_url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback() || (ip.octets()[0] == 10 && (96..160).contains(&ip.octets()[1])),
        Err(_) => host == "localhost",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(memory_mb: u32, slices: usize, m: usize, peak: f64) -> Fleet {
        Fleet {
            memory_mb: vec![memory_mb; slices],
            planned_peak_mb: Some(vec![peak; slices]),
            tasks_at_once: m,
        }
    }

    fn at(d: f64) -> EmulatorConfig {
        EmulatorConfig {
            dilation: d,
            ..EmulatorConfig::default()
        }
    }

    const TWO_CORES: Host = Host {
        cores: 2.0,
        memory_mb: 24_000.0,
    };

    #[test]
    fn eight_1024_mb_functions_need_d_4_on_two_cores() {
        let f = fleet(1024, 4, 8, 100.0);
        let p = Platform::default();
        // 8 x 0.579 + 1 = 5.63 cores; 1.75 left on two cores: D >= 3.22.
        let e = admit(&f, &p, &at(3.0), TWO_CORES).expect_err("refused at 3");
        assert!(e.contains("the smallest dilation that fits is 4"), "{e}");
        assert!(admit(&f, &p, &at(4.0), TWO_CORES).is_ok());
    }

    #[test]
    fn sixteen_one_vcpu_functions_need_d_10() {
        let f = fleet(1769, 2, 16, 50.0);
        let e = admit(&f, &Platform::default(), &at(8.0), TWO_CORES).expect_err("refused");
        assert!(e.contains("is 10"), "{e}");
        assert!(admit(&f, &Platform::default(), &at(10.0), TWO_CORES).is_ok());
    }

    #[test]
    fn memory_is_not_dilated() {
        // 4 slices x 8 warm instances x 1,000 MB = 32,000 MB > 80 % of 24,000 MB, at any D.
        let f = fleet(1024, 4, 8, 1000.0);
        let e = admit(&f, &Platform::default(), &at(100.0), TWO_CORES).expect_err("refused");
        assert!(
            e.contains("memory cannot be dilated") && e.contains("32000 MB"),
            "{e}"
        );
    }

    #[test]
    fn emulators_are_on_loopback_or_their_bridges() {
        assert!(is_on_this_host("http://127.0.0.1:9001"));
        assert!(is_on_this_host("http://localhost:9001/"));
        assert!(is_on_this_host("http://10.96.0.1:9001"));
        assert!(!is_on_this_host("https://lambda.us-east-1.amazonaws.com"));
        assert!(!is_on_this_host("http://10.0.0.5:9001"));
    }
}
