//! A slice's weights as a task uses them: the whole slice assembled from its shards' keys, or one shard's pieces,
//! through the container's cache of decoded versions ([`crate::weight_cache`], as many as the plan says).

use super::{Outcome, RunCtx, TaskError, Worker};
use crate::codec::decode_shard;
use crate::task::TaskId;
use crate::weight_cache::Weights;
use models::Tensor;
use std::sync::Arc;

impl Worker {
    fn cached_weights(&self, ctx: &RunCtx, key: &str) -> Option<Weights> {
        let mut cache = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key, ctx.plan.weight_cache)
    }

    /// Keeps a slice's whole weights decoded in this container, as many versions as the plan allows.
    pub(super) fn cache_weights(&self, ctx: &RunCtx, key: String, weights: Weights) {
        let mut cache = self.weights.lock().unwrap_or_else(|e| e.into_inner());
        cache.put(key, weights, ctx.plan.weight_cache);
    }

    /// Slice `slice`'s weights of version `version`: from the cache, or its K shards read in one round trip and
    /// assembled (each shard's bytes dropped once decoded).
    pub(super) async fn slice_params(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        slice: usize,
        version: u64,
        out: &mut Outcome,
    ) -> Result<Weights, TaskError> {
        let set = ctx.keys.weight_set(slice, version);
        if let Some(w) = self.cached_weights(ctx, &set) {
            out.weights_cached = true;
            return Ok(w);
        }
        let layout = &ctx.layouts[slice];
        self.weights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .make_room(layout.len() * 4, ctx.plan.weight_cache);
        let ranges = &ctx.shards[slice];
        let keys: Vec<String> = (0..ranges.len())
            .map(|k| ctx.keys.weights(slice, version, k))
            .collect();
        let fetched = self.fetch_all(task, &keys, out).await?;
        let mut shards = Vec::with_capacity(ranges.len());
        for ((key, range), bytes) in keys.iter().zip(ranges).zip(fetched) {
            shards.push(decode_shard(layout, range, &bytes, key).map_err(Self::model_err(task))?);
        }
        let w = layout
            .assemble(ranges, shards)
            .map_err(|reason| TaskError::Model {
                task: task.to_string(),
                source: models::ModelError::Checkpoint {
                    source_name: keys.join(", "),
                    tensor: String::new(),
                    reason,
                },
            })?;
        let w = Arc::new(w);
        self.cache_weights(ctx, set, w.clone());
        Ok(w)
    }

    /// Shard `shard` of slice `slice`'s weights of version `version`, as pieces: cut from the cached whole slice when
    /// this container has it, else read from the shard's key.
    pub(super) async fn shard_params(
        &self,
        ctx: &RunCtx,
        task: TaskId,
        (slice, shard): (usize, usize),
        version: u64,
        out: &mut Outcome,
    ) -> Result<Vec<Tensor<f32>>, TaskError> {
        let (layout, range) = (&ctx.layouts[slice], &ctx.shards[slice][shard]);
        if let Some(w) = self.cached_weights(ctx, &ctx.keys.weight_set(slice, version)) {
            out.weights_cached = true;
            return Ok(layout.gather(&w, range));
        }
        let key = ctx.keys.weights(slice, version, shard);
        let bytes = self.fetch(&task, &key, out).await?;
        decode_shard(layout, range, &bytes, &key).map_err(Self::model_err(task))
    }
}
