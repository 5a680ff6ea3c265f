//! Deterministic epoch order: which example comes when.
//!
//! The permutation of epoch `e` is a Fisher–Yates shuffle driven by a ChaCha8 stream whose
//! 32-byte key is `seed (u64 LE) ‖ epoch (u64 LE) ‖ "data/epoch-order"`. Each swap index is
//! drawn from `next_u64` with Lemire's multiply-and-reject method, written out here rather than
//! taken from `rand`'s `random_range`, so the order depends only on the ChaCha8 stream (stable
//! across `rand` releases) and not on how a `rand` version maps bits to ranges, nor on the
//! width of `usize`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Domain tag in the key, so the same user seed gives unrelated streams elsewhere (weights,
/// synthetic data).
const DOMAIN: &[u8; 16] = b"data/epoch-order";

/// A ChaCha8 generator keyed by `(a, b, domain)`: the crate's one way of deriving a stream.
pub(crate) fn keyed_rng(a: u64, b: u64, domain: &[u8; 16]) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&a.to_le_bytes());
    key[8..16].copy_from_slice(&b.to_le_bytes());
    key[16..].copy_from_slice(domain);
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n >= 1`) from 64-bit draws: Lemire's nearly divisionless
/// method, unbiased.
pub(crate) fn below<R: Rng + ?Sized>(rng: &mut R, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// The permutation of `0..n` used in epoch `epoch` of a run with seed `seed`.
///
/// A function of `(seed, epoch, n)` only: any process that needs step `t`'s examples can
/// recompute it without coordination.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    permutation(&mut keyed_rng(seed, epoch, DOMAIN), n)
}

/// A uniformly random permutation of `0..n`: Fisher–Yates from the last position down, each
/// swap partner drawn with [`below`].
pub(crate) fn permutation<R: Rng + ?Sized>(rng: &mut R, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut rng = keyed_rng(1, 2, DOMAIN);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[below(&mut rng, 7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(below(&mut rng, 1), 0);
    }

    #[test]
    fn small_orders_are_permutations() {
        for n in 0..5 {
            let mut o = epoch_order(3, 4, n);
            o.sort_unstable();
            assert_eq!(o, (0..n).collect::<Vec<_>>());
        }
    }
}
