//! The check on small synthetic crates written to a temporary directory.

use std::path::Path;

use crate::{check_root, Error, Report};

/// Writes `files` (paths relative to `src/`) and checks `src/lib.rs`.
fn check(files: &[(&str, &str)]) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), files);
    check_root(&dir.path().join("src/lib.rs")).expect("check runs")
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join("src").join(path);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
}

fn circles(report: &Report) -> Vec<Vec<String>> {
    report.circles.iter().map(|c| c.files.clone()).collect()
}

fn files(names: &[&str]) -> Vec<Vec<String>> {
    vec![names.iter().map(|s| s.to_string()).collect()]
}

const NONE: Vec<Vec<String>> = Vec::new();

#[test]
fn use_circle() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::Y;\npub struct X;\n"),
        ("b.rs", "use crate::a::X;\npub struct Y;\n"),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
    let first = &r.circles[0].edges[0];
    assert_eq!(
        (
            first.from.as_str(),
            first.line,
            first.code.as_str(),
            first.to.as_str()
        ),
        ("a.rs", 1, "use crate::b::Y", "b.rs")
    );
    assert_eq!((r.modules, r.edges), (3, 2));
}

#[test]
fn inline_path_circle() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "pub struct X;\npub fn g() { crate::b::f(); }\n"),
        ("b.rs", "pub fn f() -> Option<crate::a::X> { None }\n"),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
    let a_to_b = &r.circles[0].edges[0];
    assert_eq!((a_to_b.line, a_to_b.code.as_str()), (2, "crate::b::f"));
}

#[test]
fn super_circle() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use super::b::Y;\npub struct X;\n"),
        (
            "b.rs",
            "pub struct Y;\nimpl Y { fn x(&self) -> super::a::X { super::a::X } }\n",
        ),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
}

#[test]
fn nested_files_self_and_child_names() {
    // p.rs's children live in p/ (2018); `q::W` names the child by its bare name; q uses `super::Z`.
    let r = check(&[
        ("lib.rs", "mod p;\n"),
        ("p.rs", "mod q;\npub struct Z;\nfn f() -> q::W { q::W }\n"),
        (
            "p/q.rs",
            "pub struct W;\nfn g(_: self::W, _: super::Z) {}\n",
        ),
    ]);
    assert_eq!(circles(&r), files(&["p.rs", "p/q.rs"]), "{r}");
}

#[test]
fn circle_through_a_reexport_goes_to_the_defining_file() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\npub use b::Y;\n"),
        ("a.rs", "use crate::Y;\npub struct X;\n"),
        ("b.rs", "use crate::a::X;\npub struct Y;\n"),
    ]);
    // lib.rs only passes `Y` on: it is not in the circle.
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
    assert_eq!(r.edges, 2, "{r}");
}

#[test]
fn reexports_are_followed_through_renames_globs_and_several_hops() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod m;\npub use m::*;\n"),
        ("m/mod.rs", "mod inner;\npub use inner::Deep as Shallow;\n"),
        ("m/inner.rs", "pub struct Deep;\nfn f(_: crate::a::X) {}\n"),
        ("a.rs", "pub struct X;\nfn g(_: crate::Shallow) {}\n"),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "m/inner.rs"]), "{r}");
}

#[test]
fn a_reexport_the_module_uses_itself_is_an_edge() {
    let r = check(&[
        ("lib.rs", "mod a;\npub use a::X;\nfn h(_: X) {}\n"),
        ("a.rs", "pub struct X;\nfn g() { crate::h(X) }\n"),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "lib.rs"]), "{r}");
}

#[test]
fn module_imports_resolve_later_paths() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b;\npub struct X;\nfn g() { b::f(); }\n"),
        (
            "b.rs",
            "pub fn f() {}\nfn h() -> crate::a::X { crate::a::X }\n",
        ),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
}

#[test]
fn chain_is_not_a_circle() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b.rs", "use crate::c::C;\npub struct B;\n"),
        ("c.rs", "pub struct C;\n"),
    ]);
    assert_eq!(circles(&r), NONE, "{r}");
    assert_eq!((r.modules, r.edges), (4, 2));
}

#[test]
fn test_only_items_are_ignored() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "pub struct X;\n#[cfg(test)]\nmod tests { use crate::b::Y; }\n#[cfg(test)]\nfn helper() -> crate::b::Y { todo!() }\n\
             #[cfg(test)]\nmod more;\nimpl X { #[cfg(all(test, unix))] fn t() { crate::b::f() } }\n",
        ),
        ("b.rs", "use crate::a::X;\npub struct Y;\npub fn f() {}\n"),
    ]);
    assert_eq!(circles(&r), NONE, "{r}");
    assert_eq!(r.edges, 1, "{r}");
}

#[test]
fn glob_import_is_an_edge() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        ("a.rs", "use crate::b::*;\npub struct X;\n"),
        ("b.rs", "use crate::a::X;\npub struct Y;\n"),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
}

#[test]
fn paths_inside_macro_calls_count() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "pub struct X;\nfn g() { println!(\"{}\", crate::b::N); }\n",
        ),
        (
            "b.rs",
            "pub const N: u8 = 1;\nfn h() { let _ = vec![crate::a::X]; }\n",
        ),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
}

#[test]
fn inline_modules_belong_to_their_file() {
    let r = check(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "pub struct X;\nmod inner { pub fn g() -> super::super::b::Y { todo!() } }\n",
        ),
        ("b.rs", "use crate::a::X;\npub struct Y;\n"),
    ]);
    assert_eq!(circles(&r), files(&["a.rs", "b.rs"]), "{r}");
    assert_eq!(r.modules, 3);
}

#[test]
fn path_attribute_and_mod_rs() {
    let r = check(&[
        ("lib.rs", "mod a;\n#[path = \"elsewhere/bee.rs\"]\nmod b;\n"),
        ("a/mod.rs", "pub struct X;\nfn f(_: crate::b::Y) {}\n"),
        (
            "elsewhere/bee.rs",
            "pub struct Y;\nfn g(_: crate::a::X) {}\n",
        ),
    ]);
    assert_eq!(circles(&r), files(&["a/mod.rs", "elsewhere/bee.rs"]), "{r}");
}

#[test]
fn other_crates_and_unknown_names_are_not_edges() {
    let r = check(&[
        ("lib.rs", "mod a;\n"),
        ("a.rs", "use std::fmt;\nuse ::serde::Serialize;\nfn f() { other::g(); crate::nothing::here(); }\n"),
    ]);
    assert_eq!((r.edges, r.circles.len()), (0, 0), "{r}");
}

#[test]
fn missing_module_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), &[("lib.rs", "mod gone;\n")]);
    match check_root(&dir.path().join("src/lib.rs")) {
        Err(Error::MissingModule {
            declared_in, name, ..
        }) => {
            assert!(declared_in.ends_with("src/lib.rs"));
            assert_eq!(name, "gone");
        }
        other => panic!("expected a missing module, got {other:?}"),
    }
}

#[test]
fn parse_error_names_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), &[("lib.rs", "mod a;\n"), ("a.rs", "fn (\n")]);
    let err = check_root(&dir.path().join("src/lib.rs")).expect_err("a.rs does not parse");
    assert!(err.to_string().contains("a.rs:1:"), "{err}");
}
