//! A real `redis-server` for tests: started on a free loopback port, with nothing on disk, stopped on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// jemalloc's setting (`MALLOC_CONF`) for a Redis that holds a training run's tensors: keep freed pages for reuse
/// instead of returning them to the kernel. A split step frees and allocates about 100 MB of values (each step's
/// gradients replace the last's); with jemalloc's default decay Redis spent a third of its CPU in page faults and
/// `madvise` for them (experiments/bench_runtime). README, *Running on AWS Lambda*, recommends it for a Redis of
/// one's own.
pub const KEEP_FREED_PAGES: &str = "dirty_decay_ms:-1,muzzy_decay_ms:-1";

pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// TLS servers: the PEM file of the CA that signed the server's certificate.
    pub ca: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (extra arguments appended, e.g. `["--requirepass", "pw"]`) and waits until it answers.
    pub fn start(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn(dir, extra, false, None)
    }

    /// [`RedisServer::start`] with jemalloc keeping freed pages ([`KEEP_FREED_PAGES`]).
    pub fn start_keeping_freed_pages(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn(dir, extra, false, Some(KEEP_FREED_PAGES))
    }

    /// Starts `redis-server` serving TLS only, with a certificate for 127.0.0.1 signed by a throwaway CA made with
    /// `openssl` (see [`RedisServer::ca`]); `extra` as for [`RedisServer::start`].
    pub fn start_tls(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = |name: &str| dir.path().join(name).to_string_lossy().to_string();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl is installed (.ci/run installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").expect("ext");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=trainer-test-ca",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.crt"),
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-extfile",
            &p("ext.cnf"),
            "-out",
            &p("server.crt"),
        ]);
        let (crt, key, ca) = (p("server.crt"), p("server.key"), p("ca.crt"));
        let mut args = vec![
            "--tls-cert-file",
            &crt,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        args.extend_from_slice(extra);
        let mut server = Self::spawn(dir, &args, true, None);
        server.ca = Some(server._dir.path().join("ca.crt"));
        server
    }

    fn spawn(
        dir: tempfile::TempDir,
        extra: &[&str],
        tls: bool,
        malloc_conf: Option<&str>,
    ) -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::spawn_on(port, dir, extra, tls, malloc_conf)
    }

    /// Kills the server (SIGKILL: nothing saved, every key gone) and starts a new one on the same port, as a
    /// crashed and restarted Redis node. Plain (non-TLS) servers without extra arguments only.
    pub fn restart(&mut self) {
        assert!(self.ca.is_none(), "restart: plain servers only");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("temp dir");
        let fresh = Self::spawn_on(self.port, dir, &[], false, None);
        let old = std::mem::replace(self, fresh);
        // The old value's child is already reaped; its drop only kills a finished process.
        drop(old);
    }

    /// Kills the server for good (its port stays closed until [`RedisServer::restart`]).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn spawn_on(
        port: u16,
        dir: tempfile::TempDir,
        extra: &[&str],
        tls: bool,
        malloc_conf: Option<&str>,
    ) -> RedisServer {
        let port_s = port.to_string();
        let ports: [&str; 4] = if tls {
            ["--port", "0", "--tls-port", &port_s]
        } else {
            ["--port", &port_s, "--tls-port", "0"]
        };
        let mut cmd = Command::new("redis-server");
        if let Some(conf) = malloc_conf {
            cmd.env("MALLOC_CONF", conf);
        }
        let child = cmd
            .args(ports)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let server = RedisServer {
            child,
            port,
            ca: None,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's process id (to read its CPU time from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `redis://` or, for a TLS server, `rediss://`, without credentials.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
