//! The one error a config check returns: which key, and why its value is not acceptable.

/// A config value that is well-formed TOML but not acceptable, with the key it is about.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

pub(crate) fn bad(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        reason: reason.into(),
    }
}
