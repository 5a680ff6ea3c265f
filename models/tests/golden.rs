//! Golden tests: the f32 layers, loss, optimizers and whole models against reference values computed by JAX in
//! float64 with PyTorch conventions (`tests/fixtures/`, described in its README). Every tensor must match with
//! `max|a − b| / max|b| ≤ 1e-5`. Run with `--nocapture` to see the error of every tensor.

mod common;

use common::{unrows, Fixture};
use models::checkpoint::params_from_tensors;
use models::layers::attention::AttentionParams;
use models::layers::block::BLOCK_PARAMS;
use models::layers::{
    CausalSelfAttention, Conv2d, Embedding, Gelu, LayerNorm, Linear, MaxPool2d, Relu,
    TransformerBlock,
};
use models::loss::softmax_cross_entropy;
use models::{Activation, ModelSpec, OptimizerSpec, Tensor, Unit};
use std::collections::BTreeMap;

// ---------------------------------------------------------------- layers

#[test]
fn linear_output_and_gradients() {
    let fx = Fixture::load("linear");
    let w = fx.t("weight");
    let unit = Unit::Dense {
        prefix: "linear".into(),
        linear: Linear::new(w.shape()[1], w.shape()[0], true),
        activation: None,
    };
    let params = vec![w, fx.t("bias")];
    let (y, cache) = unit.forward(&params, fx.t("x")).unwrap();
    let (dx, grads) = unit.backward(&params, &cache, &fx.t("dy"), true).unwrap();
    fx.check("y", &y);
    fx.check("dx", &dx.unwrap());
    fx.check("grad.weight", &grads[0]);
    fx.check("grad.bias", &grads[1]);
    fx.finish();
}

#[test]
fn relu_output_and_input_gradient() {
    let fx = Fixture::load("relu");
    let y = Relu.forward(fx.t("x").view());
    fx.check("y", &y);
    fx.check("dx", &Relu.backward(y.view(), fx.t("dy").view()));
    fx.finish();
}

#[test]
fn gelu_tanh_output_and_input_gradient() {
    let fx = Fixture::load("gelu_tanh");
    fx.expect_meta("approximate", "tanh");
    let x = fx.t("x");
    fx.check("y", &Gelu.forward(x.view()));
    fx.check("dx", &Gelu.backward(x.view(), fx.t("dy").view()));
    fx.finish();
}

#[test]
fn layernorm_output_and_gradients() {
    let fx = Fixture::load("layernorm");
    let ln = LayerNorm {
        dim: fx.meta_usize("normalized_shape"),
        eps: fx.meta_f64("eps"),
    };
    let (w, b) = (fx.a1("weight"), fx.a1("bias"));
    let shape = fx.t("x").shape().to_vec();
    let (y, cache) = ln.forward(fx.rows("x").view(), w.view(), b.view());
    let g = ln.backward(&cache, w.view(), fx.rows("dy").view());
    fx.check("y", &unrows(y.view(), &shape));
    fx.check("dx", &unrows(g.dx.view(), &shape));
    fx.check("grad.weight", &g.dweight);
    fx.check("grad.bias", &g.dbias);
    fx.finish();
}

#[test]
fn embedding_output_and_gradients() {
    let fx = Fixture::load("embedding");
    let unit = Unit::Embed {
        emb: Embedding {
            vocab: fx.meta_usize("vocab_size"),
            context: fx.meta_usize("block_size"),
            dim: fx.meta_usize("n_embd"),
        },
    };
    let params = vec![fx.t("wte.weight"), fx.t("wpe.weight")];
    let (y, cache) = unit.forward(&params, fx.ids_as_f32("tokens")).unwrap();
    let (_, grads) = unit.backward(&params, &cache, &fx.t("dy"), false).unwrap();
    fx.check("y", &y);
    fx.check("grad.wte.weight", &grads[0]);
    fx.check("grad.wpe.weight", &grads[1]);
    fx.finish();
}

#[test]
fn attention_output_and_gradients() {
    let fx = Fixture::load("attention");
    let attn = CausalSelfAttention::new(fx.meta_usize("n_embd"), fx.meta_usize("n_head"));
    let shape = fx.t("x").shape().to_vec();
    let (w_attn, b_attn) = (fx.rows("c_attn.weight"), fx.a1("c_attn.bias"));
    let (w_proj, b_proj) = (fx.rows("c_proj.weight"), fx.a1("c_proj.bias"));
    let p = AttentionParams {
        w_attn: w_attn.view(),
        b_attn: b_attn.view(),
        w_proj: w_proj.view(),
        b_proj: b_proj.view(),
    };
    let x = fx.rows("x");
    let (y, cache) = attn.forward(x.view(), shape[1], &p);
    let g = attn.backward(x.view(), shape[1], &p, &cache, fx.rows("dy").view());
    fx.check("y", &unrows(y.view(), &shape));
    fx.check("dx", &unrows(g.dx.view(), &shape));
    fx.check("grad.c_attn.weight", &g.dw_attn);
    fx.check("grad.c_attn.bias", &g.db_attn);
    fx.check("grad.c_proj.weight", &g.dw_proj);
    fx.check("grad.c_proj.bias", &g.db_proj);
    fx.finish();
}

#[test]
fn transformer_block_output_and_gradients() {
    let fx = Fixture::load("block");
    fx.expect_meta("gelu", "tanh");
    let block = TransformerBlock::new(fx.meta_usize("n_embd"), fx.meta_usize("n_head"));
    assert_eq!(block.ln_1.eps, fx.meta_f64("ln_eps"));
    let shape = fx.t("x").shape().to_vec();
    let params: Vec<Tensor<f32>> = BLOCK_PARAMS.iter().map(|n| fx.t(n)).collect();
    let (y, cache) = block.forward(fx.rows("x").view(), shape[1], &params);
    let (dx, grads) = block.backward(shape[1], &params, &cache, fx.rows("dy").view());
    fx.check("y", &unrows(y.view(), &shape));
    fx.check("dx", &unrows(dx.view(), &shape));
    for (name, g) in BLOCK_PARAMS.iter().zip(&grads) {
        fx.check(&format!("grad.{name}"), g);
    }
    fx.finish();
}

fn check_conv2d(file: &str) {
    let fx = Fixture::load(file);
    let w = fx.a4("weight");
    let (o, c, k, _) = w.dim();
    let conv = Conv2d::new(c, o, k, fx.meta_usize("stride"), fx.meta_usize("padding"));
    let x = fx.a4("x");
    let y = conv.forward(x.view(), w.view(), fx.a1("bias").view());
    let g = conv.backward(x.view(), w.view(), fx.a4("dy").view(), true);
    fx.check("y", &y);
    fx.check("dx", &g.dx.unwrap());
    fx.check("grad.weight", &g.dweight);
    fx.check("grad.bias", &g.dbias);
    fx.finish();
}

#[test]
fn conv2d_pad1_output_and_gradients() {
    check_conv2d("conv2d_pad1");
}

#[test]
fn conv2d_pad0_stride2_output_and_gradients() {
    check_conv2d("conv2d_pad0_stride2");
}

#[test]
fn maxpool2d_output_and_input_gradient() {
    let fx = Fixture::load("maxpool2d");
    fx.expect_meta("padding", "0");
    let pool = MaxPool2d::new(fx.meta_usize("kernel_size"), fx.meta_usize("stride"));
    let (y, cache) = pool.forward(fx.a4("x").view());
    fx.check("y", &y);
    fx.check("dx", &pool.backward(&cache, fx.a4("dy").view()));
    fx.finish();
}

// ---------------------------------------------------------------- loss

/// Mean cross entropy over every row: the normaliser is the number of rows.
fn check_cross_entropy(file: &str, targets: &str) {
    let fx = Fixture::load(file);
    let logits = fx.rows("logits");
    let out = softmax_cross_entropy(logits.view(), &fx.ids(targets), logits.nrows()).unwrap();
    fx.check_scalar("loss", out.loss);
    fx.check(
        "dlogits",
        &unrows(out.dlogits.view(), fx.t("logits").shape()),
    );
    fx.finish();
}

#[test]
fn cross_entropy_loss_and_dlogits() {
    check_cross_entropy("cross_entropy", "labels");
}

#[test]
fn cross_entropy_tokens_loss_and_dlogits() {
    check_cross_entropy("cross_entropy_tokens", "targets");
}

// ---------------------------------------------------------------- optimizers

/// Three steps (counted 1, 2, 3) from `p0` with gradients `g1..g3`: compares `p1..p3` and the final state slots.
fn check_optimizer(fx: Fixture, opt: OptimizerSpec) {
    let lr = fx.meta_f64("lr");
    assert_eq!(fx.meta_usize("steps"), 3);
    let mut params = vec![fx.t("p0")];
    let mut state = opt.init_state(&params);
    for step in 1..=3u64 {
        opt.step(
            lr,
            step,
            &mut params,
            &[fx.t(&format!("g{step}"))],
            &mut state,
        );
        fx.check(&format!("p{step}"), &params[0]);
    }
    for (slot, t) in opt.slots().iter().zip(&state[0]) {
        fx.check(slot, t);
    }
    fx.finish();
}

#[test]
fn sgd_momentum_weight_decay_three_steps() {
    let fx = Fixture::load("sgd");
    fx.expect_meta("dampening", "0");
    fx.expect_meta("nesterov", "false");
    let opt = OptimizerSpec::Sgd {
        momentum: fx.meta_f64("momentum"),
        weight_decay: fx.meta_f64("weight_decay"),
        nesterov: false,
    };
    check_optimizer(fx, opt);
}

#[test]
fn adamw_three_steps() {
    let fx = Fixture::load("adamw");
    fx.expect_meta("amsgrad", "false");
    let opt = OptimizerSpec::Adamw {
        beta1: fx.meta_f64("beta1"),
        beta2: fx.meta_f64("beta2"),
        eps: fx.meta_f64("eps"),
        weight_decay: fx.meta_f64("weight_decay"),
    };
    check_optimizer(fx, opt);
}

// ---------------------------------------------------------------- whole models

/// Loads the parameters by their PyTorch `state_dict` names (strictly: every parameter tensor of the fixture must
/// be a parameter of the model and vice versa), then compares logits, loss and every `grad.<name>`.
fn check_model(fx: Fixture, spec: ModelSpec, x: Tensor<f32>, targets: &str) {
    let model = spec.build().unwrap();
    let data = ["x", "labels", "targets", "tokens", "logits", "loss"];
    let state_dict: BTreeMap<String, Tensor<f32>> = fx
        .f32s
        .iter()
        .filter(|(n, _)| !n.starts_with("grad.") && !data.contains(&n.as_str()))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    let all = 0..model.units().len();
    let params = params_from_tensors(&model, all.clone(), state_dict, &fx.name, true).unwrap();
    let batch = x.shape()[0];
    let (logits, _) = model.forward(all, &params, x.clone()).unwrap();
    fx.check("logits", &logits);
    let step =
        models::train::microbatch_gradients(&model, &params, x, &fx.ids(targets), batch).unwrap();
    fx.check_scalar("loss", step.loss);
    let mut compared = 0;
    for (specs, grads) in model.param_specs().iter().zip(&step.grads) {
        for (s, g) in specs.iter().zip(grads) {
            fx.check(&format!("grad.{}", s.name), g);
            compared += 1;
        }
    }
    let expected = fx.f32s.keys().filter(|n| n.starts_with("grad.")).count();
    assert_eq!(compared, expected, "{}: every grad.* compared", fx.name);
    fx.finish();
}

#[test]
fn mlp_model_logits_loss_and_gradients_by_state_dict_name() {
    let fx = Fixture::load("mlp_model");
    fx.expect_meta("widths", "6,5,4,3");
    fx.expect_meta("activation", "relu");
    let spec = ModelSpec::Mlp {
        widths: vec![6, 5, 4, 3],
        activation: Activation::Relu,
    };
    let x = fx.t("x");
    check_model(fx, spec, x, "labels");
}

#[test]
fn lenet5_model_logits_loss_and_gradients_by_state_dict_name() {
    let fx = Fixture::load("lenet5_model");
    let x = fx.t("x");
    check_model(fx, ModelSpec::Lenet5, x, "labels");
}

#[test]
fn gpt_model_logits_loss_and_gradients_by_state_dict_name() {
    let fx = Fixture::load("gpt_model");
    let spec = ModelSpec::Gpt {
        vocab: fx.meta_usize("vocab_size"),
        context: fx.meta_usize("block_size"),
        d_model: fx.meta_usize("n_embd"),
        n_layers: fx.meta_usize("n_layer"),
        n_heads: fx.meta_usize("n_head"),
    };
    assert_eq!(
        spec,
        ModelSpec::Gpt {
            vocab: 7,
            context: 6,
            d_model: 8,
            n_layers: 2,
            n_heads: 2
        }
    );
    let x = fx.ids_as_f32("tokens");
    check_model(fx, spec, x, "targets");
}
