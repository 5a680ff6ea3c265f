//! The measurements themselves, on deployed calibration functions: per memory size, cold and warm starts (through
//! a warm pool's barrier probe, so that instances start at once and say whether they are new), the asynchronous
//! invoke latency (an `Event` whose handler stamps its start into the store), one-thread burns, and transfers to
//! and from the store; at the largest size, burns on more threads than it has vCPUs. Times are taken raw and
//! undilated once at the end by the dilation the functions report (1 on Lambda).

use super::fit::Measured;
use super::request::{cap_threads, Request};
use crate::config::Config;
use crate::error::RunError;
use serde::{Deserialize, Serialize};
use slice_worker::calibrate::{checksum, Burned, Probe};
use slice_worker::invoker::lambda::LambdaClient;
use slice_worker::store::Store;
use slice_worker::warm::{Held, WarmProbe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One memory size's measurements, undilated.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SizeMeasurements {
    pub memory_mb: u32,
    /// A synchronous invoke's round trip less the handler's own time, on an instance it started, ms.
    pub cold_overhead_ms: Measured,
    /// The same on an idle instance, ms.
    pub warm_overhead_ms: Measured,
    /// From sending an `Event` invoke to its handler starting, ms.
    pub event_start_ms: Measured,
    /// The `Event` invoke call's own answer, ms.
    pub event_reply_ms: Measured,
    /// One thread's burn rate, iterations per ms.
    pub burn_per_ms: Measured,
    pub read_mb_s: Measured,
    pub write_mb_s: Measured,
}

/// The burns at the largest size on more threads than it has vCPUs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CapBurn {
    pub memory_mb: u32,
    pub threads: usize,
    /// All threads' iterations per ms.
    pub burn_per_ms: Measured,
}

/// Everything a calibration measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    pub sizes: Vec<SizeMeasurements>,
    pub cap: CapBurn,
    /// This machine's one-thread burn rate, iterations per ms (what a function's rate is compared with).
    pub local_burn_per_ms: f64,
    /// Iterations of one burn.
    pub iterations: u64,
    /// The functions' time dilation (an emulator's; 1 on Lambda).
    pub dilation: f64,
}

/// This machine's one-thread rate of the burn, iterations per ms (the median of three).
pub fn local_burn_rate() -> f64 {
    const N: u64 = 5_000_000;
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(checksum(N, 1));
            N as f64 / (t.elapsed().as_secs_f64() * 1e3).max(1e-6)
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[1]
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The calls and the run's identity the probes share.
pub struct Prober<'a> {
    pub cfg: &'a Config,
    pub request: &'a Request,
    pub client: &'a LambdaClient,
    pub store: &'a dyn Store,
    /// Keys of this calibration live under `trainer:calibrate:{id}:`.
    pub id: String,
    pub iterations: u64,
    pub stop: &'a AtomicBool,
}

fn failed(function: &str, what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::Calibrate(format!("{function}: the {what} probe failed: {e}"))
}

impl Prober<'_> {
    fn key(&self, what: &str) -> String {
        format!("trainer:calibrate:{}:{what}", self.id)
    }

    fn check_stop(&self) -> Result<(), RunError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(RunError::Calibrate(
                "stopped by request; nothing was written (the functions are deleted unless --keep)"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn sync(
        &self,
        function: &str,
        what: &str,
        payload: &[u8],
    ) -> Result<(serde_json::Value, f64), RunError> {
        let t = Instant::now();
        let answer = self
            .client
            .invoke_sync(function, payload)
            .await
            .map_err(|e| failed(function, what, e))?;
        let rtt = ms_since(t);
        let value = serde_json::from_slice(&answer.payload).map_err(|e| {
            failed(
                function,
                what,
                format!(
                    "the answer is not JSON ({e}): {}",
                    String::from_utf8_lossy(&answer.payload)
                ),
            )
        })?;
        Ok((value, rtt))
    }

    /// `instances` barrier probes at once: each answer's overhead (round trip less the time it held), and whether
    /// it started its instance.
    async fn barrier_round(
        &self,
        function: &str,
        barrier: String,
    ) -> Result<Vec<(bool, f64)>, RunError> {
        let probe = WarmProbe {
            barrier,
            of: self.request.instances,
            wait_ms: 120_000,
        };
        let payload = serde_json::json!({ "probe": probe }).to_string();
        let calls = (0..self.request.instances)
            .map(|_| self.sync(function, "warm-barrier", payload.as_bytes()));
        let mut out = Vec::new();
        for answer in futures_util::future::join_all(calls).await {
            let (value, rtt) = answer?;
            let held: Held = serde_json::from_value(value.clone()).map_err(|e| {
                failed(
                    function,
                    "warm-barrier",
                    format!("unexpected answer {value}: {e}"),
                )
            })?;
            if !held.all {
                return Err(failed(
                    function,
                    "warm-barrier",
                    format!(
                        "{} instances did not all start within 120 s (the function's concurrency may be limited)",
                        self.request.instances
                    ),
                ));
            }
            out.push((held.cold, rtt - held.held_ms));
        }
        Ok(out)
    }

    /// Gives the function a new configuration (a round number in its environment), so that the platform starts new
    /// instances for the next invocations.
    async fn renew(&self, function: &str, round: usize) -> Result<(), RunError> {
        let env = aws_sdk_lambda::types::Environment::builder()
            .variables("TRAINER_STORE", self.cfg.runtime.store.as_str())
            .variables("TRAINER_CALIBRATION_ROUND", round.to_string())
            .build();
        self.client
            .sdk()
            .update_function_configuration()
            .function_name(function)
            .environment(env)
            .send()
            .await
            .map_err(|e| crate::deploy::sdk_err("UpdateFunctionConfiguration", function, e))?;
        crate::deploy::wait_active(self.client, function, &mut |_| {}).await
    }

    async fn starts(
        &self,
        function: &str,
        mb: u32,
        m: &mut SizeMeasurements,
    ) -> Result<(), RunError> {
        for round in 0..=self.request.cold_rounds {
            self.check_stop()?;
            let cold_round = round < self.request.cold_rounds;
            if cold_round {
                self.renew(function, round + 1).await?;
            }
            for (cold, overhead) in self
                .barrier_round(function, self.key(&format!("{mb}:barrier{round}")))
                .await?
            {
                if cold {
                    m.cold_overhead_ms.samples.push(overhead);
                } else {
                    m.warm_overhead_ms.samples.push(overhead);
                }
            }
        }
        Ok(())
    }

    async fn events(
        &self,
        function: &str,
        mb: u32,
        m: &mut SizeMeasurements,
    ) -> Result<(), RunError> {
        for i in 0..self.request.samples {
            self.check_stop()?;
            let key = self.key(&format!("{mb}:stamp{i}"));
            let sent = unix_ms();
            let t = Instant::now();
            self.client
                .invoke_event(function, &Probe::Stamp { key: key.clone() }.payload())
                .await
                .map_err(|e| failed(function, "stamp", e))?;
            m.event_reply_ms.samples.push(ms_since(t));
            let started = loop {
                if let Some(v) = self.store.get(&key).await? {
                    break String::from_utf8_lossy(&v).parse::<f64>().map_err(|e| {
                        failed(function, "stamp", format!("{key} holds no time: {e}"))
                    })?;
                }
                if t.elapsed() > Duration::from_secs(120) {
                    return Err(failed(
                        function,
                        "stamp",
                        format!("no stamp in {key} within 120 s"),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            m.event_start_ms.samples.push(started - sent);
            // Let the handler finish, so that the next event finds an idle instance rather than starting one.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// One burn on `threads` threads: all threads' iterations per ms, and the dilation the function reports.
    async fn burn(&self, function: &str, threads: usize) -> Result<(f64, f64), RunError> {
        let probe = Probe::Burn {
            iterations: self.iterations,
            threads,
        };
        let (value, _) = self.sync(function, "burn", &probe.payload()).await?;
        let burned: Burned = serde_json::from_value(value.clone())
            .map_err(|e| failed(function, "burn", format!("unexpected answer {value}: {e}")))?;
        let expected = checksum(self.iterations, threads);
        if burned.checksum != expected {
            return Err(failed(
                function,
                "burn",
                format!(
                    "checksum {} where this machine computes {expected}: the function runs another worker build",
                    burned.checksum
                ),
            ));
        }
        Ok((
            self.iterations as f64 * threads as f64 / burned.ms.max(1e-6),
            burned.dilation,
        ))
    }

    async fn transfers(
        &self,
        function: &str,
        mb: u32,
        m: &mut SizeMeasurements,
    ) -> Result<(), RunError> {
        let key = self.key(&format!("{mb}:bytes"));
        let bytes = self.request.transfer_bytes;
        let rate = |v: &serde_json::Value, what: &str| -> Result<f64, RunError> {
            let ms = v["ms"]
                .as_f64()
                .ok_or_else(|| failed(function, what, format!("unexpected answer {v}")))?;
            Ok(bytes as f64 / 1e6 / (ms.max(1e-6) / 1e3))
        };
        for _ in 0..self.request.samples {
            self.check_stop()?;
            let write = serde_json::json!({"probe": {"write": key, "bytes": bytes}}).to_string();
            let (v, _) = self.sync(function, "write", write.as_bytes()).await?;
            m.write_mb_s.samples.push(rate(&v, "write")?);
            let read = serde_json::json!({"probe": {"read": key}}).to_string();
            let (v, _) = self.sync(function, "read", read.as_bytes()).await?;
            if v["bytes"].as_u64() != Some(bytes as u64) {
                return Err(failed(
                    function,
                    "read",
                    format!("read {} bytes of {bytes}", v["bytes"]),
                ));
            }
            m.read_mb_s.samples.push(rate(&v, "read")?);
        }
        self.store.delete(&[key]).await?;
        Ok(())
    }

    /// Measures every size, then the largest one's burns on many threads; says each size on `progress`.
    pub async fn measure(&self, progress: &mut dyn FnMut(&str)) -> Result<Measurements, RunError> {
        let mut out = Measurements {
            iterations: self.iterations,
            ..Measurements::default()
        };
        let mut dilations = Vec::new();
        for &mb in &self.request.sizes {
            let function = Request::function(self.cfg, mb);
            let mut m = SizeMeasurements {
                memory_mb: mb,
                ..SizeMeasurements::default()
            };
            self.starts(&function, mb, &mut m).await?;
            self.events(&function, mb, &mut m).await?;
            for _ in 0..self.request.samples {
                self.check_stop()?;
                let (rate, dilation) = self.burn(&function, 1).await?;
                m.burn_per_ms.samples.push(rate);
                dilations.push(dilation);
            }
            self.transfers(&function, mb, &mut m).await?;
            progress(&format!(
                "{function}: {} cold and {} warm starts, {} events, burns and transfers (raw medians: event {:.1} ms, \
                 burn {:.0}/ms, read {:.0} MB/s)",
                m.cold_overhead_ms.samples.len(),
                m.warm_overhead_ms.samples.len(),
                m.event_start_ms.samples.len(),
                m.event_start_ms.median(),
                m.burn_per_ms.median(),
                m.read_mb_s.median()
            ));
            out.sizes.push(m);
        }
        let largest = *self
            .request
            .sizes
            .last()
            .unwrap_or_else(|| unreachable!("validated: two sizes or more"));
        let threads = cap_threads(&self.cfg.platform, largest);
        let function = Request::function(self.cfg, largest);
        out.cap = CapBurn {
            memory_mb: largest,
            threads,
            burn_per_ms: Measured::default(),
        };
        for _ in 0..self.request.samples {
            self.check_stop()?;
            let (rate, dilation) = self.burn(&function, threads).await?;
            out.cap.burn_per_ms.samples.push(rate);
            dilations.push(dilation);
        }
        dilations.dedup();
        out.dilation = match dilations.as_slice() {
            [d] => *d,
            _ => {
                return Err(RunError::Calibrate(format!(
                    "the functions report different time dilations {dilations:?}: calibrate one platform at a time"
                )))
            }
        };
        Ok(out.undilated())
    }
}

impl Measurements {
    /// Every time divided and every rate multiplied by the dilation: the platform's own clock.
    fn undilated(mut self) -> Measurements {
        let d = self.dilation;
        let scale = |m: &mut Measured, f: f64| m.samples.iter_mut().for_each(|s| *s *= f);
        for s in &mut self.sizes {
            for m in [
                &mut s.cold_overhead_ms,
                &mut s.warm_overhead_ms,
                &mut s.event_start_ms,
                &mut s.event_reply_ms,
            ] {
                scale(m, 1.0 / d);
            }
            for m in [&mut s.burn_per_ms, &mut s.read_mb_s, &mut s.write_mb_s] {
                scale(m, d);
            }
        }
        scale(&mut self.cap.burn_per_ms, d);
        self
    }
}
