//! Writes the seed corpus `fuzz/seeds/{store_values,task_payload}/`: valid encodings made by the product's own
//! encoders, each behind its selector byte, each checked to decode; then runs every seed and every reproducer in
//! `fuzz/repro/` once through its target.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example make_seeds` (from the repository root).

use models::{ModelSpec, OptimizerSpec, Schedule, Tensor};
use slice_worker::event::{Skip, Status, TaskEvent};
use slice_worker::task::{TaskId, TaskPayload};
use std::path::{Path, PathBuf};
use trainer_fuzz::*;

fn write(dir: &Path, name: &str, selector: u8, body: &[u8]) {
    let mut bytes = vec![selector];
    bytes.extend_from_slice(body);
    std::fs::write(dir.join(name), &bytes).expect("write seed");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let sv = root.join("store_values");
    let tp = root.join("task_payload");
    std::fs::create_dir_all(&sv).expect("mkdir");
    std::fs::create_dir_all(&tp).expect("mkdir");

    // Store values.
    let t = Tensor::from_shape_vec(ndarray::IxDyn(&[2, 3]), vec![0.5f32, -1.0, 2.0, 3.0, 4.0, 1e-3]).unwrap();
    let tb = slice_worker::codec::encode_tensor(&t).unwrap();
    slice_worker::codec::decode_tensor(&tb, KEY).unwrap();
    write(&sv, "tensor", store_selector(TENSOR, 0, 0), &tb);
    let y = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[4]), vec![0u32, 2, 1, 2]).unwrap();
    let yb = slice_worker::codec::encode_targets(&y).unwrap();
    slice_worker::codec::decode_targets(&yb, KEY).unwrap();
    write(&sv, "targets", store_selector(TARGETS, 0, 0), &yb);

    let model = model();
    let params = model.init::<f32>(7);
    for (ri, name) in [(0u8, "params_all"), (2u8, "params_slice1")] {
        let range = RANGES[usize::from(ri)].clone();
        let p = models::checkpoint::params_to_bytes(model, range.clone(), &params[range.clone()]).unwrap();
        models::checkpoint::params_from_bytes::<f32>(model, range, &p, KEY, true).unwrap();
        write(&sv, name, store_selector(PARAMS, ri, 0), &p);
    }
    for (ri, si, spec, name) in [
        (0u8, 2u8, OptimizerSpec::Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }, "optimizer_adamw_all"),
        (1u8, 1u8, OptimizerSpec::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: false }, "optimizer_sgd_slice0"),
    ] {
        let range = RANGES[usize::from(ri)].clone();
        let slots = SLOTS[usize::from(si)];
        assert_eq!(spec.slots(), slots);
        let state: Vec<_> = params[range.clone()].iter().map(|p| spec.init_state(p)).collect();
        let o = models::checkpoint::optimizer_to_bytes(model, range.clone(), slots, &state, "{\"step\":0}".into())
            .unwrap();
        models::checkpoint::optimizer_from_bytes::<f32>(model, range, slots, &o, KEY).unwrap();
        write(&sv, name, store_selector(OPTIMIZER, ri, si), &o);
    }

    // Update shards: a weight shard of slice 1, AdamW state of the whole model's shard, the f64 lists of the
    // reduce (chunk sums of squares) and the clip barrier (norm, factor), a micro-batch's loss.
    let (layout, shard) = shard_of(RANGES[2].clone(), 0);
    let pieces = layout.gather(&params[RANGES[2].clone()], &shard);
    let w = slice_worker::codec::encode_shard(&layout, &shard, &pieces).unwrap();
    slice_worker::codec::decode_shard(&layout, &shard, &w, KEY).unwrap();
    write(&sv, "shard_weights_slice1", store_selector(SHARD, 2, 0), &w);
    let (layout, shard) = shard_of(RANGES[0].clone(), 0);
    let adamw = OptimizerSpec::Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 };
    let whole: Vec<_> = params.iter().map(|p| adamw.init_state(p)).collect();
    let state: Vec<Vec<Tensor<f32>>> = (0..SLOTS[2].len())
        .map(|slot| layout.gather_with(&shard, |unit, param| &whole[unit][param][slot]))
        .collect();
    let per_piece: Vec<Vec<Tensor<f32>>> = (0..state[0].len()).map(|p| state.iter().map(|s| s[p].clone()).collect()).collect();
    let o = slice_worker::codec::encode_shard_state(&layout, &shard, SLOTS[2], &per_piece, 3).unwrap();
    slice_worker::codec::decode_shard_state(&layout, &shard, SLOTS[2], &o, KEY).unwrap();
    write(&sv, "shard_state_adamw", store_selector(SHARD, 0, 1), &o);
    let sums = layout.chunk_sums(&shard, &layout.gather(&params, &shard));
    let f = slice_worker::codec::encode_f64s(&sums.sums);
    slice_worker::codec::decode_f64s(&f, KEY).unwrap();
    write(&sv, "f64s_chunk_sums", store_selector(F64S, 0, 0), &f);
    let f = slice_worker::codec::encode_f64s(&[2.5, 0.4]);
    write(&sv, "f64s_clip", store_selector(F64S, 0, 0), &f);
    let l = slice_worker::codec::encode_loss(0.75);
    slice_worker::codec::decode_loss(&l, KEY).unwrap();
    write(&sv, "loss", store_selector(F64S, 0, 1), &l);

    // Layer caches: the MLP's (dense units) and a tiny GPT's (embedding, block, head).
    let x = Tensor::from_shape_vec(ndarray::IxDyn(&[1, 8]), (0..8).map(|i| i as f32 / 8.0).collect()).unwrap();
    let (_, caches) = model.forward(0..2, &params, x).unwrap();
    let c = models::cache_codec::caches_to_bytes(caches).unwrap();
    models::cache_codec::caches_from_bytes::<f32>(&c, KEY).unwrap();
    write(&sv, "caches_mlp", store_selector(CACHES, 0, 0), &c);
    let gpt_spec = ModelSpec::Gpt { vocab: 5, context: 3, d_model: 4, n_layers: 1, n_heads: 2 };
    let gpt = gpt_spec.build().unwrap();
    let gp = gpt.init::<f32>(7);
    let ids = Tensor::from_shape_vec(ndarray::IxDyn(&[1, 3]), vec![1.0f32, 4.0, 0.0]).unwrap();
    let (_, caches) = gpt.forward(0..3, &gp, ids).unwrap();
    let c = models::cache_codec::caches_to_bytes(caches).unwrap();
    models::cache_codec::caches_from_bytes::<f32>(&c, KEY).unwrap();
    write(&sv, "caches_gpt", store_selector(CACHES, 0, 0), &c);

    // Run plans as the driver writes them.
    let mut p = plan().clone();
    write(&sv, "plan_mlp", store_selector(PLAN, 0, 0), &serde_json::to_vec(&p).unwrap());
    p.model = gpt_spec;
    p.slices = vec![(0, 2), (2, 3)];
    p.optimizer = OptimizerSpec::Sgd { momentum: 0.9, weight_decay: 0.0, nesterov: true };
    p.schedule = Schedule::Cosine { warmup: 2, min_lr_ratio: 0.1 };
    p.first_step = 4;
    p.keep_every = vec![5];
    p.recompute = false;
    p.functions = vec!["slice-0".into(), "slice-1".into()];
    let pj = serde_json::to_vec(&p).unwrap();
    serde_json::from_slice::<slice_worker::plan::RunPlan>(&pj).unwrap().model.build().unwrap();
    write(&sv, "plan_gpt", store_selector(PLAN, 0, 0), &pj);

    // Task payloads, ids and events.
    let f = TaskPayload::new("r-1", TaskId::F { step: 3, slice: 1, mb: 0 }, 1);
    write(&tp, "payload_f", PAYLOAD_JSON, f.to_json().as_bytes());
    let mut u = TaskPayload::new("run_2", TaskId::U { step: 9, slice: 0, shard: 1 }, 2);
    u.sent_unix_ms = Some(1_800_000_000_000);
    write(&tp, "payload_u_sent", PAYLOAD_JSON, u.to_json().as_bytes());
    let b = TaskPayload::new("r-1", TaskId::B { step: 2, slice: 0, mb: 1 }, 3);
    write(&tp, "lambda_b", LAMBDA_EVENT, b.to_json().as_bytes());
    write(&tp, "lambda_probe", LAMBDA_EVENT, b"{\"probe\":true}");
    write(&tp, "task_id_f", TASK_ID, b"F(3,1,0)");
    write(&tp, "task_id_u", TASK_ID, b"U(9,1,0)");
    write(&tp, "task_id_r", TASK_ID, b"R(4,0,1)");
    write(&tp, "task_id_c", TASK_ID, b"C(4)");
    // The clip plan's tasks (valid in `plan_clipped`, refused by the plan that does not clip).
    let r = TaskPayload::new("r-1", TaskId::R { step: 4, slice: 1, shard: 0 }, 1);
    write(&tp, "payload_r", PAYLOAD_JSON, r.to_json().as_bytes());
    let c = TaskPayload::new("r-1", TaskId::C { step: 4 }, 1);
    write(&tp, "lambda_c", LAMBDA_EVENT, c.to_json().as_bytes());
    let mut e = TaskEvent::new(TaskId::B { step: 3, slice: 0, mb: 1 }, 2, "slice-0#1".into(), Status::Skipped(Skip::OutputsExist));
    e.fired = vec![TaskId::U { step: 3, slice: 0, shard: 0 }];
    e.loss = Some(0.1 + 0.2);
    e.run_ms = 3.25;
    let fields = e.to_fields();
    let mut body = Vec::new();
    for (k, v) in &fields {
        if !body.is_empty() {
            body.push(0);
        }
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
    }
    let owned: Vec<(String, String)> = fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    TaskEvent::from_fields(&owned).unwrap();
    write(&tp, "event_fields", EVENT_FIELDS, &body);

    // Every seed and reproducer once through its target's dispatcher, as the fuzzer will start.
    let repro = root.with_file_name("repro");
    for (d, target) in [
        (sv.clone(), store_values as fn(&[u8])),
        (tp.clone(), task_payload),
        (repro.join("store_values"), store_values),
        (repro.join("task_payload"), task_payload),
    ] {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            target(&bytes);
            println!("{} {}", bytes.len(), path.display());
        }
    }
}
