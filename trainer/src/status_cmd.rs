//! `trainer status RUN_DIR [--json] [--watch]`: what a split run is doing, read from its `status.json` (kept by the
//! run's driver) from another terminal.

use anyhow::{bail, Context, Result};
use coordinator::run::split::status::{RunStatus, State};
use std::path::Path;
use std::time::Duration;

/// A status older than this from a process that is gone is a run that died without its last word.
const STALE: Duration = Duration::from_secs(5);

fn read(dir: &Path) -> Result<RunStatus> {
    let path = dir.join("status.json");
    if !path.exists() {
        if dir.join("config.resolved.toml").exists() {
            bail!(
                "{}: no status.json — an in-process run (one slice) shows its progress on its own terminal and in \
                 metrics.jsonl; split runs write status.json",
                dir.display()
            );
        }
        bail!(
            "{}: not a run folder (no config.resolved.toml)",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a run's status", path.display()))
}

/// Whether process `pid` is alive (Linux: its /proc entry).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn age_s(s: &RunStatus) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(s.updated_unix_ms) as f64 / 1e3
}

fn state_line(s: &RunStatus) -> String {
    let age = age_s(s);
    match s.state {
        State::Running | State::Stopping if !alive(s.pid) && age > STALE.as_secs_f64() => format!(
            "not running: its process (pid {}) ended without a last status {age:.0} s ago — resume it with \
             trainer fit CONFIG --resume RUN_DIR",
            s.pid
        ),
        State::Running => format!("running (pid {}, updated {age:.1} s ago)", s.pid),
        State::Stopping => format!("stopping: finishing its started steps (pid {})", s.pid),
        State::Finished => "finished".into(),
        State::Ended => "ended before its last step (stopped or failed): see its terminal; --resume goes on".into(),
    }
}

fn screen(s: &RunStatus) -> String {
    let r = &s.runtime;
    let mut out = String::new();
    out.push_str(&format!("{}\n", state_line(s)));
    let rate = s
        .steps_per_s
        .map_or("-".into(), |v| format!("{v:.2} steps/s"));
    let eta = s.eta_s.map_or("-".into(), |v| format!("{v:.0} s"));
    out.push_str(&format!(
        "step {}/{}   {rate}   ETA {eta}\n",
        s.steps_done, s.steps_total
    ));
    out.push_str(&format!(
        "tasks in flight {} of {} (concurrency)   store {:.1} MB/s\n",
        s.in_flight,
        s.concurrency,
        s.store_bytes_per_s / 1e6
    ));
    out.push_str("latency (due → report)   samples    p50 ms    p95 ms    p99 ms\n");
    for k in &s.latency {
        out.push_str(&format!(
            "  {:<22} {:>8} {:>9.2} {:>9.2} {:>9.2}\n",
            k.kind, k.samples, k.p50_ms, k.p95_ms, k.p99_ms
        ));
    }
    out.push_str(&format!(
        "ran {}   duplicates skipped {}   failed {}   cold starts {}\n",
        r.tasks_ran, r.tasks_skipped, r.tasks_failed, r.cold_starts
    ));
    out.push_str(&format!(
        "retries {} (late {}, speculative copies {}, orphans {})   false alarms {}   fired twice {}\n",
        r.retries, r.late_retries, r.speculative_copies, r.orphans_started, r.false_alarms, r.fired_twice
    ));
    out
}

pub fn run_status(dir: &Path, json: bool, watch: bool) -> Result<()> {
    loop {
        let s = read(dir)?;
        if json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            if watch {
                // Clear the screen and go home, then draw.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", screen(&s));
        }
        let live = matches!(s.state, State::Running | State::Stopping) && alive(s.pid);
        if !watch || !live {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
