//! The record of one request from its first byte to its last: begun by
//! the service, filled in as the request goes down, carried by the
//! response body, and finished exactly once, which counts the request in
//! its route's metrics and writes its access-log line.
//!
//! Invariants:
//! - Finished exactly once: when the response body ends, or when the body
//!   is dropped (the client went away mid-body, or hyper finished without
//!   polling it to the end), or when the request's future is dropped
//!   before it produced a response (the client went away first: counted
//!   and logged as 499, as ingress-nginx does).
//! - Durations run to the last byte handed to the connection.
//! - Only atomics on the metrics side (the handles were resolved when the
//!   table was published); the access-log fields are the request's text
//!   values copied into one buffer, kept only when the line will be
//!   written (in one box, so a request without a log line carries a small
//!   record), and the box goes back to a per-thread pool when the line is
//!   written (a logged request allocates nothing in the steady state).

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, Version};
use tokio::time::Instant;

use super::conn::ConnCtx;
use super::timing::UpstreamTiming;
use crate::access_log::format::Text;
use crate::access_log::num::socket_v4;
use crate::access_log::{self, Line};
use crate::lb::Endpoint;
use crate::metrics::route::method_index;
use crate::metrics::RouteSeries;
use crate::state::Published;
use crate::table::upstream::EndpointAddr;
use crate::table::Route;

/// Status of a request whose client went away before the response.
pub const CLIENT_CLOSED: u16 = 499;

/// One request in progress (see the module invariants).
#[derive(Debug)]
pub struct Record {
    ctx: Arc<ConnCtx>,
    started: Instant,
    method: Method,
    /// The route's series; `None`: unrouted.
    series: Option<Arc<RouteSeries>>,
    /// 0 until a response exists.
    status: u16,
    request_bytes: u64,
    head_bytes: u64,
    body_bytes: u64,
    /// Written by forwarding through the plan.
    pub timing: UpstreamTiming,
    upstream: Option<Arc<Endpoint>>,
    /// Boxed: the record rides on the response body, which is moved a few
    /// times per request; without a log line it stays small.
    log: Option<Box<LogFields>>,
    done: bool,
}

/// What a record is begun with: the request's method, version and the
/// text values the access log may need, its size, and when it began.
#[derive(Debug)]
pub struct Head<'a> {
    pub method: Method,
    pub version: Version,
    /// The target's path (the access log's skip list matches it).
    pub path: &'a str,
    pub target: &'a [u8],
    /// The routed host as the client sent it.
    pub host: &'a [u8],
    pub user_agent: &'a [u8],
    pub referer: &'a [u8],
    /// The head's canonical size plus the declared body.
    pub request_bytes: u64,
    pub started: Instant,
}

/// What the access-log line needs beyond the metrics: the request's text
/// values copied into one buffer (no reference counts to take and drop),
/// the rest as plain values. Reused: a finished record gives its fields
/// back to the thread's pool ([`POOL`]), so a logged request allocates
/// nothing once the pool is warm.
#[derive(Debug)]
struct LogFields {
    /// The target, the routed host, the user agent, the referer and the
    /// request id, one after the other; `ends` marks where each ends.
    text: Vec<u8>,
    ends: [u32; FIELDS],
    version: Version,
    client: IpAddr,
    route_kind: &'static str,
    route: Option<Arc<str>>,
    service: Option<Arc<str>>,
    canary: bool,
}

/// The text fields of [`LogFields`], in buffer order.
const TARGET: usize = 0;
const HOST: usize = 1;
const USER_AGENT: usize = 2;
const REFERER: usize = 3;
const REQUEST_ID: usize = 4;
const FIELDS: usize = 5;

/// Fields kept per thread for the next requests at most, and the largest
/// text buffer kept (a request with huge headers does not pin its buffer).
const POOL_MAX: usize = 256;
const TEXT_KEEP: usize = 4096;

thread_local! {
    /// Finished records' log fields, reused by the thread's next requests.
    /// Boxes, not values: a record holds its fields boxed (it stays small
    /// when moved), and the pool keeps those allocations.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<LogFields>>> = const { RefCell::new(Vec::new()) };
}

impl LogFields {
    /// Fields from the pool (or new), emptied.
    fn take() -> Box<LogFields> {
        let pooled = POOL
            .try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut p| p.pop()))
            .ok()
            .flatten();
        pooled.unwrap_or_else(|| {
            Box::new(LogFields {
                text: Vec::with_capacity(256),
                ends: [0; FIELDS],
                version: Version::HTTP_11,
                client: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                route_kind: "",
                route: None,
                service: None,
                canary: false,
            })
        })
    }

    /// Back to the pool (dropped when the pool is full or the buffer grew
    /// large).
    fn recycle(mut self: Box<Self>) {
        if self.text.capacity() > TEXT_KEEP {
            return;
        }
        self.text.clear();
        self.ends = [0; FIELDS];
        self.route_kind = "";
        self.route = None;
        self.service = None;
        self.canary = false;
        // At thread exit the pool may be gone: the fields are then dropped.
        let _ = POOL.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut() {
                if pool.len() < POOL_MAX {
                    pool.push(self);
                }
            }
        });
    }

    /// Appends field `i` (fields are set in order; an empty one is `-` or
    /// `""` in the line).
    fn set(&mut self, i: usize, value: &[u8]) {
        self.text.extend_from_slice(value);
        let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        if let Some(slots) = self.ends.get_mut(i..) {
            slots.fill(end);
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

impl Record {
    /// Begins the record of `req` (the service's first step).
    pub fn begin<B>(
        ctx: &Arc<ConnCtx>,
        published: &Published,
        req: &Request<B>,
        head_len: usize,
    ) -> Self {
        let headers = req.headers();
        let uri = req.uri();
        let declared_body = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let field = |name| headers.get(name).map_or(&b""[..], HeaderValue::as_bytes);
        Self::begin_head(
            ctx,
            Head {
                method: req.method().clone(),
                version: req.version(),
                path: uri.path(),
                target: uri.path_and_query().map_or(b"/", |p| p.as_str().as_bytes()),
                // The routed host: the target's authority wins over Host.
                host: match uri.authority() {
                    Some(a) => a.as_str().as_bytes(),
                    None => field(http::header::HOST),
                },
                user_agent: field(http::header::USER_AGENT),
                referer: field(http::header::REFERER),
                request_bytes: (head_len as u64).saturating_add(declared_body),
                started: Instant::now(),
            },
            || ctx.client_ip_in(published, headers),
        )
    }

    /// Begins the record of a request given by its parts (the HTTP/1.1
    /// fast path's, which has no `http::Request`); `client` is asked for
    /// the client IP only when the line will be written.
    pub fn begin_head(ctx: &Arc<ConnCtx>, head: Head<'_>, client: impl FnOnce() -> IpAddr) -> Self {
        let log = match access_log::config() {
            Some(config) if ctx.state.settings.access_log && config.logs(head.path) => {
                let mut log = LogFields::take();
                log.version = head.version;
                log.client = client();
                log.set(TARGET, head.target);
                log.set(HOST, head.host);
                log.set(USER_AGENT, head.user_agent);
                log.set(REFERER, head.referer);
                Some(log)
            }
            _ => None,
        };
        Self {
            ctx: ctx.clone(),
            started: head.started,
            method: head.method,
            series: None,
            status: 0,
            request_bytes: head.request_bytes,
            head_bytes: 0,
            body_bytes: 0,
            timing: UpstreamTiming::default(),
            upstream: None,
            log,
            done: false,
        }
    }

    /// The request's id (set or generated by the service).
    pub fn request_id(&mut self, id: &HeaderValue) {
        self.request_id_bytes(id.as_bytes());
    }

    /// [`Self::request_id`] from its bytes.
    pub fn request_id_bytes(&mut self, id: &[u8]) {
        if let Some(log) = &mut self.log {
            log.set(REQUEST_ID, id);
        }
    }

    /// The route the request matched and its series, before anything is
    /// forwarded (a client gone mid-request is counted under its route).
    pub fn route(&mut self, route: &Route, series: &Arc<RouteSeries>) {
        self.series = Some(series.clone());
        if route.policy.no_access_log {
            if let Some(log) = self.log.take() {
                log.recycle();
            }
        }
        if let Some(log) = &mut self.log {
            log.route_kind = route.kind.as_str();
            log.route = Some(route.ingress.clone());
            log.service = Some(route.service.clone());
        }
    }

    /// The route's canary served the request: counted (and logged) as the
    /// canary Ingress's, with its Service.
    pub fn canary(&mut self, series: &Arc<RouteSeries>, service: &Arc<str>) {
        self.series = Some(series.clone());
        if let Some(log) = &mut self.log {
            log.canary = true;
            log.service = Some(service.clone());
        }
    }

    /// The endpoint that answered.
    pub fn upstream(&mut self, endpoint: Option<Arc<Endpoint>>) {
        self.upstream = endpoint;
    }

    /// The response is known: its status and head size.
    pub fn respond<B>(&mut self, response: &Response<B>) {
        self.status = response.status().as_u16();
        // `HTTP/1.1 200 OK` CRLF, each field with `: ` and CRLF, final CRLF.
        let fields: usize = response
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        self.head_bytes = (fields + 19) as u64;
    }

    /// The response is known by its status and counted head size (the
    /// fast path's, which writes the head itself).
    pub fn respond_head(&mut self, status: u16, head_bytes: u64) {
        self.status = status;
        self.head_bytes = head_bytes;
    }

    /// Response body bytes handed to the connection.
    #[inline]
    pub fn sent(&mut self, bytes: usize) {
        self.body_bytes += bytes as u64;
    }

    /// Counts the request and writes its log line (once).
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        let status = if self.status == 0 {
            CLIENT_CLOSED
        } else {
            self.status
        };
        let metrics = &self.ctx.state.metrics;
        let series = self.series.as_deref().unwrap_or(&metrics.unrouted);
        series.count(method_index(&self.method), status);
        series.duration.observe_duration(elapsed);
        series.request_size.observe(self.request_bytes);
        series
            .response_size
            .observe(self.head_bytes + self.body_bytes);
        let upstream_response = self.timing.response();
        if let Some(d) = upstream_response {
            series.upstream_response.observe_duration(d);
        }
        let upstream_connect = self.timing.connect();
        if let Some(d) = upstream_connect {
            series.upstream_connect.observe_duration(d);
        }
        let Some(log) = self.log.take() else {
            return;
        };
        let upstream_addr = self.upstream.as_ref().map(|e| UpstreamAddr(&e.addr));
        access_log::write(&Line {
            time: std::time::SystemTime::now(),
            remote_addr: log.client,
            request_id: log.get(REQUEST_ID),
            method: self.method.as_str(),
            // Copied from a `PathAndQuery`: valid UTF-8.
            target: std::str::from_utf8(log.get(TARGET)).unwrap_or("/"),
            protocol: protocol(log.version),
            scheme: if self.ctx.client.tls { "https" } else { "http" },
            host: log.get(HOST),
            status,
            request_length: self.request_bytes,
            bytes_sent: self.head_bytes + self.body_bytes,
            body_bytes_sent: self.body_bytes,
            request_time: elapsed,
            user_agent: log.get(USER_AGENT),
            referer: log.get(REFERER),
            upstream_addr: upstream_addr.as_ref().map(|a| a as &dyn Text),
            upstream_status: self.timing.status(),
            upstream_response_time: upstream_response,
            upstream_connect_time: upstream_connect,
            tls_version: self.ctx.tls_version,
            route_kind: log.route_kind,
            route: log.route.as_deref().unwrap_or(""),
            service: log.service.as_deref().unwrap_or(""),
            canary: log.canary,
        });
        log.recycle();
    }
}

/// An endpoint's address for the log line: `a.b.c.d:port` written straight
/// into the line (the common case), anything else as displayed.
struct UpstreamAddr<'a>(&'a EndpointAddr);

impl Text for UpstreamAddr<'_> {
    fn write_text(&self, out: &mut Vec<u8>) {
        match self.0 {
            EndpointAddr::Socket(SocketAddr::V4(addr)) => socket_v4(out, addr),
            other => other.write_text(out),
        }
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish();
    }
}
