//! What one module's code names: its `use` declarations flattened to one binding per leaf, and every other path
//! written in its items (signatures, bodies, patterns, impl headers, and the `a::b` token runs inside macro calls).
//! Nothing here resolves a path; [`crate::resolve`] does.

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::visit::{self, Visit};
use syn::{Ident, Item, ItemUse, UseTree, Visibility};

use crate::cfg;

/// What a `use` leaf binds in its module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `use a::b;`, `use a::b as c;`, `use a::{self}`: the name (`b`, `c`, `a`).
    Name(String),
    /// `use a::Trait as _;`: nothing nameable, but the item is used.
    Underscore,
    /// `use a::*;`: every name of `a`.
    Glob,
}

/// One leaf of a `use` tree: `use a::{b, c::d as e}` gives two.
#[derive(Clone, Debug)]
pub struct UseBinding {
    /// The full path, without the leaf's rename (for a glob: the path of what is globbed).
    pub path: Vec<String>,
    pub bound: Bound,
    /// Declared with a visibility (`pub`, `pub(crate)`, ...): a re-export, a tunnel for other modules.
    pub reexport: bool,
    /// Declared inside a function body rather than at module level.
    pub block: bool,
    /// Line of the leaf in its file.
    pub line: usize,
}

impl UseBinding {
    /// True if this leaf brings `name` into scope by name (globs do not count here).
    pub fn binds(&self, name: &str) -> bool {
        matches!(&self.bound, Bound::Name(n) if n == name)
    }

    /// The declaration as a developer would grep for it: `use crate::a::B`, `use super::*`.
    pub fn code(&self) -> String {
        let path = self.path.join("::");
        match &self.bound {
            Bound::Glob => format!("use {path}::*"),
            Bound::Underscore => format!("use {path} as _"),
            Bound::Name(n) if self.path.last() != Some(n) => format!("use {path} as {n}"),
            Bound::Name(_) => format!("use {path}"),
        }
    }
}

/// A path written in code (not in a `use`), e.g. `crate::fit::TrainState` or `super::x::y`.
#[derive(Clone, Debug)]
pub struct PathRef {
    pub segments: Vec<String>,
    pub line: usize,
}

/// Everything one module's items name.
#[derive(Default, Debug)]
pub struct Found {
    pub uses: Vec<UseBinding>,
    pub refs: Vec<PathRef>,
}

/// Flattens one `use` declaration into `out`. A path with a leading `::` names another crate and is left out.
pub fn uses_of(item: &ItemUse, block: bool, out: &mut Vec<UseBinding>) {
    if item.leading_colon.is_some() {
        return;
    }
    let reexport = !matches!(item.vis, Visibility::Inherited);
    let mut prefix = Vec::new();
    flatten(&item.tree, &mut prefix, reexport, block, out);
}

fn flatten(
    tree: &UseTree,
    prefix: &mut Vec<String>,
    reexport: bool,
    block: bool,
    out: &mut Vec<UseBinding>,
) {
    let mut leaf = |ident: &Ident, bound: Option<Bound>, prefix: &[String]| {
        let name = text(ident);
        let path = if name == "self" {
            prefix.to_vec()
        } else {
            [prefix, &[name]].concat()
        };
        let Some(last) = path.last().cloned() else {
            return;
        };
        out.push(UseBinding {
            path,
            bound: bound.unwrap_or(Bound::Name(last)),
            reexport,
            block,
            line: ident.span().start().line,
        });
    };
    match tree {
        UseTree::Path(p) => {
            prefix.push(text(&p.ident));
            flatten(&p.tree, prefix, reexport, block, out);
            prefix.pop();
        }
        UseTree::Name(n) => leaf(&n.ident, None, prefix),
        UseTree::Rename(r) => {
            let bound = if r.rename == "_" {
                Bound::Underscore
            } else {
                Bound::Name(text(&r.rename))
            };
            leaf(&r.ident, Some(bound), prefix);
        }
        UseTree::Glob(g) => {
            if !prefix.is_empty() {
                out.push(UseBinding {
                    path: prefix.clone(),
                    bound: Bound::Glob,
                    reexport,
                    block,
                    line: g.star_token.span.start().line,
                });
            }
        }
        UseTree::Group(g) => {
            for tree in &g.items {
                flatten(tree, prefix, reexport, block, out);
            }
        }
    }
}

/// Collects the paths `item` writes (and the `use`s inside its function bodies) into `found`.
pub fn refs_of_item(item: &Item, found: &mut Found) {
    Collector { found }.visit_item(item);
}

/// An identifier as written, without a raw prefix (`r#type` is `type`).
pub fn text(ident: &Ident) -> String {
    ident.unraw().to_string()
}

/// The attributes of any item (syn has no accessor for the enum).
pub fn attrs(item: &Item) -> &[syn::Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

struct Collector<'a> {
    found: &'a mut Found,
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast Item) {
        if cfg::test_only(attrs(item)) {
            return;
        }
        match item {
            Item::Use(u) => uses_of(u, true, &mut self.found.uses),
            // A `macro_rules!` body is expanded elsewhere: only its `$crate::`/`crate::` paths mean the same there.
            Item::Macro(m) if m.ident.is_some() => {
                scan(m.mac.tokens.clone(), true, &mut self.found.refs)
            }
            _ => visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !cfg::test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs = match item {
            syn::TraitItem::Const(i) => &i.attrs,
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => return visit::visit_trait_item(self, item),
        };
        if !cfg::test_only(attrs) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if !cfg::test_only(&field.attrs) {
            visit::visit_field(self, field);
        }
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        if !cfg::test_only(&variant.attrs) {
            visit::visit_variant(self, variant);
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if !cfg::test_only(&arm.attrs) {
            visit::visit_arm(self, arm);
        }
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if !cfg::test_only(&local.attrs) {
            visit::visit_local(self, local);
        }
    }

    fn visit_field_value(&mut self, field: &'ast syn::FieldValue) {
        if !cfg::test_only(&field.attrs) {
            visit::visit_field_value(self, field);
        }
    }

    // Attribute paths (`derive`, `serde`, `error`) name macros and tools, not this crate's items.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            if let Some(first) = path.segments.first() {
                self.found.refs.push(PathRef {
                    segments: path.segments.iter().map(|s| text(&s.ident)).collect(),
                    line: first.ident.span().start().line,
                });
            }
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        scan(mac.tokens.clone(), false, &mut self.found.refs);
    }
}

/// Finds `ident(::ident)*` runs in macro tokens (any depth). With `crate_only`, keeps only runs that start with
/// `crate` (`$crate` included). Runs after `::` (another crate) and `$name` metavariables are left out.
fn scan(tokens: TokenStream, crate_only: bool, out: &mut Vec<PathRef>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Group(g) => {
                scan(g.stream(), crate_only, out);
                i += 1;
            }
            TokenTree::Ident(first) => {
                let after_colons = i >= 2 && is_path_sep(&tokens[i - 2], &tokens[i - 1]);
                let after_dollar = i >= 1 && is_punct(&tokens[i - 1], '$');
                let mut segments = vec![text(first)];
                let mut j = i + 1;
                while j + 1 < tokens.len() && is_path_sep(&tokens[j], &tokens[j + 1]) {
                    match tokens.get(j + 2) {
                        Some(TokenTree::Ident(next)) => segments.push(text(next)),
                        _ => break,
                    }
                    j += 3;
                }
                let metavariable = after_dollar && segments[0] != "crate";
                let wanted = !crate_only || (segments[0] == "crate" && segments.len() > 1);
                if !after_colons && !metavariable && wanted {
                    out.push(PathRef {
                        segments,
                        line: first.span().start().line,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
}

fn is_punct(token: &TokenTree, ch: char) -> bool {
    matches!(token, TokenTree::Punct(p) if p.as_char() == ch)
}

fn is_path_sep(a: &TokenTree, b: &TokenTree) -> bool {
    matches!(a, TokenTree::Punct(p) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
        && is_punct(b, ':')
}
