//! `[qos]`: how a run shares its account's concurrency with the other runs on the same store (the account governor,
//! `slice_worker::governor`).

use super::error::{bad, ConfigError};
use serde::{Deserialize, Serialize};
use slice_worker::governor::Priority;

/// Whether a run goes through the governor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Governed {
    /// Lambda runs do (their account is shared whether they know it or not); local runs do not.
    #[default]
    Auto,
    On,
    Off,
}

/// `[qos]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QosConfig {
    /// `"auto"` (Lambda runs on a Redis store), `"on"` (local runs on a Redis store too), `"off"`.
    pub governor: Governed,
    /// `"high"` (its demand kept free, its waiting tasks first), `"normal"` or `"low"`.
    pub priority: Priority,
    /// The account's concurrency limit (default: Lambda's `GetAccountSettings`; local runs must give it).
    pub account_limit: Option<usize>,
    /// How long a slot or a run's registration lives unless renewed, seconds (a dead worker's slot and a dead
    /// driver's share come back within it).
    pub lease_s: f64,
    /// Burst smoothing: the most task starts per second on the account (a second's worth may start at once; the
    /// rest wait in their queues); 0: no limit. Set by the last run to register.
    pub max_starts_per_s: f64,
}

impl Default for QosConfig {
    fn default() -> Self {
        QosConfig {
            governor: Governed::Auto,
            priority: Priority::Normal,
            account_limit: None,
            lease_s: 10.0,
            max_starts_per_s: 0.0,
        }
    }
}

impl QosConfig {
    /// Checks the numbers, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.account_limit == Some(0) {
            return Err(bad("qos.account_limit", "must be at least 1"));
        }
        if !(self.lease_s.is_finite() && self.lease_s >= 1.0) {
            return Err(bad(
                "qos.lease_s",
                format!("must be at least 1 second, got {}", self.lease_s),
            ));
        }
        if !(self.max_starts_per_s.is_finite() && self.max_starts_per_s >= 0.0) {
            return Err(bad(
                "qos.max_starts_per_s",
                format!(
                    "must be a number of starts per second, 0 (no limit) or more, got {}",
                    self.max_starts_per_s
                ),
            ));
        }
        Ok(())
    }
}
