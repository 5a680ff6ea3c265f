//! The invariant as a property of the whole runtime: for random small MLPs (depth, widths, activation), random cuts,
//! random micro-batch counts, optimizers, `become` and `recompute` settings, a split run through the executor, the local invoker
//! and the in-memory store ends with the same `model.safetensors` and `optimizer.safetensors` bytes as the
//! single-process run.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn run(toml_text: &str, dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let cfg: Config = toml::from_str(toml_text).expect("valid config");
    fit(&cfg, &RunDir::new(dir), &mut Quiet, &AtomicBool::new(false))
        .unwrap_or_else(|e| panic!("{toml_text}\n{e}"));
    let read = |f: &str| std::fs::read(dir.join(f)).expect("checkpoint written");
    (read("model.safetensors"), read("optimizer.safetensors"))
}

/// Cut points: a random non-empty subset of 1..units.
fn cuts(units: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::btree_set(1..units, 1..units).prop_map(|s| s.into_iter().collect())
}

fn case() -> impl Strategy<
    Value = (
        Vec<usize>,
        Vec<usize>,
        usize,
        bool,
        bool,
        bool,
        &'static str,
    ),
> {
    (2usize..=5).prop_flat_map(|units| {
        (
            proptest::collection::vec(2usize..=24, units - 1),
            cuts(units),
            prop_oneof![Just(1usize), Just(2), Just(4), Just(8)],
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just("relu"), Just("gelu")],
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn a_split_run_equals_the_monolithic_run(
        (hidden, cut_points, m, adamw, become_successor, recompute, activation) in case()
    ) {
        let mut widths = vec![20];
        widths.extend(&hidden);
        widths.push(5);
        let optimizer = if adamw {
            "optimizer = \"adamw\", lr = 0.01"
        } else {
            "optimizer = \"sgd\", lr = 0.1, momentum = 0.9, weight_decay = 0.001"
        };
        let base = format!(
            "model = {{ kind = \"mlp\", widths = {widths:?}, activation = \"{activation}\" }}\n\
             data = {{ kind = \"synthetic\", synthetic = {{ features = 20, classes = 5, train_len = 256, eval_len = 64 }} }}\n\
             train = {{ steps = 3, batch_size = 16, microbatches = {m}, {optimizer}, seed = 5 }}\n"
        );
        let split = format!(
            "{base}[plan]\ncuts = {cut_points:?}\nbecome = {become_successor}\nrecompute = {recompute}\n\
             [runtime]\nconcurrency = 3\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let mono = run(&base, &dir.path().join("mono"));
        let sliced = run(&split, &dir.path().join("split"));
        let events = std::fs::read_to_string(dir.path().join("split/events.jsonl")).unwrap();
        prop_assert!(events.lines().count() >= 3 * (cut_points.len() + 1), "tasks ran through the runtime");
        prop_assert!(mono.0 == sliced.0, "weights differ:\n{}", split);
        prop_assert!(mono.1 == sliced.1, "optimizer state differs:\n{}", split);
    }
}
