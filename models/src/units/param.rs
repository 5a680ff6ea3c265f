//! Parameter specs: a parameter's name, shape and initialisation, the specs of the layers units share, and fresh
//! parameters drawn from them.

use crate::layers::{LayerNorm, Linear};
use crate::rng::init_rng;
use crate::tensor::Tensor;
use crate::Float;
use ndarray::IxDyn;
use rand_distr::{Distribution, StandardNormal, Uniform};

/// How a parameter is initialised (PyTorch's default for its layer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Uniform(f64),
    Normal(f64),
    Ones,
    Zeros,
}

/// A parameter's global name (as in the PyTorch `state_dict`), shape and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

pub(super) fn linear_params(prefix: &str, l: &Linear) -> Vec<ParamSpec> {
    let b = l.init_bound();
    let mut v = vec![ParamSpec {
        name: format!("{prefix}.weight"),
        shape: vec![l.out_features, l.in_features],
        init: Init::Uniform(b),
    }];
    if l.bias {
        v.push(ParamSpec {
            name: format!("{prefix}.bias"),
            shape: vec![l.out_features],
            init: Init::Uniform(b),
        });
    }
    v
}

pub(super) fn ln_params(prefix: &str, ln: &LayerNorm) -> Vec<ParamSpec> {
    vec![
        ParamSpec {
            name: format!("{prefix}.weight"),
            shape: vec![ln.dim],
            init: Init::Ones,
        },
        ParamSpec {
            name: format!("{prefix}.bias"),
            shape: vec![ln.dim],
            init: Init::Zeros,
        },
    ]
}

/// Fresh parameters for `specs`: each tensor drawn from its own stream keyed by (seed, name).
pub(super) fn init<T: Float>(specs: Vec<ParamSpec>, seed: u64) -> Vec<Tensor<T>> {
    specs
        .into_iter()
        .map(|p| {
            let n: usize = p.shape.iter().product();
            let mut rng = init_rng(seed, &p.name);
            let data: Vec<T> = match p.init {
                Init::Uniform(b) => {
                    let u = Uniform::new_inclusive(-b, b)
                        .unwrap_or_else(|_| unreachable!("finite bound"));
                    (0..n)
                        .map(|_| T::of(u.sample(&mut rng) as f32 as f64))
                        .collect()
                }
                Init::Normal(std) => (0..n)
                    .map(|_| {
                        let z: f64 = StandardNormal.sample(&mut rng);
                        T::of((z * std) as f32 as f64)
                    })
                    .collect(),
                Init::Ones => vec![T::one(); n],
                Init::Zeros => vec![T::zero(); n],
            };
            Tensor::from_shape_vec(IxDyn(&p.shape), data)
                .unwrap_or_else(|_| unreachable!("sized above"))
        })
        .collect()
}
