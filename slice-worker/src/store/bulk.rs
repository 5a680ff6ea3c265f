//! Tensor traffic (SET / MGET of values up to many MiB) over plain RESP2 connections of our own, on blocking
//! sockets.
//!
//! Why our own: measured here, `redis-rs` moved 4 MiB values at about half of `redis-benchmark`'s SET rate. It copies
//! a value twice before it reaches the socket (into the command's argument buffer, then into the packed command) and
//! parses replies through a generic value tree. This path writes the RESP header and then the value straight from
//! its `Bytes`, pipelines a whole `put_many`, and reads a bulk reply into one buffer of the announced length.
//!
//! Why blocking sockets: a task's reads and writes run on a thread that does nothing else meanwhile (the local
//! invoker's blocking-pool thread, [`TaskThread`]). On async sockets each wait for the socket crossed threads twice
//! — the runtime's worker polled `epoll`, then woke the task's thread — about 37 context switches per task in
//! `experiments/bench_runtime`. On a task's own thread a call now runs inline; from anywhere else (an async caller,
//! such as the Lambda worker's single-threaded runtime, which must keep serving the invokes it has in flight) it
//! runs on the blocking pool: one hand-off per call instead of one per wait.
//!
//! Scope: plain TCP only (a `rediss://` store keeps using `redis-rs`, which brings TLS), one command pipeline per
//! borrowed connection, a small pool of idle connections, AUTH and SELECT from the URL. A connection that saw an
//! error is dropped, never reused half-read.

use bytes::Bytes;
use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many idle connections the pool keeps.
const IDLE: usize = 16;

thread_local! {
    static ON_TASK_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread, while the guard lives, as one that runs a single task and nothing else: the store's
/// tensor calls block it directly instead of handing each call to the blocking pool.
pub struct TaskThread {
    was: bool,
}

impl TaskThread {
    /// Marks this thread until the guard drops.
    pub fn enter() -> TaskThread {
        TaskThread {
            was: ON_TASK_THREAD.with(|c| c.replace(true)),
        }
    }

    fn here() -> bool {
        ON_TASK_THREAD.with(Cell::get)
    }
}

impl Drop for TaskThread {
    fn drop(&mut self) {
        ON_TASK_THREAD.with(|c| c.set(self.was));
    }
}

/// A failure on the bulk path: the connection broke, or the server answered with an error.
#[derive(Debug)]
pub(super) enum BulkError {
    Io(io::Error),
    Server(String),
}

impl From<io::Error> for BulkError {
    fn from(e: io::Error) -> Self {
        BulkError::Io(e)
    }
}

type Conn = BufReader<TcpStream>;

/// Raw connections to one server.
pub(super) struct BulkPool {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl BulkPool {
    /// A pool for a plain-TCP server; `None` for TLS or Unix-socket URLs.
    pub(super) fn for_server(
        info: &redis::ConnectionInfo,
        connect_timeout: Duration,
    ) -> Option<Arc<BulkPool>> {
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        Some(Arc::new(BulkPool {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_string),
            password: settings.password().map(str::to_string),
            db: settings.db(),
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }))
    }

    /// Drops every idle connection: after one broke (a server restart, a dropped link) the others most likely did
    /// too, and a retry must not pick them up one failure at a time.
    pub(super) fn forget_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// `SET key value PX ttl` for every item, pipelined.
    pub(super) async fn set_many(
        self: &Arc<Self>,
        items: &[(String, Bytes)],
        ttl_ms: u64,
    ) -> Result<(), BulkError> {
        if TaskThread::here() {
            return self.set_many_blocking(items, ttl_ms);
        }
        let (pool, items) = (self.clone(), items.to_vec());
        off_thread(move || pool.set_many_blocking(&items, ttl_ms)).await
    }

    /// `MGET keys…`: each value or `None`.
    pub(super) async fn get_many(
        self: &Arc<Self>,
        keys: &[String],
    ) -> Result<Vec<Option<Bytes>>, BulkError> {
        if TaskThread::here() {
            return self.get_many_blocking(keys);
        }
        let (pool, keys) = (self.clone(), keys.to_vec());
        off_thread(move || pool.get_many_blocking(&keys)).await
    }

    fn connect(&self) -> Result<Conn, BulkError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address");
        let mut stream = None;
        for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or(last)?;
        stream.set_nodelay(true)?;
        let mut conn = BufReader::with_capacity(64 << 10, stream);
        let mut hello = Vec::new();
        if let Some(pw) = &self.password {
            match &self.username {
                Some(user) => encode(&mut hello, &[b"AUTH", user.as_bytes(), pw.as_bytes()]),
                None => encode(&mut hello, &[b"AUTH", pw.as_bytes()]),
            }
        }
        if self.db != 0 {
            encode(&mut hello, &[b"SELECT", self.db.to_string().as_bytes()]);
        }
        if !hello.is_empty() {
            conn.get_mut().write_all(&hello)?;
            let replies = usize::from(self.password.is_some()) + usize::from(self.db != 0);
            for _ in 0..replies {
                read_simple(&mut conn)?;
            }
        }
        Ok(conn)
    }

    fn take(&self) -> Result<Conn, BulkError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }

    fn set_many_blocking(&self, items: &[(String, Bytes)], ttl_ms: u64) -> Result<(), BulkError> {
        let mut conn = self.take()?;
        let ttl = ttl_ms.to_string();
        for (key, value) in items {
            let mut head = Vec::with_capacity(64 + key.len());
            head.extend_from_slice(b"*5\r\n$3\r\nSET\r\n");
            bulk(&mut head, key.as_bytes());
            head.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
            let stream = conn.get_mut();
            stream.write_all(&head)?;
            stream.write_all(value)?;
            let mut tail = Vec::with_capacity(32);
            tail.extend_from_slice(b"\r\n");
            bulk(&mut tail, b"PX");
            bulk(&mut tail, ttl.as_bytes());
            stream.write_all(&tail)?;
        }
        let mut first_error = None;
        for _ in items {
            if let Err(e) = read_simple(&mut conn) {
                match e {
                    BulkError::Server(_) => first_error = first_error.or(Some(e)),
                    BulkError::Io(_) => return Err(e),
                }
            }
        }
        self.give_back(conn);
        first_error.map_or(Ok(()), Err)
    }

    fn get_many_blocking(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, BulkError> {
        let mut conn = self.take()?;
        let mut cmd = Vec::with_capacity(16 + keys.iter().map(|k| k.len() + 16).sum::<usize>());
        cmd.extend_from_slice(format!("*{}\r\n", keys.len() + 1).as_bytes());
        bulk(&mut cmd, b"MGET");
        for k in keys {
            bulk(&mut cmd, k.as_bytes());
        }
        conn.get_mut().write_all(&cmd)?;
        let header = read_line(&mut conn)?;
        let n = match header.strip_prefix('*') {
            Some(n) => n.parse::<usize>().map_err(|_| protocol(&header))?,
            None => return Err(reply_error(&header)),
        };
        if n != keys.len() {
            return Err(protocol(&header));
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(read_bulk(&mut conn)?);
        }
        self.give_back(conn);
        Ok(values)
    }
}

/// Runs `call` on the blocking pool; a panic there is a broken connection to the caller (the retry opens another).
async fn off_thread<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, BulkError> + Send + 'static,
) -> Result<T, BulkError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| BulkError::Io(io::Error::other(format!("the store call's thread: {e}"))))?
}

fn bulk(out: &mut Vec<u8>, arg: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
    out.extend_from_slice(arg);
    out.extend_from_slice(b"\r\n");
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        bulk(out, a);
    }
}

fn protocol(line: &str) -> BulkError {
    BulkError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply {line:?}"),
    ))
}

fn reply_error(line: &str) -> BulkError {
    match line.strip_prefix('-') {
        Some(msg) => BulkError::Server(msg.to_string()),
        None => protocol(line),
    }
}

/// One reply line without its CRLF.
fn read_line(conn: &mut Conn) -> Result<String, BulkError> {
    let mut line = Vec::with_capacity(32);
    let n = conn.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed").into());
    }
    if !line.ends_with(b"\r\n") {
        return Err(protocol(&String::from_utf8_lossy(&line)));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| protocol(&String::from_utf8_lossy(e.as_bytes())))
}

/// A `+OK`-style reply; an error reply becomes `BulkError::Server`.
fn read_simple(conn: &mut Conn) -> Result<(), BulkError> {
    let line = read_line(conn)?;
    if line.starts_with('+') {
        Ok(())
    } else {
        Err(reply_error(&line))
    }
}

/// A bulk string reply (`$len` then the bytes), `None` for `$-1`.
fn read_bulk(conn: &mut Conn) -> Result<Option<Bytes>, BulkError> {
    let line = read_line(conn)?;
    let Some(len) = line.strip_prefix('$') else {
        return Err(reply_error(&line));
    };
    if len == "-1" {
        return Ok(None);
    }
    let len: usize = len.parse().map_err(|_| protocol(&line))?;
    // `read_to_end` through `take` fills the reserved capacity straight from the socket (no zeroing pass over a
    // multi-MiB buffer) and never reads past this reply.
    let mut buf = Vec::with_capacity(len + 2);
    conn.by_ref().take(len as u64 + 2).read_to_end(&mut buf)?;
    if buf.len() < len + 2 {
        return Err(
            io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-value").into(),
        );
    }
    if !buf.ends_with(b"\r\n") {
        return Err(protocol("bulk value without its CRLF"));
    }
    buf.truncate(len);
    Ok(Some(Bytes::from(buf)))
}
