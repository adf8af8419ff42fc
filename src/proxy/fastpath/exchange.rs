//! One request on the fast path: the route decision, the upstream
//! connection, the exchange, and the response relayed to the client.
//!
//! Invariants:
//! - [`serve_one`] answers [`Served::Hyper`] only before it committed
//!   (nothing counted, logged or sent); after, exactly one response or a
//!   cut connection.
//! - A request is sent once: a pooled connection is checked before use
//!   ([`super::upstream`]), and a connection that fails after the request
//!   was written is a 502, as on the hyper path.
//! - A request's record is finished when its last bytes are handed to the
//!   client connection, before they are written: a client that has its
//!   response finds it counted (as on the hyper path).
//! - The response-header timeout is the upstream connection's timer, reset
//!   for each request; the body has no timeout, as on the hyper path.

use std::future::{poll_fn, Future};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use http::{HeaderValue, Method, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::request::{self, Head};
use super::response::{self, Chunk, Decoded, Framing};
use super::upstream::{self, Upstream};
use crate::lb::Endpoint;
use crate::metrics::route::RouteMetrics;
use crate::proxy::conn::ConnCtx;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::{Backend, Pick};
use crate::proxy::headers;
use crate::proxy::record::{self, Record};
use crate::state::Published;
use crate::table::upstream::{BackendProtocol, LbAlgorithm};
use crate::table::{host, path, Route};

/// The `Server` value of responses that carry none (as
/// [`crate::proxy::response`]).
const SERVER: HeaderValue = HeaderValue::from_static("tollgate");

/// A connection's write buffers, reused by its requests.
#[derive(Debug, Default)]
pub struct Buffers {
    /// The upstream request head.
    up: Vec<u8>,
    /// What goes to the client next.
    down: Vec<u8>,
}

/// What serving one request leaves the connection to do.
pub(super) enum Served {
    Next,
    Close,
    Hyper,
}

/// The client connection while its request is served: its IO, and the
/// buffer space behind the request where what it sends meanwhile goes.
pub(super) struct Client<'a, I> {
    io: &'a mut I,
    spare: &'a mut [u8],
    /// Bytes read into `spare`.
    pub(super) read: usize,
}

impl<'a, I: AsyncRead + AsyncWrite + Unpin> Client<'a, I> {
    pub(super) fn new(io: &'a mut I, spare: &'a mut [u8]) -> Self {
        Client { io, spare, read: 0 }
    }

    /// Watches the client while the upstream is awaited, as hyper does:
    /// `Ready` when it went away (end of stream or an error); what it
    /// sends meanwhile is kept. A short read leaves the socket not ready,
    /// so this costs no system call per request.
    fn poll_gone(&mut self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        loop {
            let Some(spare) = self.spare.get_mut(self.read..).filter(|s| !s.is_empty()) else {
                // Full: the pipelined requests wait; nothing is lost.
                return Poll::Pending;
            };
            let mut buf = ReadBuf::new(spare);
            match std::pin::Pin::new(&mut *self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => self.read += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A request routed on the fast path, decided before anything is awaited.
struct Routed<'p> {
    route: &'p Route,
    backend: Backend<'p>,
    metrics: &'p RouteMetrics,
    endpoint: Arc<Endpoint>,
}

/// Why an exchange produced no usable response head.
enum Failure {
    Timeout,
    /// The connection ended or failed.
    Broken,
    Malformed,
    UnaskedUpgrade,
    /// The client closed its connection.
    ClientGone,
}

/// Serves one qualified request (see the module invariants).
pub(super) async fn serve_one<I>(
    client: &mut Client<'_, I>,
    ctx: &Arc<ConnCtx>,
    head: &Head<'_>,
    bufs: &mut Buffers,
) -> Served
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let state = &ctx.state;
    let started = Instant::now();
    let published = state.published.load_full();
    let Some(routed) = route(ctx, &published, head) else {
        return Served::Hyper;
    };
    let settings = &state.settings;
    let mut connected = None;
    let mut conn = match upstream::take(routed.endpoint.id, settings.upstream_idle_timeout) {
        Some(conn) => conn,
        None => match dial(&routed, settings.connect_timeout).await {
            Some((conn, took)) => {
                connected = Some(took);
                conn
            }
            None => return Served::Hyper,
        },
    };

    // Committed: from here on the request is this path's to answer.
    let active = ctx.activity.begin();
    let mut record = Record::begin_head(
        ctx,
        record::Head {
            method: Method::GET,
            version: Version::HTTP_11,
            path: head.path,
            target: head.target.as_bytes(),
            host: head.host.as_bytes(),
            user_agent: head.user_agent,
            referer: head.referer,
            request_bytes: head.canonical_len as u64,
            started,
        },
        || ctx.client.peer,
    );
    let new_id = head.request_id.is_none().then(headers::new_request_id);
    record.request_id_bytes(match &new_id {
        Some(id) => id.as_bytes(),
        None => head.request_id.unwrap_or_default(),
    });
    record.route(routed.route, &routed.metrics.main);
    if let Some(took) = connected {
        record.timing.connected(took);
    }
    request::write_upstream(&mut bufs.up, head, &ctx.client, new_id.as_ref());
    let globals = published.table.globals();
    let server = globals.server.clone().unwrap_or(SERVER);
    let hsts = match &globals.hsts {
        Some(configured) => configured.as_ref(),
        None => settings.hsts.as_ref(),
    };
    let added = response::Added {
        server: &server,
        hsts: hsts.filter(|_| ctx.client.tls),
    };
    let endpoint = &routed.endpoint;
    let inflight = endpoint.start_request();
    let timeout = settings.response_timeout;
    let sent = Instant::now();
    let result = exchange(&mut conn, client, bufs, &added, sent + timeout).await;
    let head = match result {
        Ok(head) => {
            record.upstream(Some(endpoint.clone()));
            head
        }
        // The client went away first: its record counts a 499, and the
        // upstream connection (its response unread) is dropped.
        Err(Failure::ClientGone) => return Served::Close,
        Err(failure) => {
            let error = match failure {
                Failure::Timeout => ProxyError::Timeout,
                Failure::UnaskedUpgrade => ProxyError::UnaskedUpgrade,
                Failure::Broken | Failure::ClientGone => {
                    ProxyError::UpstreamBroken("connection closed")
                }
                Failure::Malformed => ProxyError::UpstreamBroken("malformed response head"),
            };
            tracing::debug!(error = %error, service = %routed.route.service, "upstream failure");
            return answer_error(client.io, ctx, &added, error, record, active, bufs).await;
        }
    };
    let elapsed = sent.elapsed();
    if routed.backend.upstream.key.lb == LbAlgorithm::P2cEwma {
        endpoint.observe_latency(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
    record.timing.responded(elapsed, head.status);
    record.respond_head(head.status, head.counted);
    conn.consume(head.len);
    let closing = ctx.activity.control.load(Ordering::Acquire) != 0;
    response::finish_head(&mut bufs.down, closing);
    let relayed = relay(
        client.io,
        &mut conn,
        head.framing,
        &mut bufs.down,
        &mut record,
    )
    .await;
    record.finish();
    drop(active);
    drop(inflight);
    match relayed {
        Relayed::Done if head.keep_alive && conn.pending().is_empty() => {
            upstream::put(endpoint.id, conn);
        }
        Relayed::Done => {}
        Relayed::Cut => return Served::Close,
    }
    if closing {
        Served::Close
    } else {
        Served::Next
    }
}

/// The route of a qualified head, when the fast path may serve it.
fn route<'p>(ctx: &ConnCtx, published: &'p Published, head: &Head<'_>) -> Option<Routed<'p>> {
    let table = &published.table;
    let globals = table.globals();
    let client = &ctx.client;
    if client.trusted
        || globals.trust.is_some()
        || globals.block_agents.is_some()
        || table.has_gateway_routes()
    {
        return None;
    }
    let mut host_buf = [0u8; host::MAX_HOST_LEN + 2];
    let host = host::normalize(head.host, &mut host_buf).unwrap_or("");
    // HTTPS: only a request for the connection's own server name (the
    // hyper path's misdirected-request guard decides any other).
    if client.tls && client.sni.as_deref() != Some(host) {
        return None;
    }
    let id = table.lookup(host, &path::normalize(head.path))?;
    let route = table.route(id)?;
    // Plain HTTP to a host redirected to HTTPS: the hyper path answers.
    if !route.plain || (route.redirect_https && !client.tls) {
        return None;
    }
    let backend = Backend::of(published, route.upstream)?;
    if backend.upstream.key.protocol != BackendProtocol::Http || backend.tls.is_blocked() {
        return None;
    }
    let metrics = published.route_metrics.get(id as usize)?;
    let endpoint = backend.next_endpoint(&[], Pick::Balanced).ok()??;
    Some(Routed {
        route,
        backend,
        metrics,
        endpoint,
    })
}

/// A new connection to the routed endpoint, and how long it took; `None`
/// (the endpoint marked failed, as the hyper path does) when refused.
async fn dial(
    routed: &Routed<'_>,
    timeout: std::time::Duration,
) -> Option<(Upstream, std::time::Duration)> {
    let began = Instant::now();
    match routed.backend.dial(&routed.endpoint).tcp(timeout).await {
        Ok(stream) => {
            routed.endpoint.mark_ok();
            Some((Upstream::new(stream), began.elapsed()))
        }
        Err(e) => {
            routed.backend.connect_failed(&routed.endpoint, &e);
            None
        }
    }
}

/// Sends the upstream head and reads the response head, which is written
/// for the client into `bufs.down` (without its final CRLF).
async fn exchange<I: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Upstream,
    client: &mut Client<'_, I>,
    bufs: &mut Buffers,
    added: &response::Added<'_>,
    deadline: Instant,
) -> Result<response::Head, Failure> {
    conn.timer.as_mut().reset(deadline);
    if conn.stream.write_all(&bufs.up).await.is_err() {
        return Err(Failure::Broken);
    }
    loop {
        bufs.down.clear();
        match response::parse(conn.pending(), &mut bufs.down, added) {
            Ok(Some(head)) => return Ok(head),
            Ok(None) => {}
            Err(response::HeadError::Malformed) => return Err(Failure::Malformed),
            Err(response::HeadError::UnaskedUpgrade) => return Err(Failure::UnaskedUpgrade),
        }
        let read = poll_fn(|cx| {
            if let Poll::Ready(read) = conn.poll_fill(cx) {
                return Poll::Ready(Ok(read));
            }
            if client.poll_gone(cx).is_ready() {
                return Poll::Ready(Err(Failure::ClientGone));
            }
            conn.timer.as_mut().poll(cx).map(|()| Err(Failure::Timeout))
        })
        .await?;
        match read {
            Ok(0) | Err(_) => return Err(Failure::Broken),
            Ok(_) => {}
        }
    }
}

/// How relaying a body ended.
enum Relayed {
    Done,
    /// The upstream or the client broke off: the client connection closes.
    Cut,
}

/// Sends the head in `down` and the body, delimited by `framing`, from the
/// upstream to the client; counts the body bytes in `record`.
async fn relay<I: AsyncWrite + Unpin>(
    io: &mut I,
    conn: &mut Upstream,
    framing: Framing,
    down: &mut Vec<u8>,
    record: &mut Record,
) -> Relayed {
    let mut chunk = Chunk::start();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    loop {
        let mut data = 0u64;
        let mut broken = false;
        let done = match framing {
            Framing::Empty => true,
            Framing::Length(_) => {
                let pending = conn.pending();
                let take = usize::try_from(left).map_or(pending.len(), |l| l.min(pending.len()));
                down.extend_from_slice(pending.get(..take).unwrap_or_default());
                conn.consume(take);
                data = take as u64;
                left -= data;
                left == 0
            }
            Framing::Chunked => match chunk.decode(conn.pending(), down, &mut data) {
                Decoded::Consumed(n) => {
                    conn.consume(n);
                    if chunk == Chunk::Done {
                        down.extend_from_slice(b"0\r\n\r\n");
                        true
                    } else {
                        false
                    }
                }
                Decoded::Malformed => {
                    // What came before is sent on (the head included), as
                    // the hyper path does; then the connection is cut.
                    broken = true;
                    false
                }
            },
            Framing::Close => {
                let pending = conn.pending();
                if !pending.is_empty() {
                    let mut size = [0u8; 16];
                    down.extend_from_slice(response::hex_of(pending.len() as u64, &mut size));
                    down.extend_from_slice(b"\r\n");
                    down.extend_from_slice(pending);
                    down.extend_from_slice(b"\r\n");
                    data = pending.len() as u64;
                    let n = pending.len();
                    conn.consume(n);
                }
                false
            }
        };
        if !down.is_empty() {
            // Counted when handed to the connection, and the record
            // finished before the last bytes go out (as on the hyper path,
            // which finishes it when it takes the body's end): a client
            // that has its response sees it counted.
            record.sent(usize::try_from(data).unwrap_or(usize::MAX));
            if done {
                record.finish();
            }
            if io.write_all(down).await.is_err() || io.flush().await.is_err() {
                return Relayed::Cut;
            }
            down.clear();
        }
        if broken {
            return Relayed::Cut;
        }
        if done {
            return Relayed::Done;
        }
        match poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) if framing == Framing::Close => {
                record.finish();
                if io.write_all(b"0\r\n\r\n").await.is_err() || io.flush().await.is_err() {
                    return Relayed::Cut;
                }
                // Read to its end: this connection is done.
                return Relayed::Done;
            }
            Ok(0) | Err(_) => return Relayed::Cut,
            Ok(_) => {}
        }
    }
}

/// Answers `error` as the hyper path does (its status, text body,
/// `content-type`, `server`, length and date), finishing the record.
async fn answer_error<I: AsyncWrite + Unpin>(
    io: &mut I,
    ctx: &ConnCtx,
    added: &response::Added<'_>,
    error: ProxyError,
    mut record: Record,
    active: crate::proxy::conn::ActiveRequest,
    bufs: &mut Buffers,
) -> Served {
    let status = error.status();
    let body = error.body();
    let down = &mut bufs.down;
    down.clear();
    down.extend_from_slice(b"HTTP/1.1 ");
    down.extend_from_slice(status.as_str().as_bytes());
    down.push(b' ');
    down.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    down.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\n");
    // `content-type` and the added fields are those the record counts.
    let counted = (12 + 24 + 4) + added.write(down, true) + 19;
    down.extend_from_slice(b"content-length: ");
    down.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    down.extend_from_slice(b"\r\n");
    response::date_line(down);
    let closing = ctx.activity.control.load(Ordering::Acquire) != 0;
    response::finish_head(down, closing);
    down.extend_from_slice(body.as_bytes());
    record.respond_head(status.as_u16(), counted);
    // Finished before the client can see the answer (see `relay`).
    record.sent(body.len());
    record.finish();
    let written = io.write_all(down).await.is_ok() && io.flush().await.is_ok();
    down.clear();
    drop(active);
    if written && !closing {
        Served::Next
    } else {
        Served::Close
    }
}
