//! Model specs as they appear in the `[model]` table of a config, and how each becomes a list of units (its
//! [`Layout`]; [`ModelSpec::build`], in `model`, turns that into a model).

use crate::error::{ModelError, Result};
use crate::layers::{
    Activation, Conv2d, Embedding, LayerNorm, Linear, MaxPool2d, TransformerBlock,
};
use crate::loss::LossKind;
use crate::units::Unit;
use serde::{Deserialize, Serialize};

/// What model to build. Tensor names follow the equivalent PyTorch module's `state_dict` (see the README).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelSpec {
    /// Multi-layer perceptron: `widths = [784, 1024, 10]` gives Linear 784→1024, activation, Linear 1024→10.
    /// Units: one per Linear (with its activation; the last has none). Names `layers.{i}.weight|bias`.
    Mlp {
        widths: Vec<usize>,
        #[serde(default = "default_activation")]
        activation: Activation,
    },
    /// LeNet-5 for 1×28×28 images: conv1 (1→6, 5×5, pad 2) + ReLU + max-pool 2, conv2 (6→16, 5×5) + ReLU + max-pool 2,
    /// fc1 400→120 + ReLU, fc2 120→84 + ReLU, fc3 84→10. Units: the two conv blocks and the three fc layers.
    Lenet5,
    /// Character-level GPT (nanoGPT layout, pre-LN, GELU-tanh MLP, untied `lm_head` without bias).
    /// Units: the embedding (`transformer.wte`, `transformer.wpe`), each block (`transformer.h.{i}`),
    /// and the final LayerNorm with the head (`transformer.ln_f`, `lm_head`).
    Gpt {
        vocab: usize,
        context: usize,
        d_model: usize,
        n_layers: usize,
        n_heads: usize,
    },
}

fn default_activation() -> Activation {
    Activation::Relu
}

fn spec_err(field: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Spec {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The most units a model may have: far beyond any model worth slicing, low enough that a spec from an untrusted
/// place (a plan in the store) cannot make `build` allocate without bound (found by fuzzing).
pub const MAX_UNITS: usize = 10_000;

/// The most parameters a model may have: 2^34 (64 GiB of f32, six times the largest Lambda function).
pub const MAX_PARAMS: u128 = 1 << 34;

/// The parameter count of a spec, computed before anything is allocated (wide integers: no overflow).
fn parameter_count(spec: &ModelSpec) -> u128 {
    match spec {
        ModelSpec::Mlp { widths, .. } => widths
            .windows(2)
            .map(|w| w[0] as u128 * w[1] as u128 + w[1] as u128)
            .sum(),
        ModelSpec::Lenet5 => 61_706,
        ModelSpec::Gpt {
            vocab,
            context,
            d_model,
            n_layers,
            ..
        } => {
            let (v, c, d, l) = (
                *vocab as u128,
                *context as u128,
                *d_model as u128,
                *n_layers as u128,
            );
            // Embeddings, blocks (attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d), final LayerNorm, head.
            v * d + c * d + l * (12 * d * d + 13 * d) + 2 * d + v * d
        }
    }
}

/// A checked spec laid out: its units, the per-sample shape of the model input and what the output is scored
/// against.
pub(crate) struct Layout {
    pub units: Vec<Unit>,
    pub input: Vec<usize>,
    pub loss: LossKind,
}

impl ModelSpec {
    /// Checks the spec and lays out its units (what [`build`](Self::build) makes a model of).
    pub(crate) fn layout(&self) -> Result<Layout> {
        let (units, field) = match self {
            ModelSpec::Mlp { widths, .. } => (widths.len().saturating_sub(1), "model.widths"),
            ModelSpec::Lenet5 => (5, "model.kind"),
            ModelSpec::Gpt { n_layers, .. } => (n_layers.saturating_add(2), "model.n_layers"),
        };
        if units > MAX_UNITS {
            return Err(spec_err(
                field,
                format!("{units} units; at most {MAX_UNITS} are supported"),
            ));
        }
        let params = parameter_count(self);
        if params > MAX_PARAMS {
            let field = match self {
                ModelSpec::Gpt { .. } => "model.d_model",
                _ => field,
            };
            return Err(spec_err(
                field,
                format!("the model would have {params} parameters; at most {MAX_PARAMS} (2^34) are supported"),
            ));
        }
        match self {
            ModelSpec::Mlp { widths, activation } => mlp_layout(widths, *activation),
            ModelSpec::Lenet5 => Ok(lenet5_layout()),
            ModelSpec::Gpt {
                vocab,
                context,
                d_model,
                n_layers,
                n_heads,
            } => gpt_layout(*vocab, *context, *d_model, *n_layers, *n_heads),
        }
    }
}

/// Dense units between consecutive widths, the activation on all but the last.
fn mlp_layout(widths: &[usize], activation: Activation) -> Result<Layout> {
    if widths.len() < 2 {
        return Err(spec_err(
            "model.widths",
            "needs at least an input and an output width",
        ));
    }
    if let Some(i) = widths.iter().position(|&w| w == 0) {
        return Err(spec_err(
            "model.widths",
            format!("entry {i} is 0; widths must be positive"),
        ));
    }
    let last = widths.len() - 2;
    let units = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| Unit::Dense {
            prefix: format!("layers.{i}"),
            linear: Linear::new(w[0], w[1], true),
            activation: (i < last).then_some(activation),
        })
        .collect();
    Ok(Layout {
        units,
        input: vec![widths[0]],
        loss: LossKind::Classification,
    })
}

/// LeNet-5 on 28×28 inputs: two convolution + pooling units, three dense ones.
fn lenet5_layout() -> Layout {
    let units = vec![
        Unit::ConvPool {
            prefix: "conv1".into(),
            conv: Conv2d::new(1, 6, 5, 1, 2),
            activation: Activation::Relu,
            pool: MaxPool2d::new(2, 2),
        },
        Unit::ConvPool {
            prefix: "conv2".into(),
            conv: Conv2d::new(6, 16, 5, 1, 0),
            activation: Activation::Relu,
            pool: MaxPool2d::new(2, 2),
        },
        dense("fc1", 400, 120, Some(Activation::Relu)),
        dense("fc2", 120, 84, Some(Activation::Relu)),
        dense("fc3", 84, 10, None),
    ];
    Layout {
        units,
        input: vec![1, 28, 28],
        loss: LossKind::Classification,
    }
}

/// A GPT: token and position embedding, `n_layers` pre-LN blocks, a LayerNorm + linear head.
fn gpt_layout(
    vocab: usize,
    context: usize,
    d_model: usize,
    n_layers: usize,
    n_heads: usize,
) -> Result<Layout> {
    for (field, v) in [
        ("model.vocab", vocab),
        ("model.context", context),
        ("model.d_model", d_model),
        ("model.n_layers", n_layers),
        ("model.n_heads", n_heads),
    ] {
        if v == 0 {
            return Err(spec_err(field, "must be positive"));
        }
    }
    if !d_model.is_multiple_of(n_heads) {
        return Err(spec_err(
            "model.n_heads",
            format!("d_model = {d_model} is not divisible by n_heads = {n_heads}"),
        ));
    }
    let mut units = vec![Unit::Embed {
        emb: Embedding {
            vocab,
            context,
            dim: d_model,
        },
    }];
    units.extend((0..n_layers).map(|index| Unit::Block {
        index,
        block: TransformerBlock::new(d_model, n_heads),
    }));
    units.push(Unit::Head {
        ln: LayerNorm::new(d_model),
        head: Linear::new(d_model, vocab, false),
    });
    Ok(Layout {
        units,
        input: vec![context],
        loss: LossKind::NextToken,
    })
}

fn dense(prefix: &str, i: usize, o: usize, activation: Option<Activation>) -> Unit {
    Unit::Dense {
        prefix: prefix.into(),
        linear: Linear::new(i, o, true),
        activation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt(d_model: usize, n_layers: usize) -> ModelSpec {
        ModelSpec::Gpt {
            vocab: 65,
            context: 16,
            d_model,
            n_layers,
            n_heads: 2,
        }
    }

    /// The count checked before building is the count the built model has.
    #[test]
    fn the_parameter_count_before_building_matches_the_model() {
        for spec in [
            ModelSpec::Mlp {
                widths: vec![784, 32, 32, 10],
                activation: Activation::Relu,
            },
            ModelSpec::Lenet5,
            gpt(8, 3),
        ] {
            let model = spec.build().expect("a small model builds");
            let built: u64 = model.costs().iter().map(|c| c.params).sum();
            assert_eq!(parameter_count(&spec), u128::from(built), "{spec:?}");
        }
    }

    /// Specs from the fuzzer's reproducers (a plan in the store names the model): refused by name, before any
    /// allocation or overflowing product.
    #[test]
    fn absurd_sizes_are_refused_before_anything_is_allocated() {
        for (spec, field) in [
            (gpt(1 << 62, 1), "model.d_model"),
            (gpt(8, 1_000_000_000_000), "model.n_layers"),
            (
                ModelSpec::Mlp {
                    widths: vec![1 << 40, 1 << 40],
                    activation: Activation::Relu,
                },
                "model.widths",
            ),
        ] {
            match spec.build() {
                Err(ModelError::Spec { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{spec:?}: {:?}", other.map(|_| "built")),
            }
        }
    }
}
