//! The arithmetic of a training step, shared by the single-process path and the distributed update tasks:
//! one micro-batch's gradients, their accumulation in micro-batch order, global-norm clipping and the update.
//!
//! The central invariant of the system rests here: the single-process step and the distributed update task both sum
//! the per-micro-batch gradients with [`add_in_order`], in micro-batch order, so weights stay bit-identical for
//! every split.

use crate::error::Result;
use crate::model::{Model, UnitTensors};
use crate::optim::{OptimizerSpec, OptimizerState};
use crate::parallel::{on_pool, wide};
use crate::shard::{elements, ChunkSums};
use crate::tensor::Tensor;
use crate::Float;
use ndarray::Zip;

/// Result of one micro-batch through the whole model.
pub struct MicrobatchResult<T> {
    /// This micro-batch's share of the batch-mean loss (its loss sum / batch size).
    pub loss: f64,
    /// Parameter gradients of that share, per unit.
    pub grads: UnitTensors<T>,
    /// Correct predictions (for accuracy reporting).
    pub correct: usize,
}

/// Forward, loss and backward of one micro-batch through every unit. `batch_size` is the size of the whole batch
/// (the loss normaliser), not of the micro-batch.
pub fn microbatch_gradients<T: Float>(
    model: &Model,
    params: &[Vec<Tensor<T>>],
    inputs: Tensor<T>,
    targets: &[u32],
    batch_size: usize,
) -> Result<MicrobatchResult<T>> {
    // One hop onto the pool for the whole micro-batch, as in `step_in_place`.
    on_pool(|| {
        let all = 0..model.units().len();
        let (logits, caches) = model.forward(all.clone(), params, inputs)?;
        let correct = model.correct(&logits, targets);
        let lg = model.loss(&logits, targets, batch_size)?;
        drop(logits);
        let (_, grads) = model.backward(all, params, &caches, lg.dlogits)?;
        Ok(MicrobatchResult {
            loss: lg.loss,
            grads,
            correct,
        })
    })
}

/// What [`step_in_place`] gives back.
pub struct InPlaceStep {
    /// The batch-mean loss.
    pub loss: f64,
    /// Correct predictions (for accuracy reporting).
    pub correct: usize,
}

/// One whole step of a batch taken as a single micro-batch (`batch_size` its size, the loss normaliser), unclipped:
/// forward, loss, then backward with each unit's optimizer update as soon as its gradients are ready
/// ([`Model::backward_update`]). The same bits as [`microbatch_gradients`] then [`OptimizerSpec::step_units`] — with
/// one micro-batch its gradients are the sum [`add_in_order`] would give, and each element's update is the same
/// arithmetic. Nothing is updated when the loss is not finite (`loss` says so). Gradients are not checked for NaN or
/// infinity: the update passes them on to the weights, where the next step's loss or [`first_non_finite`] on the
/// weights finds them (checking an MLP's 11.6 MB of gradients every step cost about as much as the update itself).
#[allow(clippy::too_many_arguments)]
pub fn step_in_place<T: Float>(
    model: &Model,
    opt: &OptimizerSpec,
    lr: f64,
    step: u64,
    params: &mut [Vec<Tensor<T>>],
    state: &mut OptimizerState<T>,
    inputs: Tensor<T>,
    targets: &[u32],
    batch_size: usize,
) -> Result<InPlaceStep> {
    // The whole step on one pool thread: forward and backward would each hop onto the pool and back, and the loss
    // run in between on the caller's thread (−0.03 to −0.08 ms per MLP step on two threads, in-process A/B).
    on_pool(|| {
        let all = 0..model.units().len();
        let (logits, caches) = model.forward(all, params, inputs)?;
        let correct = model.correct(&logits, targets);
        let lg = model.loss(&logits, targets, batch_size)?;
        drop(logits);
        if !lg.loss.is_finite() {
            return Ok(InPlaceStep {
                loss: lg.loss,
                correct,
            });
        }
        model.backward_update(params, state, &caches, lg.dlogits, |_, p, s, g| {
            opt.step(lr, step, p, &g, s);
        })?;
        Ok(InPlaceStep {
            loss: lg.loss,
            correct,
        })
    })
}

/// `acc += g`, element by element. Called once per micro-batch in micro-batch order, starting from the first
/// micro-batch's gradients; the distributed update task calls exactly this.
pub fn accumulate<T: Float>(acc: &mut [Vec<Tensor<T>>], g: &[Vec<Tensor<T>>]) {
    assert_eq!(acc.len(), g.len(), "gradients of the same units");
    for (a, b) in acc.iter_mut().zip(g) {
        for (a, b) in a.iter_mut().zip(b) {
            let n = a.len();
            let zip = Zip::from(a).and(b);
            if wide(n) {
                zip.par_for_each(|a, &b| *a += b)
            } else {
                zip.for_each(|a, &b| *a += b)
            }
        }
    }
}

/// Adds one micro-batch's gradients to the running sum: the first becomes the sum, each later one is added with
/// [`accumulate`]. Fed micro-batches in order, this is *the* sum both the single-process step and the update task
/// compute.
pub fn add_in_order<T: Float>(sum: &mut Option<UnitTensors<T>>, grads: UnitTensors<T>) {
    match sum.as_mut() {
        None => *sum = Some(grads),
        Some(acc) => accumulate(acc, &grads),
    }
}

/// Σ g² of the gradients in f64, as the partial sums of fixed chunks ([`crate::shard`]): each unit's elements in
/// [`crate::shard::NORM_CHUNK`]-element chunks, each chunk summed in element order, units in order. A sharded update
/// computes the same chunks shard by shard, so [`global_norm`] of either list has the same bits.
pub fn chunk_sums_of_squares<T: Float>(grads: &[Vec<Tensor<T>>]) -> Vec<f64> {
    let mut sums = ChunkSums::default();
    for unit in grads {
        let mut offset = 0;
        for t in unit {
            sums.add(offset, &elements(t));
            offset += t.len();
        }
    }
    sums.sums
}

/// √(Σ of the chunk sums, in order, from 0).
pub fn global_norm(chunk_sums: &[f64]) -> f64 {
    chunk_sums.iter().fold(0.0, |a, &s| a + s).sqrt()
}

/// PyTorch's `clip_grad_norm_` factor: `min(1, max_norm / (norm + 1e-6))`.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// The state-dict name of the first parameter of units `range` whose gradient — or value: any tensors laid out as
/// the parameters, `tensors[unit][param]`, the units of `range` in order — holds a NaN or an infinity, if any.
pub fn first_non_finite<T: Float>(
    model: &Model,
    range: std::ops::Range<usize>,
    tensors: &[Vec<Tensor<T>>],
) -> Option<String> {
    model.units()[range]
        .iter()
        .zip(tensors)
        .flat_map(|(unit, per_unit)| unit.params().into_iter().zip(per_unit))
        .find(|(_, t)| !all_finite(t))
        .map(|(spec, _)| spec.name)
}

/// Whether every element is finite. A chunk at a time with no early exit inside a chunk, which the compiler
/// vectorises: 0.14–0.23 ms per 4 MB where `iter().all(is_finite)` took 0.44–0.84 (1.3–2.4 ms a step for the
/// gradients of MLP 784-1024-1024-1024-10).
fn all_finite<T: Float>(t: &Tensor<T>) -> bool {
    match t.as_slice_memory_order() {
        Some(v) => v
            .chunks(1024)
            .all(|c| c.iter().fold(true, |ok, x| ok & x.is_finite())),
        None => t.iter().all(|x| x.is_finite()),
    }
}

/// Multiplies every gradient by `factor` (skipped when it is exactly 1, so unclipped steps are untouched).
pub fn scale<T: Float>(grads: &mut [Vec<Tensor<T>>], factor: f64) {
    if factor == 1.0 {
        return;
    }
    let f = T::of(factor);
    for t in grads.iter_mut().flatten() {
        t.mapv_inplace(|v| v * f);
    }
}
