//! The member crates of a Cargo workspace, from its `Cargo.toml`: `members` entries, literal or `dir/*`, less
//! `exclude`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The member directories of the workspace at `root`, in manifest order.
pub fn members(root: &Path) -> Result<Vec<PathBuf>> {
    let path = root.join("Cargo.toml");
    let manifest_error = |message: String| Error::Manifest {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| manifest_error(e.to_string()))?;
    let workspace = table
        .get("workspace")
        .and_then(|w| w.as_table())
        .ok_or_else(|| manifest_error("no [workspace] table".into()))?;
    let strings = |key: &str| -> Vec<String> {
        workspace
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let exclude: Vec<PathBuf> = strings("exclude").iter().map(|e| root.join(e)).collect();
    let mut out = Vec::new();
    for member in strings("members") {
        if let Some(dir) = member.strip_suffix("/*") {
            let dir = root.join(dir);
            let entries = std::fs::read_dir(&dir).map_err(|source| Error::Read {
                path: dir.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect();
            found.sort();
            out.extend(found);
        } else if member.contains(['*', '?', '[']) {
            return Err(manifest_error(format!(
                "member pattern `{member}`: only `dir/*` is understood"
            )));
        } else {
            out.push(root.join(member));
        }
    }
    out.retain(|m| !exclude.contains(m));
    Ok(out)
}
