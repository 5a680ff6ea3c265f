//! The update side of a step, per shard of a slice's parameters: the gradient sum streamed micro-batch by
//! micro-batch (`U`, or `R` when the plan clips), the clip barrier (`C`), and the optimizer on the shard (`U`).
//!
//! The sum reads one micro-batch's shard at a time, in micro-batch order, into a running sum (the additions of
//! [`models::train::add_in_order`], each later shard added from its bytes as they lie): each element is then the
//! in-process sum, and the task holds one gradient shard beside the sum instead of all M.

use super::{Outcome, RunCtx, TaskError, Worker};
use crate::codec::{
    add_shard, decode_f64s, decode_shard, decode_shard_state, encode_f64s, encode_shard,
    encode_shard_state,
};
use crate::task::TaskId;
use bytes::Bytes;
use models::train::{clip_factor, global_norm, scale};
use models::Tensor;
use std::sync::Arc;
use std::time::Instant;

/// A shard's values as the optimizer and the sum see them: its pieces, as the one "unit" of a unit list.
type Pieces = Vec<Tensor<f32>>;

impl Worker {
    /// Shard `shard` of slice `slice`'s gradients summed over step `step`'s micro-batches, in micro-batch order,
    /// one micro-batch read at a time; refused when an element is not finite.
    async fn sum_gradients(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        (step, slice, shard): (u64, usize, usize),
        out: &mut Outcome,
    ) -> Result<Pieces, TaskError> {
        let (layout, range) = (&ctx.layouts[slice], &ctx.shards[slice][shard]);
        // The first micro-batch's gradient becomes the sum; each later one is added from its bytes as they lie (the
        // order and the additions of `models::train::add_in_order`, without a decoded copy of each).
        let mut sum: Option<Pieces> = None;
        for mb in 0..ctx.plan.microbatches {
            let key = ctx.keys.param_grads(step, slice, mb, shard);
            let bytes = self.fetch(&task, &key, out).await?;
            match sum.as_mut() {
                None => {
                    sum = Some(
                        decode_shard(layout, range, &bytes, &key).map_err(Self::model_err(task))?,
                    )
                }
                Some(acc) => {
                    add_shard(layout, range, &bytes, &key, acc).map_err(Self::model_err(task))?
                }
            }
        }
        let sum = sum.unwrap_or_else(|| unreachable!("a plan has at least one micro-batch"));
        let pieces = layout.pieces(range);
        if let Some(p) = pieces
            .iter()
            .zip(&sum)
            .find(|(_, t)| t.iter().any(|v| !v.is_finite()))
        {
            return Err(TaskError::NotFinite {
                task: task.to_string(),
                what: format!("the gradient of {}", layout.piece_name(p.0)),
                step,
                slice,
            });
        }
        Ok(sum)
    }

    /// `R(t,s,k)`: the shard's gradient sum and its chunk sums of squares (the latter last: the "outputs exist" mark).
    pub(super) async fn reduce(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        shard: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::R { step, slice, shard };
        let sum = self
            .sum_gradients(ctx, task, (step, slice, shard), out)
            .await?;
        let (layout, range) = (&ctx.layouts[slice], &ctx.shards[slice][shard]);
        let norms = layout.chunk_sums(range, &sum);
        let bytes = encode_shard(layout, range, &sum).map_err(Self::model_err(task))?;
        drop(sum);
        let outputs = vec![
            (ctx.keys.grad_sum(step, slice, shard), bytes),
            (
                ctx.keys.norm_sums(step, slice, shard),
                encode_f64s(&norms.sums),
            ),
        ];
        self.put_many(outputs, ctx.ttl(), out).await
    }

    /// `C(t)`: every reduce shard's chunk sums, concatenated in slice and shard order — the whole model's chunks in
    /// order, as in process — then the global norm and the clip factor `[norm, factor]`.
    pub(super) async fn clip(
        &self,
        ctx: &RunCtx,
        step: u64,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::C { step };
        let keys: Vec<String> = ctx
            .plan
            .update_shards()
            .map(|(slice, shard)| ctx.keys.norm_sums(step, slice, shard))
            .collect();
        let fetched = self.fetch_all(task, &keys, out).await?;
        let mut chunks = Vec::new();
        for (key, bytes) in keys.iter().zip(fetched) {
            chunks.extend(decode_f64s(&bytes, key).map_err(Self::model_err(task))?);
        }
        let norm = global_norm(&chunks);
        let max = ctx
            .plan
            .grad_clip
            .unwrap_or_else(|| unreachable!("a clip task is valid only in a plan that clips"));
        out.grad_norm = Some(norm);
        let value = encode_f64s(&[norm, clip_factor(norm, max)]);
        self.put_many(vec![(ctx.keys.clip(step), value)], ctx.ttl(), out)
            .await
    }

    /// The clip factor `C(step)` wrote.
    async fn clip_factor(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        step: u64,
        out: &mut Outcome,
    ) -> Result<f64, TaskError> {
        let key = ctx.keys.clip(step);
        let bytes = self.fetch(&task, &key, out).await?;
        match decode_f64s(&bytes, &key)
            .map_err(Self::model_err(task))?
            .as_slice()
        {
            [_, factor] => Ok(*factor),
            other => Err(TaskError::Model {
                task: task.to_string(),
                source: models::ModelError::Format {
                    source_name: key,
                    reason: format!("{} values, expected [norm, factor]", other.len()),
                },
            }),
        }
    }

    /// `U(t,s,k)`: the shard's gradient sum (summed here, or the reduce task's scaled by the clip factor), the
    /// optimizer on the shard, then state, weights and the `done` mark in one pipeline, in that order.
    pub(super) async fn update(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        shard: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::U { step, slice, shard };
        let plan = &ctx.plan;
        let (layout, range) = (&ctx.layouts[slice], &ctx.shards[slice][shard]);
        let grads = if plan.grad_clip.is_some() {
            let key = ctx.keys.grad_sum(step, slice, shard);
            let bytes = self.fetch(&task, &key, out).await?;
            let sum = decode_shard(layout, range, &bytes, &key).map_err(Self::model_err(task))?;
            let factor = self.clip_factor(ctx, task, step, out).await?;
            let mut units = vec![sum];
            scale(&mut units, factor);
            units.pop().unwrap_or_default()
        } else {
            self.sum_gradients(ctx, task, (step, slice, shard), out)
                .await?
        };
        let mut params = self
            .shard_params(ctx, task, (slice, shard), step - 1, out)
            .await?;
        let slots = plan.optimizer.slots();
        let okey = ctx.keys.optimizer(slice, step - 1, shard);
        let obytes = self.fetch(&task, &okey, out).await?;
        let mut state = decode_shard_state(layout, range, slots, &obytes, &okey)
            .map_err(Self::model_err(task))?;
        drop(obytes);
        let lr = plan.schedule.lr(plan.lr, step - 1, plan.steps);
        plan.optimizer.step_units(
            lr,
            step,
            std::slice::from_mut(&mut params),
            &[grads],
            std::slice::from_mut(&mut state),
        );
        let w = encode_shard(layout, range, &params).map_err(Self::model_err(task))?;
        let o = encode_shard_state(layout, range, slots, &state, step)
            .map_err(Self::model_err(task))?;
        drop(state);
        // One pipeline, in order: state, weights, then the `done` mark — whoever sees the mark may rely on both.
        let versioned: Vec<(String, Bytes)> = vec![
            (ctx.keys.optimizer(slice, step, shard), o),
            (ctx.keys.weights(slice, step, shard), w),
            (ctx.keys.done(slice, step, shard), Bytes::from_static(b"1")),
        ];
        self.put_many(versioned, ctx.ttl(), out).await?;
        // This container will likely run the slice's next forward: keep the new version decoded when this shard is
        // the whole slice.
        if ctx.shard_count(slice) == 1 {
            if let Ok(whole) = layout.assemble(&ctx.shards[slice], vec![params]) {
                self.cache_weights(ctx, ctx.keys.weight_set(slice, step), Arc::new(whole));
            }
        }
        let t0 = Instant::now();
        let cleaned = self.clean_step(ctx, step, slice, shard).await;
        out.store += t0.elapsed();
        cleaned
    }
}
