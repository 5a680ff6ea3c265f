//! Broken MNIST-format files give the right error variant, naming the file.
//!
//! Each test writes a tiny valid dataset (5 train and 3 test images of 28x28) into a temporary
//! folder, breaks one file, and opens it.

use std::io::Write;
use std::path::{Path, PathBuf};

use data::{read_maybe_gz, DataError, Dataset, Mnist, MnistKind, Normalize};
use flate2::write::GzEncoder;
use flate2::Compression;

const TRAIN: usize = 5;
const TEST: usize = 3;

fn idx(ndims_magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = ndims_magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

fn images(n: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..n * 784).map(|i| (i % 256) as u8).collect();
    idx(0x803, &[n as u32, 28, 28], &body)
}

fn labels(n: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    idx(0x801, &[n as u32], &body)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A valid tiny dataset: train images gzipped, the rest raw (both forms must work).
fn valid(dir: &Path) {
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gzip(&images(TRAIN))).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(TRAIN)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(TEST)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels(TEST))).unwrap();
}

fn open(dir: &Path) -> Result<Mnist, DataError> {
    Mnist::open(dir, MnistKind::Mnist, Normalize::Unit)
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    valid(&dir);
    (tmp, dir)
}

#[test]
fn the_tiny_dataset_opens_in_mixed_raw_and_gz_form() {
    let (_tmp, dir) = setup();
    let m = open(&dir).unwrap();
    assert_eq!((m.train_len(), m.eval_len()), (TRAIN, TEST));
    let b = m.train_batch(&[1]).unwrap();
    assert_eq!(b.targets[[0]], 1);
    // example 1 starts at byte 784 of the body: 784 % 256 = 16
    assert_eq!(b.inputs[[0, 0, 0, 0]], 16.0 / 255.0);
    assert_eq!(b.inputs[[0, 0, 8, 15]], 255.0 / 255.0); // (784 + 8*28 + 15) % 256 = 255
}

#[test]
fn raw_file_is_preferred_over_gz_and_gzip_is_detected_by_magic_not_name() {
    let (_tmp, dir) = setup();
    // a raw file holding gzip bytes still reads, and it wins over the .gz next to it
    std::fs::write(dir.join("train-images-idx3-ubyte"), gzip(&images(TRAIN))).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), b"not used").unwrap();
    assert_eq!(open(&dir).unwrap().train_len(), TRAIN);
    assert_eq!(
        read_maybe_gz(&dir.join("train-images-idx3-ubyte")).unwrap(),
        images(TRAIN)
    );
}

#[test]
fn truncated_images_report_expected_and_actual_bytes() {
    let (_tmp, dir) = setup();
    let mut bytes = images(TEST);
    bytes.truncate(bytes.len() - 100);
    let path = dir.join("t10k-images-idx3-ubyte");
    std::fs::write(&path, &bytes).unwrap();
    let err = open(&dir).unwrap_err();
    let full = 16 + TEST as u64 * 784;
    assert!(
        matches!(&err, DataError::Truncated { path: p, expected, actual } if *p == path && *expected == full && *actual == full - 100),
        "{err:?}"
    );
    assert!(err.to_string().contains("t10k-images-idx3-ubyte"), "{err}");
}

#[test]
fn wrong_magic_reports_the_value_seen() {
    let (_tmp, dir) = setup();
    let path = dir.join("train-labels-idx1-ubyte");
    std::fs::write(&path, idx(0x803, &[TRAIN as u32, 1, 1], &[0; TRAIN])).unwrap();
    let err = open(&dir).unwrap_err();
    assert!(
        matches!(&err, DataError::BadMagic { path: p, seen: 0x803, expected: 0x801 } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("0x00000803"), "{err}");
}

#[test]
fn float_typed_idx_is_a_bad_magic() {
    let (_tmp, dir) = setup();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        idx(0xD01, &[TRAIN as u32], &[0; TRAIN]),
    )
    .unwrap();
    assert!(matches!(
        open(&dir),
        Err(DataError::BadMagic { seen: 0xD01, .. })
    ));
}

#[test]
fn image_and_label_counts_must_agree() {
    let (_tmp, dir) = setup();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(TRAIN - 1)).unwrap();
    let err = open(&dir).unwrap_err();
    match &err {
        DataError::CountMismatch {
            images,
            image_count,
            labels,
            label_count,
        } => {
            assert_eq!(images, &dir.join("train-images-idx3-ubyte.gz"));
            assert_eq!(labels, &dir.join("train-labels-idx1-ubyte"));
            assert_eq!((*image_count, *label_count), (TRAIN, TRAIN - 1));
        }
        other => panic!("expected CountMismatch, got {other:?}"),
    }
}

#[test]
fn labels_must_be_digits() {
    let (_tmp, dir) = setup();
    let path = dir.join("train-labels-idx1-ubyte");
    std::fs::write(&path, idx(0x801, &[TRAIN as u32], &[0, 1, 2, 10, 4])).unwrap();
    let err = open(&dir).unwrap_err();
    assert!(
        matches!(&err, DataError::BadLabel { path: p, index: 3, label: 10, classes: 10 } if *p == path),
        "{err:?}"
    );
}

#[test]
fn gzip_garbage_is_a_gzip_error() {
    let (_tmp, dir) = setup();
    let path = dir.join("t10k-labels-idx1-ubyte.gz");
    let mut garbage = vec![0x1f, 0x8b];
    garbage.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&path, garbage).unwrap();
    let err = open(&dir).unwrap_err();
    assert!(
        matches!(&err, DataError::Gzip { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("t10k-labels-idx1-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn truncated_gzip_is_a_gzip_error() {
    let (_tmp, dir) = setup();
    let path = dir.join("train-images-idx3-ubyte.gz");
    let gz = gzip(&images(TRAIN));
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    assert!(matches!(open(&dir), Err(DataError::Gzip { path: p, .. }) if p == path));
}

#[test]
fn non_gzip_garbage_named_gz_is_read_as_idx_and_rejected_by_magic() {
    let (_tmp, dir) = setup();
    let path = dir.join("train-images-idx3-ubyte.gz");
    std::fs::write(&path, b"<html>404 not found</html>").unwrap();
    assert!(matches!(open(&dir), Err(DataError::BadMagic { path: p, .. }) if p == path));
}

#[test]
fn a_missing_file_is_named() {
    let (_tmp, dir) = setup();
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = open(&dir).unwrap_err();
    assert!(
        matches!(&err, DataError::MissingFile { path, hint } if *path == dir.join("t10k-labels-idx1-ubyte.gz") && hint.contains("trainer data download mnist")),
        "{err:?}"
    );
}

#[test]
fn train_and_test_image_sizes_must_agree() {
    let (_tmp, dir) = setup();
    let path = dir.join("t10k-images-idx3-ubyte");
    std::fs::write(
        &path,
        idx(0x803, &[TEST as u32, 14, 56], &vec![0; TEST * 784]),
    )
    .unwrap();
    assert!(matches!(open(&dir), Err(DataError::BadDims { path: p, .. }) if p == path));
}

#[test]
fn bad_text_files() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("input.txt");
    std::fs::write(&path, b"hello \xff world").unwrap();
    let err = data::TextDataset::open(&path, 2, 0.5).unwrap_err();
    assert!(
        matches!(&err, DataError::NotUtf8 { path: p, offset: 6 } if *p == path),
        "{err:?}"
    );
    std::fs::write(&path, b"").unwrap();
    let err = data::TextDataset::open(&path, 2, 0.5).unwrap_err();
    assert!(
        matches!(&err, DataError::CorpusTooSmall { path: p, tokens: 0, .. } if *p == path),
        "{err:?}"
    );
}

#[test]
fn bad_digits_file_names_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("digits.csv.gz");
    let mut row: Vec<String> = (0..64).map(|_| "0".to_string()).collect();
    row.push("3".into());
    let good = row.join(",");
    row[10] = "zz".into();
    let bad = row.join(",");
    let mut lines = vec![good; 400];
    lines[41] = bad;
    std::fs::write(&path, gzip(lines.join("\n").as_bytes())).unwrap();
    let err = data::Digits::open(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::Parse { path: p, line: 42, column: 11, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("digits.csv.gz:42:11"), "{err}");
}
