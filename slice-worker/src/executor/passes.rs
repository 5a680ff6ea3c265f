//! The forward and backward tasks of a slice on one micro-batch (the last slice's forward runs its backward too).

use super::{Outcome, RunCtx, TaskError, Worker};
use crate::codec::{
    decode_caches, decode_targets, decode_tensor, encode_caches, encode_loss, encode_shard_of,
    encode_tensor,
};
use crate::dag;
use crate::task::TaskId;
use models::Tensor;

impl Worker {
    pub(super) async fn slice_input(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<Tensor<f32>, TaskError> {
        let key = if slice == 0 {
            ctx.keys.inputs(step, mb)
        } else {
            ctx.keys.activation(step, slice - 1, mb)
        };
        let bytes = self.fetch(&task, &key, out).await?;
        decode_tensor(&bytes, &key).map_err(Self::model_err(task))
    }

    pub(super) async fn forward(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = TaskId::F { step, slice, mb };
        let params = self.slice_params(ctx, task, slice, step - 1, out).await?;
        let x = self.slice_input(ctx, task, step, slice, mb, out).await?;
        let range = ctx.plan.slice_range(slice);
        let mut outputs = Vec::with_capacity(2);
        let y = if ctx.plan.recompute {
            ctx.model.infer(range, &params, x)
        } else {
            ctx.model
                .forward(range, &params, x)
                .and_then(|(y, caches)| {
                    let bytes = encode_caches(caches)?;
                    outputs.push((ctx.keys.cache(step, slice, mb), bytes));
                    Ok(y)
                })
        }
        .map_err(Self::model_err(task))?;
        let bytes = encode_tensor(&y).map_err(Self::model_err(task))?;
        // The activation last: its presence is the "outputs exist" mark.
        outputs.push((ctx.keys.activation(step, slice, mb), bytes));
        self.put_many(outputs, ctx.ttl(), out).await
    }

    /// Backward of `slice` on micro-batch `mb` (for the last slice: its forward, the loss, then its backward).
    pub(super) async fn backward(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        mb: usize,
        out: &mut Outcome,
    ) -> Result<(), TaskError> {
        let task = dag::backward_node(&ctx.plan, step, slice, mb);
        let last = slice == ctx.plan.last_slice();
        let range = ctx.plan.slice_range(slice);
        let params = self.slice_params(ctx, task, slice, step - 1, out).await?;
        let (y, caches) = if last || ctx.plan.recompute {
            let x = self.slice_input(ctx, task, step, slice, mb, out).await?;
            let (y, caches) = ctx
                .model
                .forward(range.clone(), &params, x)
                .map_err(Self::model_err(task))?;
            (Some(y), caches)
        } else {
            let key = ctx.keys.cache(step, slice, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            let caches = decode_caches(&bytes, &key).map_err(Self::model_err(task))?;
            (None, caches)
        };
        let mut outputs = Vec::with_capacity(3);
        let dy = if let Some(y) = y.as_ref().filter(|_| last) {
            let key = ctx.keys.targets(step, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            let targets = decode_targets(&bytes, &key).map_err(Self::model_err(task))?;
            let lg = ctx
                .model
                .loss(y, &targets, ctx.plan.batch_size)
                .map_err(Self::model_err(task))?;
            out.loss = Some(lg.loss);
            outputs.push((ctx.keys.loss(step, mb), encode_loss(lg.loss)));
            lg.dlogits
        } else {
            let key = ctx.keys.gradient(step, slice, mb);
            let bytes = self.fetch(&task, &key, out).await?;
            decode_tensor(&bytes, &key).map_err(Self::model_err(task))?
        };
        drop(y);
        let (dx, grads) = ctx
            .model
            .backward(range.clone(), &params, &caches, dy)
            .map_err(Self::model_err(task))?;
        drop(caches);
        if let Some(dx) = dx.filter(|_| slice > 0) {
            let bytes = encode_tensor(&dx).map_err(Self::model_err(task))?;
            outputs.push((ctx.keys.gradient(step, slice - 1, mb), bytes));
        }
        // The parameter gradients as one key per update shard, the last shard's last: its presence is the "outputs
        // exist" mark, and a pipeline runs in order.
        let layout = &ctx.layouts[slice];
        for (k, r) in ctx.shards[slice].iter().enumerate() {
            let pg = encode_shard_of(layout, r, &grads).map_err(Self::model_err(task))?;
            outputs.push((ctx.keys.param_grads(step, slice, mb, k), pg));
        }
        drop(grads);
        self.put_many(outputs, ctx.ttl(), out).await
    }
}
