//! What one check finds, and how it is printed: counts, then each circle with one example per edge inside it.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::resolve::Edge;
use crate::scc;
use crate::tree::Crate;

/// The result of checking one crate root.
#[derive(Clone, Debug)]
pub struct Report {
    /// The root file as given (`coordinator/src/lib.rs`).
    pub root: PathBuf,
    /// Module files.
    pub modules: usize,
    /// Distinct file-to-file edges.
    pub edges: usize,
    pub circles: Vec<Circle>,
    /// Every edge of the graph, by (from, to): what `floors --edges` prints.
    pub all_edges: Vec<EdgeExample>,
}

/// Files that all import from each other, directly or around a loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Circle {
    /// Relative to the root's directory, sorted.
    pub files: Vec<String>,
    /// Every edge between two files of the circle.
    pub edges: Vec<EdgeExample>,
}

/// One edge and the first place that makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeExample {
    pub from: String,
    pub line: usize,
    pub code: String,
    pub to: String,
    /// Further uses and paths making the same edge.
    pub more: usize,
}

impl Report {
    /// Builds the report of `krate` from its edges.
    pub fn new(root: &Path, krate: &Crate, edges: &[Edge]) -> Report {
        let mut adjacency = vec![Vec::new(); krate.files.len()];
        for e in edges {
            adjacency[e.from].push(e.to);
        }
        let name = |file: usize| {
            let path = &krate.files[file];
            path.strip_prefix(&krate.dir)
                .unwrap_or(path)
                .display()
                .to_string()
        };
        let example = |e: &Edge| EdgeExample {
            from: name(e.from),
            line: e.line,
            code: e.code.clone(),
            to: name(e.to),
            more: e.count - 1,
        };
        let mut circles: Vec<Circle> = scc::components(&adjacency)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|members| {
                let mut files: Vec<String> = members.iter().map(|&f| name(f)).collect();
                files.sort();
                let mut inside: Vec<EdgeExample> = edges
                    .iter()
                    .filter(|e| members.contains(&e.from) && members.contains(&e.to))
                    .map(example)
                    .collect();
                inside.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
                Circle {
                    files,
                    edges: inside,
                }
            })
            .collect();
        circles.sort_by(|a, b| a.files.cmp(&b.files));
        Report {
            root: root.to_path_buf(),
            modules: krate.files.len(),
            edges: edges.len(),
            circles,
            all_edges: edges.iter().map(example).collect(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        writeln!(
            f,
            "{}: {}, {}, {}",
            self.root.display(),
            plural(self.modules, "module", "modules"),
            plural(self.edges, "edge", "edges"),
            plural(self.circles.len(), "circle", "circles"),
        )?;
        for (i, circle) in self.circles.iter().enumerate() {
            writeln!(
                f,
                "  circle {} ({} files): {}",
                i + 1,
                circle.files.len(),
                circle.files.join(", ")
            )?;
            for e in &circle.edges {
                writeln!(f, "    {e}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for EdgeExample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} `{}` -> {}",
            self.from, self.line, self.code, self.to
        )?;
        if self.more > 0 {
            write!(f, " (+{} more)", self.more)?;
        }
        Ok(())
    }
}
