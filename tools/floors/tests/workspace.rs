//! Every crate of this workspace is free of module import circles (see the `floors` crate doc for the rules).

use std::path::PathBuf;

#[test]
fn no_module_import_circles_in_the_workspace() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("workspace root exists");
    let members = floors::members(&root).expect("workspace Cargo.toml lists its members");
    assert!(members.len() >= 2, "members: {members:?}");
    let mut failures = Vec::new();
    for member in members {
        let reports = match floors::check_crate(&member) {
            Ok(reports) => reports,
            Err(e) => {
                failures.push(format!("{}: {e}\n", member.display()));
                continue;
            }
        };
        for mut report in reports {
            report.root = report
                .root
                .strip_prefix(&root)
                .map(PathBuf::from)
                .unwrap_or(report.root);
            print!("{report}");
            if !report.circles.is_empty() {
                failures.push(report.to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "module import circles (break each by moving the item or the import named on one of its edges):\n{}",
        failures.join("")
    );
}
