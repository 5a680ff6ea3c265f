//! The progress display of `trainer fit`: a bar on a terminal, plain periodic lines otherwise (CI logs, pipes).

use coordinator::run::record::{Observer, StepRecord, Summary};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    total: u64,
    batch: usize,
    every: u64,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(ProgressBar::hidden);
        Progress {
            bar,
            started: Instant::now(),
            total: 0,
            batch: 0,
            every: if quiet { 0 } else { 1 },
        }
    }
}

impl Observer for Progress {
    fn started(&mut self, total_steps: u64, batch_size: usize) {
        self.total = total_steps;
        self.batch = batch_size;
        self.started = Instant::now();
        if let Some(bar) = &mut self.bar {
            *bar = ProgressBar::new(total_steps);
            let style =
                ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
        } else if self.every > 0 {
            self.every = (total_steps / 20).max(1);
        }
    }

    fn warn(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }

    fn step(&mut self, r: &StepRecord) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let sps = r.step as f64 * self.batch as f64 / elapsed.max(1e-9);
        let eval = r
            .eval
            .map(|e| format!("  eval loss {:.4} acc {:.4}", e.loss, e.accuracy))
            .unwrap_or_default();
        if let Some(bar) = &self.bar {
            bar.set_position(r.step);
            bar.set_message(format!(
                "loss {:.4}  lr {:.2e}  {sps:.0} samples/s{eval}",
                r.loss, r.lr
            ));
            if !eval.is_empty() {
                bar.println(format!("step {}: loss {:.4}{eval}", r.step, r.loss));
            }
        } else if self.every > 0
            && (r.step.is_multiple_of(self.every) || r.eval.is_some() || r.step == self.total)
        {
            let eta = elapsed / r.step as f64 * (self.total - r.step) as f64;
            eprintln!(
                "step {}/{}  loss {:.4}  lr {:.2e}  {sps:.0} samples/s  ETA {eta:.0}s{eval}",
                r.step, self.total, r.loss, r.lr
            );
        }
    }

    fn finished(&mut self, _summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
