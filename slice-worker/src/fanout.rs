//! How an invocation starts many successors: a fan-out of `n` tasks is started at most `width` at a time by the
//! invocation itself, and above `width` as a tree — the invocation starts about √n of them, each carrying a share of
//! the rest as its *relay*, which the receiving invocation starts first thing (by the same rule, so a very large
//! relay fans out again).
//!
//! Why a relay and not invoker tasks of their own (WuKong's parallel invokers beside the store): each invoke costs
//! its caller one invoke latency (about 25 ms on Lambda), so one function starting 256 forwards one after another
//! spends 6 s, and even `width` at a time it needs n / width rounds. A tree of depth two starts n ≤ width² tasks in
//! two rounds. Carrying the relay in a task's own payload adds no invocation, no request charge and no process that
//! outlives the run (invokers beside the store would be a server to run, outside the serverless bill); the cost is
//! that a relayed task starts one invoke latency later than a directly started one, and a lost relaying
//! invocation delays its relay until the driver's deadline invokes those tasks again — the same recovery as any
//! lost invoke.

use crate::task::TaskId;

/// The default `width`: invokes one invocation has in flight before a fan-out becomes a tree.
pub const FANOUT_WIDTH: usize = 32;

/// One invocation to start: `task`, carrying `relay` for its receiver to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub task: TaskId,
    pub relay: Vec<TaskId>,
}

/// The invocations to start for `tasks`, at most `width` of them (`width` < 2 counts as 2); every task is in exactly
/// one of them, as its `task` or in its `relay`, and the order of `tasks` is kept within each relay.
pub fn starts(tasks: Vec<TaskId>, width: usize) -> Vec<Start> {
    let width = width.max(2);
    let n = tasks.len();
    if n <= width {
        return tasks
            .into_iter()
            .map(|task| Start {
                task,
                relay: Vec::new(),
            })
            .collect();
    }
    let per_head = n.div_ceil(heads(n, width));
    let mut starts = Vec::new();
    let mut rest = tasks.into_iter();
    while let Some(task) = rest.next() {
        let relay: Vec<TaskId> = rest.by_ref().take(per_head - 1).collect();
        starts.push(Start { task, relay });
    }
    starts
}

/// How many invocations a fan-out of `n` > `width` tasks starts itself: √n (two rounds of at most √n invokes for
/// n ≤ width²), never more than `width`.
fn heads(n: usize, width: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).clamp(2, width)
}

/// Rounds of invokes until every one of `n` tasks has started (each round: at most `width` invokes in flight per
/// invocation, all invocations of a round in parallel) — what [`starts`] promises.
pub fn rounds(n: usize, width: usize) -> usize {
    let width = width.max(2);
    match n {
        0 => 0,
        n if n <= width => 1,
        n => 1 + rounds(n.div_ceil(heads(n, width)) - 1, width),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(n: usize) -> Vec<TaskId> {
        (0..n)
            .map(|mb| TaskId::F {
                step: 1,
                slice: 0,
                mb,
            })
            .collect()
    }

    #[test]
    fn a_fan_out_within_the_width_is_started_directly() {
        let planned = starts(tasks(5), 8);
        assert_eq!(planned.len(), 5);
        assert!(planned.iter().all(|s| s.relay.is_empty()));
        assert_eq!(rounds(5, 8), 1);
    }

    #[test]
    fn a_wide_fan_out_becomes_a_tree_that_starts_every_task_once_in_order() {
        for (n, width) in [
            (9, 8),
            (33, 32),
            (256, 32),
            (1000, 32),
            (10_000, 32),
            (300, 2),
        ] {
            let planned = starts(tasks(n), width);
            assert!(planned.len() <= width, "n {n}: {} heads", planned.len());
            let all: Vec<TaskId> = planned
                .iter()
                .flat_map(|s| std::iter::once(s.task).chain(s.relay.iter().copied()))
                .collect();
            assert_eq!(all, tasks(n), "n {n}, width {width}");
        }
        // 256 forwards at width 32: 16 started directly, each relaying 15 — two rounds.
        let planned = starts(tasks(256), 32);
        assert_eq!(planned.len(), 16);
        assert!(planned.iter().all(|s| s.relay.len() == 15));
        assert_eq!(rounds(256, 32), 2);
        assert_eq!(rounds(1024, 32), 2);
        assert_eq!(rounds(10_000, 32), 3);
    }
}
