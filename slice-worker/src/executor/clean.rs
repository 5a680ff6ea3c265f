//! What a finished update shard deletes: its own shard's inputs and previous version, and — shard 0 only, once
//! every forward and backward of the step and slice is done (each shard waits for all of them) — what the slice's
//! micro-batches shared and the previous step's dependency sets.

use super::{RunCtx, TaskError, Worker};
use crate::dag;
use crate::store::Keys;
use crate::task::TaskId;

impl Worker {
    /// Deletes what step `step` of slice `slice` no longer needs once update shard `shard` is done. A late duplicate
    /// that records into a deleted set is superseded first (its probe key exists by then), so it cannot fire
    /// anything.
    pub(super) async fn clean_step(
        &self,
        ctx: &RunCtx,
        step: u64,
        slice: usize,
        shard: usize,
    ) -> Result<(), TaskError> {
        let k = &ctx.keys;
        let mut dead = Vec::new();
        if !ctx.plan.keeps(step - 1) {
            dead.extend([
                k.weights(slice, step - 1, shard),
                k.optimizer(slice, step - 1, shard),
            ]);
        }
        dead.extend((0..ctx.plan.microbatches).map(|mb| k.param_grads(step, slice, mb, shard)));
        if ctx.plan.grad_clip.is_some() {
            dead.extend([
                k.grad_sum(step, slice, shard),
                k.norm_sums(step, slice, shard),
            ]);
        }
        if shard == 0 {
            dead.extend(Self::shared_keys(ctx, step, slice));
        }
        self.store.delete(&dead).await?;
        Ok(())
    }

    /// What the micro-batches of step `step` on slice `slice` shared, and the dependency sets (with their fired
    /// marks) of the slice's tasks of the step before.
    fn shared_keys(ctx: &RunCtx, step: u64, slice: usize) -> Vec<String> {
        let k = &ctx.keys;
        let mut dead = Vec::new();
        for mb in 0..ctx.plan.microbatches {
            dead.push(k.gradient(step, slice, mb));
            dead.push(k.cache(step, slice, mb));
            dead.push(if slice == 0 {
                k.inputs(step, mb)
            } else {
                k.activation(step, slice - 1, mb)
            });
            if slice == ctx.plan.last_slice() {
                dead.push(k.targets(step, mb));
            }
        }
        if step > ctx.plan.first_step {
            let old = step - 1;
            let tasks = dag::step_tasks(&ctx.plan, old)
                .into_iter()
                .filter(|t| match t {
                    TaskId::C { .. } => slice == 0,
                    t => t.slice() == slice,
                });
            for t in tasks {
                let set = k.dependencies(&t.to_string());
                dead.push(Keys::fired(&set));
                dead.push(set);
            }
            if slice == 0 && ctx.plan.grad_clip.is_some() {
                dead.push(k.clip(old));
            }
        }
        dead
    }
}
