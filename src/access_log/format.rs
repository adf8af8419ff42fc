//! Access-log line formats: the JSON object, and text templates with
//! nginx-style `$variable` placeholders (ingress-nginx's
//! `log-format-upstream` variables tollgate can provide, plus a few of
//! its own), compiled once at start into a list of pieces.
//!
//! Invariants:
//! - A template is parsed once ([`Template::parse`]); an unknown variable
//!   is a start-up error naming it, never an empty field at run time.
//! - Writing a line appends to the caller's buffer: no allocation, no
//!   per-request parsing.
//! - Values from the request (headers, target) are escaped: in text as
//!   nginx does (`"`, `\`, control and non-ASCII bytes as `\xHH`), in JSON
//!   as JSON strings; a line never contains a raw newline.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::num;
use super::time::{write_iso8601_at, write_local_at};
use crate::nginx_vars::Segment;

/// ingress-nginx's default `log-format-upstream` (`upstreaminfo`).
pub const UPSTREAMINFO: &str = "$remote_addr - $remote_user [$time_local] \"$request\" \
$status $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_length $request_time \
[$proxy_upstream_name] [$proxy_alternative_upstream_name] $upstream_addr \
$upstream_response_length $upstream_response_time $upstream_status $req_id";

/// Bytes reserved before a line is written (a longer line grows the
/// buffer as it goes).
const LINE_ROOM: usize = 1024;

/// A value written into a line as text: anything `Display` (through the
/// formatting machinery), or a type of the request path that writes its
/// bytes straight into the buffer (an endpoint's `a.b.c.d:port`).
pub trait Text {
    fn write_text(&self, out: &mut Vec<u8>);
}

impl<T: std::fmt::Display + ?Sized> Text for T {
    fn write_text(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{self}");
    }
}

/// What one line is made of (borrowed from the finished request).
#[derive(Clone)]
pub struct Line<'a> {
    pub time: SystemTime,
    pub remote_addr: IpAddr,
    pub request_id: &'a [u8],
    pub method: &'a str,
    /// The request target as received (path and query).
    pub target: &'a str,
    /// `HTTP/1.1`, `HTTP/2.0`...
    pub protocol: &'a str,
    pub scheme: &'a str,
    pub host: &'a [u8],
    pub status: u16,
    /// Request line, headers and declared body length.
    pub request_length: u64,
    /// Response headers and body.
    pub bytes_sent: u64,
    pub body_bytes_sent: u64,
    pub request_time: Duration,
    pub user_agent: &'a [u8],
    pub referer: &'a [u8],
    /// The endpoint that answered (an address, or `host:port`).
    pub upstream_addr: Option<&'a dyn Text>,
    pub upstream_status: Option<u16>,
    pub upstream_response_time: Option<Duration>,
    pub upstream_connect_time: Option<Duration>,
    /// `TLSv1.3`, `TLSv1.2`; `None` on plain HTTP.
    pub tls_version: Option<&'a str>,
    /// `Ingress`, `HTTPRoute` or `GRPCRoute`; empty when unrouted.
    pub route_kind: &'a str,
    /// `namespace/name` of the Ingress or route; empty when unrouted.
    pub route: &'a str,
    /// `namespace/service:port`.
    pub service: &'a str,
    /// The canary's backend served the request.
    pub canary: bool,
}

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    RemoteAddr,
    RemoteUser,
    TimeLocal,
    TimeIso8601,
    Msec,
    Request,
    RequestMethod,
    RequestUri,
    Uri,
    Args,
    ServerProtocol,
    Scheme,
    Host,
    Status,
    BodyBytesSent,
    BytesSent,
    RequestLength,
    RequestTime,
    HttpReferer,
    HttpUserAgent,
    ProxyUpstreamName,
    ProxyAlternativeUpstreamName,
    UpstreamAddr,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamConnectTime,
    UpstreamResponseLength,
    ReqId,
    Namespace,
    IngressName,
    ServiceName,
    ServicePort,
    SslProtocol,
    RouteKind,
    Route,
    Canary,
}

/// Variable names, as written after `$`.
const VARS: &[(&str, Var)] = &[
    ("remote_addr", Var::RemoteAddr),
    ("proxy_protocol_addr", Var::RemoteAddr),
    ("remote_user", Var::RemoteUser),
    ("time_local", Var::TimeLocal),
    ("time_iso8601", Var::TimeIso8601),
    ("msec", Var::Msec),
    ("request", Var::Request),
    ("request_method", Var::RequestMethod),
    ("request_uri", Var::RequestUri),
    ("uri", Var::Uri),
    ("args", Var::Args),
    ("query_string", Var::Args),
    ("server_protocol", Var::ServerProtocol),
    ("scheme", Var::Scheme),
    ("host", Var::Host),
    ("http_host", Var::Host),
    ("status", Var::Status),
    ("body_bytes_sent", Var::BodyBytesSent),
    ("bytes_sent", Var::BytesSent),
    ("request_length", Var::RequestLength),
    ("request_time", Var::RequestTime),
    ("http_referer", Var::HttpReferer),
    ("http_user_agent", Var::HttpUserAgent),
    ("proxy_upstream_name", Var::ProxyUpstreamName),
    (
        "proxy_alternative_upstream_name",
        Var::ProxyAlternativeUpstreamName,
    ),
    ("upstream_addr", Var::UpstreamAddr),
    ("upstream_status", Var::UpstreamStatus),
    ("upstream_response_time", Var::UpstreamResponseTime),
    ("upstream_connect_time", Var::UpstreamConnectTime),
    ("upstream_response_length", Var::UpstreamResponseLength),
    ("req_id", Var::ReqId),
    ("request_id", Var::ReqId),
    ("namespace", Var::Namespace),
    ("ingress_name", Var::IngressName),
    ("service_name", Var::ServiceName),
    ("service_port", Var::ServicePort),
    ("ssl_protocol", Var::SslProtocol),
    ("route_kind", Var::RouteKind),
    ("route", Var::Route),
    ("canary", Var::Canary),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Var(Var),
}

/// A compiled text template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown access-log variable `${0}` (known: {1})")]
    UnknownVariable(String, String),
    #[error("`${{` without a closing `}}` in the access-log format")]
    Unclosed,
}

impl Template {
    /// Compiles `$name` and `${name}` placeholders; any other text is kept
    /// as is (a `$` not followed by a name too).
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        for segment in crate::nginx_vars::split(text).map_err(|_| TemplateError::Unclosed)? {
            let name = match segment {
                Segment::Literal(text) => {
                    literal.push_str(text);
                    continue;
                }
                // A `$` followed by no name is text.
                Segment::Var("") => {
                    literal.push('$');
                    continue;
                }
                Segment::Var(name) => name,
            };
            let var = VARS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .ok_or_else(|| {
                    let known: Vec<&str> = VARS.iter().map(|(n, _)| *n).collect();
                    TemplateError::UnknownVariable(name.to_string(), known.join(", "))
                })?;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Var(var));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Self { pieces })
    }

    /// Appends one line (with its newline).
    pub fn write(&self, out: &mut Vec<u8>, line: &Line<'_>) {
        // Room for a usual line at once: the pieces then never grow it.
        out.reserve(LINE_ROOM);
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Piece::Var(var) => write_var(out, *var, line),
            }
        }
        out.push(b'\n');
    }
}

/// The formats of a line.
#[derive(Debug, Clone)]
pub enum Format {
    /// One JSON object per line.
    Json,
    Text(Template),
}

impl Format {
    pub fn write(&self, out: &mut Vec<u8>, line: &Line<'_>) {
        match self {
            Format::Json => write_json(out, line),
            Format::Text(template) => template.write(out, line),
        }
    }
}

fn seconds(out: &mut Vec<u8>, d: Duration) {
    num::seconds_millis(out, d);
}

fn dash_or<T>(out: &mut Vec<u8>, value: Option<T>, f: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        Some(v) => f(out, v),
        None => out.push(b'-'),
    }
}

/// Whether `value` has a byte that a line must escape: a control or
/// non-ASCII byte, `"` or `\` (text and JSON escape the same set). Eight
/// bytes at a time; a match only sends the value down the byte-by-byte
/// path, which decides each byte itself.
#[inline]
fn needs_escape(value: &[u8]) -> bool {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    // A byte of `x` is zero (exact for "some byte is zero").
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let special = |x: u64| {
        // < 0x20 | >= 0x7f (0x7f + 1 and bytes >= 0x80 set the high bit;
        // a carry only reaches a byte that is itself flagged) | `"` | `\`.
        zero(x & u64::from_le_bytes([0xe0; 8]))
            | (x.wrapping_add(ONES) | x) & HIGH
            | zero(x ^ u64::from_le_bytes([b'"'; 8]))
            | zero(x ^ u64::from_le_bytes([b'\\'; 8]))
    };
    let mut chunks = value.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if special(u64::from_le_bytes(word)) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| !plain(b))
}

/// A byte copied as is (see [`needs_escape`]).
#[inline]
fn plain(b: u8) -> bool {
    b != b'"' && b != b'\\' && (0x20..0x7f).contains(&b)
}

/// nginx's default escaping of variable values.
#[inline]
fn escaped(out: &mut Vec<u8>, value: &[u8]) {
    // Most values need no escaping: one copy.
    if needs_escape(value) {
        escaped_slow(out, value);
    } else {
        out.extend_from_slice(value);
    }
}

fn escaped_slow(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value {
        if plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
    }
}

/// `-` for an empty value, as nginx logs unset variables.
fn escaped_or_dash(out: &mut Vec<u8>, value: &[u8]) {
    if value.is_empty() {
        out.push(b'-');
    } else {
        escaped(out, value);
    }
}

/// `upstream-<namespace>-<service>-<port>` from `namespace/service:port`.
fn upstream_name(out: &mut Vec<u8>, service: &str) {
    if service.is_empty() {
        return;
    }
    out.extend_from_slice(b"upstream-");
    // Runs between separators in one copy each (a name has two).
    let mut rest = service.as_bytes();
    while let Some(at) = rest.iter().position(|&b| b == b'/' || b == b':') {
        out.extend_from_slice(rest.get(..at).unwrap_or_default());
        out.push(b'-');
        rest = rest.get(at + 1..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
}

fn split_route(route: &str) -> (&str, &str) {
    route.split_once('/').unwrap_or(("", route))
}

fn split_service(service: &str) -> (&str, &str) {
    let (_, name_port) = split_route(service);
    name_port.rsplit_once(':').unwrap_or((name_port, ""))
}

fn write_var(out: &mut Vec<u8>, var: Var, line: &Line<'_>) {
    let split = || line.target.split_once('?').unwrap_or((line.target, ""));
    match var {
        Var::RemoteAddr => num::ip(out, line.remote_addr),
        Var::RemoteUser => out.push(b'-'),
        Var::TimeLocal => write_local_at(line.time, out),
        Var::TimeIso8601 => write_iso8601_at(line.time, out),
        Var::Msec => {
            let since = line
                .time
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            seconds(out, since);
        }
        Var::Request => {
            escaped(out, line.method.as_bytes());
            out.push(b' ');
            escaped(out, line.target.as_bytes());
            out.push(b' ');
            out.extend_from_slice(line.protocol.as_bytes());
        }
        Var::RequestMethod => escaped(out, line.method.as_bytes()),
        Var::RequestUri => escaped(out, line.target.as_bytes()),
        Var::Uri => escaped(out, split().0.as_bytes()),
        Var::Args => escaped_or_dash(out, split().1.as_bytes()),
        Var::ServerProtocol => out.extend_from_slice(line.protocol.as_bytes()),
        Var::Scheme => out.extend_from_slice(line.scheme.as_bytes()),
        Var::Host => escaped_or_dash(out, line.host),
        Var::Status => num::dec(out, u64::from(line.status)),
        Var::BodyBytesSent => num::dec(out, line.body_bytes_sent),
        Var::BytesSent => num::dec(out, line.bytes_sent),
        Var::RequestLength => num::dec(out, line.request_length),
        Var::RequestTime => seconds(out, line.request_time),
        Var::HttpReferer => escaped_or_dash(out, line.referer),
        Var::HttpUserAgent => escaped_or_dash(out, line.user_agent),
        Var::ProxyUpstreamName => {
            if !line.canary {
                upstream_name(out, line.service);
            }
        }
        Var::ProxyAlternativeUpstreamName => {
            if line.canary {
                upstream_name(out, line.service);
            }
        }
        Var::UpstreamAddr => dash_or(out, line.upstream_addr, |out, a| a.write_text(out)),
        Var::UpstreamStatus => dash_or(out, line.upstream_status, |out, s| {
            num::dec(out, u64::from(s));
        }),
        Var::UpstreamResponseTime => dash_or(out, line.upstream_response_time, seconds),
        Var::UpstreamConnectTime => dash_or(out, line.upstream_connect_time, seconds),
        Var::UpstreamResponseLength => dash_or(
            out,
            line.upstream_status.map(|_| line.body_bytes_sent),
            num::dec,
        ),
        Var::ReqId => escaped_or_dash(out, line.request_id),
        Var::Namespace => escaped_or_dash(out, split_route(line.route).0.as_bytes()),
        Var::IngressName => {
            let name = if line.route_kind == "Ingress" {
                split_route(line.route).1
            } else {
                ""
            };
            escaped_or_dash(out, name.as_bytes());
        }
        Var::ServiceName => escaped_or_dash(out, split_service(line.service).0.as_bytes()),
        Var::ServicePort => escaped_or_dash(out, split_service(line.service).1.as_bytes()),
        Var::SslProtocol => escaped_or_dash(out, line.tls_version.unwrap_or("").as_bytes()),
        Var::RouteKind => escaped_or_dash(out, line.route_kind.as_bytes()),
        Var::Route => escaped_or_dash(out, line.route.as_bytes()),
        Var::Canary => out.extend_from_slice(if line.canary { b"true" } else { b"false" }),
    }
}

/// A JSON string (quotes included) from bytes that may not be UTF-8:
/// invalid sequences become U+FFFD.
fn json_str(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    // Most values are printable ASCII without quotes or backslashes: one copy.
    if !needs_escape(value) {
        out.extend_from_slice(value);
        out.push(b'"');
        return;
    }
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

fn json_ms(out: &mut Vec<u8>, d: Duration) {
    num::thousandths(out, d.as_micros());
}

/// The JSON line: the fields of the text formats under stable names
/// (`target: "access"` tells it from other log lines).
fn write_json(out: &mut Vec<u8>, line: &Line<'_>) {
    out.reserve(LINE_ROOM);
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_iso8601_at(line.time, out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"target\":\"access\",\"request_id\":");
    json_str(out, line.request_id);
    out.extend_from_slice(b",\"client\":\"");
    num::ip(out, line.remote_addr);
    out.extend_from_slice(b"\",\"method\":");
    json_str(out, line.method.as_bytes());
    out.extend_from_slice(b",\"host\":");
    json_str(out, line.host);
    out.extend_from_slice(b",\"path\":");
    json_str(out, line.target.as_bytes());
    out.extend_from_slice(b",\"protocol\":\"");
    out.extend_from_slice(line.protocol.as_bytes());
    out.extend_from_slice(b"\",\"scheme\":\"");
    out.extend_from_slice(line.scheme.as_bytes());
    out.extend_from_slice(b"\",\"status\":");
    num::dec(out, u64::from(line.status));
    out.extend_from_slice(b",\"tls_version\":");
    match line.tls_version {
        Some(v) => json_str(out, v.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"user_agent\":");
    json_str(out, line.user_agent);
    out.extend_from_slice(b",\"referer\":");
    json_str(out, line.referer);
    out.extend_from_slice(b",\"request_bytes\":");
    num::dec(out, line.request_length);
    out.extend_from_slice(b",\"response_bytes\":");
    num::dec(out, line.bytes_sent);
    out.extend_from_slice(b",\"body_bytes\":");
    num::dec(out, line.body_bytes_sent);
    out.extend_from_slice(b",\"route_kind\":");
    json_str(out, line.route_kind.as_bytes());
    out.extend_from_slice(b",\"route\":");
    json_str(out, line.route.as_bytes());
    // `ingress` is the Ingress only (empty for Gateway API routes).
    out.extend_from_slice(b",\"ingress\":");
    let ingress = if line.route_kind == "Ingress" {
        line.route
    } else {
        ""
    };
    json_str(out, ingress.as_bytes());
    out.extend_from_slice(b",\"service\":");
    json_str(out, line.service.as_bytes());
    out.extend_from_slice(if line.canary {
        b",\"canary\":true"
    } else {
        b",\"canary\":false"
    });
    out.extend_from_slice(b",\"upstream\":");
    match line.upstream_addr {
        Some(a) => {
            out.push(b'"');
            a.write_text(out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"\"\""),
    }
    out.extend_from_slice(b",\"upstream_status\":");
    match line.upstream_status {
        Some(s) => num::dec(out, u64::from(s)),
        None => out.extend_from_slice(b"null"),
    }
    for (name, value) in [
        (
            &b",\"upstream_response_ms\":"[..],
            line.upstream_response_time,
        ),
        (
            &b",\"upstream_connect_ms\":"[..],
            line.upstream_connect_time,
        ),
    ] {
        out.extend_from_slice(name);
        match value {
            Some(d) => json_ms(out, d),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.extend_from_slice(b",\"duration_ms\":");
    json_ms(out, line.request_time);
    out.extend_from_slice(b"}\n");
}

#[cfg(test)]
mod tests;
