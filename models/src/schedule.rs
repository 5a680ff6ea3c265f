//! Learning-rate schedules: pure functions of the step, so any task can compute the rate it needs.

use serde::{Deserialize, Serialize};

/// `[train] schedule`: the learning rate at each step, as a function of the step alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate at every step.
    #[default]
    Constant,
    /// Linear warm-up from `lr / warmup` to `lr` over `warmup` steps, then cosine decay to `min_lr_ratio · lr`
    /// at the last step.
    Cosine {
        #[serde(default)]
        warmup: u64,
        #[serde(default)]
        min_lr_ratio: f64,
    },
}

impl Schedule {
    /// Learning rate for step `step` (0-based) of `total` steps.
    pub fn lr(&self, base: f64, step: u64, total: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Cosine {
                warmup,
                min_lr_ratio,
            } => {
                if step < warmup {
                    return base * (step + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                let min = base * min_lr_ratio;
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_then_decays_to_the_floor() {
        let s = Schedule::Cosine {
            warmup: 10,
            min_lr_ratio: 0.1,
        };
        assert!((s.lr(1.0, 0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 110) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 60, 110) - 0.55).abs() < 1e-12);
        assert!((s.lr(1.0, 110, 110) - 0.1).abs() < 1e-12);
        assert_eq!(Schedule::Constant.lr(0.3, 99, 100), 0.3);
    }
}
