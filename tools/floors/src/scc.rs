//! Strongly connected components (Tarjan): every set of files that all reach each other through edges.

/// The components of the graph with nodes `0..adjacency.len()`, each sorted, in the order Tarjan closes them.
pub fn components(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = adjacency.len();
    let mut t = Tarjan {
        adjacency,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            t.strong(v);
        }
    }
    t.out
}

struct Tarjan<'a> {
    adjacency: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    out: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    // Recursion depth is bounded by the number of module files of one crate.
    fn strong(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.adjacency[v] {
            match self.index[w] {
                None => {
                    self.strong(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort_unstable();
            self.out.push(component);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::components;

    fn circles(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
        let mut c: Vec<_> = components(adjacency)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        c.sort();
        c
    }

    #[test]
    fn finds_cycles_and_not_chains() {
        assert_eq!(
            circles(&[vec![1], vec![2], vec![]]),
            Vec::<Vec<usize>>::new()
        );
        assert_eq!(
            circles(&[vec![1], vec![2], vec![0], vec![0]]),
            vec![vec![0, 1, 2]]
        );
        assert_eq!(
            circles(&[vec![1], vec![0], vec![3], vec![2]]),
            vec![vec![0, 1], vec![2, 3]]
        );
    }
}
