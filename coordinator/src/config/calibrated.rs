//! `platform.calibrated = "FILE"`: the `[platform]` table `trainer calibrate` wrote, taken in under the config's
//! own `[platform]` keys (a key the config sets wins). Resolved on the TOML document before it becomes a
//! [`Config`], relative to the config's folder; the path is kept, made absolute, so a run's saved config says which
//! calibration it used.

use super::error::{bad, ConfigError};
use super::Config;
use std::path::Path;

const KEY: &str = "calibrated";

/// Takes the calibration file named by `doc`'s `platform.calibrated` (if any) into `doc`'s `[platform]`; returns
/// whether there was one. Errors name `platform.calibrated` and the file.
pub fn take_in_calibrated(doc: &mut toml::Table, config_dir: &Path) -> Result<bool, ConfigError> {
    let Some(platform) = doc.get_mut("platform").and_then(|p| p.as_table_mut()) else {
        return Ok(false);
    };
    let Some(named) = platform.get(KEY) else {
        return Ok(false);
    };
    let named = named.as_str().ok_or_else(|| {
        bad(
            "platform.calibrated",
            format!("must be a file name, got {named}"),
        )
    })?;
    let path = config_dir.join(named);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(
            "platform.calibrated",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let file: toml::Table = toml::from_str(&text)
        .map_err(|e| bad("platform.calibrated", format!("{}: {e}", path.display())))?;
    let measured = file
        .get("platform")
        .and_then(|p| p.as_table())
        .ok_or_else(|| {
            bad(
                "platform.calibrated",
                format!(
                    "{} has no [platform] table (write one with trainer calibrate)",
                    path.display()
                ),
            )
        })?;
    for (k, v) in measured {
        if k != KEY && !platform.contains_key(k) {
            platform.insert(k.clone(), v.clone());
        }
    }
    let absolute = std::path::absolute(&path).unwrap_or(path);
    platform.insert(
        KEY.into(),
        toml::Value::String(absolute.display().to_string()),
    );
    Ok(true)
}

/// Parses a config's text (from a file in `config_dir`), taking in its calibration file if it names one. Errors
/// name the line (no calibration) or the key.
pub fn parse_config(text: &str, config_dir: &Path) -> Result<Config, String> {
    let cfg: Config = toml::from_str(text).map_err(|e| e.to_string())?;
    if cfg.platform.calibrated.is_none() {
        return Ok(cfg);
    }
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    take_in_calibrated(&mut doc, config_dir).map_err(|e| e.to_string())?;
    toml::Value::Table(doc)
        .try_into()
        .map_err(|e: toml::de::Error| format!("with platform.calibrated: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
        model = { kind = "mlp", widths = [4, 2] }
        train = { steps = 1, batch_size = 2, lr = 0.1 }
        [platform]
        calibrated = "cal.toml"
        invoke_ms = 7.0
    "#;

    #[test]
    fn the_calibration_fills_what_the_config_leaves_and_the_config_wins() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("cal.toml"),
            "[platform]\ninvoke_ms = 31.5\nmb_per_vcpu = 1000.0\n[calibration]\ndilation = 1.0\n",
        )
        .expect("written");
        let cfg = parse_config(CONFIG, dir.path()).expect("parsed");
        assert_eq!(cfg.platform.mb_per_vcpu, 1000.0);
        assert_eq!(cfg.platform.invoke_ms, 7.0, "the config's own key wins");
        let kept = cfg.platform.calibrated.expect("kept");
        assert!(
            kept.is_absolute() && kept.ends_with("cal.toml"),
            "{}",
            kept.display()
        );
    }

    #[test]
    fn a_missing_or_tableless_calibration_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = parse_config(CONFIG, dir.path()).expect_err("no file");
        assert!(
            e.contains("platform.calibrated") && e.contains("cal.toml"),
            "{e}"
        );
        std::fs::write(
            dir.path().join("cal.toml"),
            "[calibration]\ndilation = 1.0\n",
        )
        .expect("written");
        let e = parse_config(CONFIG, dir.path()).expect_err("no table");
        assert!(e.contains("has no [platform] table"), "{e}");
        std::fs::write(
            dir.path().join("cal.toml"),
            "[platform]\nmb_per_vcpu = \"fast\"\n",
        )
        .expect("written");
        let e = parse_config(CONFIG, dir.path()).expect_err("bad value");
        assert!(e.contains("mb_per_vcpu"), "{e}");
    }
}
