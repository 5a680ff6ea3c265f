//! safetensors checkpoints: names, determinism, slices, optimizer state, and bad files named precisely.

use models::checkpoint::{
    optimizer_from_bytes, optimizer_to_bytes, params_from_bytes, params_to_bytes, tensors_to_bytes,
};
use models::{Activation, ModelError, ModelSpec, OptimizerSpec, Tensor};

fn gpt() -> models::Model {
    ModelSpec::Gpt {
        vocab: 7,
        context: 6,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
    }
    .build()
    .unwrap()
}

#[test]
fn model_bytes_depend_only_on_the_weights_and_round_trip() {
    let model = gpt();
    let p = model.init::<f32>(1);
    let all = 0..model.units().len();
    let a = params_to_bytes(&model, all.clone(), &p).unwrap();
    let b = params_to_bytes(&model, all.clone(), &model.init::<f32>(1)).unwrap();
    assert_eq!(a, b, "same weights, different bytes");
    assert_ne!(
        a,
        params_to_bytes(&model, all.clone(), &model.init::<f32>(2)).unwrap()
    );
    let back = params_from_bytes::<f32>(&model, all, &a, "m", true).unwrap();
    assert_eq!(back, p);
}

#[test]
fn a_slice_checkpoint_uses_the_global_names_and_loads_from_the_whole_model() {
    let model = gpt();
    let p = model.init::<f32>(3);
    let whole = params_to_bytes(&model, 0..4, &p).unwrap();
    let slice = params_to_bytes(&model, 1..3, &p[1..3]).unwrap();
    let (names, _) = models::checkpoint::tensors_from_bytes::<f32>(&slice, "s").unwrap();
    assert!(
        names.keys().all(|n| n.starts_with("transformer.h.")),
        "{:?}",
        names.keys()
    );
    assert_eq!(
        params_from_bytes::<f32>(&model, 1..3, &whole, "w", false).unwrap(),
        p[1..3].to_vec()
    );
    // Strict loading of a slice file as a whole model names the first missing tensor.
    let err =
        params_from_bytes::<f32>(&model, 0..4, &slice, "slice.safetensors", true).unwrap_err();
    assert!(
        err.to_string().contains("slice.safetensors")
            && err.to_string().contains("transformer.wte.weight"),
        "{err}"
    );
}

#[test]
fn optimizer_state_and_training_state_round_trip() {
    let model = ModelSpec::Mlp {
        widths: vec![3, 4, 2],
        activation: Activation::Relu,
    }
    .build()
    .unwrap();
    let p = model.init::<f32>(0);
    let opt = OptimizerSpec::Adamw {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut state: Vec<_> = p.iter().map(|u| opt.init_state(u)).collect();
    state[1][0][1].fill(0.25);
    let bytes =
        optimizer_to_bytes(&model, 0..2, opt.slots(), &state, "{\"step\":7}".into()).unwrap();
    let (back, train) =
        optimizer_from_bytes::<f32>(&model, 0..2, opt.slots(), &bytes, "opt").unwrap();
    assert_eq!(back, state);
    assert_eq!(train, "{\"step\":7}");
    let again = optimizer_to_bytes(&model, 0..2, opt.slots(), &back, train).unwrap();
    assert_eq!(bytes, again, "optimizer file bytes are not deterministic");
}

#[test]
fn bad_checkpoints_name_the_file_and_tensor() {
    let model = ModelSpec::Mlp {
        widths: vec![3, 4, 2],
        activation: Activation::Relu,
    }
    .build()
    .unwrap();
    let p = model.init::<f32>(0);
    let good = params_to_bytes(&model, 0..2, &p).unwrap();
    // Truncated.
    let err = params_from_bytes::<f32>(
        &model,
        0..2,
        &good[..good.len() - 3],
        "cut.safetensors",
        true,
    )
    .unwrap_err();
    assert!(
        matches!(&err, ModelError::Format { source_name, .. } if source_name == "cut.safetensors"),
        "{err}"
    );
    // Garbage.
    let err =
        params_from_bytes::<f32>(&model, 0..2, b"not a checkpoint", "junk", true).unwrap_err();
    assert!(matches!(err, ModelError::Format { .. }));
    // Wrong shape.
    let wrong: Tensor<f32> = Tensor::zeros(ndarray::IxDyn(&[4, 4]));
    let mut named: Vec<(String, &Tensor<f32>)> = models::checkpoint::named_params(&model, 0..2, &p);
    named[0].1 = &wrong;
    let bytes = tensors_to_bytes(&named, None).unwrap();
    let err =
        params_from_bytes::<f32>(&model, 0..2, &bytes, "shape.safetensors", true).unwrap_err();
    assert!(
        err.to_string().contains("layers.0.weight") && err.to_string().contains("[4, 4]"),
        "{err}"
    );
    // Extra tensor (another model's checkpoint).
    let extra = Tensor::<f32>::zeros(ndarray::IxDyn(&[1]));
    let mut named = models::checkpoint::named_params(&model, 0..2, &p);
    named.push(("fc9.weight".into(), &extra));
    let bytes = tensors_to_bytes(&named, None).unwrap();
    let err = params_from_bytes::<f32>(&model, 0..2, &bytes, "x", true).unwrap_err();
    assert!(err.to_string().contains("fc9.weight"), "{err}");
    // Wrong dtype: an f64 file read as f32.
    let p64 = model.init::<f64>(0);
    let bytes = params_to_bytes(&model, 0..2, &p64).unwrap();
    let err = params_from_bytes::<f32>(&model, 0..2, &bytes, "f64.safetensors", true).unwrap_err();
    assert!(err.to_string().contains("dtype"), "{err}");
}

#[test]
fn unit_accounting_matches_the_layer_sizes() {
    let model = ModelSpec::Mlp {
        widths: vec![784, 1024, 10],
        activation: Activation::Relu,
    }
    .build()
    .unwrap();
    let c = model.costs();
    assert_eq!(c[0].params, 784 * 1024 + 1024);
    assert_eq!(c[0].param_bytes, 4 * (784 * 1024 + 1024));
    assert_eq!(c[0].forward_flops_per_sample, 2 * 784 * 1024 + 1024);
    assert_eq!(c[0].output_bytes_per_sample, 4 * 1024);
    assert_eq!(c[1].params, 1024 * 10 + 10);
    let lenet = ModelSpec::Lenet5.build().unwrap();
    let total: u64 = lenet.costs().iter().map(|c| c.params).sum();
    assert_eq!(total, 61_706, "LeNet-5 has 61,706 parameters");
    assert_eq!(lenet.costs()[0].output_bytes_per_sample, 4 * 6 * 14 * 14);
    let g = gpt();
    let total: u64 = g.costs().iter().map(|c| c.params).sum();
    // wte 56 + wpe 48 + 2 blocks × (12·d² + 13·d = 872) + ln_f 16 + head 56.
    assert_eq!(total, 56 + 48 + 2 * 872 + 16 + 56);
}
