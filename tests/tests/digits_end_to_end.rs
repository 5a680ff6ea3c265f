//! The coordinator, as a library, trains on the real scikit-learn digits file and learns it; the run folder it
//! leaves reloads into the same model.

use coordinator::config::Config;
use coordinator::run::dir::RunDir;
use coordinator::run::fit;
use coordinator::run::record::Quiet;
use std::sync::atomic::AtomicBool;

#[test]
fn an_mlp_learns_real_digits_through_the_coordinator() {
    let cfg: Config = toml::from_str(
        r#"
        model = { kind = "mlp", widths = [64, 64, 10] }
        data = { kind = "digits" }
        train = { epochs = 15, batch_size = 32, microbatches = 2, lr = 0.1, momentum = 0.9, seed = 1 }
        "#,
    )
    .expect("valid config");
    let dir = tempfile::tempdir().expect("temp dir");
    let run = RunDir::new(dir.path().join("run"));
    let summary = fit(&cfg, &run, &mut Quiet, &AtomicBool::new(false)).expect("the run completes");
    let acc = summary
        .test_accuracy
        .expect("classification reports test accuracy");
    assert!(acc > 0.9, "test accuracy {acc} on the 360 held-out digits");
    assert_eq!(summary.steps, 15 * (1437 / 32));
    let resolved =
        std::fs::read_to_string(run.path().join("config.resolved.toml")).expect("resolved config");
    let again: Config = toml::from_str(&resolved).expect("the resolved config parses as a config");
    assert_eq!(again.train, cfg.train);
    assert!(again.data.dir.is_some(), "the data folder is written out");
}
