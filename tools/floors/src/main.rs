//! `floors [CRATE_DIR...]`: checks each crate (default: every member of the workspace around the current
//! directory) for module import circles; prints "N modules, M edges, K circles" per crate root and each circle.
//! With `--edges`, also prints every edge (one example each).
//! Exit status: 0 clean, 1 some circle, 2 an error (a file that cannot be read or parsed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args
        .iter()
        .any(|a| a == Path::new("-h") || a == Path::new("--help"))
    {
        println!(
            "usage: floors [--edges] [CRATE_DIR...]  (default: the enclosing workspace's members)"
        );
        return ExitCode::SUCCESS;
    }
    let before = args.len();
    args.retain(|a| a != Path::new("--edges"));
    let show_edges = args.len() < before;
    match run(args, show_edges) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("floors: {e}");
            ExitCode::from(2)
        }
    }
}

/// True if no crate has a circle.
fn run(args: Vec<PathBuf>, show_edges: bool) -> Result<bool, floors::Error> {
    let crates = if args.is_empty() {
        let here = std::env::current_dir().map_err(|source| floors::Error::Read {
            path: PathBuf::from("."),
            source,
        })?;
        let root = workspace_root(&here).ok_or_else(|| floors::Error::Manifest {
            path: here.clone(),
            message: "no enclosing Cargo.toml with a [workspace]; name the crate directories"
                .into(),
        })?;
        floors::members(&root)?
            .into_iter()
            .map(|m| m.strip_prefix(&here).map(Path::to_path_buf).unwrap_or(m))
            .collect()
    } else {
        args
    };
    let mut clean = true;
    for dir in crates {
        for report in floors::check_crate(&dir)? {
            clean &= report.circles.is_empty();
            print!("{report}");
            if show_edges {
                println!("  edges:");
                for e in &report.all_edges {
                    println!("    {e}");
                }
            }
        }
    }
    Ok(clean)
}

fn workspace_root(from: &Path) -> Option<PathBuf> {
    from.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .map(|t| t.lines().any(|l| l.trim() == "[workspace]"))
                .unwrap_or(false)
        })
        .map(Path::to_path_buf)
}
