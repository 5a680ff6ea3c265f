//! The bad-input corpus: configs, data files, checkpoints, task payloads and store values that users (or a broken
//! platform) hand over. Every case must fail with a non-zero exit and a message naming the thing that is wrong — the
//! key, the file, the tensor, the store key — never a panic, and leave nothing half-written.

use e2e_tests::lambda_emulator::{cargo_binary, worker_binary};
use e2e_tests::redis_server::RedisServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small config that trains; each case changes one thing.
const BASE: &str = r#"
[model]
kind = "mlp"
widths = [784, 16, 10]

[data]
kind = "synthetic"

[train]
steps = 2
batch_size = 8
microbatches = 2
optimizer = "sgd"
lr = 0.1
"#;

fn trainer(args: &[&str]) -> Output {
    let bin =
        cargo_binary("trainer").expect("the trainer binary (cargo test --workspace builds it)");
    Command::new(bin).args(args).output().expect("trainer runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Checks one case's outcome: failed, named every needle, did not panic.
fn check(what: &str, o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "{what}: accepted\n{err}");
    assert!(!err.contains("panicked"), "{what}: panicked\n{err}");
    for n in needles {
        assert!(
            err.contains(n),
            "{what}: the error does not name {n:?}\n{err}"
        );
    }
}

/// `trainer fit` on `text` (+ `--set`s): must fail naming `needles` and leave no run folder behind.
fn bad_config(dir: &Path, i: usize, what: &str, text: &str, sets: &[&str], needles: &[&str]) {
    let cfg = dir.join(format!("case{i}.toml"));
    std::fs::write(&cfg, text).expect("config written");
    let out = dir.join(format!("run{i}"));
    let mut args = vec![
        "fit",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    check(what, &trainer(&args), needles);
    assert!(
        !out.join("metrics.jsonl").exists(),
        "{what}: left a run behind"
    );
    assert!(
        !out.join("model.safetensors").exists(),
        "{what}: left weights behind"
    );
}

#[test]
fn bad_configs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let with = |extra: &str| format!("{BASE}\n{extra}\n");
    // (what, config text, --set overrides, what the error must name)
    let cases: Vec<(&str, String, Vec<&str>, Vec<&str>)> = vec![
        ("unknown top-level key", with("[modle]\nkind = \"mlp\""), vec![], vec!["modle"]),
        ("unknown train key", BASE.into(), vec!["train.lrr=1"], vec!["lrr"]),
        ("unknown plan key", BASE.into(), vec!["plan.slice=2"], vec!["slice"]),
        ("unknown runtime key", BASE.into(), vec!["runtime.invokr=\"local\""], vec!["invokr"]),
        ("unknown platform key", BASE.into(), vec!["platform.memory=1"], vec!["memory"]),
        ("widths of the wrong type", BASE.into(), vec!["model.widths=\"big\""], vec!["widths"]),
        ("steps of the wrong type", BASE.into(), vec!["train.steps=\"ten\""], vec!["steps"]),
        ("lr of the wrong type", BASE.into(), vec!["train.lr=[1]"], vec!["lr"]),
        ("negative batch size", BASE.into(), vec!["train.batch_size=-8"], vec!["batch_size"]),
        ("zero batch size", BASE.into(), vec!["train.batch_size=0"], vec!["batch_size"]),
        ("zero micro-batches", BASE.into(), vec!["train.microbatches=0"], vec!["microbatches"]),
        ("micro-batches not dividing the batch", BASE.into(), vec!["train.microbatches=3"], vec!["microbatches"]),
        ("negative learning rate", BASE.into(), vec!["train.lr=-0.1"], vec!["train.lr"]),
        ("zero steps", BASE.into(), vec!["train.steps=0"], vec!["steps"]),
        // In the file: both. (A --set of one replaces the other.)
        ("steps and epochs", BASE.replace("steps = 2", "steps = 2\nepochs = 1"), vec![], vec!["epochs"]),
        ("more slices than units", BASE.into(), vec!["plan.slices=3"], vec!["plan.slices"]),
        ("zero slices", BASE.into(), vec!["plan.slices=0"], vec!["plan.slices"]),
        ("cuts out of order", with("[plan]\ncuts = [1, 1]"), vec![], vec!["plan.cuts"]),
        ("cuts beyond the model", with("[plan]\ncuts = [5]"), vec![], vec!["plan.cuts"]),
        ("unknown model kind", BASE.into(), vec!["model.kind=\"resnet\""], vec!["resnet"]),
        ("an MLP without layers", BASE.into(), vec!["model.widths=[784]"], vec!["widths"]),
        ("a zero-width layer", BASE.into(), vec!["model.widths=[784, 0, 10]"], vec!["widths"]),
        ("unknown optimizer", BASE.into(), vec!["train.optimizer=\"adam2\""], vec!["adam2"]),
        ("unknown data kind", BASE.into(), vec!["data.kind=\"imagenet\""], vec!["imagenet"]),
        (
            "missing data folder",
            BASE.into(),
            vec!["data.kind=\"mnist\"", "data.dir=\"no-such-dir\""],
            vec!["no-such-dir"],
        ),
        ("input width not the data's", BASE.into(), vec!["model.widths=[100, 16, 10]"], vec!["widths"]),
        ("classes not the data's", BASE.into(), vec!["model.widths=[784, 16, 7]"], vec!["classes"]),
        ("unknown invoker", BASE.into(), vec!["runtime.invoker=\"gcp\""], vec!["invoker"]),
        ("a store that is no URL", BASE.into(), vec!["runtime.store=\"ftp://x\"", "plan.slices=2"], vec!["store"]),
        ("zero concurrency", BASE.into(), vec!["runtime.concurrency=0", "plan.slices=2"], vec!["concurrency"]),
        ("fault rate above 1", BASE.into(), vec!["runtime.fault_rate=1.5", "plan.slices=2"], vec!["fault_rate"]),
        ("negative task timeout", BASE.into(), vec!["runtime.task_timeout_s=-1", "plan.slices=2"], vec!["task_timeout_s"]),
        ("Lambda with the in-memory store", BASE.into(), vec!["runtime.invoker=\"lambda\"", "plan.slices=2"], vec!["store"]),
        ("negative grad clip", BASE.into(), vec!["train.grad_clip=-1.0"], vec!["grad_clip"]),
        ("unknown schedule", BASE.into(), vec!["train.schedule=\"zigzag\""], vec!["zigzag"]),
        ("zero vCPU memory", BASE.into(), vec!["platform.mb_per_vcpu=0.0"], vec!["mb_per_vcpu"]),
        ("negative price", BASE.into(), vec!["pricing.usd_per_gb_s=-1.0"], vec!["usd_per_gb_s"]),
        ("not TOML", "[model\nkind = ".into(), vec![], vec!["TOML parse error", "line 1"]),
        ("a --set without a value", BASE.into(), vec!["train.lr"], vec!["--set"]),
        ("a GPT whose heads do not divide d_model", "[model]\nkind = \"gpt\"\nvocab = 16\ncontext = 8\nd_model = 30\nn_layers = 1\nn_heads = 4\n[data]\nkind = \"synthetic\"\n[data.synthetic]\ntask = \"tokens\"\n[train]\nsteps = 1\nbatch_size = 4\nlr = 0.1\n".into(), vec![], vec!["n_heads"]),
    ];
    assert!(cases.len() >= 40);
    for (i, (what, text, sets, needles)) in cases.iter().enumerate() {
        bad_config(dir.path(), i, what, text, sets, needles);
    }
    // A config file that is not there.
    check(
        "missing config",
        &trainer(&["fit", "no-such.toml"]),
        &["no-such.toml"],
    );
}

/// The four MNIST files, gzip'd, from `source` (the real data set) into `dir`, with `alter` applied to one of them
/// (raw bytes in, raw bytes out).
fn mnist_with(dir: &Path, which: &str, alter: impl Fn(Vec<u8>) -> Vec<u8>) -> PathBuf {
    use std::io::{Read, Write};
    let source = data::data_root().join("mnist");
    std::fs::create_dir_all(dir).expect("dir");
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let gz = source.join(format!("{name}.gz"));
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&gz).expect("MNIST in the data folder"))
            .read_to_end(&mut raw)
            .expect("gunzip");
        let raw = if name == which { alter(raw) } else { raw };
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(dir.join(format!("{name}.gz"))).expect("create"),
            flate2::Compression::fast(),
        );
        enc.write_all(&raw).expect("gzip");
        enc.finish().expect("gzip");
    }
    dir.to_path_buf()
}

/// A broken data file: what it is, which file, how it is broken, what the error must name.
type DataCase = (
    &'static str,
    &'static str,
    Box<dyn Fn(Vec<u8>) -> Vec<u8>>,
    &'static [&'static str],
);

#[test]
fn bad_data_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("mnist.toml");
    let cases: Vec<DataCase> = vec![
        (
            "truncated images",
            "train-images-idx3-ubyte",
            Box::new(|mut b: Vec<u8>| {
                b.truncate(b.len() / 2);
                b
            }),
            &["train-images-idx3-ubyte"],
        ),
        (
            "wrong magic",
            "train-labels-idx1-ubyte",
            Box::new(|mut b: Vec<u8>| {
                b[3] = 9;
                b
            }),
            &["train-labels-idx1-ubyte", "magic"],
        ),
        (
            "label count not the image count",
            "train-labels-idx1-ubyte",
            Box::new(|mut b: Vec<u8>| {
                b[7] = b[7].wrapping_sub(1);
                b.pop();
                b
            }),
            &["train-labels-idx1-ubyte"],
        ),
        (
            "empty test images",
            "t10k-images-idx3-ubyte",
            Box::new(|_| Vec::new()),
            &["t10k-images-idx3-ubyte"],
        ),
    ];
    for (i, (what, which, alter, needles)) in cases.iter().enumerate() {
        let data = mnist_with(&dir.path().join(format!("mnist{i}")), which, alter);
        std::fs::write(
            &cfg,
            BASE.replace(
                "kind = \"synthetic\"",
                &format!("kind = \"mnist\"\ndir = {:?}", data),
            ),
        )
        .expect("config");
        let out = dir.path().join(format!("run{i}"));
        let o = trainer(&[
            "fit",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        check(what, &o, needles);
        assert!(
            !out.join("metrics.jsonl").exists(),
            "{what}: left a run behind"
        );
    }
    // A gzip file that is not gzip.
    let data = mnist_with(&dir.path().join("mnist-gz"), "", |b| b);
    std::fs::write(data.join("train-labels-idx1-ubyte.gz"), b"not gzip at all").expect("garbage");
    std::fs::write(
        &cfg,
        BASE.replace(
            "kind = \"synthetic\"",
            &format!("kind = \"mnist\"\ndir = {:?}", data),
        ),
    )
    .expect("config");
    check(
        "corrupt gzip",
        &trainer(&[
            "fit",
            cfg.to_str().unwrap(),
            "--out",
            dir.path().join("gz").to_str().unwrap(),
        ]),
        &["train-labels-idx1-ubyte.gz"],
    );
}

#[test]
fn bad_checkpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("ok.toml");
    std::fs::write(&cfg, BASE).expect("config");
    let run = dir.path().join("run");
    let o = trainer(&[
        "fit",
        cfg.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let good = std::fs::read(run.join("model.safetensors")).expect("weights");
    // Another model's checkpoint: other names and shapes.
    let other_cfg = dir.path().join("other.toml");
    std::fs::write(&other_cfg, BASE.replace("[784, 16, 10]", "[784, 24, 10]")).expect("config");
    let other = dir.path().join("other");
    let o = trainer(&[
        "fit",
        other_cfg.to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let deeper_cfg = dir.path().join("deeper.toml");
    std::fs::write(
        &deeper_cfg,
        BASE.replace("[784, 16, 10]", "[784, 16, 16, 10]"),
    )
    .expect("config");
    let deeper = dir.path().join("deeper");
    let o = trainer(&[
        "fit",
        deeper_cfg.to_str().unwrap(),
        "--out",
        deeper.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("checkpoint written");
        p
    };
    let cases: Vec<(&str, PathBuf, Vec<&str>)> = vec![
        (
            "truncated",
            file("truncated.safetensors", &good[..good.len() - 100]),
            vec!["truncated.safetensors"],
        ),
        (
            "truncated header",
            file("header.safetensors", &good[..20]),
            vec!["header.safetensors"],
        ),
        (
            "garbage",
            file("garbage.safetensors", b"this is not a checkpoint"),
            vec!["garbage.safetensors"],
        ),
        (
            "empty",
            file("empty.safetensors", b""),
            vec!["empty.safetensors"],
        ),
        (
            "other shapes",
            other.join("model.safetensors"),
            vec!["shape"],
        ),
        (
            "other names",
            deeper.join("model.safetensors"),
            vec!["model.safetensors"],
        ),
        (
            "missing",
            dir.path().join("nope.safetensors"),
            vec!["nope.safetensors"],
        ),
    ];
    for (what, path, needles) in &cases {
        let o = trainer(&[
            "eval",
            run.to_str().unwrap(),
            "--checkpoint",
            path.to_str().unwrap(),
        ]);
        check(what, &o, needles);
    }
    // A run folder without a resolved config.
    let o = trainer(&["eval", dir.path().to_str().unwrap()]);
    check("not a run folder", &o, &["config.resolved.toml"]);
}

fn worker(args: &[&str], store: &str) -> Output {
    let bin = worker_binary().expect("the slice-worker binary (cargo test --workspace builds it)");
    Command::new(bin)
        .args(args)
        .env("TRAINER_STORE", store)
        .env("TRAINER_THREADS", "1")
        .output()
        .expect("slice-worker runs")
}

#[test]
fn bad_payloads_and_store_values() {
    use slice_worker::plan::RunPlan;
    use slice_worker::store::{Keys, RedisStore, Store};
    let redis = RedisServer::start(&[]);
    let url = redis.url();
    let payload = |run: &str, task: &str| format!(r#"{{"run":"{run}","task":{task},"attempt":1}}"#);
    let f0 = r#"{"kind":"F","step":1,"slice":0,"mb":0}"#;
    // Payloads.
    check(
        "malformed JSON",
        &worker(&["{\"run\":"], &url),
        &["malformed task payload"],
    );
    check(
        "not a task",
        &worker(&[r#"{"run":"r","task":{"kind":"Q"},"attempt":1}"#], &url),
        &["malformed task payload"],
    );
    check(
        "attempt 0",
        &worker(
            &[r#"{"run":"r","task":{"kind":"U","step":1,"slice":0},"attempt":0}"#],
            &url,
        ),
        &["attempt 0 of U(1,0,0)"],
    );
    check(
        "unknown run",
        &worker(&[&payload("no-such-run", f0)], &url),
        &["no-such-run"],
    );
    check(
        "a run id with a colon",
        &worker(&[&payload("a:b", f0)], &url),
        &["a:b"],
    );

    // Store values of a run whose plan is real: garbage where the plan, the weights or an input should be.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(RedisStore::connect(&url)).expect("redis");
    let cfg: coordinator::config::Config = toml::from_str(BASE).expect("config");
    let plan = |run: &str| RunPlan {
        run_id: run.into(),
        batch_size: 8,
        steps: 2,
        optimizer: cfg.train.optimizer_spec(),
        schedule: cfg.train.schedule_spec(),
        ttl_s: 600,
        ..RunPlan::example(cfg.model.clone(), vec![(0, 1), (1, 2)], 2)
    };
    let put = |key: String, bytes: Vec<u8>| {
        rt.block_on(store.put_many(
            vec![(key, bytes.into())],
            std::time::Duration::from_secs(600),
        ))
        .expect("put");
    };
    // 1. A plan that is not JSON.
    let keys = Keys::new("garbage-plan").expect("keys");
    put(keys.plan(), b"\x00\x01 not json".to_vec());
    check(
        "garbage plan",
        &worker(&[&payload("garbage-plan", f0)], &url),
        &[&keys.plan()],
    );
    // 2. A real plan, and one of its task's inputs broken: (run, first weights, first input, what the error names).
    let tensor = |shape: &[usize]| {
        slice_worker::codec::encode_tensor(&ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(shape)))
            .expect("tensor")
            .to_vec()
    };
    let first_unit = |widths: &str| {
        let model =
            toml::from_str::<coordinator::config::Config>(&BASE.replace("[784, 16, 10]", widths))
                .expect("config")
                .model
                .build()
                .expect("model");
        let params = model.init::<f32>(1);
        // The first slice's weights as the driver seeds them: one shard over the whole slice.
        let layout = models::shard::SliceLayout::new(&model, 0..1);
        let whole = 0..layout.len();
        slice_worker::codec::encode_shard(&layout, &whole, &layout.gather(&params[0..1], &whole))
            .expect("bytes")
            .to_vec()
    };
    type Names = fn(&Keys) -> String;
    let staged: Vec<(&str, Vec<u8>, Vec<u8>, Names)> = vec![
        (
            "garbage-weights",
            b"garbage".to_vec(),
            tensor(&[4, 784]),
            |k| k.weights(0, 0, 0),
        ),
        (
            "garbage-input",
            first_unit("[784, 16, 10]"),
            b"\xff\xfe not a tensor".to_vec(),
            |k| k.inputs(1, 0),
        ),
        // f32, but 100 features instead of 784.
        (
            "input-shape",
            first_unit("[784, 16, 10]"),
            tensor(&[4, 100]),
            |_| "F(1,0,0)".into(),
        ),
        // Another model's weights: the wrong shape.
        (
            "wrong-shape",
            first_unit("[784, 24, 10]"),
            tensor(&[4, 784]),
            |k| k.weights(0, 0, 0),
        ),
    ];
    for (run, weights, input, names) in staged {
        let keys = Keys::new(run).expect("keys");
        put(keys.plan(), serde_json::to_vec(&plan(run)).expect("json"));
        put(keys.weights(0, 0, 0), weights);
        put(keys.inputs(1, 0), input);
        check(run, &worker(&[&payload(run, f0)], &url), &[&names(&keys)]);
    }
    // A stale attempt: a late delivery of a task whose slice has already updated for its step does nothing — it
    // reports itself superseded and writes no key but its event (a real platform delivers such late copies).
    let keys = Keys::new("stale").expect("keys");
    put(
        keys.plan(),
        serde_json::to_vec(&plan("stale")).expect("json"),
    );
    put(keys.done(0, 1, 0), b"1".to_vec());
    let o = worker(&[&payload("stale", f0)], &url);
    assert!(
        o.status.success(),
        "stale attempt: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let left = rt
        .block_on(store.keys_with_prefix(keys.prefix()))
        .expect("keys");
    assert_eq!(left, vec![keys.done(0, 1, 0), keys.events(), keys.plan()]);
    let events = rt
        .block_on(store.read_events(&keys.events(), "0", 10, std::time::Duration::ZERO))
        .expect("events");
    assert!(
        format!("{events:?}").contains("superseded"),
        "stale attempt: {events:?}"
    );
    // A late duplicate with a sharded update: shard 1 of slice 0 has finished (and deleted its part of the inputs)
    // while shard 0 has not. The task finds an input gone and must see that the step's update has begun — any
    // shard's mark — instead of failing on the missing key, which the driver would retry until it gave up.
    let keys = Keys::new("stale-shard").expect("keys");
    let sharded = RunPlan {
        shards: vec![2, 1],
        ..plan("stale-shard")
    };
    put(keys.plan(), serde_json::to_vec(&sharded).expect("json"));
    put(keys.done(0, 1, 1), b"1".to_vec());
    let o = worker(&[&payload("stale-shard", f0)], &url);
    assert!(
        o.status.success(),
        "stale attempt, sharded update: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let events = rt
        .block_on(store.read_events(&keys.events(), "0", 10, std::time::Duration::ZERO))
        .expect("events");
    assert!(
        format!("{events:?}").contains("superseded"),
        "stale attempt, sharded update: {events:?}"
    );
    // 4. A task the plan does not have.
    let f9 = r#"{"kind":"F","step":1,"slice":9,"mb":0}"#;
    check(
        "task not in the plan",
        &worker(&[&payload("wrong-shape", f9)], &url),
        &["not part of the plan"],
    );
}
