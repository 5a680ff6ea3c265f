//! The static task graph of a split run, in one place: which tasks a finished task feeds (and how many inputs each
//! of those waits for), and which inputs a task waits for. The executor records completions with [`successors`];
//! the run driver decides when a task is overdue with [`predecessors`]. Both read the same rules, so they cannot
//! drift apart.
//!
//! ```text
//! data(t) ─► F(t,0,m) ─► F(t,1,m) ─► … ─► F(t,S−1,m)   (the last slice's F runs its backward too)
//!                                              │
//!            U(t,s,k) ◄── B(t,s,m) ◄── … ◄─────┘       (B(t,s,m) for s < S−1; the last slice's node is F)
//!              │
//!              └─► F(t+1,s,m) for every m              (with F(t+1,s−1,m) or data(t+1))
//! ```
//!
//! Slice `s`'s update runs as `K_s` shards `U(t,s,k)` ([`RunPlan::shard_count`]), each waiting for all M backward
//! nodes of its slice; `F(t+1,s,m)` waits for all `K_s`. A plan that clips puts a barrier between the gradient sums
//! and the updates: `B(t,s,m) ─► R(t,s,k) ─► C(t) ─► U(t,s,k)` — every reduce shard of every slice feeds the one
//! clip task of the step, which releases every update shard.

use crate::plan::RunPlan;
use crate::task::TaskId;

/// An input of a task: another task, or the driver's data for a step (the leaves' input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Data { step: u64 },
    Task(TaskId),
}

/// How many inputs `F(t, s, m)` waits for: the previous slice's output (or, for slice 0, the driver's data) and,
/// after the plan's first step, every update shard of its own slice.
pub fn forward_dependencies(plan: &RunPlan, step: u64, slice: usize) -> usize {
    if step <= plan.first_step {
        1
    } else {
        1 + plan.shard_count(slice)
    }
}

/// The node that ends micro-batch `mb`'s backward pass through `slice`: `B(t,s,m)`, or for the last slice the
/// forward task that runs its backward in the same invocation.
pub fn backward_node(plan: &RunPlan, step: u64, slice: usize, mb: usize) -> TaskId {
    if slice == plan.last_slice() {
        TaskId::F { step, slice, mb }
    } else {
        TaskId::B { step, slice, mb }
    }
}

/// The tasks that read a slice's backward output of step `step`: its reduce shards when the plan clips, else its
/// update shards.
fn gradient_readers(plan: &RunPlan, step: u64, slice: usize) -> impl Iterator<Item = TaskId> {
    let clips = plan.grad_clip.is_some();
    (0..plan.shard_count(slice)).map(move |shard| {
        if clips {
            TaskId::R { step, slice, shard }
        } else {
            TaskId::U { step, slice, shard }
        }
    })
}

/// How many reduce shards feed `C(t)`: every shard of every slice.
fn all_shards(plan: &RunPlan) -> usize {
    (0..plan.slices.len()).map(|s| plan.shard_count(s)).sum()
}

/// The tasks `task` is an input of, each with the number of inputs it waits for, critical path first.
pub fn successors(plan: &RunPlan, task: TaskId) -> Vec<(TaskId, usize)> {
    let last = plan.last_slice();
    let m_all = plan.microbatches;
    match task {
        TaskId::F { step, slice, mb } if slice < last => vec![(
            TaskId::F {
                step,
                slice: slice + 1,
                mb,
            },
            forward_dependencies(plan, step, slice + 1),
        )],
        // The end of a micro-batch's backward through `slice` (B, or the last slice's F).
        TaskId::F { step, slice, mb } | TaskId::B { step, slice, mb } => {
            let mut next = Vec::with_capacity(1 + plan.shard_count(slice));
            if slice > 0 {
                next.push((
                    TaskId::B {
                        step,
                        slice: slice - 1,
                        mb,
                    },
                    1,
                ));
            }
            next.extend(gradient_readers(plan, step, slice).map(|t| (t, m_all)));
            next
        }
        TaskId::R { step, .. } => vec![(TaskId::C { step }, all_shards(plan))],
        TaskId::C { step } => plan
            .update_shards()
            .map(|(slice, shard)| (TaskId::U { step, slice, shard }, 1))
            .collect(),
        TaskId::U { step, slice, .. } if step < plan.steps => (0..m_all)
            .map(|mb| {
                (
                    TaskId::F {
                        step: step + 1,
                        slice,
                        mb,
                    },
                    forward_dependencies(plan, step + 1, slice),
                )
            })
            .collect(),
        TaskId::U { .. } => Vec::new(),
    }
}

/// The inputs `task` waits for.
pub fn predecessors(plan: &RunPlan, task: TaskId) -> Vec<Input> {
    let backward_nodes = |step, slice| {
        (0..plan.microbatches)
            .map(|mb| Input::Task(backward_node(plan, step, slice, mb)))
            .collect()
    };
    match task {
        TaskId::F { step, slice, mb } => {
            let mut inputs = vec![if slice == 0 {
                Input::Data { step }
            } else {
                Input::Task(TaskId::F {
                    step,
                    slice: slice - 1,
                    mb,
                })
            }];
            if step > plan.first_step {
                inputs.extend((0..plan.shard_count(slice)).map(|shard| {
                    Input::Task(TaskId::U {
                        step: step - 1,
                        slice,
                        shard,
                    })
                }));
            }
            inputs
        }
        TaskId::B { step, slice, mb } => {
            vec![Input::Task(backward_node(plan, step, slice + 1, mb))]
        }
        TaskId::U { step, .. } if plan.grad_clip.is_some() => {
            vec![Input::Task(TaskId::C { step })]
        }
        TaskId::U { step, slice, .. } | TaskId::R { step, slice, .. } => {
            backward_nodes(step, slice)
        }
        TaskId::C { step } => plan
            .update_shards()
            .map(|(slice, shard)| Input::Task(TaskId::R { step, slice, shard }))
            .collect(),
    }
}

/// Every task of step `step`, in a topological order.
pub fn step_tasks(plan: &RunPlan, step: u64) -> Vec<TaskId> {
    let (slices, m_all) = (plan.slices.len(), plan.microbatches);
    let mut tasks = Vec::new();
    for slice in 0..slices {
        tasks.extend((0..m_all).map(|mb| TaskId::F { step, slice, mb }));
    }
    for slice in (0..slices.saturating_sub(1)).rev() {
        tasks.extend((0..m_all).map(|mb| TaskId::B { step, slice, mb }));
    }
    if plan.grad_clip.is_some() {
        tasks.extend(
            plan.update_shards()
                .map(|(slice, shard)| TaskId::R { step, slice, shard }),
        );
        tasks.push(TaskId::C { step });
    }
    tasks.extend(
        plan.update_shards()
            .map(|(slice, shard)| TaskId::U { step, slice, shard }),
    );
    tasks
}

/// The update tasks of step `step`: when all have reported, the step is done.
pub fn update_tasks(plan: &RunPlan, step: u64) -> impl Iterator<Item = TaskId> + '_ {
    plan.update_shards()
        .map(move |(slice, shard)| TaskId::U { step, slice, shard })
}

/// Whether `task` names a task of this plan (slice, micro-batch, shard and step in range; reduce and clip tasks only
/// in a plan that clips).
pub fn is_valid(plan: &RunPlan, task: TaskId) -> bool {
    let (slices, m_all) = (plan.slices.len(), plan.microbatches);
    let step_ok = (plan.first_step..=plan.steps).contains(&task.step());
    let clips = plan.grad_clip.is_some();
    step_ok
        && match task {
            TaskId::F { slice, mb, .. } => slice < slices && mb < m_all,
            // `slice + 1` would overflow for a slice near usize::MAX (a hostile payload; found by fuzzing).
            TaskId::B { slice, mb, .. } => slice < slices.saturating_sub(1) && mb < m_all,
            TaskId::U { slice, shard, .. } => slice < slices && shard < plan.shard_count(slice),
            TaskId::R { slice, shard, .. } => {
                clips && slice < slices && shard < plan.shard_count(slice)
            }
            TaskId::C { .. } => clips,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::{Activation, ModelSpec};
    use std::collections::HashMap;

    fn plan(slices: usize, microbatches: usize, steps: u64) -> RunPlan {
        let model = ModelSpec::Mlp {
            widths: vec![4; slices + 1],
            activation: Activation::Relu,
        };
        let cuts = RunPlan::even_slices(slices, slices).unwrap();
        RunPlan {
            steps,
            ..RunPlan::example(model, cuts, microbatches)
        }
    }

    /// Every shape of graph: shard counts per slice (cycled over the slices), with and without the clip barrier.
    fn variants(mut p: RunPlan) -> Vec<RunPlan> {
        let mut out = Vec::new();
        for shards in [vec![], vec![2], vec![3, 1], vec![1, 7, 2]] {
            for clip in [None, Some(1.0)] {
                p.shards = (0..p.slices.len())
                    .map(|s| shards.get(s % shards.len().max(1)).copied().unwrap_or(1))
                    .collect();
                p.grad_clip = clip;
                out.push(p.clone());
            }
        }
        out
    }

    /// Successors and predecessors are two views of one graph: every edge appears in both, and every task's
    /// input count matches what its feeders announce — also for a resumed run's plan, whose first step waits for
    /// no update.
    #[test]
    fn successors_and_predecessors_describe_the_same_graph() {
        for (s, m, t, first) in [
            (1, 1, 2, 1),
            (2, 3, 3, 1),
            (4, 2, 2, 1),
            (3, 1, 1, 1),
            (2, 2, 5, 3),
            (3, 2, 4, 4),
        ] {
            let mut base = plan(s, m, t);
            base.first_step = first;
            for p in variants(base) {
                let shards: usize = (0..s).map(|i| p.shard_count(i)).sum();
                let clip_tasks = if p.grad_clip.is_some() { shards + 1 } else { 0 };
                let mut fed: HashMap<TaskId, (usize, Vec<Input>)> = HashMap::new();
                for step in first..=t {
                    for task in step_tasks(&p, step) {
                        assert!(is_valid(&p, task), "{task}");
                        for (next, needed) in successors(&p, task) {
                            let e = fed.entry(next).or_insert((needed, Vec::new()));
                            assert_eq!(e.0, needed, "{next}: inconsistent input count");
                            e.1.push(Input::Task(task));
                        }
                    }
                }
                for step in first..=t {
                    for task in step_tasks(&p, step) {
                        let preds = predecessors(&p, task);
                        let from_tasks: Vec<Input> = preds
                            .iter()
                            .filter(|i| matches!(i, Input::Task(_)))
                            .copied()
                            .collect();
                        let (needed, mut feeders) =
                            fed.remove(&task).unwrap_or((preds.len(), Vec::new()));
                        assert_eq!(needed, preds.len(), "{task}");
                        feeders.sort_by_key(|i| format!("{i:?}"));
                        let mut want = from_tasks.clone();
                        want.sort_by_key(|i| format!("{i:?}"));
                        assert_eq!(feeders, want, "{task} (S={s}, M={m})");
                    }
                }
                assert!(fed.is_empty(), "edges to tasks outside the run: {fed:?}");
                assert_eq!(
                    step_tasks(&p, first).len(),
                    s * m + (s - 1) * m + shards + clip_tasks,
                    "F, B, (R, C) and U tasks per step"
                );
            }
        }
    }

    #[test]
    fn out_of_range_tasks_are_invalid() {
        let mut resumed = plan(2, 2, 3);
        resumed.first_step = 2;
        let before_the_resumed_start = TaskId::U {
            step: 1,
            slice: 0,
            shard: 0,
        };
        assert!(!is_valid(&resumed, before_the_resumed_start));
        // The fuzzer's reproducer: a backward on slice usize::MAX wrapped `slice + 1` to 0 and passed.
        let hostile = TaskId::B {
            step: 1,
            slice: usize::MAX,
            mb: 0,
        };
        assert!(!is_valid(&resumed, hostile));
        let p = plan(2, 2, 3);
        for bad in [
            TaskId::F {
                step: 0,
                slice: 0,
                mb: 0,
            },
            TaskId::F {
                step: 4,
                slice: 0,
                mb: 0,
            },
            TaskId::F {
                step: 1,
                slice: 2,
                mb: 0,
            },
            TaskId::F {
                step: 1,
                slice: 0,
                mb: 2,
            },
            TaskId::B {
                step: 1,
                slice: 1,
                mb: 0,
            },
            TaskId::U {
                step: 1,
                slice: 2,
                shard: 0,
            },
            TaskId::U {
                step: 1,
                slice: 0,
                shard: 1,
            },
            // Reduce and clip tasks belong to plans that clip.
            TaskId::R {
                step: 1,
                slice: 0,
                shard: 0,
            },
            TaskId::C { step: 1 },
        ] {
            assert!(!is_valid(&p, bad), "{bad}");
        }
        let sharded = RunPlan {
            shards: vec![3, 1],
            grad_clip: Some(1.0),
            ..p
        };
        assert!(is_valid(
            &sharded,
            TaskId::R {
                step: 1,
                slice: 0,
                shard: 2
            }
        ));
        assert!(!is_valid(
            &sharded,
            TaskId::R {
                step: 1,
                slice: 1,
                shard: 1
            }
        ));
        assert!(is_valid(&sharded, TaskId::C { step: 3 }));
    }
}
