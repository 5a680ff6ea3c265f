//! Key layout: everything a run writes lives under `run:{id}:`, so runs on one Redis never meet and a run's
//! leftovers can be found and deleted by prefix.

/// Builds the keys of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys of run `run_id` (letters, digits, `-`, `_` only, so a prefix cannot match another run's keys).
    pub fn new(run_id: &str) -> Option<Keys> {
        let ok = !run_id.is_empty()
            && run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then(|| Keys {
            prefix: format!("run:{run_id}:"),
        })
    }

    /// The namespace every key of the run starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.prefix["run:".len()..self.prefix.len() - 1]
    }

    /// Shard `shard` of slice `slice`'s weights at version `version` (= after `version` updates).
    pub fn weights(&self, slice: usize, version: u64, shard: usize) -> String {
        format!("{}w:{slice}:{version}:{shard}", self.prefix)
    }

    /// The name a container caches slice `slice`'s whole weights of version `version` under (no store key).
    pub fn weight_set(&self, slice: usize, version: u64) -> String {
        format!("{}w:{slice}:{version}", self.prefix)
    }

    /// Shard `shard` of slice `slice`'s optimizer state at version `version`.
    pub fn optimizer(&self, slice: usize, version: u64, shard: usize) -> String {
        format!("{}o:{slice}:{version}:{shard}", self.prefix)
    }

    /// Shard `shard` of slice `slice`'s gradient summed over the micro-batches of step `step` (plans that clip: the
    /// reduce task writes it, the update reads it once the clip factor is known).
    pub fn grad_sum(&self, step: u64, slice: usize, shard: usize) -> String {
        format!("{}gs:{step}:{slice}:{shard}", self.prefix)
    }

    /// The chunk sums of squares of that summed gradient shard (f64 little-endian each, in order).
    pub fn norm_sums(&self, step: u64, slice: usize, shard: usize) -> String {
        format!("{}n:{step}:{slice}:{shard}", self.prefix)
    }

    /// Step `step`'s clip factor (8 bytes, f64 little-endian), written by the clip barrier `C(step)`.
    pub fn clip(&self, step: u64) -> String {
        format!("{}clip:{step}", self.prefix)
    }

    /// Activation leaving slice `slice` in step `step` for micro-batch `mb`.
    pub fn activation(&self, step: u64, slice: usize, mb: usize) -> String {
        format!("{}a:{step}:{slice}:{mb}", self.prefix)
    }

    /// Gradient of the loss with respect to the output of slice `slice` (written by the backward of the slice
    /// above) in step `step`, micro-batch `mb`.
    pub fn gradient(&self, step: u64, slice: usize, mb: usize) -> String {
        format!("{}g:{step}:{slice}:{mb}", self.prefix)
    }

    /// Marks that update shard `shard` of slice `slice` in step `version` has written its weights and state version
    /// `version`: the proof that every forward and backward of that step and slice is done (every shard waits for
    /// all of them), so a late duplicate of one is a no-op. A few bytes; it stays until the run's cleanup.
    pub fn done(&self, slice: usize, version: u64, shard: usize) -> String {
        format!("{}done:{slice}:{version}:{shard}", self.prefix)
    }

    /// Micro-batch `mb`'s share of the batch loss in step `step` (8 bytes, f64 little-endian), written by the last
    /// slice's backward and read by the run driver.
    pub fn loss(&self, step: u64, mb: usize) -> String {
        format!("{}l:{step}:{mb}", self.prefix)
    }

    /// Layer caches of slice `slice`'s forward in step `step`, micro-batch `mb` (plans with `recompute = false`).
    pub fn cache(&self, step: u64, slice: usize, mb: usize) -> String {
        format!("{}c:{step}:{slice}:{mb}", self.prefix)
    }

    /// The run plan (JSON).
    pub fn plan(&self) -> String {
        format!("{}plan", self.prefix)
    }

    /// Inputs of micro-batch `mb` of step `step`.
    pub fn inputs(&self, step: u64, mb: usize) -> String {
        format!("{}x:{step}:{mb}", self.prefix)
    }

    /// Targets of micro-batch `mb` of step `step`.
    pub fn targets(&self, step: u64, mb: usize) -> String {
        format!("{}y:{step}:{mb}", self.prefix)
    }

    /// Shard `shard` of slice `slice`'s parameter gradients from micro-batch `mb` of step `step`.
    pub fn param_grads(&self, step: u64, slice: usize, mb: usize, shard: usize) -> String {
        format!("{}pg:{step}:{slice}:{mb}:{shard}", self.prefix)
    }

    /// Dependency set of a fan-in task, named by the task it starts.
    pub fn dependencies(&self, task: &str) -> String {
        format!("{}deps:{task}", self.prefix)
    }

    /// The mark that dependency set `set` has fired (its task was started), kept beside the set so that the fan-in
    /// fires once however often its last member is added. Derived from the set's own key, so the stores can find it
    /// without knowing the run.
    pub fn fired(set: &str) -> String {
        format!("{set}:fired")
    }

    /// Claim of a task's execution.
    pub fn claim(&self, task: &str) -> String {
        format!("{}claim:{task}", self.prefix)
    }

    /// The warm pool's barrier for `function`: the instances holding a warm probe ([`crate::warm`]).
    pub fn warm(&self, function: &str) -> String {
        format!("{}warm:{function}", self.prefix)
    }

    /// The completion-event stream.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_run_namespace() {
        let k = Keys::new("r1").unwrap();
        assert_eq!(k.run_id(), "r1");
        for key in [
            k.warm("trainer-1024mb"),
            k.weights(0, 3, 1),
            k.optimizer(1, 0, 0),
            k.grad_sum(1, 0, 2),
            k.norm_sums(1, 0, 2),
            k.clip(4),
            k.activation(2, 0, 1),
            k.gradient(2, 1, 0),
            k.events(),
            k.done(1, 2, 0),
            k.loss(3, 0),
            k.cache(1, 0, 2),
        ] {
            assert!(key.starts_with("run:r1:"), "{key}");
        }
        assert!(Keys::new("a:b").is_none() && Keys::new("").is_none() && Keys::new("r*").is_none());
    }
}
