//! The `[data]` table: parsing, defaults, validation, and `open`.

use std::path::PathBuf;

use data::{open, DataConfig, DataError, DataKind, Normalize, SyntheticTask, TokenizerKind};

fn parse(s: &str) -> Result<DataConfig, toml::de::Error> {
    toml::from_str(s)
}

#[test]
fn every_field_has_a_default() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg, DataConfig::default());
    assert_eq!(cfg.kind, DataKind::Synthetic);
    assert_eq!(cfg.normalize, Normalize::Unit);
    assert_eq!(cfg.val_fraction, 0.1);
    assert_eq!(cfg.synthetic.features, 784);
    assert_eq!(cfg.synthetic.train_len, 4096);
    assert_eq!(cfg.synthetic.eval_len, 1024);
}

#[test]
fn kinds_and_fields_parse_by_their_documented_names() {
    let cfg = parse(
        r#"
        kind = "fashion-mnist"
        dir = "/tmp/fm"
        normalize = "standardize"
        "#,
    )
    .unwrap();
    assert_eq!(cfg.kind, DataKind::FashionMnist);
    assert_eq!(cfg.dir, Some(PathBuf::from("/tmp/fm")));
    assert_eq!(cfg.normalize, Normalize::Standardize);

    let cfg = parse(
        r#"
        kind = "text"
        file = "other.txt"
        context = 128
        val_fraction = 0.2
        [synthetic]
        task = "tokens"
        vocab = 32
        "#,
    )
    .unwrap();
    assert_eq!(
        (cfg.kind, cfg.context, cfg.val_fraction),
        (DataKind::Text, Some(128), 0.2)
    );
    assert_eq!(cfg.file.as_deref(), Some("other.txt"));
    assert_eq!(
        (cfg.synthetic.task, cfg.synthetic.vocab),
        (SyntheticTask::Tokens, 32)
    );
    for kind in ["mnist", "digits", "synthetic"] {
        assert!(parse(&format!("kind = \"{kind}\"")).is_ok(), "{kind}");
    }
}

#[test]
fn unknown_fields_and_values_are_rejected() {
    assert!(parse("batch = 3").is_err());
    assert!(parse("kind = \"cifar\"").is_err());
    assert!(parse("normalize = \"zscore\"").is_err());
    assert!(parse("[synthetic]\nfeatures = 3\nlabels = 2").is_err());
}

#[test]
fn resolved_config_round_trips_and_spells_out_defaults() {
    let cfg = DataConfig::new(DataKind::Text).resolved();
    assert_eq!(cfg.file.as_deref(), Some("input.txt"));
    assert_eq!(cfg.context, Some(64));
    assert_eq!(cfg.dir, Some(data::data_root().join("tinyshakespeare")));
    let text = toml::to_string(&cfg).unwrap();
    assert_eq!(parse(&text).unwrap(), cfg);
    assert_eq!(
        open(&cfg).unwrap().train_len(),
        open(&DataConfig::new(DataKind::Text)).unwrap().train_len()
    );
}

#[test]
fn standardize_is_only_for_the_mnist_family() {
    let cfg = DataConfig {
        normalize: Normalize::Standardize,
        ..DataConfig::new(DataKind::Digits)
    };
    assert!(matches!(
        open(&cfg),
        Err(DataError::Config {
            field: "normalize",
            ..
        })
    ));
}

#[test]
fn text_settings_are_checked() {
    let cfg = DataConfig {
        val_fraction: 0.0,
        ..DataConfig::new(DataKind::Text)
    };
    assert!(matches!(
        open(&cfg),
        Err(DataError::Config {
            field: "val_fraction",
            ..
        })
    ));
    let cfg = DataConfig {
        context: Some(0),
        ..DataConfig::new(DataKind::Text)
    };
    assert!(matches!(
        open(&cfg),
        Err(DataError::Config {
            field: "context",
            ..
        })
    ));
    let cfg = DataConfig {
        file: Some("nope.txt".into()),
        ..DataConfig::new(DataKind::Text)
    };
    assert!(
        matches!(open(&cfg), Err(DataError::MissingFile { path, .. }) if path.ends_with("tinyshakespeare/nope.txt"))
    );
}

#[test]
fn a_missing_folder_is_a_missing_file() {
    let cfg = DataConfig {
        dir: Some("/nonexistent/mnist".into()),
        ..DataConfig::new(DataKind::Mnist)
    };
    let err = open(&cfg).err().unwrap();
    assert!(
        matches!(&err, DataError::MissingFile { path, .. } if path.starts_with("/nonexistent/mnist")),
        "{err:?}"
    );
}

#[test]
fn tokenizer_settings_parse_and_are_checked() {
    let cfg = parse("kind = \"text\"\ntokenizer = \"bpe\"\nvocab_size = 512").unwrap();
    assert_eq!(
        (cfg.tokenizer, cfg.vocab_size),
        (TokenizerKind::Bpe, Some(512))
    );
    assert_eq!(parse("").unwrap().tokenizer, TokenizerKind::Char);
    let bad = parse("tokenizer = \"wordpiece\"").unwrap_err().to_string();
    assert!(bad.contains("wordpiece"), "{bad}");
    // The resolved config writes the vocabulary out for BPE, and leaves the default tokenizer out.
    let resolved = toml::to_string(
        &parse("kind = \"text\"\ntokenizer = \"bpe\"")
            .unwrap()
            .resolved(),
    )
    .unwrap();
    assert!(
        resolved.contains("tokenizer = \"bpe\"") && resolved.contains("vocab_size = 2048"),
        "{resolved}"
    );
    let plain = toml::to_string(&DataConfig::new(DataKind::Text).resolved()).unwrap();
    assert!(
        !plain.contains("tokenizer") && !plain.contains("vocab_size"),
        "{plain}"
    );
    let field = |cfg: DataConfig| match open(&cfg) {
        Err(DataError::Config { field, reason }) => format!("{field}: {reason}"),
        other => panic!(
            "expected a config error, got {:?}",
            other.map(|d| d.name().to_string())
        ),
    };
    let on_mnist = field(DataConfig {
        tokenizer: TokenizerKind::Bpe,
        ..DataConfig::new(DataKind::Mnist)
    });
    assert!(on_mnist.starts_with("tokenizer:"), "{on_mnist}");
    let size_for_chars = field(DataConfig {
        vocab_size: Some(100),
        ..DataConfig::new(DataKind::Text)
    });
    assert!(
        size_for_chars.starts_with("vocab_size:"),
        "{size_for_chars}"
    );
    // Below Tiny Shakespeare's 65 characters, the base of its subwords.
    let too_small = field(DataConfig {
        tokenizer: TokenizerKind::Bpe,
        vocab_size: Some(10),
        ..DataConfig::new(DataKind::Text)
    });
    assert!(
        too_small.starts_with("vocab_size:") && too_small.contains("65 distinct"),
        "{too_small}"
    );
    // A bad split is named as such, not as a vocabulary its empty train text cannot support.
    let no_train = field(DataConfig {
        tokenizer: TokenizerKind::Bpe,
        val_fraction: 1.0,
        ..DataConfig::new(DataKind::Text)
    });
    assert!(no_train.starts_with("val_fraction:"), "{no_train}");
}
