//! The record every run keeps, in process or split: one [`StepRecord`] per step (`metrics.jsonl`), the
//! [`Observer`] that shows progress, the checkpointed [`TrainState`], and the [`Summary`] of a finished run.

use super::evaluate::Evaluation;
use crate::config::{Config, Microbatches};
use crate::planner::calibration::Calibration;
use crate::stats::quantile_sorted;
use models::{LossKind, Model};
use serde::Serialize;
use std::time::Instant;

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    pub step: u64,
    pub epoch: u64,
    pub loss: f64,
    pub lr: f64,
    pub wall_ms: f64,
    /// Global gradient norm before clipping (only when clipping is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval: Option<Evaluation>,
}

/// Hooks for whoever shows progress (the CLI draws a bar; tests stay quiet).
pub trait Observer {
    fn started(&mut self, _total_steps: u64, _batch_size: usize) {}
    /// Something the user should know that does not stop the run.
    fn warn(&mut self, _message: &str) {}
    fn step(&mut self, _record: &StepRecord) {}
    fn finished(&mut self, _summary: &Summary) {}
}

/// An observer that shows nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// `summary.json`, written once when the run ends.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub steps: u64,
    pub epochs: f64,
    pub batch_size: usize,
    pub microbatches: Microbatches,
    pub seed: u64,
    pub params: u64,
    pub final_train_loss: f64,
    /// Mean training loss over the last (up to) 50 steps: less noisy than the last step alone.
    pub final_train_loss_avg50: f64,
    /// Classification: accuracy of the final weights on the whole test set, as a fraction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Language model: mean per-token loss of the final weights on the whole validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_token_accuracy: Option<f64>,
    pub wall_s: f64,
    pub train_s: f64,
    pub step_ms_p50: f64,
    pub step_ms_p95: f64,
    pub samples_per_s: f64,
    pub threads: usize,
    /// Split runs: what the task runtime did (from the events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    /// Split runs: the latency model's prediction for this run beside what it measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// The checkpointed training state stored beside the optimizer tensors.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimizer steps taken; the weights are version `step`.
    pub step: u64,
    pub epoch: u64,
    pub seed: u64,
    pub batch_size: usize,
    pub microbatches: Microbatches,
    /// How the data order is derived: a permutation per epoch keyed by (seed, epoch).
    pub data_order: String,
    /// Text data: the sha256 of the tokenizer's saved form (the run folder's `tokenizer.json`), so that the ids the
    /// weights were trained on are known and a resume on a corpus that now tokenizes differently is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary_sha256: Option<String>,
}

/// Counters of a split run, from its events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RuntimeStats {
    /// Executions that did their work.
    pub tasks_ran: u64,
    /// Executions that found their work done (duplicates, retries, late deliveries).
    pub tasks_skipped: u64,
    /// Executions that returned an error.
    pub tasks_failed: u64,
    /// Injected container crashes.
    pub crashes: u64,
    /// Invocations the driver made again, for any reason: the four counts below and failures.
    pub retries: u64,
    /// Tasks invoked again because they passed their deadline without a report.
    pub late_retries: u64,
    /// Copies started of stragglers (past their kind's speculation threshold, while the run had room).
    pub speculative_copies: u64,
    /// Tasks that became due without any report having started them (whoever completed their inputs died before
    /// starting them), invoked at once.
    pub orphans_started: u64,
    /// Invocations made again (late, speculative or orphan) whose overtaken attempt reported after all: it was
    /// only slow. Counted once per task.
    pub false_alarms: u64,
    pub cold_starts: u64,
    /// Cold starts among the tasks of the run's first step (0 when a warm pool brought every function up first).
    pub first_step_cold_starts: u64,
    /// Tasks run in their predecessor's invocation (the *become* option).
    pub became: u64,
    pub weights_cache_hits: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Tasks fired more than once (the invariant says 0).
    pub fired_twice: u64,
    /// Times the run restarted from its checkpoint after losing its store (a Redis restart or outage).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store_restarts: u32,
    /// Reports read twice from the stream (an append retried after its reply was lost) and dropped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub report_copies: u32,
    /// Runs on Lambda: the instances brought up before the first step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPool>,
    /// Governed runs: how their tasks got slots on the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<QosStats>,
}

/// A governed run's share of the account, from the governor's counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct QosStats {
    /// Tasks started with a slot at once.
    pub admitted: u64,
    /// Tasks that waited in the run's queue for a slot (never sent to be throttled).
    pub queued: u64,
    /// Queued tasks later granted a slot and started.
    pub granted: u64,
    /// Their time in the queue, summed, ms (undilated).
    pub queue_wait_ms: f64,
}

/// What a warm pool did before the first step: per function, the instances wanted and brought up, and what holding
/// them cost.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct WarmPool {
    pub functions: Vec<WarmedFunction>,
    /// From the first probe to the last answer, ms (undilated).
    pub wall_ms: f64,
    /// The probes' held time × their memory, GB-seconds (undilated; a cold start's init is billed on top).
    pub gb_seconds: f64,
    /// `gb_seconds` and one request per probe at `[pricing]`, USD.
    pub cost_usd: f64,
}

/// One function of a warm pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct WarmedFunction {
    pub function: String,
    pub memory_mb: u32,
    /// Instances the plan runs at once on it: M tasks of each slice it serves, at most `runtime.concurrency`.
    pub wanted: usize,
    /// Distinct instances that held a probe.
    pub instances: usize,
    /// Of those, the ones a probe started (the rest were warm already).
    pub started: usize,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TrainState {
    /// The training state after `step` steps of `cfg` on `ds`, in epoch `epoch`.
    pub fn new(cfg: &Config, ds: &dyn data::Dataset, step: u64, epoch: u64) -> TrainState {
        let t = &cfg.train;
        TrainState {
            step,
            epoch,
            seed: t.seed,
            batch_size: t.batch_size,
            microbatches: t.microbatches,
            data_order: "epoch_order(seed, epoch) over the train split; batch k of the epoch"
                .into(),
            vocabulary_sha256: ds.tokenizer().map(data::Tokenizer::sha256),
        }
    }
}

/// What a finished run measured, for its summary.
pub(crate) struct RunFigures {
    pub total: u64,
    pub steps_per_epoch: usize,
    pub losses: Vec<f64>,
    pub step_ms: Vec<f64>,
    pub started: Instant,
    pub train_s: f64,
    pub threads: usize,
}

/// `summary.json` of a finished run (monolithic or split).
pub(crate) fn summarize(
    cfg: &Config,
    model: &Model,
    run: &RunFigures,
    eval: &Evaluation,
) -> Summary {
    let t = &cfg.train;
    let mut sorted = run.step_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let tail = &run.losses[run.losses.len().saturating_sub(50)..];
    let lm = model.loss_kind() == LossKind::NextToken;
    Summary {
        steps: run.total,
        epochs: run.total as f64 / run.steps_per_epoch as f64,
        batch_size: t.batch_size,
        microbatches: t.microbatches,
        seed: t.seed,
        params: model.costs().iter().map(|c| c.params).sum(),
        final_train_loss: run.losses.last().copied().unwrap_or(f64::NAN),
        final_train_loss_avg50: tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        test_accuracy: (!lm).then_some(eval.accuracy),
        test_loss: (!lm).then_some(eval.loss),
        val_loss: lm.then_some(eval.loss),
        val_token_accuracy: lm.then_some(eval.accuracy),
        wall_s: run.started.elapsed().as_secs_f64(),
        train_s: run.train_s,
        step_ms_p50: quantile_sorted(&sorted, 0.5),
        step_ms_p95: quantile_sorted(&sorted, 0.95),
        samples_per_s: (run.total as f64 * t.batch_size as f64) / run.train_s.max(1e-9),
        threads: run.threads,
        runtime: None,
        calibration: None,
    }
}
