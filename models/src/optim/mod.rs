//! Optimizers: SGD (momentum, weight decay) and AdamW, with PyTorch's update formulas.
//!
//! State is kept per parameter tensor in named slots (`momentum_buffer`; `exp_avg`, `exp_avg_sq`) so it can be saved
//! and loaded beside the weights under PyTorch-like names, and so one slice's update needs only that slice's state.

mod adamw;
mod sgd;

pub use adamw::adamw_step;
pub use sgd::sgd_step;

use crate::parallel::on_pool;
use crate::tensor::Tensor;
use crate::Float;
use serde::{Deserialize, Serialize};

/// Optimizer state of a run of units: `state[unit][param][slot]`, slots named by [`OptimizerSpec::slots`].
pub type OptimizerState<T> = Vec<Vec<Vec<Tensor<T>>>>;

/// Which optimizer and its hyper-parameters (the learning rate comes from the schedule, per step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerSpec {
    /// `torch.optim.SGD` with dampening 0: `d = g + wd·p`; `buf = d` (first step) or `μ·buf + d`; `p −= lr·buf`
    /// (`p −= lr·(d + μ·buf)` with Nesterov). `momentum = 0` keeps no state.
    Sgd {
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        nesterov: bool,
    },
    /// `torch.optim.AdamW`: decoupled weight decay `p ← p·(1 − lr·wd)`, then Adam with bias correction.
    Adamw {
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_adamw_wd")]
        weight_decay: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_wd() -> f64 {
    0.01
}

impl OptimizerSpec {
    /// Names of the state slots kept per parameter tensor.
    pub fn slots(&self) -> &'static [&'static str] {
        match self {
            OptimizerSpec::Sgd { momentum, .. } if *momentum == 0.0 => &[],
            OptimizerSpec::Sgd { .. } => &["momentum_buffer"],
            OptimizerSpec::Adamw { .. } => &["exp_avg", "exp_avg_sq"],
        }
    }

    /// Fresh (zero) state for parameters of the given shapes: `state[param][slot]`.
    pub fn init_state<T: Float>(&self, params: &[Tensor<T>]) -> Vec<Vec<Tensor<T>>> {
        params
            .iter()
            .map(|p| {
                self.slots()
                    .iter()
                    .map(|_| Tensor::zeros(p.raw_dim()))
                    .collect()
            })
            .collect()
    }

    /// Applies one update to every parameter of a unit (or slice). `step` counts from 1 (the first update).
    pub fn step<T: Float>(
        &self,
        lr: f64,
        step: u64,
        params: &mut [Tensor<T>],
        grads: &[Tensor<T>],
        state: &mut [Vec<Tensor<T>>],
    ) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        assert_eq!(params.len(), state.len(), "one state entry per parameter");
        for ((p, g), s) in params.iter_mut().zip(grads).zip(state.iter_mut()) {
            match *self {
                OptimizerSpec::Sgd {
                    momentum,
                    weight_decay,
                    nesterov,
                } => sgd_step(
                    p,
                    g,
                    s.first_mut(),
                    lr,
                    momentum,
                    weight_decay,
                    nesterov,
                    step,
                ),
                OptimizerSpec::Adamw {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let (m, v) = s.split_at_mut(1);
                    adamw_step(
                        p,
                        g,
                        &mut m[0],
                        &mut v[0],
                        lr,
                        beta1,
                        beta2,
                        eps,
                        weight_decay,
                        step,
                    )
                }
            }
        }
    }

    /// [`OptimizerSpec::step`] for every unit of a model or slice, in unit order: `params[u]`, `grads[u]`,
    /// `state[u]`. The whole update runs on one pool thread (`parallel::on_pool`), so its element-wise loops do not
    /// each wake the pool from outside: 0.02–0.10 ms less per MLP step on two threads (in-process A/B, step by step).
    pub fn step_units<T: Float>(
        &self,
        lr: f64,
        step: u64,
        params: &mut [Vec<Tensor<T>>],
        grads: &[Vec<Tensor<T>>],
        state: &mut [Vec<Vec<Tensor<T>>>],
    ) {
        assert_eq!(params.len(), grads.len(), "one gradient list per unit");
        assert_eq!(params.len(), state.len(), "one state list per unit");
        on_pool(|| {
            for ((p, g), s) in params.iter_mut().zip(grads).zip(state.iter_mut()) {
                self.step(lr, step, p, g, s);
            }
        })
    }
}
