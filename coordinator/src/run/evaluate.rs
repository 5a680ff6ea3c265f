//! Evaluation on the held-out split: mean loss and accuracy with the current weights.

use crate::error::RunError;
use data::Dataset;
use models::{Model, Tensor};

/// Held-out loss (mean per sample, or per token for language models) and accuracy (per sample or per token).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Evaluation {
    pub samples: usize,
    pub loss: f64,
    pub accuracy: f64,
}

/// Evaluates the first `limit` eval examples (all when `None`) in chunks of `chunk` samples.
pub fn evaluate(
    model: &Model,
    params: &[Vec<Tensor<f32>>],
    ds: &dyn Dataset,
    limit: Option<usize>,
    chunk: usize,
) -> Result<Evaluation, RunError> {
    let n = limit.map_or(ds.eval_len(), |l| l.min(ds.eval_len()));
    let all = 0..model.units().len();
    let (mut loss, mut correct, mut rows) = (0.0, 0usize, 0usize);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let batch = ds.eval_batch(&idx)?;
        let targets: Vec<u32> = batch.targets.iter().copied().collect();
        let logits = model.infer(all.clone(), params, batch.inputs)?;
        loss += model.loss(&logits, &targets, n)?.loss;
        correct += model.correct(&logits, &targets);
        rows += targets.len();
        start = end;
    }
    Ok(Evaluation {
        samples: n,
        loss,
        accuracy: if rows == 0 {
            0.0
        } else {
            correct as f64 / rows as f64
        },
    })
}

/// Refuses to evaluate a run whose `tokenizer.json` differs from the vocabulary its data now gives (the ids its
/// weights learnt would be read as other tokens); a run folder without one (other data, or older runs) passes.
fn same_vocabulary(run: &std::path::Path, ds: &dyn data::Dataset) -> Result<(), RunError> {
    let path = run.join("tokenizer.json");
    if ds.tokenizer().is_none() || !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&path).map_err(crate::error::io(&path))?;
    let then = data::Tokenizer::from_json(&text, &path)?;
    super::vocabulary::check(run, Some(&then.sha256()), ds)
}

/// Evaluates the weights of a run folder (its `config.resolved.toml` and `model.safetensors`, or another
/// checkpoint of the same model) on the whole held-out split.
pub fn evaluate_run(
    run: &std::path::Path,
    checkpoint: Option<&std::path::Path>,
) -> Result<Evaluation, RunError> {
    let cfg_path = run.join("config.resolved.toml");
    let text = std::fs::read_to_string(&cfg_path).map_err(crate::error::io(&cfg_path))?;
    let cfg: crate::config::Config = toml::from_str(&text).map_err(|e| {
        RunError::Config(crate::config::ConfigError {
            field: cfg_path.display().to_string(),
            reason: e.to_string(),
        })
    })?;
    let model = cfg.model.build()?;
    let ds = data::open(&cfg.data)?;
    same_vocabulary(run, ds.as_ref())?;
    let weights = checkpoint
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| run.join("model.safetensors"));
    let bytes = models::checkpoint::read_file(&weights)?;
    let name = weights.display().to_string();
    let params =
        models::checkpoint::params_from_bytes(&model, 0..model.units().len(), &bytes, &name, true)?;
    evaluate(&model, &params, ds.as_ref(), None, 500)
}
