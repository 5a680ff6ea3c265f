//! The generated datasets: deterministic, learnable, well-shaped.

use data::{Batch, DataKind, Dataset, Synthetic, SyntheticConfig, SyntheticTask, Task};

fn classification(seed: u64) -> Synthetic {
    Synthetic::new(
        &SyntheticConfig {
            seed,
            ..SyntheticConfig::default()
        },
        64,
    )
    .unwrap()
}

#[test]
fn defaults_match_the_documented_shape() {
    let ds = classification(0);
    assert_eq!(ds.name(), "synthetic");
    assert_eq!(ds.task(), Task::Classification { classes: 10 });
    assert_eq!(ds.sample_shape(), [784]);
    assert_eq!((ds.train_len(), ds.eval_len()), (4096, 1024));
    let b = ds.train_batch(&[0, 1, 2]).unwrap();
    assert_eq!(b.inputs.shape(), &[3, 784]);
    assert_eq!(b.targets.shape(), &[3]);
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let idx: Vec<usize> = (0..64).map(|i| i * 61 % 1024).collect();
    let a = classification(3).train_batch(&idx).unwrap();
    assert_eq!(a, classification(3).train_batch(&idx).unwrap());
    assert_ne!(a, classification(4).train_batch(&idx).unwrap());
    assert_ne!(
        a,
        classification(3).eval_batch(&idx).unwrap(),
        "train and eval must differ"
    );
}

#[test]
fn an_example_does_not_depend_on_its_batch() {
    let ds = classification(1);
    let together = ds.train_batch(&[10, 20, 30]).unwrap();
    let apart: Vec<Batch> = [10, 20, 30]
        .iter()
        .map(|&i| ds.train_batch(&[i]).unwrap())
        .collect();
    assert_eq!(together, Batch::concat(&apart).unwrap());
}

/// Learnability without a model: the nearest class mean, estimated on the train split,
/// classifies the eval split almost perfectly, so a small MLP has a clear signal to find.
#[test]
fn nearest_class_mean_gets_over_95_percent() {
    let ds = classification(0);
    let (f, k) = (784, 10);
    let train = ds
        .train_batch(&(0..ds.train_len()).collect::<Vec<_>>())
        .unwrap();
    let mut means = vec![0.0f64; k * f];
    let mut counts = vec![0usize; k];
    for (x, &y) in train.inputs.outer_iter().zip(train.targets.iter()) {
        let y = y as usize;
        counts[y] += 1;
        for (m, &v) in means[y * f..(y + 1) * f].iter_mut().zip(x.iter()) {
            *m += f64::from(v);
        }
    }
    assert!(
        counts.iter().all(|&c| c > 300),
        "classes roughly balanced: {counts:?}"
    );
    for (c, &n) in counts.iter().enumerate() {
        means[c * f..(c + 1) * f]
            .iter_mut()
            .for_each(|m| *m /= n as f64);
    }
    let eval = ds
        .eval_batch(&(0..ds.eval_len()).collect::<Vec<_>>())
        .unwrap();
    let correct = eval
        .inputs
        .outer_iter()
        .zip(eval.targets.iter())
        .filter(|(x, &y)| {
            let dist = |c: usize| -> f64 {
                means[c * f..(c + 1) * f]
                    .iter()
                    .zip(x.iter())
                    .map(|(m, &v)| (m - f64::from(v)).powi(2))
                    .sum()
            };
            (0..k).min_by(|&a, &b| dist(a).total_cmp(&dist(b))) == Some(y as usize)
        })
        .count();
    let accuracy = correct as f64 / ds.eval_len() as f64;
    eprintln!("nearest-class-mean accuracy {accuracy:.4}");
    assert!(accuracy > 0.95, "{accuracy}");
}

#[test]
fn token_task_is_shifted_sequences_that_mostly_follow_the_chain() {
    let cfg = SyntheticConfig {
        task: SyntheticTask::Tokens,
        ..SyntheticConfig::default()
    };
    let ds = Synthetic::new(&cfg, 32).unwrap();
    assert_eq!(ds.name(), "synthetic-tokens");
    assert_eq!(
        ds.task(),
        Task::NextToken {
            vocab: 16,
            context: 32
        }
    );
    let b = ds.train_batch(&(0..200).collect::<Vec<_>>()).unwrap();
    assert_eq!(b.inputs.shape(), &[200, 32]);
    assert_eq!(b.targets.shape(), &[200, 32]);
    // targets are the inputs shifted by one
    for (x, y) in b.inputs.outer_iter().zip(b.targets.outer_iter()) {
        for t in 0..31 {
            assert_eq!(x[t + 1] as u32, y[t]);
        }
        assert!(y.iter().all(|&v| v < 16));
    }
    // the most frequent successor of each token is followed about 90% (+ 1/16 * 10%) of the time
    let mut table = [[0usize; 16]; 16];
    for (x, y) in b.inputs.iter().zip(b.targets.iter()) {
        table[*x as usize][*y as usize] += 1;
    }
    let followed: usize = table
        .iter()
        .map(|row| row.iter().max().copied().unwrap_or(0))
        .sum();
    let rate = followed as f64 / (200.0 * 32.0);
    assert!((0.88..0.94).contains(&rate), "{rate}");
    assert_eq!(
        b,
        Synthetic::new(&cfg, 32)
            .unwrap()
            .train_batch(&(0..200).collect::<Vec<_>>())
            .unwrap()
    );
}

#[test]
fn bad_synthetic_settings_are_config_errors() {
    for cfg in [
        SyntheticConfig {
            classes: 1,
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            features: 0,
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            train_len: 0,
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            separation: f64::NAN,
            ..SyntheticConfig::default()
        },
        SyntheticConfig {
            task: SyntheticTask::Tokens,
            vocab: 1,
            ..SyntheticConfig::default()
        },
    ] {
        assert!(
            matches!(Synthetic::new(&cfg, 8), Err(data::DataError::Config { .. })),
            "{cfg:?}"
        );
    }
    assert_eq!(data::DataConfig::default().kind, DataKind::Synthetic);
}
