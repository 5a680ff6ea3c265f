//! From measurements to `[platform]` constants: the repeated samples of one quantity ([`Measured`]: median and
//! spread), and a resource that grows linearly with memory up to a cap ([`Saturating`]) — Lambda's CPU (a vCPU per
//! `mb_per_vcpu` MB) and its network bandwidth both have that shape.

use crate::stats::median;
use serde::{Deserialize, Serialize};

/// Repeated samples of one quantity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub samples: Vec<f64>,
}

impl Measured {
    pub fn median(&self) -> f64 {
        median(&self.samples)
    }

    /// The standard deviation of the samples' logarithms (the σ of a lognormal fitted to them): 0.1 is a spread
    /// of about ±10 %; NaN with fewer than two positive samples.
    pub fn log_sigma(&self) -> f64 {
        let logs: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| **s > 0.0)
            .map(|s| s.ln())
            .collect();
        if logs.len() < 2 {
            return f64::NAN;
        }
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let var = logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (logs.len() - 1) as f64;
        var.sqrt()
    }
}

/// `rate(memory) = min(slope × memory, cap)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Saturating {
    /// Rate per MB of memory below the cap.
    pub slope: f64,
    /// The rate no memory size exceeds, when the sizes measured reached it.
    pub cap: Option<f64>,
}

impl Saturating {
    pub fn at(&self, memory_mb: f64) -> f64 {
        let linear = self.slope * memory_mb;
        self.cap.map_or(linear, |c| linear.min(c))
    }

    /// The memory at which the cap is reached.
    pub fn knee_mb(&self) -> Option<f64> {
        self.cap.map(|c| c / self.slope)
    }
}

/// How far below the line through the smaller sizes the first capped size must lie for a cap to be believed: a
/// 5 % dip is within a busy host's noise.
const CAP_MARGIN: f64 = 0.9;

/// Fits `min(slope × m, cap)` to `(memory_mb, rate)` points (positive; at least one). Every split of the sizes
/// into a linear part (the smaller) and a capped part (the larger) is tried: the slope is the linear part's
/// median rate per MB, the cap the capped part's median rate; a split counts only if the cap really binds — the
/// line would overshoot the smallest capped size by more than [`CAP_MARGIN`] allows. The split with the least
/// squared error of log rates wins; without a binding cap the fit is the line alone.
pub fn fit_saturating(points: &[(f64, f64)]) -> Option<Saturating> {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(m, r)| m.is_finite() && r.is_finite() && *m > 0.0 && *r > 0.0)
        .collect();
    if pts.is_empty() {
        return None;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let error = |fit: &Saturating| -> f64 {
        pts.iter()
            .map(|(m, r)| (r.ln() - fit.at(*m).ln()).powi(2))
            .sum()
    };
    let line = Saturating {
        slope: median(&pts.iter().map(|(m, r)| r / m).collect::<Vec<_>>()),
        cap: None,
    };
    let mut best = (error(&line), line);
    for k in 1..pts.len() {
        let slope = median(&pts[..k].iter().map(|(m, r)| r / m).collect::<Vec<_>>());
        let cap = median(&pts[k..].iter().map(|(_, r)| *r).collect::<Vec<_>>());
        if cap > CAP_MARGIN * slope * pts[k].0 {
            continue;
        }
        let fit = Saturating {
            slope,
            cap: Some(cap),
        };
        let e = error(&fit);
        if e < best.0 {
            best = (e, fit);
        }
    }
    Some(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_up_to_a_cap_is_recovered_from_noisy_points() {
        // One vCPU per 1,000 MB at 2 units per ms; ±3 % noise.
        let truth = Saturating {
            slope: 0.002,
            cap: Some(2.0),
        };
        let noise = [1.03, 0.98, 1.01, 0.97, 1.02, 0.99];
        let sizes = [256.0, 512.0, 768.0, 1536.0, 2048.0, 4096.0];
        let pts: Vec<(f64, f64)> = sizes
            .iter()
            .zip(noise)
            .map(|(m, n)| (*m, truth.at(*m) * n))
            .collect();
        let fit = fit_saturating(&pts).expect("a fit");
        assert!((fit.slope / 0.002 - 1.0).abs() < 0.03, "{fit:?}");
        let cap = fit.cap.expect("the cap is reached above 1,000 MB");
        assert!((cap / 2.0 - 1.0).abs() < 0.03, "{fit:?}");
        assert!((fit.knee_mb().expect("knee") / 1000.0 - 1.0).abs() < 0.06);
    }

    #[test]
    fn sizes_below_the_cap_give_a_line_and_no_cap() {
        let pts = [(128.0, 9.5), (512.0, 37.0), (1024.0, 76.0), (2048.0, 148.0)];
        let fit = fit_saturating(&pts).expect("a fit");
        assert_eq!(fit.cap, None, "{fit:?}");
        assert!((fit.slope * 1024.0 / 75.0 - 1.0).abs() < 0.03, "{fit:?}");
    }

    #[test]
    fn a_small_dip_at_the_top_is_not_a_cap() {
        // The last point 4 % under the line: noise, not a cap.
        let pts = [(512.0, 50.0), (1024.0, 100.0), (2048.0, 192.0)];
        assert_eq!(fit_saturating(&pts).expect("a fit").cap, None);
    }

    #[test]
    fn every_size_capped_but_the_first_still_places_the_knee() {
        let pts = [(512.0, 1.0), (2048.0, 2.0), (4096.0, 2.0), (8192.0, 2.0)];
        let fit = fit_saturating(&pts).expect("a fit");
        assert_eq!(fit.cap, Some(2.0));
        assert_eq!(fit.knee_mb(), Some(1024.0));
    }

    #[test]
    fn no_usable_point_is_no_fit_and_spread_needs_two_samples() {
        assert_eq!(fit_saturating(&[(0.0, 1.0), (512.0, f64::NAN)]), None);
        assert!(Measured { samples: vec![5.0] }.log_sigma().is_nan());
        let m = Measured {
            samples: vec![10.0, 10.0, 10.0],
        };
        assert_eq!((m.median(), m.log_sigma()), (10.0, 0.0));
    }
}
