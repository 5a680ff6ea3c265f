//! # floors: module import circles
//!
//! Owns one check: inside one crate, no module file may import from a file that (directly or around a loop) imports
//! from it. Files that all reach each other are a *circle* (a strongly connected component of more than one file of
//! the import graph); a crate is clean when it has none. Circles are what keep a crate from being read, tested or
//! split floor by floor, so the goal is zero and there is no allow-list. The `floors` binary checks the given crate
//! directories (default: every member of the enclosing workspace) and exits 1 on any circle;
//! `tests/workspace.rs` runs the same check over this workspace under `cargo test`.
//!
//! Does not: look across crates (Cargo already forbids cycles there), expand macros, evaluate `cfg`s other than
//! test-only ones, check visibility or type-check anything. It reads what the source says, the way a developer does.
//!
//! ## How the graph is built
//! - **Nodes** are module files, found from the root (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs`, each its own
//!   crate) by `mod x;` declarations, Rust 2018 file rules and `#[path]` ([`tree`]). An inline `mod m { ... }` is a
//!   module of its own for resolving paths but belongs to its file's node. Items under a test-only `#[cfg]`
//!   (`#[cfg(test)] mod tests`, `#[cfg(all(test, ...))]`) are skipped: test code may import what it likes.
//! - **Paths** are every `use` leaf (groups, globs, renames, `self`) and every other path in items: signatures,
//!   bodies, patterns, impl headers, and `a::b` runs inside macro calls ([`paths`]).
//! - **Edges** go from the file that writes a path to the file that *defines* what it names ([`resolve`]): the path
//!   is walked through modules (from `crate::`, `self::`, `super::`, or a name in scope: a child module, an item, a
//!   `use`d name) up to the first item, and re-exports on the way are followed to the defining file. A private `use`
//!   is an edge; a glob `use a::*` is an edge to `a`; a re-export (`pub use`, `pub(crate) use`) is a tunnel, not an
//!   edge, unless the module names the item in its own code too. `mod x;` is not an edge, nor is a file's edge to
//!   itself. Paths that resolve to nothing in the crate (other crates, macro-generated items) are ignored.
//! - **Circles** are found with Tarjan's algorithm ([`scc`]) and reported with, for each edge inside, the first
//!   `use` or path making it (`file:line`), so one can see which import to move ([`report`]).
//!
//! ## Why not `cargo-modules`
//! `cargo modules dependencies --acyclic` needs rust-analyzer's full analysis of the crate and its dependencies: a
//! heavy install and build on a two-core CI machine, and its output is a graph to read rather than a pass or a
//! fail. This is a few hundred lines over `syn`, which the lock file already has, and it runs as an ordinary test.

pub mod cfg;
pub mod error;
pub mod paths;
pub mod report;
pub mod resolve;
pub mod scc;
pub mod tree;
pub mod workspace;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use error::{Error, Result};
pub use report::{Circle, EdgeExample, Report};
pub use workspace::members;

/// Checks the crate root file `root` (`src/lib.rs`, `src/main.rs`, ...).
pub fn check_root(root: &Path) -> Result<Report> {
    let krate = tree::load(root)?;
    let edges = resolve::edges(&krate);
    Ok(Report::new(root, &krate, &edges))
}

/// Checks every crate root of a package: `dir` is the package directory or its `src/`.
pub fn check_crate(dir: &Path) -> Result<Vec<Report>> {
    roots(dir)?.iter().map(|root| check_root(root)).collect()
}

/// The crate roots under a package directory or its `src/`: `lib.rs`, `main.rs`, `bin/*.rs`, `bin/*/main.rs`.
pub fn roots(dir: &Path) -> Result<Vec<PathBuf>> {
    let src = if dir.join("src").is_dir() {
        dir.join("src")
    } else {
        dir.to_path_buf()
    };
    let mut out: Vec<PathBuf> = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .filter(|p| p.is_file())
        .collect();
    let bin = src.join("bin");
    if bin.is_dir() {
        let entries = std::fs::read_dir(&bin).map_err(|source| Error::Read {
            path: bin.clone(),
            source,
        })?;
        let mut bins: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| match p.extension() {
                Some(ext) if ext == "rs" && p.is_file() => Some(p),
                _ if p.join("main.rs").is_file() => Some(p.join("main.rs")),
                _ => None,
            })
            .collect();
        bins.sort();
        out.extend(bins);
    }
    if out.is_empty() {
        return Err(Error::NoRoot(src));
    }
    Ok(out)
}
