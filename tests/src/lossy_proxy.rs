//! A TCP proxy in front of a server that can lose one reply: armed with a pattern, it forwards the next request
//! containing that pattern, waits for the server to have run it, and then closes the client's connection without
//! passing the reply on. That is what a dropped link (a `CLIENT KILL`, a NAT timeout, a failover) does to a client
//! at the worst moment: the command took effect, but the client cannot know. Every other byte passes unchanged.
//!
//! It runs on its own thread with its own tokio runtime, so tests on any runtime flavour can use it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long the proxy lets the server run the request before it drops the connection (the reply is on its way
/// back by then, and is thrown away).
const LET_IT_RUN: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Trap {
    pattern: Option<Vec<u8>>,
    sprung: usize,
}

/// The running proxy; it stops with the process (tests are short-lived).
pub struct LossyProxy {
    addr: SocketAddr,
    trap: Arc<Mutex<Trap>>,
}

impl LossyProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> LossyProxy {
        let upstream = upstream.to_string();
        let trap = Arc::new(Mutex::new(Trap::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = trap.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
                tx.send(listener.local_addr().expect("proxy address"))
                    .expect("proxy start");
                while let Ok((client, _)) = listener.accept().await {
                    let (upstream, trap) = (upstream.clone(), shared.clone());
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&upstream).await {
                            relay(client, server, trap).await;
                        }
                    });
                }
            });
        });
        let addr = rx.recv().expect("proxy address");
        LossyProxy { addr, trap }
    }

    /// `host:port` of the proxy.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Loses the reply to the next request that contains `pattern` (once).
    pub fn lose_next_reply_to(&self, pattern: &str) {
        self.trap.lock().expect("trap").pattern = Some(pattern.as_bytes().to_vec());
    }

    /// How many replies it has lost so far.
    pub fn replies_lost(&self) -> usize {
        self.trap.lock().expect("trap").sprung
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Copies both ways until either side closes, or until the trap springs on a request.
async fn relay(client: TcpStream, server: TcpStream, trap: Arc<Mutex<Trap>>) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let replies = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let springs = {
            let mut t = trap.lock().expect("trap");
            let hit = t.pattern.as_deref().is_some_and(|p| contains(&buf[..n], p));
            if hit {
                t.pattern = None;
                t.sprung += 1;
            }
            hit
        };
        if springs {
            // Stop passing replies first, so that none of this request's reply reaches the client.
            replies.abort();
            if server_tx.write_all(&buf[..n]).await.is_ok() {
                tokio::time::sleep(LET_IT_RUN).await;
            }
            return; // dropping both halves closes both connections
        }
        if server_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    replies.abort();
}
