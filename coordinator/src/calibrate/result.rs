//! Measurements → the `[platform]` constants the planner assumes, each with what it came from, and the file
//! `trainer calibrate` writes: a `[platform]` table a config takes in with `platform.calibrated = "FILE"`, and a
//! `[calibration]` table beside it with every sample (the loader reads only `[platform]`).

use super::fit::{fit_saturating, Measured};
use super::measure::Measurements;
use crate::config::Platform;
use serde::Serialize;

/// One constant's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// The `[platform]` key.
    pub key: &'static str,
    /// What the config said before.
    pub assumed: f64,
    /// What was measured (none: the sizes could not show it; the assumption stays).
    pub measured: Option<f64>,
    /// How: samples, spread, or why it could not be measured.
    pub how: String,
}

/// A calibration's outcome: the platform with the measured constants in place, and what each came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibrated {
    pub platform: Platform,
    pub findings: Vec<Finding>,
    /// A function's core against this machine's (1: as fast), for the profile's compute times.
    pub core_speed: Option<f64>,
    /// A synchronous invoke's own overhead on a warm instance, ms (the reply a task waits for is an `Event`'s,
    /// which the model takes as `invoke_ms`; this is for the record).
    pub sync_overhead_ms: f64,
}

/// Every size's samples of one quantity pooled.
fn pooled(
    m: &Measurements,
    of: impl Fn(&super::measure::SizeMeasurements) -> &Measured,
) -> Measured {
    Measured {
        samples: m.sizes.iter().flat_map(|s| of(s).samples.clone()).collect(),
    }
}

fn spread(m: &Measured) -> String {
    format!(
        "{} samples, median {:.1}, log-σ {:.2}",
        m.samples.len(),
        m.median(),
        m.log_sigma()
    )
}

/// What a dilated emulator does to the CPU constants: CPU quotas cap a cgroup, not a thread, so one thread of a
/// function above one vCPU gets its quota ÷ D — more than the 1 ÷ D of a core one vCPU stands for.
fn dilated_caveat(dilation: f64) -> String {
    if dilation > 1.0 {
        format!(
            "; CAUTION: measured at time dilation {dilation}, where one thread of a function above one vCPU runs              faster than a vCPU — calibrate CPU at dilation 1"
        )
    } else {
        String::new()
    }
}

/// Fits `m` onto `base` (the config's platform); a constant the sizes could not show keeps its assumed value and
/// says why.
pub fn fit(m: &Measurements, base: &Platform) -> Calibrated {
    let mut p = base.clone();
    let mut findings = Vec::new();
    let mut finding = |key: &'static str, assumed: f64, measured: Option<f64>, how: String| {
        findings.push(Finding {
            key,
            assumed,
            measured,
            how,
        })
    };

    let event = pooled(m, |s| &s.event_start_ms);
    p.invoke_ms = event.median();
    finding(
        "invoke_ms",
        base.invoke_ms,
        Some(p.invoke_ms),
        format!("Event invoke to handler start: {}", spread(&event)),
    );

    let cold = pooled(m, |s| &s.cold_overhead_ms);
    let warm = pooled(m, |s| &s.warm_overhead_ms);
    let cold_start = (cold.median() - warm.median()).max(0.0);
    let cold_measured =
        (!cold.samples.is_empty() && !warm.samples.is_empty()).then_some(cold_start);
    if let Some(c) = cold_measured {
        p.cold_start_ms = c;
    }
    finding(
        "cold_start_ms",
        base.cold_start_ms,
        cold_measured,
        format!(
            "a new instance's synchronous overhead less an idle one's: cold {}; warm {}",
            spread(&cold),
            spread(&warm)
        ),
    );

    let cpu_points: Vec<(f64, f64)> = m
        .sizes
        .iter()
        .map(|s| (f64::from(s.memory_mb), s.burn_per_ms.median()))
        .collect();
    let cpu = fit_saturating(&cpu_points);
    let core = cpu.and_then(|f| f.cap);
    match (cpu, core) {
        (Some(f), Some(core)) => {
            p.mb_per_vcpu = core / f.slope;
            finding(
                "mb_per_vcpu",
                base.mb_per_vcpu,
                Some(p.mb_per_vcpu),
                format!(
                    "one-thread burn rate linear in memory up to one core ({core:.0} iterations/ms){}",
                    dilated_caveat(m.dilation)
                ),
            );
        }
        _ => finding(
            "mb_per_vcpu",
            base.mb_per_vcpu,
            None,
            "no size reached a whole core (the rate still grew at the largest): calibrate up to a larger size".into(),
        ),
    }
    match core {
        Some(core) => {
            let vcpus = m.cap.burn_per_ms.median() / core;
            let linear = (f64::from(m.cap.memory_mb) / p.mb_per_vcpu).min(m.cap.threads as f64);
            let how = format!(
                "{} threads at {} MB ran {vcpus:.2} cores' worth (the memory rule alone gives {linear:.2})",
                m.cap.threads, m.cap.memory_mb
            );
            if vcpus < 0.9 * linear {
                p.max_vcpus = vcpus;
                finding("max_vcpus", base.max_vcpus, Some(vcpus), how);
            } else {
                finding(
                    "max_vcpus",
                    base.max_vcpus,
                    None,
                    format!("not reached: {how}"),
                );
            }
        }
        None => finding(
            "max_vcpus",
            base.max_vcpus,
            None,
            "needs a whole core measured first".into(),
        ),
    }

    let net_points: Vec<(f64, f64)> = m
        .sizes
        .iter()
        .map(|s| {
            let both = Measured {
                samples: s
                    .read_mb_s
                    .samples
                    .iter()
                    .chain(&s.write_mb_s.samples)
                    .copied()
                    .collect(),
            };
            (f64::from(s.memory_mb), both.median())
        })
        .collect();
    match fit_saturating(&net_points) {
        Some(f) => {
            p.bandwidth_mb_s_at_1gb = f.slope * 1024.0;
            finding(
                "bandwidth_mb_s_at_1gb",
                base.bandwidth_mb_s_at_1gb,
                Some(p.bandwidth_mb_s_at_1gb),
                "reads and writes to the store, linear in memory below the cap".into(),
            );
            match f.cap {
                Some(cap) => {
                    p.max_bandwidth_mb_s = cap;
                    finding(
                        "max_bandwidth_mb_s",
                        base.max_bandwidth_mb_s,
                        Some(cap),
                        format!("reached at {:.0} MB", f.knee_mb().unwrap_or(f64::NAN)),
                    );
                }
                None => finding(
                    "max_bandwidth_mb_s",
                    base.max_bandwidth_mb_s,
                    None,
                    "not reached: the bandwidth still grew at the largest size".into(),
                ),
            }
        }
        None => finding(
            "bandwidth_mb_s_at_1gb",
            base.bandwidth_mb_s_at_1gb,
            None,
            "no transfer measured".into(),
        ),
    }

    Calibrated {
        platform: p,
        findings,
        core_speed: core.map(|c| c / m.local_burn_per_ms),
        sync_overhead_ms: warm.median(),
    }
}

impl Calibrated {
    /// The file `trainer calibrate` writes: a header saying how it was made and how to use it, the `[platform]`
    /// table, and the measurements.
    pub fn to_toml(&self, m: &Measurements, made_by: &str) -> String {
        let mut out = String::new();
        out.push_str(&format!("# {made_by}\n"));
        out.push_str(
            "# Use it from a config: [platform] calibrated = \"<this file>\" (keys the config's own [platform] sets win).\n",
        );
        for f in &self.findings {
            match f.measured {
                Some(v) => out.push_str(&format!(
                    "# {} = {v:.4} (assumed {}): {}\n",
                    f.key, f.assumed, f.how
                )),
                None => out.push_str(&format!("# {} kept at {}: {}\n", f.key, f.assumed, f.how)),
            }
        }
        if let Some(s) = self.core_speed {
            out.push_str(&format!(
                "# a function's core ran the burn at {s:.2} x this machine's core (the profile's compute times are \
                 this machine's)\n"
            ));
        }
        out.push_str(&format!(
            "# time dilation of the functions: {} (every time above is undilated)\n\n",
            m.dilation
        ));
        #[derive(Serialize)]
        struct File<'a> {
            platform: &'a Platform,
            calibration: &'a Measurements,
        }
        let file = File {
            platform: &self.platform,
            calibration: m,
        };
        out.push_str(&toml::to_string(&file).unwrap_or_else(|e| unreachable!("plain tables: {e}")));
        out
    }
}
