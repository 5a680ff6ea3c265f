//! The bill: one record per invocation, as Lambda's `REPORT` line gives it (duration, billed duration, memory size,
//! max memory used, init duration), plus what the emulator can also see (CPU time, time throttled, time queued for
//! concurrency), appended to `events.jsonl`; and the sum of a file of them priced as AWS prices it:
//! Σ billed duration × memory (GB) × price per GB-second + requests × price per request.
//!
//! Billed duration: the invocation's duration plus, on a cold start, its init duration (`provided.al2023` bills the
//! init phase), rounded up to the millisecond ("AWS Lambda pricing": "duration is … rounded up to the nearest 1 ms").

use crate::settings::Prices;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// One invocation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub request_id: String,
    pub function: String,
    pub instance: usize,
    /// `Event` or `RequestResponse`.
    pub kind: String,
    pub memory_mb: u32,
    /// When it reached the instance, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// From reaching the instance to its response (or its end), ms.
    pub duration_ms: f64,
    /// The instance's init phase, ms, on the invocation that started it (0 when warm).
    pub init_ms: f64,
    pub cold: bool,
    /// ⌈duration + init⌉, ms.
    pub billed_ms: u64,
    /// CPU time of the instance during the invocation, ms (its cgroup's counter).
    pub cpu_ms: f64,
    /// Time its CPU quota held it back, ms (0 without cgroups).
    pub throttled_ms: f64,
    /// The instance's peak memory so far, MB (`None` where the kernel keeps no peak).
    pub max_memory_mb: Option<f64>,
    /// Time it waited for a concurrency slot before reaching an instance, ms.
    pub queued_ms: f64,
    /// `ok`, or the error type (`Runtime.OutOfMemory`, `Sandbox.Timedout`, …).
    pub outcome: String,
    /// How the instance was confined: `cgroup v1`, `cgroup v2`, or `rss polling (…why…)`.
    pub confinement: String,
    /// The time dilation it ran under: every duration above is the measured one divided by it (CPU time is not
    /// dilated).
    #[serde(default = "no_dilation")]
    pub dilation: f64,
}

fn no_dilation() -> f64 {
    1.0
}

impl Invocation {
    /// ⌈duration + init⌉ in ms.
    pub fn billed(duration_ms: f64, init_ms: f64) -> u64 {
        (duration_ms + init_ms).ceil().max(1.0) as u64
    }

    pub fn gb_seconds(&self) -> f64 {
        self.billed_ms as f64 / 1000.0 * f64::from(self.memory_mb) / 1024.0
    }
}

/// The records so far, appended one line each.
pub struct Ledger {
    file: Mutex<Option<std::fs::File>>,
    records: Mutex<Vec<Invocation>>,
}

impl Ledger {
    /// Appends to `path` (made if missing).
    pub fn open(path: &Path) -> std::io::Result<Ledger> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Ledger {
            file: Mutex::new(Some(file)),
            records: Mutex::new(Vec::new()),
        })
    }

    pub fn record(&self, inv: Invocation) {
        if let Ok(line) = serde_json::to_string(&inv) {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = file.as_mut() {
                // A line at a time: a reader sees whole records (O_APPEND).
                let _ = f.write_all(format!("{line}\n").as_bytes());
            }
        }
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(inv);
    }

    /// Every record so far.
    pub fn records(&self) -> Vec<Invocation> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A bill: the sums AWS would charge for a set of invocations.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Bill {
    pub requests: u64,
    pub cold_starts: u64,
    pub billed_ms: u64,
    pub gb_seconds: f64,
    pub init_ms: f64,
    pub cpu_ms: f64,
    pub throttled_ms: f64,
    /// Invocations that waited a millisecond or more for a concurrency slot (an `Event` passes through the queue
    /// in microseconds when there is room).
    pub queued: u64,
    pub errors: u64,
    pub compute_usd: f64,
    pub request_usd: f64,
    pub total_usd: f64,
}

impl Bill {
    pub fn of(records: &[Invocation], prices: Prices) -> Bill {
        let mut b = Bill::default();
        for r in records {
            b.requests += 1;
            b.cold_starts += u64::from(r.cold);
            b.billed_ms += r.billed_ms;
            b.gb_seconds += r.gb_seconds();
            b.init_ms += r.init_ms;
            b.cpu_ms += r.cpu_ms;
            b.throttled_ms += r.throttled_ms;
            b.queued += u64::from(r.queued_ms >= 1.0);
            b.errors += u64::from(r.outcome != "ok");
        }
        b.compute_usd = b.gb_seconds * prices.usd_per_gb_s;
        b.request_usd = b.requests as f64 * prices.usd_per_request;
        b.total_usd = b.compute_usd + b.request_usd;
        b
    }

    /// The bill of an `events.jsonl`; a line that is not a record is an error naming its line.
    pub fn of_file(path: &Path, prices: Prices) -> Result<Bill, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: Invocation = serde_json::from_str(line).map_err(|e| {
                format!(
                    "{} line {}: not an invocation record: {e}",
                    path.display(),
                    i + 1
                )
            })?;
            records.push(r);
        }
        Ok(Bill::of(&records, prices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(memory_mb: u32, duration_ms: f64, init_ms: f64) -> Invocation {
        Invocation {
            request_id: "r".into(),
            function: "f".into(),
            instance: 0,
            kind: "Event".into(),
            memory_mb,
            start_unix_ms: 0,
            duration_ms,
            init_ms,
            cold: init_ms > 0.0,
            billed_ms: Invocation::billed(duration_ms, init_ms),
            cpu_ms: 1.0,
            throttled_ms: 0.0,
            max_memory_mb: Some(30.0),
            queued_ms: 0.0,
            outcome: "ok".into(),
            dilation: 1.0,
            confinement: "cgroup v1".into(),
        }
    }

    #[test]
    fn billed_duration_rounds_up_to_the_millisecond_and_includes_init() {
        assert_eq!(Invocation::billed(10.01, 0.0), 11);
        assert_eq!(Invocation::billed(10.0, 0.0), 10);
        assert_eq!(Invocation::billed(0.2, 0.0), 1);
        assert_eq!(Invocation::billed(3.2, 40.5), 44);
    }

    #[test]
    fn a_bill_is_gb_seconds_times_price_plus_requests() {
        // 1,000 ms at 1,024 MB = 1 GB-s; 2,000 ms at 512 MB = 1 GB-s.
        let records = [record(1024, 1000.0, 0.0), record(512, 1999.5, 0.0)];
        let prices = Prices {
            usd_per_gb_s: 0.5,
            usd_per_request: 0.01,
        };
        let b = Bill::of(&records, prices);
        assert_eq!(b.requests, 2);
        assert_eq!(b.billed_ms, 3000);
        assert!((b.gb_seconds - 2.0).abs() < 1e-12);
        assert!((b.total_usd - 1.02).abs() < 1e-12);
    }

    #[test]
    fn a_ledger_file_reads_back_as_the_same_bill_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.jsonl");
        let ledger = Ledger::open(&path).expect("ledger");
        ledger.record(record(1024, 12.3, 50.0));
        ledger.record(record(256, 4.0, 0.0));
        let prices = Prices::default();
        assert_eq!(
            Bill::of_file(&path, prices),
            Ok(Bill::of(&ledger.records(), prices))
        );
        std::fs::write(&path, "{\"request_id\":1}\n").expect("write");
        let err = Bill::of_file(&path, prices).expect_err("bad line");
        assert!(err.contains("line 1"), "{err}");
    }
}
