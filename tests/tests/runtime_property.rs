//! The invariant as a property of the whole runtime: for random small MLPs (depth, widths, activation), random cuts,
//! random micro-batch counts, update shard counts (1, 2, 3, 7), gradient clipping on or off, optimizers, `become` and
//! `recompute` settings, and now and then injected faults (crashes, duplicates, stalls), a split run through the
//! executor, the local invoker and the in-memory store — or a real Redis — ends with the same `model.safetensors` and
//! `optimizer.safetensors` bytes as the single-process run at the same micro-batch count.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use e2e_tests::redis_server::RedisServer;
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

/// One generated case: the model's hidden widths, cuts, micro-batches, update shards, and the switches.
#[derive(Debug, Clone)]
struct Case {
    hidden: Vec<usize>,
    cuts: Vec<usize>,
    microbatches: usize,
    shards: usize,
    clip: bool,
    adamw: bool,
    become_successor: bool,
    recompute: bool,
    faults: bool,
    /// Fan-outs as trees of relaying invocations from three successors on (`runtime.fanout_width = 2`).
    narrow_fanout: bool,
    activation: &'static str,
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..=5).prop_flat_map(|units| {
        (
            // Widths up to 90: a 90×90 unit has two 4096-element chunks, so shards cut inside units too.
            proptest::collection::vec(2usize..=90, units - 1),
            cuts(units),
            prop_oneof![Just(1usize), Just(2), Just(4), Just(8)],
            prop_oneof![Just(1usize), Just(2), Just(3), Just(7)],
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            prop_oneof![Just(false), Just(false), Just(true)],
            prop_oneof![Just("relu"), Just("gelu")],
        )
            .prop_map(
                |(
                    hidden,
                    cuts,
                    microbatches,
                    shards,
                    (clip, adamw, become_successor, recompute, narrow_fanout),
                    faults,
                    activation,
                )| Case {
                    hidden,
                    cuts,
                    microbatches,
                    shards,
                    clip,
                    adamw,
                    become_successor,
                    recompute,
                    faults,
                    narrow_fanout,
                    activation,
                },
            )
    })
}

/// The in-process config of a case, and its split twin on `store`.
fn configs(c: &Case, store: &str) -> (String, String) {
    let mut widths = vec![20];
    widths.extend(&c.hidden);
    widths.push(5);
    let optimizer = if c.adamw {
        "optimizer = \"adamw\", lr = 0.01"
    } else {
        "optimizer = \"sgd\", lr = 0.1, momentum = 0.9, weight_decay = 0.001"
    };
    // A max norm this small clips every step (the first step's norm is about 1).
    let clip = if c.clip { ", grad_clip = 0.05" } else { "" };
    let base = format!(
        "model = {{ kind = \"mlp\", widths = {widths:?}, activation = \"{}\" }}\n\
         data = {{ kind = \"synthetic\", synthetic = {{ features = 20, classes = 5, train_len = 256, eval_len = 64 }} }}\n\
         train = {{ steps = 3, batch_size = 16, microbatches = {}, {optimizer}, seed = 5{clip} }}\n",
        c.activation, c.microbatches
    );
    let faults = if c.faults {
        "fault_rate = 0.1\nduplicate_rate = 0.2\nstall_rate = 0.05\nseed = 3\ntask_timeout_s = 0.25\nmax_attempts = 12\n"
    } else {
        ""
    };
    let split = format!(
        "{base}[plan]\ncuts = {:?}\nbecome = {}\nrecompute = {}\nupdate_shards = {}\n\
         [runtime]\nconcurrency = 3\nfanout_width = {}\nstore = \"{store}\"\n{faults}",
        c.cuts,
        c.become_successor,
        c.recompute,
        c.shards,
        if c.narrow_fanout { 2 } else { 32 }
    );
    (base, split)
}

/// Runs a case in process and split, and compares the checkpoints' bytes.
fn check(c: &Case, store: &str) -> Result<(), TestCaseError> {
    let (base, split) = configs(c, store);
    let dir = tempfile::tempdir().unwrap();
    let mono = run(&base, &dir.path().join("mono"));
    let sliced = run(&split, &dir.path().join("split"));
    let events = std::fs::read_to_string(dir.path().join("split/events.jsonl")).unwrap();
    prop_assert!(
        events.lines().count() >= 3 * (c.cuts.len() + 1),
        "tasks ran through the runtime"
    );
    let ran = |prefix: &str, suffix: &str| {
        events
            .lines()
            .filter_map(|l| l.split("\"task\":\"").nth(1))
            .any(|t| {
                t.starts_with(prefix) && t.split('"').next().is_some_and(|id| id.ends_with(suffix))
            })
    };
    let widest = c.hidden.iter().copied().max().unwrap_or(0);
    if c.shards > 1 && widest * widest > 2 * 4096 {
        prop_assert!(ran("U(", ",1)"), "a second update shard ran:\n{}", split);
    }
    if c.clip {
        prop_assert!(
            ran("C(", ")") && ran("R(", ")"),
            "the clip barrier ran:\n{}",
            split
        );
    }
    prop_assert!(mono.0 == sliced.0, "weights differ:\n{}", split);
    prop_assert!(mono.1 == sliced.1, "optimizer state differs:\n{}", split);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_split_run_equals_the_monolithic_run(c in case()) {
        check(&c, "memory")?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The same through a real Redis (a server of its own per case, stopped when the case ends).
    #[test]
    fn a_split_run_through_redis_equals_the_monolithic_run(c in case()) {
        let server = RedisServer::start(&[]);
        check(&c, &server.url())?;
    }
}
