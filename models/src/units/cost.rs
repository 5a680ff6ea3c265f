//! What a unit costs: parameters, FLOPs and bytes ([`UnitCost`]).

/// Per-unit accounting, per sample where it says so (f32 bytes).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct UnitCost {
    pub name: String,
    pub params: u64,
    pub param_bytes: u64,
    pub forward_flops_per_sample: u64,
    pub backward_flops_per_sample: u64,
    pub output_bytes_per_sample: u64,
    /// Bytes the forward pass keeps for backward (the unit's cache), per sample.
    pub kept_bytes_per_sample: u64,
    /// Optimizer state: `param_bytes × slots` (SGD with momentum: 1 slot; AdamW: 2).
    pub optimizer_state_bytes_per_slot: u64,
}

/// What a unit kind reports for [`UnitCost`]: forward FLOPs and kept bytes, per sample.
pub(super) struct KindCost {
    pub forward_flops: u64,
    pub kept_bytes: u64,
}

/// Element count of a shape.
pub(super) fn numel(s: &[usize]) -> u64 {
    s.iter().product::<usize>() as u64
}
