//! Units: the places where a model may be cut. Each unit runs forward and backward on a micro-batch, names its
//! parameters, initialises them, and reports what it costs.
//!
//! [`Unit`] dispatches to one file per kind (`dense`, `conv_pool`, `embed`, `block`, `head`), which build on the
//! shared parameter specs (`param`), caches (`cache`) and accounting (`cost`); no kind uses another.

mod block;
mod cache;
mod conv_pool;
mod cost;
mod dense;
mod embed;
mod head;
mod param;

pub use cache::{UnitCache, UnitGradients};
pub use cost::UnitCost;
pub use param::{Init, ParamSpec};

use crate::error::{shape_err, Result};
use crate::layers::{
    Activation, Conv2d, Embedding, LayerNorm, Linear, MaxPool2d, TransformerBlock,
};
use crate::tensor::Tensor;
use crate::Float;
use cost::numel;

/// One cut-able piece of a model.
#[derive(Clone, Debug, PartialEq)]
pub enum Unit {
    /// (Flatten, if the input has more than one axis per sample) + Linear + optional activation.
    Dense {
        prefix: String,
        linear: Linear,
        activation: Option<Activation>,
    },
    /// Conv2d + activation + max-pool.
    ConvPool {
        prefix: String,
        conv: Conv2d,
        activation: Activation,
        pool: MaxPool2d,
    },
    /// Token embedding + learned positions.
    Embed { emb: Embedding },
    /// Pre-LN transformer block number `index`.
    Block {
        index: usize,
        block: TransformerBlock,
    },
    /// Final LayerNorm + linear head to vocabulary logits.
    Head { ln: LayerNorm, head: Linear },
}

impl Unit {
    /// A short human name (the parameter prefix).
    pub fn name(&self) -> String {
        match self {
            Unit::Dense { prefix, .. } | Unit::ConvPool { prefix, .. } => prefix.clone(),
            Unit::Embed { .. } => embed::NAME.into(),
            Unit::Block { index, .. } => block::name(*index),
            Unit::Head { .. } => head::NAME.into(),
        }
    }

    /// Parameters in a fixed order: the order of the tensors in every `Vec` this unit takes or returns.
    pub fn params(&self) -> Vec<ParamSpec> {
        match self {
            Unit::Dense { prefix, linear, .. } => dense::params(prefix, linear),
            Unit::ConvPool { prefix, conv, .. } => conv_pool::params(prefix, conv),
            Unit::Embed { emb } => embed::params(emb),
            Unit::Block { index, block } => block::params(*index, block),
            Unit::Head { ln, head } => head::params(ln, head),
        }
    }

    /// Fresh parameters: each tensor drawn from its own stream keyed by (seed, name), so the result does not
    /// depend on how the model is cut.
    pub fn init<T: Float>(&self, seed: u64) -> Vec<Tensor<T>> {
        param::init(self.params(), seed)
    }

    /// Per-sample input shape this unit takes, given the previous unit's per-sample output shape.
    /// Returns the per-sample output shape, or a shape error naming the unit.
    pub fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let bad = |expected: String| {
            shape_err(
                format!("unit {} input (per sample)", self.name()),
                expected,
                input,
            )
        };
        match self {
            Unit::Dense { linear, .. } => dense::output_shape(linear, input, bad),
            Unit::ConvPool { conv, pool, .. } => conv_pool::output_shape(conv, pool, input, bad),
            Unit::Embed { emb } => embed::output_shape(emb, input, bad),
            Unit::Block { block, .. } => block::output_shape(block, input, bad),
            Unit::Head { ln, head } => head::output_shape(ln, head, input, bad),
        }
    }

    /// Forward pass on a micro-batch `x` [N, per-sample input shape...]. Returns the output and the cache.
    pub fn forward<T: Float>(
        &self,
        params: &[Tensor<T>],
        x: Tensor<T>,
    ) -> Result<(Tensor<T>, UnitCache<T>)> {
        let shape = x.shape().to_vec();
        if shape.is_empty() {
            return Err(shape_err(
                format!("unit {} input", self.name()),
                "[N, ...]",
                &shape,
            ));
        }
        let out_shape = self.output_shape(&shape[1..])?;
        let x = if x.is_standard_layout() {
            x
        } else {
            x.as_standard_layout().to_owned()
        };
        match self {
            Unit::Dense {
                linear, activation, ..
            } => dense::forward(linear, *activation, params, x, shape),
            Unit::ConvPool {
                conv,
                activation,
                pool,
                ..
            } => conv_pool::forward(conv, *activation, pool, params, x),
            Unit::Embed { emb } => embed::forward(emb, params, x),
            Unit::Block { block, .. } => block::forward(block, params, x, &shape, &out_shape),
            Unit::Head { ln, head } => head::forward(ln, head, params, x, &shape),
        }
    }

    /// Backward pass: returns the input gradient (if `need_dx`) and the parameter gradients in `params()` order.
    pub fn backward<T: Float>(
        &self,
        params: &[Tensor<T>],
        cache: &UnitCache<T>,
        dy: &Tensor<T>,
        need_dx: bool,
    ) -> Result<UnitGradients<T>> {
        // Borrowed when already row-major (a copy of every unit's output gradient cost ~0.1 ms a layer).
        let standard;
        let dy = if dy.is_standard_layout() {
            dy
        } else {
            standard = dy.as_standard_layout().to_owned();
            &standard
        };
        let check = |expected: &[usize]| {
            if dy.shape() != expected {
                Err(shape_err(
                    format!("unit {} output gradient", self.name()),
                    format!("{expected:?}"),
                    dy.shape(),
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Unit::Dense {
                linear, activation, ..
            } => dense::backward(linear, *activation, params, cache, dy, need_dx, check),
            Unit::ConvPool {
                conv,
                activation,
                pool,
                ..
            } => conv_pool::backward(conv, *activation, pool, params, cache, dy, need_dx, check),
            Unit::Embed { emb } => embed::backward(emb, cache, dy, need_dx, check),
            Unit::Block { block, .. } => block::backward(block, params, cache, dy, need_dx, check),
            Unit::Head { ln, head } => head::backward(ln, head, params, cache, dy, need_dx, check),
        }
    }

    /// Parameter count, FLOPs, and bytes, for a per-sample input shape.
    pub fn cost(&self, input: &[usize]) -> Result<UnitCost> {
        let out = self.output_shape(input)?;
        let params: u64 = self
            .params()
            .iter()
            .map(|p| p.shape.iter().product::<usize>() as u64)
            .sum();
        let kind = match self {
            Unit::Dense {
                linear, activation, ..
            } => dense::cost(linear, *activation),
            Unit::ConvPool { conv, .. } => conv_pool::cost(conv, input, &out),
            Unit::Embed { emb } => embed::cost(emb, input),
            Unit::Block { block, .. } => block::cost(block, input),
            Unit::Head { head, .. } => head::cost(head, input),
        };
        Ok(UnitCost {
            name: self.name(),
            params,
            param_bytes: 4 * params,
            forward_flops_per_sample: kind.forward_flops,
            backward_flops_per_sample: 2 * kind.forward_flops,
            output_bytes_per_sample: 4 * numel(&out),
            kept_bytes_per_sample: kind.kept_bytes,
            optimizer_state_bytes_per_slot: 4 * params,
        })
    }
}
