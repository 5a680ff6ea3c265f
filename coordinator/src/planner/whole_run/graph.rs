//! One step's task graph, the same every step, and the edges that chain a step to the next: a slice's forwards of
//! step k + 1 wait for every shard of its update of step k.

use crate::planner::latency::SliceModel;

/// A task of one step's graph.
#[derive(Clone, Copy, Debug)]
pub(super) struct Node {
    pub(super) slice: usize,
    /// 0 forward, 1 backward, 2 update shard.
    pub(super) kind: usize,
    pub(super) shard: usize,
}

/// One step's task graph, the same every step, with the edges into the next step.
pub(super) struct Template {
    pub(super) nodes: Vec<Node>,
    pub(super) succ: Vec<Vec<usize>>,
    /// Inputs within the step; a forward of a step after the first also waits for its slice's update shards.
    pub(super) indegree: Vec<usize>,
    /// Update shard → the next step's forwards of its slice.
    pub(super) next_step: Vec<Vec<usize>>,
    pub(super) from_previous: Vec<usize>,
    /// The forwards of slice 0: the driver invokes them for the first step.
    pub(super) leaves: Vec<usize>,
}

impl Template {
    pub(super) fn new(slices: &[SliceModel], m_n: usize) -> Template {
        let s_n = slices.len();
        let mut nodes = Vec::new();
        let add = |nodes: &mut Vec<Node>, slice, kind, shard| {
            nodes.push(Node { slice, kind, shard });
            nodes.len() - 1
        };
        let mut f = vec![vec![0; m_n]; s_n];
        let mut b = vec![vec![usize::MAX; m_n]; s_n];
        let mut u = vec![Vec::new(); s_n];
        for s in 0..s_n {
            for m in 0..m_n {
                f[s][m] = add(&mut nodes, s, 0, 0);
                if s + 1 < s_n {
                    b[s][m] = add(&mut nodes, s, 1, 0);
                }
            }
            for k in 0..slices[s].shards.max(1) {
                u[s].push(add(&mut nodes, s, 2, k));
            }
        }
        let n = nodes.len();
        let (mut succ, mut indegree) = (vec![Vec::new(); n], vec![0; n]);
        let mut edge = |a: usize, z: usize| {
            succ[a].push(z);
            indegree[z] += 1;
        };
        for s in 0..s_n {
            for m in 0..m_n {
                if s > 0 {
                    edge(f[s - 1][m], f[s][m]);
                }
                if s + 1 < s_n {
                    edge(
                        if s + 2 == s_n {
                            f[s + 1][m]
                        } else {
                            b[s + 1][m]
                        },
                        b[s][m],
                    );
                }
                let end = if s + 1 == s_n { f[s][m] } else { b[s][m] };
                u[s].iter().for_each(|&shard| edge(end, shard));
            }
        }
        let mut next_step = vec![Vec::new(); n];
        let mut from_previous = vec![0; n];
        for s in 0..s_n {
            for &shard in &u[s] {
                next_step[shard] = f[s].clone();
            }
            f[s].iter().for_each(|&t| from_previous[t] = u[s].len());
        }
        Template {
            nodes,
            succ,
            indegree,
            next_step,
            from_previous,
            leaves: f.first().cloned().unwrap_or_default(),
        }
    }
}
