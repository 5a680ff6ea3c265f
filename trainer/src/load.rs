//! Reading a config file and applying `--set section.key=value` overrides (stage two of the CLI: raw → validated).

use anyhow::{anyhow, bail, Context, Result};
use coordinator::config::Config;
use slice_worker::store::redact_urls_in;
use std::path::Path;

/// Parses `value` as a TOML value (`0.1`, `true`, `[784, 10]`, `"adamw"`); a bare word is taken as a string.
fn parse_value(value: &str) -> toml::Value {
    let doc = format!("v = {value}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.into()),
    }
}

/// Applies one `section.key=value` override to the parsed document.
fn apply_set(doc: &mut toml::Table, set: &str) -> Result<()> {
    let (path, value) = set
        .split_once('=')
        .ok_or_else(|| anyhow!("--set {set:?}: expected section.key=value"))?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("--set {set:?}: the key path {path:?} has an empty part");
    }
    let (last, parents) = keys
        .split_last()
        .unwrap_or_else(|| unreachable!("split never yields nothing"));
    let mut table = doc;
    for k in parents {
        let entry = table
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set {set:?}: `{k}` is not a table in the config"))?;
    }
    table.insert(last.to_string(), parse_value(value.trim()));
    // A run is as long as either, not both: overriding one replaces the other (`--set train.steps=20` on an example
    // written in epochs).
    let alternative = match keys.as_slice() {
        ["train", "steps"] => Some("epochs"),
        ["train", "epochs"] => Some("steps"),
        _ => None,
    };
    if let Some(other) = alternative {
        table.remove(other);
    }
    Ok(())
}

/// Loads, overrides and validates a config. Errors name the file and the key; they quote what the user wrote, with
/// the password of any URL in it redacted.
pub fn load_config(path: &Path, sets: &[String]) -> Result<Config> {
    parse_config(path, sets).map_err(|e| anyhow!("{}", redact_urls_in(&format!("{e:#}"))))
}

fn parse_config(path: &Path, sets: &[String]) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut doc: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let calibrated = doc
        .get("platform")
        .and_then(|p| p.get("calibrated"))
        .is_some();
    let cfg: Config = if sets.is_empty() && !calibrated {
        // Parsing the text directly keeps line and column numbers in the error.
        toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?
    } else {
        for s in sets {
            apply_set(&mut doc, s)?;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        coordinator::config::take_in_calibrated(&mut doc, dir)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        // Parsed again from text, so that an error shows the offending key and line like one in the file does.
        let merged = toml::to_string(&doc)
            .map_err(|e| anyhow!("{} (with --set overrides): {e}", path.display()))?;
        // Tagged tables (the model) report a bad value at the table, not the key: the overrides name it.
        toml::from_str(&merged).map_err(|e| {
            anyhow!(
                "{} with --set {}: {e}",
                path.display(),
                sets.join(" --set ")
            )
        })?
    };
    cfg.validate()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_keys_with_typed_values() {
        let mut doc: toml::Table = toml::from_str("[train]\nlr = 0.1\n").unwrap();
        apply_set(&mut doc, "train.lr=0.5").unwrap();
        apply_set(&mut doc, "model.widths=[4, 2]").unwrap();
        apply_set(&mut doc, "train.optimizer=adamw").unwrap();
        assert_eq!(doc["train"]["lr"].as_float(), Some(0.5));
        assert_eq!(doc["model"]["widths"].as_array().map(|a| a.len()), Some(2));
        assert_eq!(doc["train"]["optimizer"].as_str(), Some("adamw"));
        assert!(apply_set(&mut doc, "train.lr").is_err());
        assert!(apply_set(&mut doc, "train.lr.x=1").is_err());
    }

    #[test]
    fn steps_and_epochs_replace_each_other() {
        let mut doc: toml::Table = toml::from_str("[train]\nepochs = 8\nlr = 0.1\n").unwrap();
        apply_set(&mut doc, "train.steps=20").unwrap();
        assert_eq!(doc["train"]["steps"].as_integer(), Some(20));
        assert!(!doc["train"].as_table().unwrap().contains_key("epochs"));
        apply_set(&mut doc, "train.epochs=2").unwrap();
        assert!(!doc["train"].as_table().unwrap().contains_key("steps"));
        assert_eq!(doc["train"]["lr"].as_float(), Some(0.1));
    }

    #[test]
    fn a_refused_store_url_does_not_show_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let config = "model = { kind = \"mlp\", widths = [4, 2] }\ntrain = { steps = 1, batch_size = 2, lr = 0.1 }\n\
                      runtime = { store = \"ftp://user:hunter2@host\" }\n";
        std::fs::write(&path, config).unwrap();
        for sets in [
            vec![],
            vec!["runtime.store=\"redis2://:hunter2@h\"".to_string()],
        ] {
            let e = load_config(&path, &sets).unwrap_err().to_string();
            assert!(e.contains("store") && !e.contains("hunter2"), "{e}");
        }
    }
}
