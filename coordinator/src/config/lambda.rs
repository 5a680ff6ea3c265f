//! `[lambda]`: the functions of `runtime.invoker = "lambda"` and `trainer deploy`.

use super::error::{bad, ConfigError};
use serde::{Deserialize, Serialize};

/// `lambda.architecture`: the instruction set of the functions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Architecture {
    /// Graviton: 20 % cheaper per GB-second (the default).
    #[default]
    #[serde(rename = "arm64")]
    Arm64,
    #[serde(rename = "x86_64")]
    X86_64,
}

impl Architecture {
    /// The name Lambda's API and its prices use.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Arm64 => "arm64",
            Architecture::X86_64 => "x86_64",
        }
    }
}

/// `[lambda]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaConfig {
    /// Function names are `{prefix}-{memory}mb`: one function per distinct memory size of the plan.
    #[serde(default = "function_prefix")]
    pub function_prefix: String,
    /// AWS region (default: the SDK's chain — `AWS_REGION`, the profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Named profile of the AWS shared config files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Another Lambda endpoint (an emulator, a VPC endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    /// The execution role `trainer deploy` gives the functions (required to deploy, not to run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `"arm64"` (Graviton: 20 % cheaper per GB-second) or `"x86_64"`.
    #[serde(default)]
    pub architecture: Architecture,
    /// Function timeout, seconds (Lambda allows 1–900).
    #[serde(default = "lambda_timeout_s")]
    pub timeout_s: u32,
    /// Memory of every slice's function when the planner did not choose (`plan.slices` fixed), MB.
    #[serde(default = "lambda_memory_mb")]
    pub memory_mb: u32,
    /// Reserved concurrency per function (none: the account's unreserved pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    /// Subnets and security groups of the functions, to reach a store inside a VPC (ElastiCache); empty: no VPC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// A function of its own for every slice, even where memory sizes repeat: a warm container then only ever
    /// holds one slice's weights (slices sharing a function share containers and their weight caches).
    #[serde(default)]
    pub function_per_slice: bool,
}

fn function_prefix() -> String {
    "trainer".into()
}
fn lambda_timeout_s() -> u32 {
    300
}
fn lambda_memory_mb() -> u32 {
    2048
}

impl Default for LambdaConfig {
    fn default() -> Self {
        LambdaConfig {
            function_prefix: function_prefix(),
            region: None,
            profile: None,
            endpoint_url: None,
            role_arn: None,
            architecture: Architecture::Arm64,
            timeout_s: lambda_timeout_s(),
            memory_mb: lambda_memory_mb(),
            reserved_concurrency: None,
            subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
            function_per_slice: false,
        }
    }
}

impl LambdaConfig {
    /// The function of each of `slices` slices and its memory: `memory` per slice when the planner chose it, else
    /// `lambda.memory_mb` for every slice.
    pub fn functions(&self, memory: Option<Vec<u32>>, slices: usize) -> Vec<(String, u32)> {
        memory
            .unwrap_or_else(|| vec![self.memory_mb; slices])
            .into_iter()
            .enumerate()
            .map(|(i, mb)| (self.function_name(i, mb), mb))
            .collect()
    }

    /// The function that runs `slice`, given `memory_mb`: `{prefix}-{memory}mb`, or `{prefix}-s{slice}-{memory}mb`
    /// with `function_per_slice`.
    pub fn function_name(&self, slice: usize, memory_mb: u32) -> String {
        if self.function_per_slice {
            format!("{}-s{slice}-{memory_mb}mb", self.function_prefix)
        } else {
            format!("{}-{memory_mb}mb", self.function_prefix)
        }
    }

    /// The memory a function named by [`LambdaConfig::function_name`] has (its `-{memory}mb` suffix).
    pub fn memory_of(function: &str) -> Option<u32> {
        let digits = function.strip_suffix("mb")?;
        let start = digits.rfind(|c: char| !c.is_ascii_digit())? + 1;
        digits[start..].parse().ok()
    }
}

impl LambdaConfig {
    /// Checks the table on its own, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = self;
        let name_ok = !l.function_prefix.is_empty()
            && l.function_prefix.len() <= 50
            && l.function_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(bad(
                "lambda.function_prefix",
                format!(
                    "{:?}: use 1-50 letters, digits, '-' or '_' (Lambda function names)",
                    l.function_prefix
                ),
            ));
        }
        if !(1..=900).contains(&l.timeout_s) {
            return Err(bad(
                "lambda.timeout_s",
                format!("{}: Lambda allows 1 to 900 seconds", l.timeout_s),
            ));
        }
        if l.subnet_ids.is_empty() != l.security_group_ids.is_empty() {
            return Err(bad(
                "lambda.subnet_ids",
                "a VPC needs both lambda.subnet_ids and lambda.security_group_ids (or neither)",
            ));
        }
        if !(128..=10_240).contains(&l.memory_mb) {
            return Err(bad(
                "lambda.memory_mb",
                format!("{}: Lambda allows 128 to 10,240 MB", l.memory_mb),
            ));
        }
        Ok(())
    }
}
