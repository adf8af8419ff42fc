//! A raw-socket backend on 127.0.0.1:0 that records every request it
//! receives (head and body, with the number of the upstream connection it
//! came on) and answers with the raw bytes a script picks by request path.
//!
//! Its accept loop owns the connection tasks (a `JoinSet`), so dropping
//! the backend aborts all of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::wire::{Head, Wire};

/// What the backend does with one request.
pub enum Action {
    /// Writes these bytes and reads the next request.
    Reply(Vec<u8>),
    /// Writes these bytes and closes the connection.
    ReplyClose(Vec<u8>),
    /// Writes these bytes, then closes the connection once it has been
    /// idle this long (as a backend's keep-alive timeout does).
    ReplyIdleClose(Duration, Vec<u8>),
    /// Closes the connection without answering.
    Close,
    /// Waits, then writes these bytes and closes.
    Delay(Duration, Vec<u8>),
}

/// Picks the action for a request path (without its query).
pub type Script = fn(&str) -> Action;

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Number of the upstream connection (in accept order, from 0).
    pub conn: usize,
    pub head: Head,
    pub body: Vec<u8>,
}

pub struct ScriptedBackend {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicUsize>,
    /// `accepted` at the last [`ScriptedBackend::take`].
    marker: AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedBackend {
    pub async fn start(script: Script) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (seen2, accepted2) = (seen.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let conn = accepted2.fetch_add(1, Ordering::SeqCst);
                conns.spawn(serve(Wire::new(stream), conn, script, seen2.clone()));
            }
        });
        ScriptedBackend {
            port,
            seen,
            accepted,
            marker: AtomicUsize::new(0),
            task,
        }
    }

    /// The requests received since the last call, their connections
    /// renumbered in order of first appearance (so two runs compare however
    /// many connections came before), and the connections accepted since.
    pub fn take(&self) -> (Vec<Seen>, usize) {
        let mut seen: Vec<Seen> = std::mem::take(&mut *self.seen.lock().unwrap());
        let now = self.accepted.load(Ordering::SeqCst);
        let accepted = now - self.marker.swap(now, Ordering::SeqCst);
        let mut order: Vec<usize> = Vec::new();
        for s in &mut seen {
            s.conn = match order.iter().position(|c| *c == s.conn) {
                Some(i) => i,
                None => {
                    order.push(s.conn);
                    order.len() - 1
                }
            };
        }
        (seen, accepted)
    }
}

async fn serve(mut wire: Wire, conn: usize, script: Script, seen: Arc<Mutex<Vec<Seen>>>) {
    loop {
        let Ok(Some(head)) = wire.head().await else {
            return;
        };
        let Ok(body) = wire.request_body(&head).await else {
            return;
        };
        let target = head.start.split(' ').nth(1).unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_string();
        seen.lock().unwrap().push(Seen { conn, head, body });
        match script(&path) {
            Action::Reply(bytes) => {
                if wire.send(&bytes).await.is_err() {
                    return;
                }
            }
            Action::ReplyClose(bytes) => {
                let _ = wire.send(&bytes).await;
                return;
            }
            Action::ReplyIdleClose(idle, bytes) => {
                if wire.send(&bytes).await.is_err() {
                    return;
                }
                // Serve a request that comes within `idle`, else close.
                match tokio::time::timeout(idle, wire.fill()).await {
                    Ok(Ok(n)) if n > 0 => continue,
                    _ => return,
                }
            }
            Action::Close => return,
            Action::Delay(wait, bytes) => {
                tokio::time::sleep(wait).await;
                let _ = wire.send(&bytes).await;
                return;
            }
        }
    }
}
