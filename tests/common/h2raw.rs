//! A raw HTTP/2 client for attack tests: frames are written byte by byte
//! (a 9-byte header and a payload, RFC 9113 §4.1), header blocks are HPACK
//! literals without Huffman coding (RFC 7541 §6.2.2), so a test can send
//! what no well-behaved client library would: floods of control frames,
//! CONTINUATION chains, pseudo-header violations. A background task reads
//! the server's frames, so the server is never blocked on writing to us
//! unless a test asks for that ([`H2Raw::connect_unread`]).

// Test scaffolding: a lock on the frames seen is fine.
#![allow(clippy::disallowed_types)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const STREAM_CLOSED: u32 = 0x5;
pub const REFUSED_STREAM: u32 = 0x7;
pub const CANCEL: u32 = 0x8;
pub const COMPRESSION_ERROR: u32 = 0x9;
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The name of an error code, for messages.
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        _ => "other",
    }
}

/// One frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix; `first` holds the pattern bits.
fn hpack_int(first: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header field as an HPACK literal without indexing, new name, no
/// Huffman: the bytes on the wire are the bytes given.
pub fn hpack_literal(name: &str, value: &str, out: &mut Vec<u8>) {
    out.push(0x00);
    hpack_int(0x00, 7, name.len(), out);
    out.extend_from_slice(name.as_bytes());
    hpack_int(0x00, 7, value.len(), out);
    out.extend_from_slice(value.as_bytes());
}

/// A header block of `fields`, in order (pseudo-headers included).
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        hpack_literal(name, value, &mut out);
    }
    out
}

/// A plain GET's header block for `authority` and `path`, then `extra`.
pub fn get_block(authority: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
    ];
    fields.extend_from_slice(extra);
    header_block(&fields)
}

/// A frame the server sent.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A GOAWAY's (last stream id, error code).
    pub fn goaway(&self) -> Option<(u32, u32)> {
        if self.kind != GOAWAY || self.payload.len() < 8 {
            return None;
        }
        let last = u32::from_be_bytes(self.payload[0..4].try_into().ok()?) & 0x7fff_ffff;
        let code = u32::from_be_bytes(self.payload[4..8].try_into().ok()?);
        Some((last, code))
    }

    /// A RST_STREAM's error code.
    pub fn reset(&self) -> Option<u32> {
        (self.kind == RST_STREAM && self.payload.len() == 4)
            .then(|| u32::from_be_bytes(self.payload[0..4].try_into().unwrap()))
    }

    /// A response HEADERS frame's status, when the server encoded it with
    /// an HPACK static-table index (200, 204, 206, 304, 400, 404, 500), or
    /// as a literal with the `:status` name index and a plain value.
    pub fn status(&self) -> Option<u16> {
        if self.kind != HEADERS {
            return None;
        }
        let first = *self.payload.first()?;
        let indexed = match first {
            0x88 => Some(200),
            0x89 => Some(204),
            0x8a => Some(206),
            0x8b => Some(304),
            0x8c => Some(400),
            0x8d => Some(404),
            0x8e => Some(500),
            _ => None,
        };
        if indexed.is_some() {
            return indexed;
        }
        // Literal with (0x48) or without (0x08) indexing, name index 8.
        if first == 0x48 || first == 0x08 {
            let len = *self.payload.get(1)?;
            if len & 0x80 == 0 && len == 3 {
                return std::str::from_utf8(self.payload.get(2..5)?)
                    .ok()?
                    .parse()
                    .ok();
            }
            if len & 0x80 != 0 {
                return huffman_status(self.payload.get(2..2 + (len & 0x7f) as usize)?);
            }
        }
        None
    }
}

/// Decodes a Huffman-coded three-digit status (digits 0-9 have 5- or
/// 6-bit codes in RFC 7541 Appendix B).
fn huffman_status(bytes: &[u8]) -> Option<u16> {
    const CODES: [(u32, u32); 10] = [
        (0x0, 5),
        (0x1, 5),
        (0x2, 5),
        (0x19, 6),
        (0x1a, 6),
        (0x1b, 6),
        (0x1c, 6),
        (0x1d, 6),
        (0x1e, 6),
        (0x1f, 6),
    ];
    let mut bits: u64 = 0;
    for b in bytes {
        bits = (bits << 8) | u64::from(*b);
    }
    let mut avail = bytes.len() as u32 * 8;
    let mut digits = 0u16;
    for _ in 0..3 {
        let digit = CODES.iter().position(|(code, len)| {
            avail >= *len && ((bits >> (avail - len)) & ((1 << len) - 1)) as u32 == *code
        })?;
        let (_, len) = CODES[digit];
        avail -= len;
        digits = digits * 10 + digit as u16;
    }
    Some(digits)
}

/// What the reader task saw.
#[derive(Debug, Default)]
struct Seen {
    frames: Vec<Frame>,
    closed: bool,
}

/// A raw HTTP/2 connection (prior knowledge, h2c).
pub struct H2Raw {
    write: OwnedWriteHalf,
    seen: Arc<Mutex<Seen>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for H2Raw {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl H2Raw {
    /// Connects, sends the preface and an empty SETTINGS frame, and reads
    /// everything the server sends in the background.
    pub async fn connect(addr: SocketAddr) -> H2Raw {
        Self::open(addr, true).await
    }

    /// Like [`H2Raw::connect`], but never reads: the server's writes back
    /// up into the socket buffers (for floods that make the server write).
    pub async fn connect_unread(addr: SocketAddr) -> H2Raw {
        Self::open(addr, false).await
    }

    async fn open(addr: SocketAddr, read: bool) -> H2Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        let (mut rd, mut write) = stream.into_split();
        let mut hello = PREFACE.to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        write.write_all(&hello).await.expect("preface");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let task_seen = seen.clone();
        let reader = tokio::spawn(async move {
            if !read {
                std::future::pending::<()>().await;
            }
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match rd.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut at = 0;
                while buf.len() >= at + 9 {
                    let len = u32::from_be_bytes([0, buf[at], buf[at + 1], buf[at + 2]]) as usize;
                    if buf.len() < at + 9 + len {
                        break;
                    }
                    let head = &buf[at..at + 9];
                    let f = Frame {
                        kind: head[3],
                        flags: head[4],
                        stream: u32::from_be_bytes(head[5..9].try_into().unwrap()) & 0x7fff_ffff,
                        payload: buf[at + 9..at + 9 + len].to_vec(),
                    };
                    task_seen.lock().unwrap().frames.push(f);
                    at += 9 + len;
                }
                buf.drain(..at);
            }
            task_seen.lock().unwrap().closed = true;
        });
        H2Raw {
            write,
            seen,
            reader,
        }
    }

    /// Writes bytes; an error means the server closed the connection.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.write.write_all(bytes).await
    }

    /// Writes bytes, bounded by `limit`: `Ok(false)` when the server stopped
    /// reading (the write did not complete in time).
    pub async fn send_within(&mut self, bytes: &[u8], limit: Duration) -> std::io::Result<bool> {
        match tokio::time::timeout(limit, self.write.write_all(bytes)).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// The frames received so far.
    pub fn frames(&self) -> Vec<Frame> {
        self.seen.lock().unwrap().frames.clone()
    }

    /// Whether the server closed the connection (EOF or reset).
    pub fn closed(&self) -> bool {
        self.seen.lock().unwrap().closed
    }

    /// The first GOAWAY received: (last stream id, error code).
    pub fn goaway(&self) -> Option<(u32, u32)> {
        self.seen
            .lock()
            .unwrap()
            .frames
            .iter()
            .find_map(Frame::goaway)
    }

    /// How many frames of `kind` with `flags` set arrived.
    pub fn count(&self, kind: u8, flags: u8) -> usize {
        self.seen
            .lock()
            .unwrap()
            .frames
            .iter()
            .filter(|f| f.kind == kind && f.flags & flags == flags)
            .count()
    }

    /// Waits until `pred` holds for the frames seen (and whether the
    /// connection closed), bounded by `limit`; returns whether it held.
    pub async fn wait_for<F: Fn(&[Frame], bool) -> bool>(&self, limit: Duration, pred: F) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            {
                let seen = self.seen.lock().unwrap();
                if pred(&seen.frames, seen.closed) {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits for a GOAWAY or the connection's end, bounded by `limit`.
    pub async fn wait_goaway_or_close(&self, limit: Duration) -> Option<(u32, u32)> {
        self.wait_for(limit, |frames, closed| {
            closed || frames.iter().any(|f| f.kind == GOAWAY)
        })
        .await;
        self.goaway()
    }

    /// The responses to `stream`: its status (if a HEADERS came) and its
    /// reset code (if a RST_STREAM came).
    pub fn stream_outcome(&self, stream: u32) -> (Option<u16>, Option<u32>) {
        let seen = self.seen.lock().unwrap();
        let of = || seen.frames.iter().filter(|f| f.stream == stream);
        (of().find_map(Frame::status), of().find_map(Frame::reset))
    }

    /// Waits until `stream` got a response HEADERS or a RST_STREAM (or the
    /// connection ended), bounded by `limit`.
    pub async fn wait_stream(&self, stream: u32, limit: Duration) -> (Option<u16>, Option<u32>) {
        self.wait_for(limit, |frames, closed| {
            closed
                || frames
                    .iter()
                    .any(|f| f.stream == stream && (f.kind == HEADERS || f.kind == RST_STREAM))
                || frames.iter().any(|f| f.kind == GOAWAY)
        })
        .await;
        self.stream_outcome(stream)
    }
}
