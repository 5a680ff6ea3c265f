//! Time dilation (DieCast, NSDI '07): the emulated world runs `D` times slower than the one it stands for — every
//! instance gets `1/D` of its CPU and bandwidth, every fixed latency and timeout lasts `D` times longer — so that a
//! host with few cores holds a fleet `D` times its size. Clocks read inside the world are divided by `D` before
//! anyone sees them: the bill's durations are those of the undilated world.
//!
//! CPU time is not dilated: a task needs the same CPU-seconds at any `D`, only spread over `D` times the wall time.

use std::time::Duration;

/// A dilation factor, at least 1 (1: no dilation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dilation(f64);

impl Default for Dilation {
    fn default() -> Self {
        Dilation(1.0)
    }
}

impl Dilation {
    /// `factor` when it is finite and at least 1; the error says what was wrong.
    pub fn new(factor: f64) -> Result<Dilation, String> {
        if factor.is_finite() && factor >= 1.0 {
            Ok(Dilation(factor))
        } else {
            Err(format!(
                "a time dilation must be a number of at least 1, got {factor}"
            ))
        }
    }

    pub fn factor(self) -> f64 {
        self.0
    }

    /// An undilated duration as it lasts in the dilated world (a timeout, a latency, an idle time).
    pub fn stretch(self, d: Duration) -> Duration {
        d.mul_f64(self.0)
    }

    /// A duration measured in the dilated world, in ms of the undilated one.
    pub fn undilate_ms(self, measured_ms: f64) -> f64 {
        measured_ms / self.0
    }

    /// A rate of the undilated world (CPUs, bytes per second) as the dilated world gets it.
    pub fn slow(self, rate: f64) -> f64 {
        rate / self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_waits_slows_rates_and_undilates_readings_by_one_factor() {
        let d = Dilation::new(4.0).expect("valid");
        assert_eq!(
            d.stretch(Duration::from_millis(25)),
            Duration::from_millis(100)
        );
        assert_eq!(d.undilate_ms(100.0), 25.0);
        assert_eq!(d.slow(1.0), 0.25);
        assert_eq!(
            Dilation::default().stretch(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn refuses_factors_below_one_and_non_numbers() {
        for bad in [0.5, 0.0, -2.0, f64::NAN, f64::INFINITY] {
            let e = Dilation::new(bad).expect_err("refused");
            assert!(e.contains("at least 1"), "{e}");
        }
    }
}
