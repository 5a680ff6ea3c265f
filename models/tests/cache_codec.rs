//! A forward's caches survive the trip through bytes: the backward on decoded caches gives bit-identical gradients
//! for every unit kind (dense, conv + pool, embedding, transformer block, head), and broken bytes are errors.

mod bits;
mod random_batch;

use bits::bits;
use models::cache_codec::{caches_from_bytes, caches_to_bytes};
use models::{Activation, ModelSpec};
use rand::SeedableRng;
use random_batch::random_batch;

#[test]
fn backward_on_decoded_caches_is_bit_identical_for_every_unit_kind() {
    let specs = [
        ModelSpec::Mlp {
            widths: vec![12, 9, 7, 4],
            activation: Activation::Gelu,
        },
        ModelSpec::Lenet5,
        ModelSpec::Gpt {
            vocab: 11,
            context: 6,
            d_model: 8,
            n_layers: 2,
            n_heads: 2,
        },
    ];
    for spec in specs {
        let model = spec.build().unwrap();
        let params = model.init::<f32>(3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (x, targets) = random_batch(&model, 3, &mut rng);
        let n = model.units().len();
        // A slice in the middle and the whole model.
        for range in [1..n, 0..n] {
            let input = if range.start == 0 {
                x.clone()
            } else {
                model
                    .infer(0..range.start, &params[..range.start], x.clone())
                    .unwrap()
            };
            let (y, caches) = model
                .forward(range.clone(), &params[range.clone()], input)
                .unwrap();
            let dy = model.loss(&y, &targets, 3).unwrap().dlogits;
            let bytes = caches_to_bytes(caches).unwrap();
            let (_, caches_again) = model
                .forward(range.clone(), &params[range.clone()], {
                    if range.start == 0 {
                        x.clone()
                    } else {
                        model
                            .infer(0..range.start, &params[..range.start], x.clone())
                            .unwrap()
                    }
                })
                .unwrap();
            let decoded = caches_from_bytes::<f32>(&bytes, "test").unwrap();
            let (dx_a, g_a) = model
                .backward(
                    range.clone(),
                    &params[range.clone()],
                    &caches_again,
                    dy.clone(),
                )
                .unwrap();
            let (dx_b, g_b) = model
                .backward(range.clone(), &params[range.clone()], &decoded, dy)
                .unwrap();
            assert_eq!(
                bits(&g_a),
                bits(&g_b),
                "{spec:?} {range:?}: parameter gradients differ"
            );
            assert_eq!(
                dx_a.map(|t| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                dx_b.map(|t| t.iter().map(|v| v.to_bits()).collect::<Vec<_>>()),
                "{spec:?} {range:?}: input gradients differ"
            );
            // Broken bytes are errors that name the value, never panics.
            for bad in [&bytes[..bytes.len() / 2], &b"garbage"[..], &[][..]] {
                let Err(err) = caches_from_bytes::<f32>(bad, "run:x:c:1:0:0") else {
                    panic!("broken cache bytes decoded");
                };
                let err = err.to_string();
                assert!(err.contains("run:x:c:1:0:0"), "{err}");
            }
        }
    }
}
