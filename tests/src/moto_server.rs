//! moto's server (PyPI `moto[server]`) for conformance tests: AWS's APIs as a third party models them, started on a
//! free loopback port and killed on drop. `trainer deploy` talks to it through the real `aws-sdk-lambda`; moto parses
//! each request the way AWS documents it and keeps what it says, and the tests read that back through moto's own API
//! ([`MotoServer::function`]) rather than through our SDK client.
//!
//! Lambda runs without docker ([`MotoServer::start`] sets `{"lambda": {"use_docker": false}}` through
//! `POST /moto-api/config`): functions are created, updated, listed and deleted as on AWS, but an invocation runs
//! no code and gets a canned reply ([`MotoServer::queue_invoke_result`]).
//!
//! The executable is `$TRAINER_MOTO_SERVER`, else `target/moto-venv/bin/moto_server` in the workspace, the venv
//! that `scripts/test.sh` makes where it is missing ([`INSTALL`] says how to make it by hand). Like `redis-server` for the store tests, it is a
//! required peer: a test that needs it and cannot find it fails and says how to install it.
//!
//! moto answers a request as the service its `Authorization` header names (the SigV4 credential scope); it does not
//! check signatures, so [`MotoServer`]'s own requests carry a scope and a dummy signature.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install moto's server where the tests look for it by default (the release they were written against;
/// `.ci/run` installs the same).
pub const INSTALL: &str = "python3 -m venv target/moto-venv && \
     target/moto-venv/bin/pip install 'moto[server]==5.2.6' (from the workspace root; scripts/test.sh does it), or \
     point TRAINER_MOTO_SERVER at a moto_server executable";

/// The region the server's Lambda and IAM answer for in these tests.
pub const REGION: &str = "us-east-1";

/// Where the tests find `moto_server`: `$TRAINER_MOTO_SERVER`, else the workspace's `target/moto-venv`.
pub fn moto_server_binary() -> Result<PathBuf, String> {
    let (path, from) = match std::env::var_os("TRAINER_MOTO_SERVER") {
        Some(p) => (PathBuf::from(p), "TRAINER_MOTO_SERVER"),
        None => (
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin/moto_server"),
            "the default path",
        ),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "moto_server not found at {} ({from}); install it: {INSTALL}",
            path.display()
        ))
    }
}

/// A running `moto_server`.
pub struct MotoServer {
    child: Child,
    pub port: u16,
    agent: ureq::Agent,
    /// Holds the server's output, shown when it fails to start.
    log: tempfile::NamedTempFile,
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port, waits until it answers, and switches Lambda to its docker-less
    /// backend. Panics, saying what failed, when moto is missing or does not start.
    pub fn start() -> MotoServer {
        let binary = moto_server_binary().unwrap_or_else(|e| panic!("{e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port for moto_server")
            .port();
        let log = tempfile::NamedTempFile::new().expect("a temp file for moto_server's output");
        let out = log.reopen().expect("moto_server's log file reopened");
        let err = out.try_clone().expect("moto_server's log file cloned");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}; {INSTALL}", binary.display()));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let mut server = MotoServer {
            child,
            port,
            agent,
            log,
        };
        // The first request that succeeds is the one that matters: Lambda without docker.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match server.post_json("/moto-api/config", r#"{"lambda": {"use_docker": false}}"#) {
                Ok((201, body)) if docker_off(&body) => break,
                Ok((status, body)) => panic!(
                    "moto_server on port {port}: POST /moto-api/config answered {status}: {body}"
                ),
                Err(e) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        panic!(
                            "moto_server ({}) exited ({status}) before it answered on port {port}:\n{}",
                            binary.display(),
                            server.output()
                        );
                    }
                    assert!(
                        Instant::now() < deadline,
                        "moto_server did not answer on port {port} within 30 s ({e}):\n{}",
                        server.output()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        server
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL for every service.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the server printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_else(|e| format!("(moto_server's output unreadable: {e})"))
    }

    /// Creates an IAM role Lambda may assume (IAM's Query API, `CreateRole`) and returns its ARN: moto's
    /// CreateFunction and UpdateFunctionConfiguration refuse a role IAM does not have.
    pub fn create_role(&self, name: &str) -> Result<String, String> {
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let form = form_encode(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", trust),
        ]);
        let what = format!("IAM CreateRole {name} at {}", self.url());
        let sent = self
            .agent
            .post(format!("{}/", self.url()))
            .header("Authorization", authorization("iam"))
            .content_type("application/x-www-form-urlencoded")
            .send(&form);
        let (status, body) = status_and_body(sent, &what)?;
        if status != 200 {
            return Err(format!("{what}: {status}: {body}"));
        }
        xml_element(&body, "Arn")
            .map(str::to_string)
            .ok_or_else(|| format!("{what}: no <Arn> in the reply: {body}"))
    }

    /// Lambda's `GetFunction` of `name` as moto answers it (`Configuration`, `Code`, and `Concurrency` when
    /// reserved), or `None` when moto has no such function.
    pub fn function(&self, name: &str) -> Result<Option<serde_json::Value>, String> {
        let what = format!("Lambda GetFunction {name} at {}", self.url());
        let sent = self
            .agent
            .get(format!("{}/2015-03-31/functions/{name}", self.url()))
            .header("Authorization", authorization("lambda"))
            .call();
        let (status, body) = status_and_body(sent, &what)?;
        match status {
            200 => serde_json::from_str(&body)
                .map(Some)
                .map_err(|e| format!("{what}: the reply is not JSON ({e}): {body}")),
            404 if body.contains("ResourceNotFoundException") => Ok(None),
            _ => Err(format!("{what}: {status}: {body}")),
        }
    }

    /// Queues the payload moto's next Lambda invocation in [`REGION`] answers with (moto runs no function code
    /// without docker; unqueued, an invocation echoes its own payload).
    pub fn queue_invoke_result(&self, payload: &str) -> Result<(), String> {
        let body = serde_json::json!({ "results": [payload], "region": REGION }).to_string();
        match self.post_json("/moto-api/static/lambda-simple/response", &body) {
            Ok((201, _)) => Ok(()),
            Ok((status, reply)) => Err(format!(
                "queueing an invocation result at {}: {status}: {reply}",
                self.url()
            )),
            Err(e) => Err(format!(
                "queueing an invocation result at {}: {e}",
                self.url()
            )),
        }
    }

    /// POSTs JSON to one of moto's own endpoints; the status and body of the reply.
    fn post_json(&self, path: &str, json: &str) -> Result<(u16, String), String> {
        let what = format!("POST {}{path}", self.url());
        let sent = self
            .agent
            .post(format!("{}{path}", self.url()))
            .content_type("application/json")
            .send(json);
        status_and_body(sent, &what)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status and body of a reply, or what failed, prefixed with `what` (the call and its URL).
fn status_and_body(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<(u16, String), String> {
    let mut reply = sent.map_err(|e| format!("{what}: {e}"))?;
    let status = reply.status().as_u16();
    let body = reply
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{what}: reading the reply: {e}"))?;
    Ok((status, body))
}

/// Whether moto's config (the reply of `/moto-api/config`) has Lambda without docker.
fn docker_off(config: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(config)
        .is_ok_and(|c| c["lambda"]["use_docker"] == serde_json::Value::Bool(false))
}

/// An `Authorization` header that routes a request to `service` in [`REGION`]: moto reads the SigV4 credential
/// scope and does not check the signature.
fn authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=moto-test/20260101/{REGION}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0"
    )
}

/// `application/x-www-form-urlencoded`, every byte but the unreserved ones percent-encoded.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(&xml[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_everything_but_unreserved_bytes() {
        assert_eq!(
            form_encode(&[("A", "b c"), ("Doc", r#"{"k":"v/1"}"#)]),
            "A=b%20c&Doc=%7B%22k%22%3A%22v%2F1%22%7D"
        );
    }

    #[test]
    fn finds_an_element_or_says_none() {
        let xml = "<R><Role><Arn>arn:aws:iam::1:role/x</Arn></Role></R>";
        assert_eq!(xml_element(xml, "Arn"), Some("arn:aws:iam::1:role/x"));
        assert_eq!(xml_element(xml, "Path"), None);
    }
}
