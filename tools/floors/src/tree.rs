//! The module tree of one crate root: which file each module lives in, what each module defines and names.
//!
//! Files follow Rust 2018: `mod x;` in a root (`lib.rs`, `main.rs`) or a `mod.rs` is `x.rs` or `x/mod.rs` beside
//! it; in any other file `a.rs` it is `a/x.rs` or `a/x/mod.rs`. `#[path = "..."]` is honoured (relative to the
//! declaring file's directory, or to the inline modules' directory inside `mod m { ... }`), and a file loaded through
//! it places its own children beside it, as rustc does. Inline `mod m { ... }` blocks are modules of their own in
//! the tree (so `self::`/`super::` inside them mean what they mean to rustc) but live in their file: the graph is over
//! files. Items under a test-only `#[cfg]` (`#[cfg(test)] mod tests`, test helpers) are not read at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::{Item, ItemMod};

use crate::cfg;
use crate::error::{Error, Result};
use crate::paths::{self, Found, PathRef, UseBinding};

/// Index of a module in [`Crate::modules`]; the root is `0`.
pub type ModId = usize;
/// Index of a file in [`Crate::files`].
pub type FileId = usize;

/// One crate root's modules and files.
#[derive(Debug)]
pub struct Crate {
    /// The directory the root file is in; report paths are relative to it.
    pub dir: PathBuf,
    /// Every module file, the root first.
    pub files: Vec<PathBuf>,
    pub modules: Vec<Module>,
}

/// One module, from a file or an inline block.
#[derive(Debug)]
pub struct Module {
    pub parent: Option<ModId>,
    pub file: FileId,
    pub children: BTreeMap<String, ModId>,
    /// Names this module defines (functions, types, traits, consts, statics, `macro_rules!`), each with the file
    /// that defines it (a `#[macro_export]` macro is also named at the root, defined in its own file).
    pub items: BTreeMap<String, FileId>,
    pub uses: Vec<UseBinding>,
    pub refs: Vec<PathRef>,
}

/// Where items being read sit: their file, the file's directory and the directory their `mod x;` files are in.
struct Place {
    file: FileId,
    file_dir: PathBuf,
    mod_dir: PathBuf,
    inline: bool,
}

/// Reads the crate whose root file is `root` (`src/lib.rs`, `src/main.rs`, `src/bin/x.rs`).
pub fn load(root: &Path) -> Result<Crate> {
    let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut loader = Loader {
        krate: Crate {
            dir: dir.clone(),
            files: Vec::new(),
            modules: Vec::new(),
        },
        loaded: BTreeSet::new(),
    };
    loader.file_module(root, None, dir)?;
    Ok(loader.krate)
}

struct Loader {
    krate: Crate,
    loaded: BTreeSet<PathBuf>,
}

impl Loader {
    fn file_module(
        &mut self,
        path: &Path,
        parent: Option<ModId>,
        mod_dir: PathBuf,
    ) -> Result<ModId> {
        let key = path.canonicalize().map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if !self.loaded.insert(key) {
            return Err(Error::LoadedTwice {
                path: path.to_path_buf(),
            });
        }
        let source = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let ast = syn::parse_file(&source).map_err(|source| {
            let at = source.span().start();
            Error::Parse {
                path: path.to_path_buf(),
                line: at.line,
                column: at.column + 1,
                source,
            }
        })?;
        let file = self.krate.files.len();
        self.krate.files.push(path.to_path_buf());
        let module = self.new_module(parent, file);
        let place = Place {
            file,
            file_dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            mod_dir,
            inline: false,
        };
        self.items(&ast.items, module, &place)?;
        Ok(module)
    }

    fn new_module(&mut self, parent: Option<ModId>, file: FileId) -> ModId {
        self.krate.modules.push(Module {
            parent,
            file,
            children: BTreeMap::new(),
            items: BTreeMap::new(),
            uses: Vec::new(),
            refs: Vec::new(),
        });
        self.krate.modules.len() - 1
    }

    fn items(&mut self, items: &[Item], module: ModId, place: &Place) -> Result<()> {
        let mut found = Found::default();
        for item in items {
            if cfg::test_only(paths::attrs(item)) {
                continue;
            }
            match item {
                Item::Mod(m) => self.module(m, module, place)?,
                Item::Use(u) => paths::uses_of(u, false, &mut found.uses),
                _ => {
                    for name in defined_names(item) {
                        self.krate.modules[module].items.insert(name, place.file);
                    }
                    if let Some(name) = exported_macro(item) {
                        self.krate.modules[0].items.insert(name, place.file);
                    }
                    paths::refs_of_item(item, &mut found);
                }
            }
        }
        let m = &mut self.krate.modules[module];
        m.uses.extend(found.uses);
        m.refs.extend(found.refs);
        Ok(())
    }

    fn module(&mut self, decl: &ItemMod, parent: ModId, place: &Place) -> Result<()> {
        let name = paths::text(&decl.ident);
        let child = match &decl.content {
            Some((_, items)) => {
                let child = self.new_module(Some(parent), place.file);
                let inner = Place {
                    file: place.file,
                    file_dir: place.file_dir.clone(),
                    mod_dir: place.mod_dir.join(&name),
                    inline: true,
                };
                self.items(items, child, &inner)?;
                child
            }
            None => {
                let candidates: Vec<(PathBuf, PathBuf)> = match path_attr(decl) {
                    Some(rel) => {
                        let base = if place.inline {
                            &place.mod_dir
                        } else {
                            &place.file_dir
                        };
                        let file = base.join(rel);
                        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                        vec![(file, dir)]
                    }
                    None => vec![
                        (
                            place.mod_dir.join(format!("{name}.rs")),
                            place.mod_dir.join(&name),
                        ),
                        (
                            place.mod_dir.join(&name).join("mod.rs"),
                            place.mod_dir.join(&name),
                        ),
                    ],
                };
                let Some((file, dir)) = candidates.iter().find(|(f, _)| f.is_file()).cloned()
                else {
                    if cfg::gated(&decl.attrs) {
                        return Ok(()); // e.g. a platform's module, absent here
                    }
                    return Err(Error::MissingModule {
                        declared_in: self.krate.files[place.file].clone(),
                        name,
                        candidates: candidates.into_iter().map(|(f, _)| f).collect(),
                    });
                };
                self.file_module(&file, Some(parent), dir)?
            }
        };
        self.krate.modules[parent].children.insert(name, child);
        Ok(())
    }
}

fn path_attr(decl: &ItemMod) -> Option<String> {
    decl.attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// The names an item defines in its module's namespaces.
fn defined_names(item: &Item) -> Vec<String> {
    let one = |ident: &syn::Ident| vec![paths::text(ident)];
    match item {
        Item::Const(i) if i.ident != "_" => one(&i.ident),
        Item::Enum(i) => one(&i.ident),
        Item::Fn(i) => one(&i.sig.ident),
        Item::Static(i) => one(&i.ident),
        Item::Struct(i) => one(&i.ident),
        Item::Trait(i) => one(&i.ident),
        Item::TraitAlias(i) => one(&i.ident),
        Item::Type(i) => one(&i.ident),
        Item::Union(i) => one(&i.ident),
        Item::Macro(i) => i.ident.iter().map(paths::text).collect(),
        Item::ForeignMod(f) => f
            .items
            .iter()
            .filter_map(|i| match i {
                syn::ForeignItem::Fn(f) => Some(paths::text(&f.sig.ident)),
                syn::ForeignItem::Static(s) => Some(paths::text(&s.ident)),
                syn::ForeignItem::Type(t) => Some(paths::text(&t.ident)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A `#[macro_export] macro_rules! name` is also reachable as `crate::name`.
fn exported_macro(item: &Item) -> Option<String> {
    match item {
        Item::Macro(m) if m.attrs.iter().any(|a| a.path().is_ident("macro_export")) => {
            m.ident.as_ref().map(paths::text)
        }
        _ => None,
    }
}
