//! The access log: one line per request, formatted on the worker that
//! served it into a reused per-thread buffer, and written to stdout by a
//! writer thread of its own.
//!
//! Invariants:
//! - The request path formats straight into the thread's buffer (no
//!   `tracing`, no per-line allocation) and hands whole buffers to the
//!   writer: when one passes [`FLUSH_AT`] bytes, and when the worker's
//!   runtime goes idle ([`flush`] from its park hook), so a quiet proxy
//!   logs at once and a busy one writes large batches.
//! - The hand-off never blocks a worker: the writer's queue is bounded
//!   ([`QUEUE`] batches); when stdout cannot keep up and the queue is full,
//!   the batch is dropped and every line in it is counted in
//!   `tollgate_access_log_dropped_total`. Nothing is dropped silently.
//! - Buffers go back to their worker after writing, so a steady state
//!   allocates nothing.
//! - Lines are whole when written: a batch is one `write_all` under the
//!   stdout lock, which the rest of the process's logging shares.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;

pub mod format;
pub mod num;
pub mod time;

pub use format::{Format, Line, Template, TemplateError};

/// A thread's buffer is handed to the writer past this many bytes.
pub const FLUSH_AT: usize = 32 * 1024;

/// Batches waiting for the writer at most (beyond them, batches are dropped
/// and counted).
pub const QUEUE: usize = 256;

/// How the access log is configured (from flags), fixed at start.
#[derive(Debug)]
pub struct Config {
    pub format: Format,
    /// Paths never logged: exact, or a prefix when ending in `*`.
    pub skip: Vec<String>,
}

impl Config {
    /// Whether requests to `path` are logged (the skip list).
    #[inline]
    pub fn logs(&self, path: &str) -> bool {
        !self.skip.iter().any(|s| match s.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == s,
        })
    }
}

enum Message {
    Batch {
        buf: Vec<u8>,
        back: Sender<Vec<u8>>,
    },
    /// Everything sent before has been written; acknowledge.
    Sync(Sender<()>),
}

struct Writer {
    config: Config,
    queue: SyncSender<Message>,
    dropped: Counter,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

/// One worker's buffer, and where its written buffers come back.
struct Local {
    buf: Vec<u8>,
    lines: u64,
    spare: Receiver<Vec<u8>>,
    back: Sender<Vec<u8>>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

/// Starts the writer thread (once per process); later calls are ignored.
/// `dropped` counts lines dropped when the writer falls behind.
pub fn install(config: Config, dropped: Counter) -> std::io::Result<()> {
    let (queue, rx) = mpsc::sync_channel::<Message>(QUEUE);
    std::thread::Builder::new()
        .name("tollgate-access-log".into())
        .spawn(move || write_loop(rx, &mut std::io::stdout()))?;
    let _ = WRITER.set(Writer {
        config,
        queue,
        dropped,
    });
    Ok(())
}

fn write_loop(rx: Receiver<Message>, out: &mut std::io::Stdout) {
    while let Ok(message) = rx.recv() {
        match message {
            Message::Batch { mut buf, back } => {
                let mut lock = out.lock();
                // A closed stdout loses the lines; nothing else can be done.
                let _ = lock.write_all(&buf).and_then(|()| lock.flush());
                drop(lock);
                buf.clear();
                let _ = back.send(buf);
            }
            Message::Sync(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// The access-log configuration, when the log is on.
#[inline]
pub fn config() -> Option<&'static Config> {
    WRITER.get().map(|w| &w.config)
}

/// Formats one line into this thread's buffer (see the module invariants).
pub fn write(line: &Line<'_>) {
    let Some(writer) = WRITER.get() else {
        return;
    };
    LOCAL.with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        let local = local.get_or_insert_with(|| {
            let (back, spare) = mpsc::channel();
            Local {
                buf: Vec::with_capacity(FLUSH_AT + 4096),
                lines: 0,
                spare,
                back,
            }
        });
        writer.config.format.write(&mut local.buf, line);
        local.lines += 1;
        if local.buf.len() >= FLUSH_AT {
            hand_off(writer, local);
        }
    });
}

/// Hands this thread's buffered lines to the writer (a worker's park hook
/// calls it when the worker goes idle, and every thread at shutdown).
pub fn flush() {
    let Some(writer) = WRITER.get() else {
        return;
    };
    LOCAL.with(|local| {
        if let Ok(mut local) = local.try_borrow_mut() {
            if let Some(local) = local.as_mut() {
                hand_off(writer, local);
            }
        }
    });
}

fn hand_off(writer: &Writer, local: &mut Local) {
    if local.buf.is_empty() {
        return;
    }
    let next = local
        .spare
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(FLUSH_AT + 4096));
    let buf = std::mem::replace(&mut local.buf, next);
    let lines = std::mem::take(&mut local.lines);
    let message = Message::Batch {
        buf,
        back: local.back.clone(),
    };
    match writer.queue.try_send(message) {
        Ok(()) => {}
        Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) => {
            writer.dropped.inc_by(lines);
            if let Message::Batch { mut buf, .. } = m {
                buf.clear();
                let _ = local.back.send(buf);
            }
        }
    }
}

/// Waits (bounded) until every batch handed off so far is written: at
/// shutdown, after the workers flushed.
pub fn sync(timeout: Duration) {
    let Some(writer) = WRITER.get() else {
        return;
    };
    let (ack, done) = mpsc::channel();
    if writer.queue.send(Message::Sync(ack)).is_ok() {
        let _ = done.recv_timeout(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_list_exact_and_prefix() {
        let config = Config {
            format: Format::Json,
            skip: vec!["/healthz".into(), "/internal/*".into()],
        };
        assert!(!config.logs("/healthz"));
        assert!(config.logs("/healthz/x"));
        assert!(!config.logs("/internal/a"));
        assert!(config.logs("/other"));
    }
}
