//! `[emulator]`: how `trainer emulate` stands in for Lambda, and the one thing a run on it must know — the time
//! dilation, so that the run's timers stretch with the emulated world and the times it reports are undilated.

use super::error::{bad, ConfigError};
use serde::{Deserialize, Serialize};

/// `[emulator]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmulatorConfig {
    /// Time dilation D (at least 1): the emulator gives every instance 1/D of its CPU and bandwidth and stretches
    /// every latency and timeout by D, so that this host holds a fleet D times its size. A run pointed at an
    /// emulator (`lambda.endpoint_url`) must name the same D: its deadlines, timeouts, TTLs and waits stretch by D,
    /// and the step times it reports are divided by D.
    pub dilation: f64,
    /// Shape each instance's network to the `[platform]` bandwidth of its memory (a namespace per instance, `tc`).
    pub shape_network: bool,
    /// Run a Redis server beside the functions, in a cgroup with `store_vcpus` ÷ D cores; its URL is printed (the
    /// only store instances in namespaces of their own can reach).
    pub store: bool,
    /// The store's CPU in the world the emulator stands for, cores (Redis runs commands on one thread).
    pub store_vcpus: f64,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            dilation: 1.0,
            shape_network: false,
            store: false,
            store_vcpus: 1.0,
        }
    }
}

impl EmulatorConfig {
    /// Checks the numbers, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.dilation.is_finite() && self.dilation >= 1.0) {
            return Err(bad(
                "emulator.dilation",
                format!(
                    "must be a number of at least 1 (1: no dilation), got {}",
                    self.dilation
                ),
            ));
        }
        if !(self.store_vcpus.is_finite() && self.store_vcpus > 0.0) {
            return Err(bad(
                "emulator.store_vcpus",
                format!(
                    "must be a positive number of cores, got {}",
                    self.store_vcpus
                ),
            ));
        }
        Ok(())
    }

    /// A duration of the undilated world as the run waits it, seconds.
    pub fn stretch_s(&self, seconds: f64) -> f64 {
        seconds * self.dilation
    }

    /// A duration the run measured, ms of the undilated world.
    pub fn undilate_ms(&self, measured_ms: f64) -> f64 {
        measured_ms / self.dilation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_below_one_and_cores_not_positive_are_refused_by_key() {
        let e = EmulatorConfig {
            dilation: 0.5,
            ..EmulatorConfig::default()
        };
        assert!(e
            .validate()
            .expect_err("refused")
            .to_string()
            .contains("emulator.dilation"));
        let e = EmulatorConfig {
            store_vcpus: 0.0,
            ..EmulatorConfig::default()
        };
        assert!(e
            .validate()
            .expect_err("refused")
            .to_string()
            .contains("emulator.store_vcpus"));
        assert!(EmulatorConfig::default().validate().is_ok());
    }
}
