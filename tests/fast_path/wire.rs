//! Raw HTTP/1.1 over one stream (TCP, or TLS on the client side of the
//! HTTPS scenarios) with a read buffer that persists
//! between messages (so pipelined messages are never lost): heads,
//! Content-Length, chunked (extensions, trailers) and close-delimited
//! bodies. The test client and the scripted backend both read with it; the
//! client side also turns what it read into a normalised transcript.
//!
//! Reads here are not bounded themselves: every caller wraps a connection's
//! whole exchange in a timeout (the backend's tasks are aborted with it).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// A `Date` value the backend sends in some responses: kept as is in
/// transcripts (every other `date` value is masked).
pub const BACKEND_DATE: &str = "Tue, 01 Jan 2030 00:00:00 GMT";

/// How long a connection must stay silent after its last expected response
/// to count as open.
const OPEN_PROBE: Duration = Duration::from_millis(300);

/// One message head: its first line and its fields as sent.
#[derive(Debug, Clone)]
pub struct Head {
    pub start: String,
    pub fields: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Result<Head, String> {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let start = lines.next().unwrap_or_default().to_string();
        let mut fields = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("field without a colon: {line:?}"))?;
            fields.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Head { start, fields })
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn length(&self) -> Result<Option<usize>, String> {
        self.get("content-length")
            .map(|v| v.parse().map_err(|_| format!("bad content-length {v:?}")))
            .transpose()
    }

    /// The fields as a sorted multiset of `name: value` with lowercased
    /// names, each value passed through `mask`.
    pub fn normalised(&self, mask: impl Fn(&str, &str) -> String) -> Vec<String> {
        let mut v: Vec<String> = self
            .fields
            .iter()
            .map(|(k, val)| {
                let k = k.to_ascii_lowercase();
                let val = mask(&k, val);
                format!("{k}: {val}")
            })
            .collect();
        v.sort();
        v
    }
}

/// How a response body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length,
    Chunked,
    Close,
}

/// A connection with its read buffer.
pub struct Wire<S = TcpStream> {
    s: S,
    buf: Vec<u8>,
    eof: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub fn new(s: S) -> Wire<S> {
        Wire {
            s,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Reads what the peer sent next into the buffer: the count, 0 at EOF.
    pub async fn fill(&mut self) -> Result<usize, String> {
        if self.eof {
            return Ok(0);
        }
        let mut tmp = [0u8; 16384];
        let n = self
            .s
            .read(&mut tmp)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// The next head, or `None` at EOF between messages.
    pub async fn head(&mut self) -> Result<Option<Head>, String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..i + 4).collect();
                return Head::parse(&raw).map(Some);
            }
            if self.fill().await? == 0 {
                return match self.buf.is_empty() {
                    true => Ok(None),
                    false => Err(format!("EOF inside a head: {:?}", lossy(&self.buf))),
                };
            }
        }
    }

    async fn line(&mut self) -> Result<String, String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let raw: Vec<u8> = self.buf.drain(..i + 2).collect();
                return Ok(lossy(&raw[..i]));
            }
            if self.fill().await? == 0 {
                return Err("EOF inside a line".into());
            }
        }
    }

    async fn take(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            if self.fill().await? == 0 {
                return Err(format!("EOF after {} of {n} bytes", self.buf.len()));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// A chunked body: the de-chunked bytes and the trailer lines.
    async fn chunked(&mut self) -> Result<(Vec<u8>, Vec<String>), String> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size =
                usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let t = self.line().await?;
                    if t.is_empty() {
                        return Ok((body, trailers));
                    }
                    trailers.push(t.to_ascii_lowercase());
                }
            }
            body.extend(self.take(size).await?);
            if self.take(2).await? != b"\r\n" {
                return Err("chunk data not followed by CRLF".into());
            }
        }
    }

    /// Everything up to EOF (a read error ends it too).
    async fn rest(&mut self) -> Vec<u8> {
        while let Ok(n) = self.fill().await {
            if n == 0 {
                break;
            }
        }
        self.eof = true;
        std::mem::take(&mut self.buf)
    }

    /// A request body as the backend reads it (chunked, length or none).
    pub async fn request_body(&mut self, head: &Head) -> Result<Vec<u8>, String> {
        if head.chunked() {
            return self.chunked().await.map(|(body, _)| body);
        }
        match head.length()? {
            Some(n) => self.take(n).await,
            None => Ok(Vec::new()),
        }
    }

    /// One response and its body, as the client reads it.
    pub async fn response(&mut self, head_request: bool) -> Result<Got, String> {
        let head = self
            .head()
            .await?
            .ok_or("EOF before a response head".to_string())?;
        let status: u16 = head
            .start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {:?}", head.start))?;
        let (framing, body, trailers) =
            if head_request || status < 200 || status == 204 || status == 304 {
                (Framing::None, Vec::new(), Vec::new())
            } else if head.chunked() {
                let (body, trailers) = self.chunked().await?;
                (Framing::Chunked, body, trailers)
            } else if let Some(n) = head.length()? {
                (Framing::Length, self.take(n).await?, Vec::new())
            } else {
                (Framing::Close, self.rest().await, Vec::new())
            };
        Ok(Got {
            status,
            head,
            framing,
            body,
            trailers,
        })
    }

    /// Whether the peer keeps the connection open after everything
    /// expected was read: `open`, `closed`, or the unexpected bytes.
    pub async fn end_state(&mut self) -> String {
        if !self.buf.is_empty() {
            return format!("unexpected bytes {:?}", lossy(&self.buf));
        }
        if self.eof {
            return "closed".into();
        }
        match tokio::time::timeout(OPEN_PROBE, self.fill()).await {
            Err(_) => "open".into(),
            Ok(Ok(0)) | Ok(Err(_)) => "closed".into(),
            Ok(Ok(_)) => format!("unexpected bytes {:?}", lossy(&self.buf)),
        }
    }
}

/// A response the client read.
#[derive(Debug, Clone)]
pub struct Got {
    pub status: u16,
    pub head: Head,
    pub framing: Framing,
    pub body: Vec<u8>,
    pub trailers: Vec<String>,
}

impl Got {
    /// One comparable line: status line, framing, sorted fields (`date`
    /// masked unless it is the backend's), body, trailers.
    pub fn transcript(&self) -> String {
        let fields = self.head.normalised(|k, v| match (k, v) {
            ("date", v) if v != BACKEND_DATE => "<date>".into(),
            _ => v.to_string(),
        });
        format!(
            "{} | {:?} | {} | body {:?} | trailers {:?}",
            self.head.start,
            self.framing,
            fields.join(" ; "),
            lossy(&self.body),
            self.trailers
        )
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
