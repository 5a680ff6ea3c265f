//! Deployment packages for the tests that deploy: a `bootstrap.zip` as `trainer deploy --zip` takes it, holding the
//! worker binary stripped as the release profile strips it (the test profile's build keeps debug info: seconds to
//! zip, and near Lambda's 50 MB).

use std::io::Write;
use std::path::Path;

/// Writes a zip of `files` (each executable, as Lambda needs `bootstrap` to be) to `path`; returns its bytes.
pub fn package(path: &Path, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    for (name, bytes) in files {
        w.start_file(*name, opts).expect("zip entry started");
        w.write_all(bytes).expect("zip entry written");
    }
    let bytes = w.finish().expect("zip finished").into_inner();
    std::fs::write(path, &bytes).expect("package written");
    bytes
}

/// The worker binary this test build made, stripped into `dir`; returns its bytes.
pub fn stripped_worker(dir: &Path) -> Vec<u8> {
    let worker = crate::lambda_emulator::worker_binary().expect(
        "the slice-worker binary beside this test executable (cargo test --workspace builds it)",
    );
    let stripped = dir.join("slice-worker");
    let out = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&worker)
        .output()
        .expect("strip runs (binutils, which gcc brings; .ci/run installs gcc)");
    assert!(
        out.status.success(),
        "strip {}: {}",
        worker.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&stripped).expect("stripped slice-worker read")
}

/// `dir/bootstrap.zip` with the stripped worker as `bootstrap`.
pub fn worker_zip(dir: &Path) -> std::path::PathBuf {
    let worker = stripped_worker(dir);
    let zip = dir.join("bootstrap.zip");
    package(&zip, &[("bootstrap", &worker)]);
    zip
}
