//! Deterministic random numbers keyed by *what* they are for, never by thread or process.
//!
//! Initialisation draws each parameter from its own stream keyed by (seed, parameter name), so the initial weights
//! do not depend on how the model is cut. Randomness during training (dropout, sampling) is keyed by
//! (seed, step, unit, micro-batch) through [`training_rng`].

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64 finaliser: a cheap, well-mixed 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a sequence of words, order-sensitive.
pub fn key(words: &[u64]) -> u64 {
    words.iter().fold(0x5EED_u64, |h, &w| mix(h ^ mix(w)))
}

/// FNV-1a of a string, for keying streams by parameter name.
pub fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The stream that initialises parameter `name` of a model seeded with `seed`.
pub fn init_rng(seed: u64, name: &str) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(key(&[seed, name_hash(name)]))
}

/// The stream for randomness inside training: one per (seed, step, unit, micro-batch).
pub fn training_rng(seed: u64, step: u64, unit: u64, microbatch: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(key(&[seed, step, unit, microbatch]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_depend_on_every_key_part() {
        let draw = |mut r: ChaCha8Rng| r.random::<u64>();
        let base = draw(training_rng(1, 2, 3, 4));
        assert_eq!(base, draw(training_rng(1, 2, 3, 4)));
        for other in [
            training_rng(9, 2, 3, 4),
            training_rng(1, 9, 3, 4),
            training_rng(1, 2, 9, 4),
            training_rng(1, 2, 3, 9),
        ] {
            assert_ne!(base, draw(other));
        }
        assert_ne!(draw(init_rng(1, "a.weight")), draw(init_rng(1, "a.bias")));
    }
}
