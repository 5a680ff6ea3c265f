//! What the model predicts for a sweep point before it runs: its memory per slice and its step, here and on Lambda.

use super::results::{Row, RowKind, RowStatus};
use super::spec::{Point, Sweep};
use crate::config::{Config, PlatformKind};
use crate::error::RunError;
use crate::planner::profile::Profile;
use crate::planner::search::PlannedStep;

fn on_lambda(cfg: &Config) -> Config {
    let mut c = cfg.clone();
    c.platform.kind = PlatformKind::Lambda;
    c
}

/// A split's memory per slice and its predictions: for this machine (what a run here measures) and for Lambda.
pub(super) struct Predicted {
    memory: Vec<u32>,
    here: PlannedStep,
    lambda: PlannedStep,
}

impl Predicted {
    pub(super) fn of(
        cfg: &Config,
        profile: &Profile,
        steps_per_epoch: u64,
        bounds: &[usize],
        memory: Vec<u32>,
    ) -> Result<Predicted, RunError> {
        let evaluate = |c: &Config| {
            crate::planner::evaluate_split(c, profile, steps_per_epoch, bounds, &memory)
        };
        Ok(Predicted {
            lambda: evaluate(&on_lambda(cfg))?,
            here: evaluate(&crate::planner::calibration::on_its_platform(cfg))?,
            memory,
        })
    }

    /// Each slice's memory, MB.
    pub(super) fn memory_mb(&self) -> &[u32] {
        &self.memory
    }

    /// Each slice's peak memory on Lambda by the model, MB.
    pub(super) fn lambda_peaks_mb(&self) -> Vec<f64> {
        self.lambda
            .slices
            .iter()
            .map(|s| s.predicted_peak_mb)
            .collect()
    }

    /// The median step, ms: on the platform the point runs on (`here`), and on Lambda.
    pub(super) fn step_ms_p50(&self) -> (f64, f64) {
        (
            self.here.predicted.step_ms_p50,
            self.lambda.predicted.step_ms_p50,
        )
    }

    /// The row of a split with these predictions, before (or without) running it.
    pub(super) fn row(
        &self,
        point: &str,
        kind: RowKind,
        status: RowStatus,
        cfg: &Config,
        bounds: &[usize],
        steps: u64,
    ) -> Row {
        let (here, lambda) = (&self.here, &self.lambda);
        Row {
            point: point.into(),
            kind,
            status,
            slices: bounds.len() - 1,
            bounds: bounds.to_vec(),
            microbatches: cfg.train.microbatches,
            recompute: cfg.plan.recompute,
            become_successor: cfg.plan.become_successor,
            steps,
            memory_mb: self.memory.clone(),
            predicted_peak_mb: lambda.slices.iter().map(|s| s.predicted_peak_mb).collect(),
            predicted_step_ms_p50: here.predicted.step_ms_p50,
            predicted_step_ms_p95: here.predicted.step_ms_p95,
            predicted_cost_usd_per_step: here.cost_usd_per_step,
            projected_step_ms_p50: lambda.predicted.step_ms_p50,
            projected_step_ms_p95: lambda.predicted.step_ms_p95,
            projected_gb_seconds_per_step: lambda.predicted.gb_seconds,
            projected_cost_usd_per_step: lambda.cost_usd_per_step,
            projected_cost_usd_per_epoch: lambda.cost_usd_per_epoch,
            projected_run: lambda.run.clone(),
            ..Row::default()
        }
    }
}

pub(super) fn predict(
    sweep: &Sweep,
    point: &Point,
    profile: &Profile,
    steps_per_epoch: u64,
) -> Result<Predicted, RunError> {
    let name = &point.name;
    let at_point = |e: RunError| RunError::Sweep {
        file: sweep.file.clone(),
        reason: format!("point {name}: {e}"),
    };
    let lambda_cfg = on_lambda(&point.config);
    let memory = match point.memory_mb {
        Some(mb) => vec![mb; point.slices()],
        // The planner's memory for these cuts (its objective, its constraints).
        None => crate::planner::plan_for(&lambda_cfg, profile, steps_per_epoch)
            .map_err(at_point)?
            .chosen
            .slices
            .iter()
            .map(|s| s.memory_mb)
            .collect(),
    };
    let p = Predicted::of(
        &point.config,
        profile,
        steps_per_epoch,
        &point.bounds,
        memory,
    )
    .map_err(at_point)?;
    for (k, s) in p.lambda.slices.iter().enumerate() {
        if s.predicted_peak_mb > f64::from(s.memory_mb) {
            return Err(at_point(RunError::Mismatch(format!(
                "slice {k} (units {}..{}) needs {:.0} MB by the model, more than the {} MB it is given \
                 (grid.memory_mb); give it more memory or cut it smaller",
                s.units[0], s.units[1], s.predicted_peak_mb, s.memory_mb
            ))));
        }
    }
    Ok(p)
}
