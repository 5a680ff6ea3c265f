//! The log-normal distribution the latency model describes every task time with: fitted to samples, scaled,
//! sampled, and summed (approximately) over a task's independent parts.

use rand::Rng;
use rand_distr::{Distribution, Normal};

/// `ln X ~ N(mu, sigma²)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormal {
    pub mu: f64,
    pub sigma: f64,
}

impl LogNormal {
    /// Fitted to positive samples (maximum likelihood on the logs); a constant if there is no spread.
    pub fn fit(samples: &[f64]) -> LogNormal {
        let logs: Vec<f64> = samples
            .iter()
            .filter(|&&x| x > 0.0)
            .map(|x| x.ln())
            .collect();
        if logs.is_empty() {
            return LogNormal::constant(0.0);
        }
        let n = logs.len() as f64;
        let mu = logs.iter().sum::<f64>() / n;
        let var = logs.iter().map(|l| (l - mu).powi(2)).sum::<f64>() / n;
        LogNormal {
            mu,
            sigma: var.sqrt(),
        }
    }

    pub fn constant(x: f64) -> LogNormal {
        LogNormal {
            mu: if x > 0.0 { x.ln() } else { f64::NEG_INFINITY },
            sigma: 0.0,
        }
    }

    pub fn median(&self) -> f64 {
        self.mu.exp()
    }

    pub fn mean(&self) -> f64 {
        (self.mu + self.sigma * self.sigma / 2.0).exp()
    }

    /// The same shape scaled by `k`.
    pub fn scaled(&self, k: f64) -> LogNormal {
        LogNormal {
            mu: self.mu + k.ln(),
            sigma: self.sigma,
        }
    }

    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        if self.sigma == 0.0 {
            return self.median();
        }
        let z: f64 = Normal::new(0.0, 1.0)
            .unwrap_or_else(|_| unreachable!("unit normal"))
            .sample(rng);
        (self.mu + self.sigma * z).exp()
    }
}

/// A sum of independent log-normal terms, approximated by one log-normal with the summed median and the
/// median-weighted spread (Fenton–Wilkinson would match moments; this keeps the tails of the dominant term).
pub fn sum_of(parts: &[LogNormal]) -> LogNormal {
    let total: f64 = parts.iter().map(|p| p.median()).sum();
    if total <= 0.0 {
        return LogNormal::constant(0.0);
    }
    let sigma = parts.iter().map(|p| p.median() * p.sigma).sum::<f64>() / total;
    LogNormal {
        mu: total.ln(),
        sigma,
    }
}
