//! The dynamic program of the planner's search: over unit boundaries, the segmentation into contiguous slices (each
//! with its best memory size) that minimises a per-slice additive value, for every slice count asked at once.

/// A segmentation with a memory size per slice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segmentation {
    pub bounds: Vec<usize>,
    pub memory: Vec<u32>,
}

/// Per-segment best memory and objective for one λ, and the DP over segments.
pub struct Dp {
    n: usize,
    /// `best[a * (n + 1) + b]`: (stand-in value, memory) of units `a..b`, `None` if nothing fits.
    seg: Vec<Option<(f64, u32)>>,
}

impl Dp {
    /// Fills every segment's best memory on the stand-in objective `value(a, b, memory index)`.
    pub fn new(
        n: usize,
        grid: &[u32],
        mut value: impl FnMut(usize, usize, usize) -> Option<f64>,
    ) -> Dp {
        let mut seg = vec![None; (n + 1) * (n + 1)];
        for a in 0..n {
            for b in a + 1..=n {
                let mut best: Option<(f64, u32)> = None;
                for (gi, &m) in grid.iter().enumerate() {
                    if let Some(v) = value(a, b, gi) {
                        if best.is_none_or(|(bv, _)| v < bv) {
                            best = Some((v, m));
                        }
                    }
                }
                seg[a * (n + 1) + b] = best;
            }
        }
        Dp { n, seg }
    }

    fn at(&self, a: usize, b: usize) -> Option<(f64, u32)> {
        self.seg[a * (self.n + 1) + b]
    }

    /// The best segmentation into exactly `k` slices for every `k` in `ks` (`None` where nothing fits).
    pub fn solve(&self, ks: &[usize]) -> Vec<(usize, Option<(f64, Segmentation)>)> {
        let n = self.n;
        let kmax = ks.iter().copied().max().unwrap_or(0).min(n);
        // best[k][b]: value of units 0..b in k slices; from[k][b]: where the last slice starts.
        let mut best = vec![vec![f64::INFINITY; n + 1]; kmax + 1];
        let mut from = vec![vec![usize::MAX; n + 1]; kmax + 1];
        best[0][0] = 0.0;
        for k in 1..=kmax {
            for b in k..=n {
                for a in k - 1..b {
                    if !best[k - 1][a].is_finite() {
                        continue;
                    }
                    if let Some((v, _)) = self.at(a, b) {
                        let total = best[k - 1][a] + v;
                        if total < best[k][b] {
                            best[k][b] = total;
                            from[k][b] = a;
                        }
                    }
                }
            }
        }
        ks.iter()
            .map(|&k| {
                if k == 0 || k > kmax || !best[k][n].is_finite() {
                    return (k, None);
                }
                let mut bounds = vec![n];
                let mut b = n;
                for kk in (1..=k).rev() {
                    b = from[kk][b];
                    bounds.push(b);
                }
                bounds.reverse();
                let memory = bounds
                    .windows(2)
                    .map(|w| self.at(w[0], w[1]).map_or(0, |(_, m)| m))
                    .collect();
                (k, Some((best[k][n], Segmentation { bounds, memory })))
            })
            .collect()
    }

    /// The best memory per slice of fixed bounds.
    pub fn fixed(&self, bounds: &[usize]) -> Option<(f64, Segmentation)> {
        let mut total = 0.0;
        let mut memory = Vec::new();
        for w in bounds.windows(2) {
            let (v, m) = self.at(w[0], w[1])?;
            total += v;
            memory.push(m);
        }
        Some((
            total,
            Segmentation {
                bounds: bounds.to_vec(),
                memory,
            },
        ))
    }
}
