//! Deterministic shuffling and the step -> examples mapping.

use std::collections::HashSet;

use data::{epoch_order, DataError, Sampler};

fn is_permutation(order: &[usize], n: usize) -> bool {
    let mut sorted = order.to_vec();
    sorted.sort_unstable();
    sorted == (0..n).collect::<Vec<_>>()
}

#[test]
fn epoch_order_is_a_permutation() {
    for n in [0, 1, 2, 3, 10, 1000, 60000] {
        assert!(is_permutation(&epoch_order(7, 3, n), n), "n = {n}");
    }
}

#[test]
fn epoch_order_is_deterministic_and_differs_across_epochs_and_seeds() {
    let a = epoch_order(1, 0, 1000);
    assert_eq!(a, epoch_order(1, 0, 1000));
    assert_ne!(a, epoch_order(1, 1, 1000), "epochs must differ");
    assert_ne!(a, epoch_order(2, 0, 1000), "seeds must differ");
    assert_ne!(a, (0..1000).collect::<Vec<_>>(), "must actually shuffle");
}

/// Pins the exact order: the central invariant (bit-identical weights for a seed) needs the
/// same examples in the same steps across versions of this crate and of `rand`. If this fails,
/// the shuffle changed and every recorded run's data order with it.
#[test]
fn epoch_order_regression_pin() {
    assert_eq!(epoch_order(0, 0, 10), PIN_0_0_10);
    assert_eq!(epoch_order(42, 7, 10), PIN_42_7_10);
}

const PIN_0_0_10: [usize; 10] = [7, 2, 8, 6, 4, 9, 5, 0, 3, 1];
const PIN_42_7_10: [usize; 10] = [3, 4, 2, 8, 5, 1, 9, 0, 7, 6];

#[test]
fn sampler_covers_each_index_once_per_epoch() {
    let (n, batch) = (103, 10);
    let s = Sampler::new(5, n, batch).unwrap();
    assert_eq!(s.steps_per_epoch(), 10);
    for epoch in 0..3u64 {
        let mut seen = HashSet::new();
        for p in 0..10u64 {
            let (e, idx) = s.indices(epoch * 10 + p);
            assert_eq!(e, epoch);
            assert_eq!(idx.len(), batch);
            for i in idx {
                assert!(i < n);
                assert!(seen.insert(i), "index {i} twice in epoch {epoch}");
            }
        }
        assert_eq!(
            seen.len(),
            100,
            "the last partial batch (3 examples) is dropped"
        );
        let order = epoch_order(5, epoch, n);
        assert_eq!(seen, order[..100].iter().copied().collect::<HashSet<_>>());
    }
}

#[test]
fn sampler_answers_the_same_in_any_call_order() {
    let s = Sampler::new(9, 50, 7).unwrap();
    let forward: Vec<_> = (0..30).map(|t| s.indices(t)).collect();
    let fresh = Sampler::new(9, 50, 7).unwrap();
    for t in (0..30).rev() {
        assert_eq!(fresh.indices(t), forward[t as usize], "step {t}");
    }
    let (e, idx) = s.indices(15);
    assert_eq!(e, 2); // 7 steps per epoch
    assert_eq!(idx, epoch_order(9, 2, 50)[7..14].to_vec());
    assert_eq!(s.clone().indices(15), (e, idx));
}

#[test]
fn sampler_rejects_bad_batch_sizes() {
    assert!(matches!(
        Sampler::new(0, 10, 11),
        Err(DataError::BatchSize {
            batch: 11,
            examples: 10
        })
    ));
    assert!(matches!(
        Sampler::new(0, 10, 0),
        Err(DataError::BatchSize {
            batch: 0,
            examples: 10
        })
    ));
    assert_eq!(Sampler::new(0, 10, 10).unwrap().steps_per_epoch(), 1);
}
