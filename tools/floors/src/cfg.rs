//! Which attributes make an item test-only: `#[cfg(test)]` and any predicate that is false whenever `test` is
//! (`all(test, ...)`, `not(not(test))`). Other options (features, targets) are unknown here, so an item under them
//! counts: it may be compiled.

use syn::punctuated::Punctuated;
use syn::{Attribute, Meta, Token};

/// A cfg predicate's value in a build without `test`, other options being unknown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Truth {
    Yes,
    No,
    Maybe,
}

/// True if some `#[cfg(...)]` among `attrs` cannot hold outside `cargo test`.
pub fn test_only(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .any(|a| match &a.meta {
            Meta::List(list) => list
                .parse_args::<Meta>()
                .map(|m| eval(&m) == Truth::No)
                .unwrap_or(false),
            _ => false,
        })
}

/// True if some attribute among `attrs` is a `#[cfg(...)]` (the item may be left out of a build).
pub fn gated(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("cfg"))
}

fn eval(meta: &Meta) -> Truth {
    match meta {
        Meta::Path(p) if p.is_ident("test") => Truth::No,
        Meta::Path(_) | Meta::NameValue(_) => Truth::Maybe,
        Meta::List(list) => {
            let args = list
                .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .map(|args| args.iter().map(eval).collect::<Vec<_>>());
            let Ok(args) = args else {
                return Truth::Maybe;
            };
            if list.path.is_ident("all") {
                if args.contains(&Truth::No) {
                    Truth::No
                } else if args.iter().all(|t| *t == Truth::Yes) {
                    Truth::Yes
                } else {
                    Truth::Maybe
                }
            } else if list.path.is_ident("any") {
                if args.contains(&Truth::Yes) {
                    Truth::Yes
                } else if args.iter().all(|t| *t == Truth::No) {
                    Truth::No
                } else {
                    Truth::Maybe
                }
            } else if list.path.is_ident("not") && args.len() == 1 {
                match args[0] {
                    Truth::Yes => Truth::No,
                    Truth::No => Truth::Yes,
                    Truth::Maybe => Truth::Maybe,
                }
            } else {
                Truth::Maybe
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_only;

    fn item(src: &str) -> syn::Item {
        syn::parse_str(src).expect("test item parses")
    }

    fn attrs_of(src: &str) -> bool {
        match item(src) {
            syn::Item::Fn(f) => test_only(&f.attrs),
            _ => panic!("not a fn: {src}"),
        }
    }

    #[test]
    fn predicates() {
        assert!(attrs_of("#[cfg(test)] fn f() {}"));
        assert!(attrs_of("#[cfg(all(test, feature = \"x\"))] fn f() {}"));
        assert!(attrs_of("#[cfg(not(not(test)))] fn f() {}"));
        assert!(!attrs_of("#[cfg(not(test))] fn f() {}"));
        assert!(!attrs_of("#[cfg(any(test, feature = \"x\"))] fn f() {}"));
        assert!(!attrs_of("#[cfg(feature = \"x\")] fn f() {}"));
        assert!(!attrs_of("#[inline] fn f() {}"));
    }
}
