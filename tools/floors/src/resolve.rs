//! From the paths a module names to the files that define what they name: the edges of the import graph.
//!
//! A path is walked from its start (`crate`, `self`, `super`, or a name in scope in the module that writes it:
//! a child module, an item, a `use`d name, a name a glob brings in) through modules, and stops at the first segment
//! that is an item: the edge goes to the file defining that item. Names that modules re-export (`pub use x::Y`,
//! `pub use x::Y as Z`, `pub use x::*`) are followed, as many hops as it takes, to where they are defined (a name
//! already being looked up in the same module is a loop and resolves to nothing). Paths that end in a module, or
//! that do not resolve (other crates, macro-generated items, local variables), give no edge.
//!
//! Which declarations count: a private `use` is an edge (it is there to be used); a glob `use a::*` is an edge to
//! `a`'s file; a re-export (`use` with any visibility) is not, since it only passes the name on, unless the module
//! also names the item in its own code, which then resolves through the re-export like any other path. A module's
//! edge to its own file is dropped; `mod x;` declarations are not edges.

use std::collections::BTreeMap;

use crate::paths::{Bound, UseBinding};
use crate::tree::{Crate, FileId, ModId};

/// What a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Module(ModId),
    /// An item, by the file that defines it.
    Item(FileId),
}

/// One file depending on another, with the first place (by line) that makes it so.
#[derive(Clone, Debug)]
pub struct Edge {
    pub from: FileId,
    pub to: FileId,
    pub line: usize,
    /// The `use` or path written there.
    pub code: String,
    /// How many uses and paths make this edge in all.
    pub count: usize,
}

/// Every file-to-file edge of `krate`, one per pair, ordered by (from, to).
pub fn edges(krate: &Crate) -> Vec<Edge> {
    let resolver = Resolver { krate };
    let mut edges: BTreeMap<(FileId, FileId), Edge> = BTreeMap::new();
    let mut add = |from: FileId, to: FileId, line: usize, code: String| {
        if from == to {
            return;
        }
        let edge = edges.entry((from, to)).or_insert_with(|| Edge {
            from,
            to,
            line,
            code: code.clone(),
            count: 0,
        });
        edge.count += 1;
        if line < edge.line {
            edge.line = line;
            edge.code = code;
        }
    };
    for (id, module) in krate.modules.iter().enumerate() {
        for binding in module.uses.iter().filter(|b| !b.reexport) {
            if let Some(to) = resolver.binding(id, binding) {
                add(module.file, to, binding.line, binding.code());
            }
        }
        for path in &module.refs {
            if let Some(Target::Item(to)) = resolver.path(id, &path.segments, &mut Vec::new()) {
                add(module.file, to, path.line, path.segments.join("::"));
            }
        }
    }
    edges.into_values().collect()
}

/// Resolves `segments` as written in module `scope` (exposed for tests and callers that want one path).
pub fn resolve(krate: &Crate, scope: ModId, segments: &[String]) -> Option<Target> {
    Resolver { krate }.path(scope, segments, &mut Vec::new())
}

struct Resolver<'a> {
    krate: &'a Crate,
}

/// Names being looked up, innermost last: (module, name).
type Stack = Vec<(ModId, String)>;

impl Resolver<'_> {
    /// The file a `use` leaf depends on: the defining file of a named item, the globbed module's file.
    fn binding(&self, scope: ModId, binding: &UseBinding) -> Option<FileId> {
        match (
            self.path(scope, &binding.path, &mut Vec::new())?,
            &binding.bound,
        ) {
            (Target::Item(file), _) => Some(file),
            (Target::Module(m), Bound::Glob) => Some(self.krate.modules[m].file),
            (Target::Module(_), _) => None,
        }
    }

    fn parent(&self, module: ModId) -> Option<ModId> {
        self.krate.modules[module].parent
    }

    fn path(&self, scope: ModId, segments: &[String], stack: &mut Stack) -> Option<Target> {
        let (first, mut rest) = segments.split_first()?;
        let mut module = match first.as_str() {
            "crate" => 0,
            "self" => scope,
            "super" => self.parent(scope)?,
            "Self" => return None,
            name => match self.name(scope, name, true, stack)? {
                Target::Module(m) => m,
                item => return Some(item),
            },
        };
        while let Some((segment, tail)) = rest.split_first() {
            if segment != "super" {
                break;
            }
            module = self.parent(module)?;
            rest = tail;
        }
        for segment in rest {
            match self.name(module, segment, false, stack)? {
                Target::Module(m) => module = m,
                item => return Some(item),
            }
        }
        Some(Target::Module(module))
    }

    /// `name` looked up in `module`: from code inside it (`inside`: its function-body `use`s count too) or as a
    /// later segment of a path.
    fn name(&self, module: ModId, name: &str, inside: bool, stack: &mut Stack) -> Option<Target> {
        let m = &self.krate.modules[module];
        if let Some(&child) = m.children.get(name) {
            return Some(Target::Module(child));
        }
        if let Some(&file) = m.items.get(name) {
            return Some(Target::Item(file));
        }
        if stack.iter().any(|(s, n)| *s == module && n == name) {
            return None;
        }
        stack.push((module, name.to_owned()));
        let visible = |b: &&UseBinding| inside || !b.block;
        let found = m
            .uses
            .iter()
            .filter(visible)
            .filter(|b| b.binds(name))
            .find_map(|b| self.path(module, &b.path, stack))
            .or_else(|| {
                m.uses
                    .iter()
                    .filter(visible)
                    .filter(|b| b.bound == Bound::Glob)
                    .find_map(|glob| match self.path(module, &glob.path, stack)? {
                        Target::Module(g) => self.name(g, name, false, stack),
                        Target::Item(_) => None, // `use Enum::*`: the glob's own edge covers it
                    })
            });
        stack.pop();
        found
    }
}
