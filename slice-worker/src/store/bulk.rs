//! Tensor traffic (SET / MGET of values up to many MiB) over plain RESP2 connections of our own.
//!
//! Why: measured here, `redis-rs` moved 4 MiB values at about half of `redis-benchmark`'s SET rate. It copies a
//! value twice before it reaches the socket (into the command's argument buffer, then into the packed command) and
//! parses replies through a generic value tree. This path writes the RESP header and then the value straight from
//! its `Bytes`, pipelines a whole `put_many`, and reads a bulk reply into one buffer of the announced length.
//!
//! Scope: plain TCP only (a `rediss://` store keeps using `redis-rs`, which brings TLS), one command pipeline per
//! borrowed connection, a small pool of idle connections, AUTH and SELECT from the URL. A connection that saw an
//! error is dropped, never reused half-read.

use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How many idle connections the pool keeps.
const IDLE: usize = 16;

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
    ) -> Option<BulkPool> {
        let redis::ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        Some(BulkPool {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_string),
            password: settings.password().map(str::to_string),
            db: settings.db(),
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn connect(&self) -> Result<Conn, BulkError> {
        let addr = (self.host.as_str(), self.port);
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
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
            conn.get_mut().write_all(&hello).await?;
            let replies = usize::from(self.password.is_some()) + usize::from(self.db != 0);
            for _ in 0..replies {
                read_simple(&mut conn).await?;
            }
        }
        Ok(conn)
    }

    async fn take(&self) -> Result<Conn, BulkError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => self.connect().await,
        }
    }

    /// Drops every idle connection: after one broke (a server restart, a dropped link) the others most likely did
    /// too, and a retry must not pick them up one failure at a time.
    pub(super) fn forget_idle(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }

    /// `SET key value PX ttl` for every item, pipelined.
    pub(super) async fn set_many(
        &self,
        items: &[(String, Bytes)],
        ttl_ms: u64,
    ) -> Result<(), BulkError> {
        let mut conn = self.take().await?;
        let ttl = ttl_ms.to_string();
        for (key, value) in items {
            let mut head = Vec::with_capacity(64 + key.len());
            head.extend_from_slice(b"*5\r\n$3\r\nSET\r\n");
            bulk(&mut head, key.as_bytes());
            head.extend_from_slice(format!("${}\r\n", value.len()).as_bytes());
            let stream = conn.get_mut();
            stream.write_all(&head).await?;
            stream.write_all(value).await?;
            let mut tail = Vec::with_capacity(32);
            tail.extend_from_slice(b"\r\n");
            bulk(&mut tail, b"PX");
            bulk(&mut tail, ttl.as_bytes());
            stream.write_all(&tail).await?;
        }
        let mut first_error = None;
        for _ in items {
            if let Err(e) = read_simple(&mut conn).await {
                match e {
                    BulkError::Server(_) => first_error = first_error.or(Some(e)),
                    BulkError::Io(_) => return Err(e),
                }
            }
        }
        self.give_back(conn);
        first_error.map_or(Ok(()), Err)
    }

    /// `MGET keys…`: each value or `None`.
    pub(super) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>, BulkError> {
        let mut conn = self.take().await?;
        let mut cmd = Vec::with_capacity(16 + keys.iter().map(|k| k.len() + 16).sum::<usize>());
        cmd.extend_from_slice(format!("*{}\r\n", keys.len() + 1).as_bytes());
        bulk(&mut cmd, b"MGET");
        for k in keys {
            bulk(&mut cmd, k.as_bytes());
        }
        conn.get_mut().write_all(&cmd).await?;
        let header = read_line(&mut conn).await?;
        let n = match header.strip_prefix('*') {
            Some(n) => n.parse::<usize>().map_err(|_| protocol(&header))?,
            None => return Err(reply_error(&header)),
        };
        if n != keys.len() {
            return Err(protocol(&header));
        }
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(read_bulk(&mut conn).await?);
        }
        self.give_back(conn);
        Ok(values)
    }
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
async fn read_line(conn: &mut Conn) -> Result<String, BulkError> {
    let mut line = Vec::with_capacity(32);
    let n = conn.read_until(b'\n', &mut line).await?;
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
async fn read_simple(conn: &mut Conn) -> Result<(), BulkError> {
    let line = read_line(conn).await?;
    if line.starts_with('+') {
        Ok(())
    } else {
        Err(reply_error(&line))
    }
}

/// A bulk string reply (`$len` then the bytes), `None` for `$-1`.
async fn read_bulk(conn: &mut Conn) -> Result<Option<Bytes>, BulkError> {
    let line = read_line(conn).await?;
    let Some(len) = line.strip_prefix('$') else {
        return Err(reply_error(&line));
    };
    if len == "-1" {
        return Ok(None);
    }
    let len: usize = len.parse().map_err(|_| protocol(&line))?;
    // Read into uninitialised capacity (no zeroing pass over a multi-MiB buffer), never past this reply.
    let mut buf = BytesMut::with_capacity(len + 2);
    let mut limited = (&mut *conn).take(len as u64 + 2);
    while buf.len() < len + 2 {
        if limited.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-value",
            )
            .into());
        }
    }
    if !buf.ends_with(b"\r\n") {
        return Err(protocol("bulk value without its CRLF"));
    }
    buf.truncate(len);
    Ok(Some(buf.freeze()))
}
