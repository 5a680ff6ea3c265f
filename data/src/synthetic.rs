//! Synthetic datasets that need no files, generated deterministically from a seed.
//!
//! **Classification** (default): Gaussian class clusters. Class `c` has a centre `μ_c` whose
//! `features` entries are drawn from `N(0, s²)` with `s = separation / sqrt(2 * features)`, so
//! two centres lie about `separation` apart whatever the dimension. An example is a label drawn
//! uniformly from `0..classes` and the input `μ_label + ε`, `ε ~ N(0, I)`. With the defaults
//! (784 features, 10 classes, separation 8) the classes overlap a little (Bayes accuracy above
//! 99.9%) and a small MLP or even a linear model gets past 90% within a few hundred steps.
//!
//! **Tokens**: a Markov chain over `vocab` tokens. Each token `a` has a favourite successor
//! `next[a]` (a fixed random permutation); a sequence starts at a uniform token and then
//! follows `next` with probability 0.9, otherwise jumps to a uniform token. Inputs are `[B, T]`
//! token ids, targets the sequence shifted by one; the best possible next-token accuracy is
//! about `0.9 + 0.1 / vocab`.
//!
//! Every example is a pure function of `(seed, split, index)`: it is generated when gathered
//! from its own ChaCha8 stream, so the datasets cost no memory and any `train_len` works.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::{check_indices, Batch};
use crate::dataset::{Dataset, Task};
use crate::error::{DataError, Result, Split};
use crate::order::{below, keyed_rng, permutation};

/// Probability that the token chain follows its favourite successor.
pub const FOLLOW_PROBABILITY: f64 = 0.9;

/// Which synthetic task to generate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyntheticTask {
    /// Gaussian class clusters, inputs `[B, features]`, targets `[B]`.
    #[default]
    Classification,
    /// Markov-chain token sequences, inputs and targets `[B, context]`.
    Tokens,
}

/// The `[data.synthetic]` table. Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// `"classification"` (default) or `"tokens"`.
    pub task: SyntheticTask,
    /// Classification: input features per example. Default 784 (an MNIST image, flattened).
    pub features: usize,
    /// Classification: number of classes (>= 2). Default 10.
    pub classes: usize,
    /// Tokens: vocabulary size (>= 2). Default 16. (The window length is `[data] context`.)
    pub vocab: usize,
    /// Examples per epoch. Default 4096.
    pub train_len: usize,
    /// Held-out examples. Default 1024.
    pub eval_len: usize,
    /// Seed of the generator (independent of the training seed). Default 0.
    pub seed: u64,
    /// Classification: typical distance between two class centres, in noise standard
    /// deviations. Larger is easier. Default 8.
    pub separation: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            task: SyntheticTask::Classification,
            features: 784,
            classes: 10,
            vocab: 16,
            train_len: 4096,
            eval_len: 1024,
            seed: 0,
            separation: 8.0,
        }
    }
}

/// A generated dataset (see the module docs).
#[derive(Clone)]
pub struct Synthetic {
    cfg: SyntheticConfig,
    context: usize,
    /// Classification: `classes x features` centres. Tokens: empty.
    centres: Vec<f32>,
    /// Tokens: favourite successor of each token. Classification: empty.
    next: Vec<u32>,
}

impl Synthetic {
    /// Generate the fixed parts (centres or successor table). `context` is the window length
    /// of the token task and is ignored for classification.
    pub fn new(cfg: &SyntheticConfig, context: usize) -> Result<Self> {
        let bad = |field: &'static str, reason: &str| {
            Err(DataError::Config {
                field,
                reason: reason.into(),
            })
        };
        if cfg.train_len == 0 || cfg.eval_len == 0 {
            return bad(
                "synthetic.train_len",
                "train_len and eval_len must be at least 1",
            );
        }
        let (mut centres, mut next) = (Vec::new(), Vec::new());
        match cfg.task {
            SyntheticTask::Classification => {
                if cfg.classes < 2 {
                    return bad("synthetic.classes", "need at least 2 classes");
                }
                if cfg.features == 0 {
                    return bad("synthetic.features", "need at least 1 feature");
                }
                if !(cfg.separation.is_finite() && cfg.separation >= 0.0) {
                    return bad("synthetic.separation", "must be a finite number >= 0");
                }
                let mut rng = keyed_rng(cfg.seed, 0, b"data/synth-centr");
                let scale = cfg.separation / (2.0 * cfg.features as f64).sqrt();
                centres = normals(&mut rng, cfg.classes * cfg.features)
                    .map(|z| (z * scale) as f32)
                    .collect();
            }
            SyntheticTask::Tokens => {
                if cfg.vocab < 2 || cfg.vocab > 1 << 24 {
                    return bad(
                        "synthetic.vocab",
                        "need 2 <= vocab <= 2^24 (ids must be exact in f32)",
                    );
                }
                if context == 0 {
                    return bad("context", "must be at least 1");
                }
                let mut rng = keyed_rng(cfg.seed, 0, b"data/synth-chain");
                next = permutation(&mut rng, cfg.vocab)
                    .into_iter()
                    .map(|t| t as u32)
                    .collect();
            }
        }
        Ok(Synthetic {
            cfg: cfg.clone(),
            context,
            centres,
            next,
        })
    }

    /// The configuration this was generated from.
    pub fn config(&self) -> &SyntheticConfig {
        &self.cfg
    }

    /// The stream of one example: keyed by seed, split and index.
    fn example_rng(&self, split: Split, index: usize) -> ChaCha8Rng {
        let domain = match split {
            Split::Train => b"data/synth-train",
            Split::Eval => b"data/synth-eval_",
        };
        keyed_rng(self.cfg.seed, index as u64, domain)
    }

    fn gather(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        let len = match split {
            Split::Train => self.cfg.train_len,
            Split::Eval => self.cfg.eval_len,
        };
        check_indices(self.name(), split, indices, len)?;
        let b = indices.len();
        match self.cfg.task {
            SyntheticTask::Classification => {
                let f = self.cfg.features;
                let mut inputs = Vec::with_capacity(b * f);
                let mut targets = Vec::with_capacity(b);
                for &i in indices {
                    let mut rng = self.example_rng(split, i);
                    let label = below(&mut rng, self.cfg.classes as u64) as usize;
                    let centre = &self.centres[label * f..(label + 1) * f];
                    inputs.extend(
                        centre
                            .iter()
                            .zip(normals(&mut rng, f))
                            .map(|(&m, z)| m + z as f32),
                    );
                    targets.push(label as u32);
                }
                Batch::from_vecs(inputs, &[b, f], targets, &[b])
            }
            SyntheticTask::Tokens => {
                let t = self.context;
                let vocab = self.cfg.vocab as u64;
                let mut inputs = Vec::with_capacity(b * t);
                let mut targets = Vec::with_capacity(b * t);
                for &i in indices {
                    let mut rng = self.example_rng(split, i);
                    let mut token = below(&mut rng, vocab) as u32;
                    for _ in 0..t {
                        inputs.push(token as f32);
                        token = if unit(&mut rng) < FOLLOW_PROBABILITY {
                            self.next[token as usize]
                        } else {
                            below(&mut rng, vocab) as u32
                        };
                        targets.push(token);
                    }
                }
                Batch::from_vecs(inputs, &[b, t], targets, &[b, t])
            }
        }
    }
}

/// Shows the configuration, not the generated centres.
impl std::fmt::Debug for Synthetic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synthetic")
            .field("cfg", &self.cfg)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// A uniform f64 in `[0, 1)` from the top 53 bits of one draw.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `count` standard normal draws (Box–Muller, two per pair of uniforms).
fn normals(rng: &mut ChaCha8Rng, count: usize) -> impl Iterator<Item = f64> + '_ {
    let mut spare: Option<f64> = None;
    (0..count).map(move |_| {
        if let Some(z) = spare.take() {
            return z;
        }
        let u1 = 1.0 - unit(rng); // (0, 1]: ln is finite
        let u2 = unit(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = std::f64::consts::TAU * u2;
        spare = Some(r * theta.sin());
        r * theta.cos()
    })
}

impl Dataset for Synthetic {
    fn name(&self) -> &str {
        match self.cfg.task {
            SyntheticTask::Classification => "synthetic",
            SyntheticTask::Tokens => "synthetic-tokens",
        }
    }

    fn task(&self) -> Task {
        match self.cfg.task {
            SyntheticTask::Classification => Task::Classification {
                classes: self.cfg.classes,
            },
            SyntheticTask::Tokens => Task::NextToken {
                vocab: self.cfg.vocab,
                context: self.context,
            },
        }
    }

    fn sample_shape(&self) -> Vec<usize> {
        match self.cfg.task {
            SyntheticTask::Classification => vec![self.cfg.features],
            SyntheticTask::Tokens => vec![self.context],
        }
    }

    fn train_len(&self) -> usize {
        self.cfg.train_len
    }

    fn eval_len(&self) -> usize {
        self.cfg.eval_len
    }

    fn train_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Train, indices)
    }

    fn eval_batch(&self, indices: &[usize]) -> Result<Batch> {
        self.gather(Split::Eval, indices)
    }
}
