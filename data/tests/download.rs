//! `download_mnist_from` against a local HTTP server that serves the real files from
//! `shared/data/mnist` (tests cannot reach the internet), plus `verify_mnist`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use data::{data_root, download_mnist_from, verify_mnist, DataError, MNIST_FILES};

/// Serve `GET /good/<name>` from the shared MNIST folder, `GET /bad/<name>` as the same bytes
/// with one flipped, and anything else as 404. Returns the base URL.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let src = data_root().join("mnist");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let body = match path.split('/').collect::<Vec<_>>()[..] {
                ["", "good", name] => std::fs::read(src.join(name)).ok(),
                ["", "bad", name] => std::fs::read(src.join(name)).ok().map(|mut b| {
                    b[100] ^= 1;
                    b
                }),
                _ => None,
            };
            let (status, body) = match body {
                Some(b) => ("200 OK", b),
                None => ("404 Not Found", b"missing".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.write_all(&body));
        }
    });
    base
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".part"))
        })
        .collect()
}

#[test]
fn downloads_verifies_falls_back_and_skips_present_files() {
    let base = serve();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnist");
    let (bad, good, missing) = (
        format!("{base}/bad/"),
        format!("{base}/good/"),
        format!("{base}/none/"),
    );

    let mut log = Vec::new();
    download_mnist_from(&dir, &[&bad, &good], |line| log.push(line.to_string())).unwrap();
    verify_mnist(&dir).unwrap();
    assert!(leftovers(&dir).is_empty());
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("failed") && l.contains("sha256"))
            .count(),
        4,
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains(": ok, sha256")).count(),
        4,
        "{log:#?}"
    );

    // a second run finds every file present and fetches nothing (the only mirror is a 404)
    let mut log = Vec::new();
    download_mnist_from(&dir, &[&missing], |line| log.push(line.to_string())).unwrap();
    assert_eq!(log.len(), 4);
    assert!(
        log.iter().all(|l| l.contains("already present")),
        "{log:#?}"
    );

    // a damaged file is replaced
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&labels, b"damaged").unwrap();
    assert!(matches!(verify_mnist(&dir), Err(DataError::Checksum { path, .. }) if path == labels));
    download_mnist_from(&dir, &[&good], |_| {}).unwrap();
    verify_mnist(&dir).unwrap();
}

#[test]
fn failing_mirrors_leave_no_file_behind() {
    let base = serve();
    let tmp = tempfile::tempdir().unwrap();
    let (bad, missing) = (format!("{base}/bad/"), format!("{base}/none/"));
    let err = download_mnist_from(tmp.path(), &[&bad, &missing], |_| {}).unwrap_err();
    match &err {
        DataError::Download { file, reasons } => {
            assert_eq!(file, "train-images-idx3-ubyte.gz");
            assert_eq!(reasons.len(), 2);
            assert!(reasons[0].contains("sha256"), "{reasons:?}");
            assert!(reasons[1].contains("404"), "{reasons:?}");
        }
        other => panic!("expected Download, got {other:?}"),
    }
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no partial or wrong file left"
    );
}

#[test]
fn verify_accepts_decompressed_files_and_names_bad_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let src = data_root().join("mnist");
    for f in &MNIST_FILES {
        let bytes = data::read_maybe_gz(&src.join(format!("{}.gz", f.name))).unwrap();
        std::fs::write(tmp.path().join(f.name), bytes).unwrap();
    }
    verify_mnist(tmp.path()).unwrap();

    let path = tmp.path().join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = verify_mnist(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::Checksum { path: p, expected, .. } if *p == path && expected == MNIST_FILES[1].sha256_raw),
        "{err:?}"
    );

    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(verify_mnist(tmp.path()), Err(DataError::MissingFile { path: p, .. }) if p == tmp.path().join("train-labels-idx1-ubyte.gz"))
    );
}
