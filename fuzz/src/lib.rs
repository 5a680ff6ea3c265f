//! What the fuzz targets run, shared with the seed generator (`examples/make_seeds.rs`).
//!
//! Each target reads its first input byte as a selector and hands the rest to one decoder, the way the worker
//! receives it. Nothing is asserted but "no panic, no hang, no huge allocation": a decoder returning `Err` is fine.

use models::{Activation, Model, ModelSpec, OptimizerSpec};
use slice_worker::dag;
use slice_worker::event::TaskEvent;
use slice_worker::plan::RunPlan;
use slice_worker::store::Keys;
use slice_worker::task::{TaskId, TaskPayload};
use std::ops::Range;
use std::sync::OnceLock;

/// The store key the decoders name in their errors.
pub const KEY: &str = "run:fuzz:w:0:1";

/// How many store-value decoders the selector's low part chooses among (`byte % KINDS`).
pub const KINDS: u8 = 8;

/// `store_values` selector (low part, `byte % KINDS`).
pub const TENSOR: u8 = 0;
pub const TARGETS: u8 = 1;
pub const PARAMS: u8 = 2;
pub const OPTIMIZER: u8 = 3;
pub const CACHES: u8 = 4;
pub const PLAN: u8 = 5;
/// One update shard's weights or gradient sum (variant even), or its optimizer state (variant odd, AdamW's slots).
pub const SHARD: u8 = 6;
/// A list of f64s: a reduce shard's chunk sums of squares, the clip barrier's norm and factor (variant even), or a
/// micro-batch's loss (variant odd).
pub const F64S: u8 = 7;

/// Unit ranges a slice of the fixed model can have: the whole model, slice 0, slice 1. For `PARAMS`, `OPTIMIZER`
/// and `SHARD`, `(byte / KINDS) % 3` picks one.
pub const RANGES: [Range<usize>; 3] = [0..2, 0..1, 1..2];

/// Optimizer slot lists (SGD without momentum, SGD with momentum, AdamW); for `OPTIMIZER`, the variant
/// (`byte / (3 KINDS)`) `% 3` picks one. For `PARAMS`, an even variant means strict (the executor's setting).
pub const SLOTS: [&[&str]; 3] = [&[], &["momentum_buffer"], &["exp_avg", "exp_avg_sq"]];

/// For `SHARD`: the slice's update runs as this many shards (fewer where the slice has fewer chunks); the variant
/// `/ 2` picks which shard the bytes claim to be.
pub const SHARDS: usize = 2;

/// The selector byte for a store-value decoder with a range index and a variant (strictness, slot list, shard).
pub fn store_selector(kind: u8, range: u8, variant: u8) -> u8 {
    kind + KINDS * (range + 3 * variant)
}

/// Shard `index` (modulo their count) of slice `range` of the fixed model cut into [`SHARDS`] shards.
pub fn shard_of(range: Range<usize>, index: usize) -> (models::shard::SliceLayout, Range<usize>) {
    let layout = models::shard::SliceLayout::new(model(), range);
    let k = SHARDS.min(layout.max_shards()).max(1);
    let shards = layout.shards(k).unwrap_or_else(|e| unreachable!("{k} shards of a non-empty slice: {e}"));
    let r = shards[index % shards.len()].clone();
    (layout, r)
}

/// `task_payload` selector (`byte % 4`).
pub const PAYLOAD_JSON: u8 = 0;
pub const LAMBDA_EVENT: u8 = 1;
pub const TASK_ID: u8 = 2;
pub const EVENT_FIELDS: u8 = 3;

/// The fixed small model the weight and optimizer decoders check against: an MLP 8 → 4 → 3 (two units).
pub fn model_spec() -> ModelSpec {
    ModelSpec::Mlp {
        widths: vec![8, 4, 3],
        activation: Activation::Relu,
    }
}

pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| model_spec().build().expect("valid spec"))
}

/// The plan a decoded payload is checked against: the fixed model cut into two slices, 2 micro-batches, 10 steps.
pub fn plan() -> &'static RunPlan {
    static PLAN: OnceLock<RunPlan> = OnceLock::new();
    PLAN.get_or_init(|| RunPlan {
        run_id: "fuzz".into(),
        batch_size: 4,
        steps: 10,
        optimizer: OptimizerSpec::Adamw {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        lr: 1e-3,
        ttl_s: 3600,
        ..RunPlan::example(model_spec(), vec![(0, 1), (1, 2)], 2)
    })
}

/// The same run clipping gradients (so its graph has reduce shards and the clip barrier), slice 0's update in two
/// shards.
pub fn plan_clipped() -> &'static RunPlan {
    static PLAN: OnceLock<RunPlan> = OnceLock::new();
    PLAN.get_or_init(|| RunPlan {
        grad_clip: Some(1.0),
        shards: vec![2, 1],
        ..plan().clone()
    })
}

/// Store values, as the executor decodes them (slice-worker/src/executor.rs).
pub fn store_values(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let range = RANGES[usize::from((sel / KINDS) % 3)].clone();
    let variant = sel / (3 * KINDS);
    match sel % KINDS {
        TENSOR => {
            let _ = slice_worker::codec::decode_tensor(rest, KEY);
        }
        TARGETS => {
            let _ = slice_worker::codec::decode_targets(rest, KEY);
        }
        PARAMS => {
            let strict = variant % 2 == 0;
            let _ = models::checkpoint::params_from_bytes::<f32>(model(), range, rest, KEY, strict);
        }
        OPTIMIZER => {
            let slots = SLOTS[usize::from(variant % 3)];
            let _ = models::checkpoint::optimizer_from_bytes::<f32>(model(), range, slots, rest, KEY);
        }
        CACHES => {
            let _ = models::cache_codec::caches_from_bytes::<f32>(rest, KEY);
        }
        PLAN => {
            // Worker::run_ctx: the plan under `run:{id}:plan`, then its model.
            if let Ok(plan) = serde_json::from_slice::<RunPlan>(rest) {
                let _ = plan.model.build();
            }
        }
        SHARD => {
            let (layout, shard) = shard_of(range, usize::from(variant / 2));
            if variant % 2 == 0 {
                let _ = slice_worker::codec::decode_shard(&layout, &shard, rest, KEY);
            } else {
                let _ = slice_worker::codec::decode_shard_state(&layout, &shard, SLOTS[2], rest, KEY);
            }
        }
        _ => {
            if variant % 2 == 0 {
                let _ = slice_worker::codec::decode_f64s(rest, KEY);
            } else {
                let _ = slice_worker::codec::decode_loss(rest, KEY);
            }
        }
    }
}

/// What the worker does with a decoded payload before it touches the store (Worker::execute, handler::report):
/// the run's keys, the task's validity against the plan (one without clipping, one with), and for a valid task its
/// slice range and graph edges.
fn worker_checks(p: &TaskPayload) {
    let _ = Keys::new(&p.run);
    let _ = p.since_sent();
    let _ = p.task.to_string();
    for plan in [plan(), plan_clipped()] {
        if dag::is_valid(plan, p.task) {
            let _ = plan.slice_range(p.task.slice());
            let _ = dag::successors(plan, p.task);
            let _ = dag::predecessors(plan, p.task);
        }
    }
}

/// Task payloads, task ids and completion events.
pub fn task_payload(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        PAYLOAD_JSON => {
            // main.rs outside Lambda: the payload given on the command line.
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(p) = TaskPayload::from_json(text) {
                    worker_checks(&p);
                }
            }
        }
        LAMBDA_EVENT => {
            // main.rs under Lambda: the event body as a JSON value, a probe or a payload.
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) {
                if v.get("probe") == Some(&serde_json::Value::Bool(true)) {
                    return;
                }
                if let Ok(p) = serde_json::from_value::<TaskPayload>(v) {
                    worker_checks(&p);
                }
            }
        }
        TASK_ID => {
            let _ = String::from_utf8_lossy(rest).parse::<TaskId>();
        }
        _ => {
            // Stream entries: flat string pairs, here `key\0value\0key\0value…`.
            let text = String::from_utf8_lossy(rest);
            let parts: Vec<&str> = text.split('\0').collect();
            let fields: Vec<(String, String)> = parts
                .chunks(2)
                .map(|kv| (kv[0].to_string(), kv.get(1).copied().unwrap_or("").to_string()))
                .collect();
            let _ = TaskEvent::from_fields(&fields);
        }
    }
}
