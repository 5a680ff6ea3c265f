//! What a calibration measures, and what it will cost: the memory sizes, how many samples of each quantity, how
//! long a burn lasts and how much a transfer moves; the functions it deploys for it, named apart from a run's.

use crate::config::{Config, Platform, Pricing};
use crate::error::RunError;

/// What `trainer calibrate` was asked to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Memory sizes to deploy a calibration function at, MB (ascending, distinct).
    pub sizes: Vec<u32>,
    /// Samples of each warm measurement (burn, invoke, transfer) per size.
    pub samples: usize,
    /// Instances started at once in each cold round.
    pub instances: usize,
    /// Cold rounds per size: each updates the function's configuration (Lambda then starts new instances) and
    /// starts `instances` of them at once.
    pub cold_rounds: usize,
    /// How long one burn lasts on a whole vCPU as fast as this machine's core, ms.
    pub burn_ms: f64,
    /// Bytes each transfer probe writes and reads.
    pub transfer_bytes: usize,
    /// Leave the functions deployed afterwards.
    pub keep: bool,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            // Below one vCPU (the slope), around it, and well above (the CPU cap and the bandwidth's).
            sizes: vec![256, 512, 1024, 2048, 4096, 10_240],
            samples: 5,
            instances: 2,
            cold_rounds: 2,
            burn_ms: 1000.0,
            transfer_bytes: 16_000_000,
            keep: false,
        }
    }
}

/// The threads of the burn at the largest size: one more than the vCPUs the config's platform gives it, so that a
/// platform with more vCPUs than assumed still shows them, up to 8.
pub fn cap_threads(platform: &Platform, largest_mb: u32) -> usize {
    ((platform.vcpus(largest_mb).ceil() as usize) + 1).clamp(2, 8)
}

impl Request {
    /// Checks the request against the config's platform; errors name the flag.
    pub fn validate(&self, platform: &Platform) -> Result<(), RunError> {
        let bad = |flag: &str, why: String| Err(RunError::Calibrate(format!("{flag}: {why}")));
        if self.sizes.len() < 2 {
            return bad(
                "--memory",
                "needs at least two sizes: a rate that grows with memory cannot be fitted from one"
                    .into(),
            );
        }
        if !self.sizes.windows(2).all(|w| w[0] < w[1]) {
            return bad(
                "--memory",
                format!("sizes must be distinct and ascending, got {:?}", self.sizes),
            );
        }
        for &mb in &self.sizes {
            if mb < platform.min_memory_mb || mb > platform.max_memory_mb {
                return bad(
                    "--memory",
                    format!(
                        "{mb} MB is outside the platform's {}–{} MB (platform.min_memory_mb, max_memory_mb)",
                        platform.min_memory_mb, platform.max_memory_mb
                    ),
                );
            }
        }
        if self.samples < 3 {
            return bad(
                "--samples",
                format!("at least 3 (a median and a spread), got {}", self.samples),
            );
        }
        if self.instances == 0 || self.cold_rounds == 0 {
            return bad("--instances / --cold-rounds", "each at least 1".into());
        }
        if !(self.burn_ms.is_finite() && self.burn_ms >= 10.0) {
            return bad(
                "--burn-ms",
                format!(
                    "at least 10 ms (shorter burns measure the clock), got {}",
                    self.burn_ms
                ),
            );
        }
        if self.transfer_bytes < 1_000_000 {
            return bad(
                "--transfer-mb",
                "at least 1 MB (smaller transfers measure latency, not bandwidth)".into(),
            );
        }
        Ok(())
    }

    /// The calibration function of `memory_mb`: `{lambda.function_prefix}-calibrate-{memory}mb`, apart from any
    /// run's functions.
    pub fn function(cfg: &Config, memory_mb: u32) -> String {
        format!("{}-calibrate-{memory_mb}mb", cfg.lambda.function_prefix)
    }

    /// Invocations per size (the largest adds its multi-threaded burns).
    fn invocations_per_size(&self) -> usize {
        // Cold rounds and one warm round of barrier probes; stamps, burns, writes and reads; deploy's probe.
        (self.cold_rounds + 1) * self.instances + 4 * self.samples + 1
    }

    /// What the calibration would do and cost on `cfg`'s account, by the config's `[platform]` and `[pricing]`.
    pub fn describe(&self, cfg: &Config) -> Vec<String> {
        let p = &cfg.platform;
        let mut lines = Vec::new();
        let mut gb_s = 0.0;
        let mut requests = 0;
        let largest = *self.sizes.last().unwrap_or(&p.max_memory_mb);
        for &mb in &self.sizes {
            let name = Request::function(cfg, mb);
            let seconds = self.expected_seconds(p, mb, largest);
            let n = self.invocations_per_size() + if mb == largest { self.samples } else { 0 };
            gb_s += f64::from(mb) / 1024.0 * seconds;
            requests += n;
            lines.push(format!(
                "CreateFunction {name} ({mb} MB, timeout {} s, TRAINER_STORE from runtime.store), then {} \
                 UpdateFunctionConfiguration (new instances for cold starts) and {n} invocations, about {seconds:.1} s \
                 of function time",
                cfg.lambda.timeout_s, self.cold_rounds
            ));
        }
        if !self.keep {
            lines.push(format!(
                "DeleteFunction for each of the {} functions",
                self.sizes.len()
            ));
        }
        lines.push(cost_line(gb_s, requests, &cfg.pricing));
        lines
    }

    /// Function time at `mb` by the config's platform model, s: the barrier probes, the burns, the transfers.
    fn expected_seconds(&self, p: &Platform, mb: u32, largest: u32) -> f64 {
        let slowdown = 1.0 / p.vcpus(mb).min(1.0);
        let burn_s = self.samples as f64 * self.burn_ms / 1e3 * slowdown;
        let threads = cap_threads(p, largest) as f64;
        let cap_burn_s = if mb == largest {
            self.samples as f64 * self.burn_ms / 1e3 * threads / p.vcpus(mb).min(threads)
        } else {
            0.0
        };
        let bandwidth = p.bandwidth_bytes_per_ms(mb).unwrap_or(100_000.0);
        let transfer_s = 2.0 * self.samples as f64 * self.transfer_bytes as f64 / bandwidth / 1e3;
        let probes_s = ((self.cold_rounds + 1) * self.instances + self.samples) as f64
            * (p.invoke_ms + p.cold_start_ms / (self.cold_rounds as f64 + 1.0))
            / 1e3;
        burn_s + cap_burn_s + transfer_s + probes_s
    }
}

fn cost_line(gb_s: f64, requests: usize, pricing: &Pricing) -> String {
    let usd = gb_s * pricing.usd_per_gb_s + requests as f64 * pricing.usd_per_request;
    format!(
        "cost: about {gb_s:.1} GB-s and {requests} requests = {usd:.5} USD at the config's [pricing] (the model's \
         [platform] assumptions; the store's time not included)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        toml::from_str(
            r#"
            model = { kind = "mlp", widths = [4, 4] }
            train = { steps = 1, batch_size = 2, lr = 0.1 }
            "#,
        )
        .expect("config")
    }

    #[test]
    fn a_dry_run_names_every_function_and_prices_the_calibration() {
        let cfg = cfg();
        let r = Request::default();
        r.validate(&cfg.platform).expect("the defaults are valid");
        let lines = r.describe(&cfg);
        assert_eq!(lines.len(), r.sizes.len() + 2, "{lines:#?}");
        assert!(lines[0].starts_with("CreateFunction trainer-calibrate-256mb (256 MB"));
        assert!(lines
            .last()
            .is_some_and(|l| l.starts_with("cost: about ") && l.contains(" USD")));
        // 10 GB functions for a few seconds and a few hundred requests: cents, not dollars.
        let usd: f64 = lines
            .last()
            .and_then(|l| l.split(" = ").nth(1))
            .and_then(|l| l.split(' ').next())
            .and_then(|v| v.parse().ok())
            .expect("a price");
        assert!(usd > 0.0 && usd < 0.05, "{usd}");
    }

    #[test]
    fn bad_requests_name_their_flag() {
        let p = Platform::default();
        let err = |r: Request| r.validate(&p).expect_err("refused").to_string();
        let one = Request {
            sizes: vec![512],
            ..Request::default()
        };
        assert!(err(one).contains("--memory"));
        let unsorted = Request {
            sizes: vec![1024, 512],
            ..Request::default()
        };
        assert!(err(unsorted).contains("ascending"));
        let huge = Request {
            sizes: vec![512, 20_000],
            ..Request::default()
        };
        assert!(err(huge).contains("20000 MB is outside"));
        let few = Request {
            samples: 1,
            ..Request::default()
        };
        assert!(err(few).contains("--samples"));
        assert_eq!(cap_threads(&p, 10_240), 7);
        assert_eq!(cap_threads(&p, 512), 2);
    }
}
