//! # models: the numerical core
//!
//! Owns tensors (ndarray, f32 for training and f64 for gradient checks), layers with explicit `forward`/`backward`
//! ([`layers`], which also holds [`Activation`], the element-wise activation a spec names), the softmax
//! cross-entropy loss ([`loss`], with the [`LossKind`] a model is scored by), optimizers ([`optim`]), learning-rate
//! schedules, model specs ([`ModelSpec`]) and the **units** a model is made of — the places where it may be cut into
//! slices: [`Unit`], in `src/units/`, one file per kind — with their accounting ([`UnitCost`]), the arithmetic of a
//! training step ([`train`]) and safetensors checkpoints ([`checkpoint`]).
//!
//! Floors, each using only the ones below it: tensors and kernels ([`tensor`], [`matmul`], [`rng`]) → layers
//! (with `Activation`) and loss → units → specs (which lay out units) → the model (which runs them, and where
//! [`ModelSpec::build`] lives) → training steps, checkpoints and cache codecs.
//!
//! Must not touch: Redis, Lambda, tasks, async, the file system beyond reading and writing checkpoint files.
//!
//! Determinism: every kernel computes each output element as the same sum in the same order whatever the thread
//! count (see [`matmul`]); randomness is keyed by what it is for ([`rng`]). Together with [`train::add_in_order`] this
//! makes "split equals monolithic" hold bit for bit.
//!
//! ```
//! use models::{ModelSpec, Activation, train};
//! let model = ModelSpec::Mlp { widths: vec![4, 8, 3], activation: Activation::Relu }.build().unwrap();
//! let params = model.init::<f32>(42);
//! let x = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 4]));
//! let step = train::microbatch_gradients(&model, &params, x, &[0, 2], 2).unwrap();
//! assert!((step.loss - 3f64.ln()).abs() < 0.5);
//! assert_eq!(step.grads.len(), 2); // one gradient list per unit
//! ```

pub mod cache_codec;
pub mod checkpoint;
pub mod error;
mod float;
pub mod layers;
pub mod loss;
pub mod matmul;
mod model;
pub mod optim;
mod parallel;
pub mod rng;
mod schedule;
pub mod shard;
mod spec;
pub mod tensor;
pub mod train;
mod transpose;
mod units;

pub use error::{ModelError, Result};
pub use float::Float;
pub use layers::Activation;
pub use loss::LossKind;
pub use model::{LossGrad, Model, UnitTensors};
pub use optim::{OptimizerSpec, OptimizerState};
pub use schedule::Schedule;
pub use spec::ModelSpec;
pub use tensor::Tensor;
pub use units::{Init, ParamSpec, Unit, UnitCache, UnitCost};
