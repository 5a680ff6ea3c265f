//! What a validated config trains, before any run: its model, data set, step-to-batch sampler and step count
//! ([`Job::open`], which checks that model and data fit each other), and the step-0 weights and optimizer state.
//! Shared by the runs, the profiler and the planner's callers; it knows nothing of how a run is carried out.

use crate::config::Config;
use crate::error::RunError;
use data::{Dataset, Sampler, Task};
use models::{LossKind, Model, OptimizerState, UnitTensors};

/// The model, the data set, the step-to-batch sampler and the number of steps of a validated config.
pub(crate) struct Job {
    pub model: Model,
    pub ds: Box<dyn Dataset>,
    pub sampler: Sampler,
    /// The steps the config trains ([`total_steps`]).
    pub total: u64,
}

impl Job {
    /// Builds the model and opens the data set of `cfg`, and checks that they fit each other.
    pub(crate) fn open(cfg: &Config) -> Result<Job, RunError> {
        let model = cfg.model.build()?;
        let ds = data::open(&cfg.data)?;
        check_fit(&model, ds.as_ref())?;
        let t = &cfg.train;
        let sampler = Sampler::new(t.seed, ds.train_len(), t.batch_size)?;
        let total = total_steps(cfg, sampler.steps_per_epoch() as u64);
        Ok(Job {
            model,
            ds,
            sampler,
            total,
        })
    }
}

/// Checks that the model's input, output and the dataset agree, naming the keys to change.
fn check_fit(model: &Model, ds: &dyn Dataset) -> Result<(), RunError> {
    let sample = ds.sample_shape();
    let input = model.input_shape();
    let out = model.shape_at(model.units().len());
    match (ds.task(), model.loss_kind()) {
        (Task::Classification { classes }, LossKind::Classification) => {
            if sample.iter().product::<usize>() != input.iter().product::<usize>() {
                return Err(RunError::Mismatch(format!(
                    "{} samples have shape {sample:?} but the model takes {input:?} (model.widths[0] or model.kind)",
                    ds.name()
                )));
            }
            if out.last() != Some(&classes) {
                return Err(RunError::Mismatch(format!(
                    "{} has {classes} classes but the model outputs {out:?} (last entry of model.widths)",
                    ds.name()
                )));
            }
        }
        (Task::NextToken { vocab, context }, LossKind::NextToken) => {
            if out.last() != Some(&vocab) {
                return Err(RunError::Mismatch(format!(
                    "{} has a vocabulary of {vocab} but model.vocab gives {:?}",
                    ds.name(),
                    out.last()
                )));
            }
            if context > input[0] {
                return Err(RunError::Mismatch(format!(
                    "data.context = {context} exceeds model.context = {}",
                    input[0]
                )));
            }
        }
        (task, _) => {
            return Err(RunError::Mismatch(format!(
                "{} poses {task:?}; model.kind {:?} cannot learn it",
                ds.name(),
                model.spec()
            )))
        }
    }
    Ok(())
}

/// The steps `cfg` trains: `train.steps`, or `train.epochs` (default 1) of `steps_per_epoch`.
pub(crate) fn total_steps(cfg: &Config, steps_per_epoch: u64) -> u64 {
    cfg.train.total_steps(steps_per_epoch)
}

/// Step 0: the seed's initial weights (PyTorch's initialisation) and a fresh optimizer state.
pub(crate) fn initial_state(
    model: &Model,
    opt: &models::OptimizerSpec,
    seed: u64,
) -> (UnitTensors<f32>, OptimizerState<f32>) {
    let params: UnitTensors<f32> = model.init(seed);
    let state = params.iter().map(|p| opt.init_state(p)).collect();
    (params, state)
}
