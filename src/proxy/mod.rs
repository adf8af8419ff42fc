//! The data plane: listeners, the per-request service, forwarding.
//!
//! Invariants:
//! - A request loads the published state once (`ArcSwap::load_full`) and
//!   uses that snapshot to the end, so a swap never changes a request
//!   midway and in-flight requests finish on the table they started with.
//! - The request path takes no lock; lookups do not allocate; the request
//!   is forwarded with its original target (normalization is for matching).
//! - Retries happen only when the request was provably not sent: a refused
//!   connection (then another endpoint is tried) or a pooled connection that
//!   closed before taking the request (hyper hands the request back).

pub mod body;
pub mod client_ip;
pub mod error;
pub mod framing;
pub mod headers;
pub mod listener;
pub mod policy;
pub mod pool;
pub mod proxy_protocol;
pub mod tls;
pub mod upload;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{COOKIE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::lb::{Endpoint, Upstream};
use crate::metrics::Metrics;
use crate::runtime::Published;
use crate::table::policy::Retry;
use crate::table::upstream::LbAlgorithm;
use crate::table::UpstreamId;
use crate::tls::client::UpstreamTls;
use crate::table::{host, path};
use body::{Checkin, ProxyBody};
use error::ProxyError;
use headers::ClientInfo;
use listener::{ActiveRequest, ConnCtx};

/// Most distinct endpoints tried for one request when connections fail.
const MAX_ENDPOINT_ATTEMPTS: usize = 3;

/// Settings of the request path (from flags).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub access_log: bool,
    /// Port in HTTP → HTTPS redirects (omitted when 443).
    pub https_redirect_port: u16,
    /// `Strict-Transport-Security` value for HTTPS responses.
    pub hsts: Option<HeaderValue>,
}

/// Shared by every connection of every listener.
#[derive(Debug)]
pub struct ProxyState {
    pub published: Arc<ArcSwap<Published>>,
    pub settings: ProxySettings,
    pub metrics: Arc<Metrics>,
    /// The client of external authentication (`auth-url`) sub-requests;
    /// `None` when it could not be built (such routes then refuse: 500).
    pub auth_client: Option<crate::auth::external::AuthClient>,
}

impl ProxyState {
    /// Per-connection forwarding info: built once per accepted connection.
    /// `peer` is the client address after the PROXY protocol header.
    pub fn client_info(
        &self,
        peer: std::net::SocketAddr,
        local_port: u16,
        proto: &'static str,
        sni: Option<&str>,
    ) -> ClientInfo {
        let ip = peer.ip().to_canonical();
        ClientInfo {
            tls: proto == "https",
            sni: sni.map(|s| s.to_ascii_lowercase().into()),
            peer: ip,
            peer_ip: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("")),
            trusted: client_ip::is_trusted(ip, &self.settings.trusted_proxies),
            proto: HeaderValue::from_static(proto),
            port: HeaderValue::from(local_port),
        }
    }
}

/// The hyper service function: never fails; errors become responses.
pub async fn handle(
    ctx: Arc<ConnCtx>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let active = ctx.activity.begin();
    let state = &ctx.state;
    if active.has_bad_framing() {
        let error = ProxyError::BadRequest("both Content-Length and Transfer-Encoding");
        return Ok(finish_response(
            &ctx,
            unrouted(state, error, started),
            active,
        ));
    }
    let published = state.published.load_full();
    let request_id = headers::ensure_request_id(req.headers_mut());

    let mut host_buf = [0u8; host::MAX_HOST_LEN + 2];
    let raw_host = match request_host(&req) {
        Ok(h) => h,
        Err(e) => return Ok(finish_response(&ctx, unrouted(state, e, started), active)),
    };
    let host = host::normalize(raw_host, &mut host_buf).unwrap_or("");
    let matched_path = path::normalize(req.uri().path());
    let route_id = published.table.lookup(host, &matched_path);
    drop(matched_path);

    // Only what the access log needs survives the request being forwarded.
    let log = state.settings.access_log.then(|| AccessLog {
        method: req.method().clone(),
        uri: req.uri().clone(),
        host: raw_host.to_string(),
        request_id,
        client: ctx.client_ip(req.headers()),
    });

    let routed = route_id.and_then(|id| {
        let route = published.table.route(id)?;
        let backend = Backend::of(&published, route.upstream)?;
        let metrics = published.route_metrics.get(id as usize)?;
        Some((id, route, backend, metrics))
    });
    let (response, route, endpoint) = match routed {
        None => (unrouted(state, ProxyError::NoRoute, started), None, None),
        Some((id, route, backend, metrics)) => {
            let client = &ctx.client;
            let outcome = if !client.tls && route.redirect_https {
                Ok((
                    redirect_to_https(host, &req, state.settings.https_redirect_port),
                    None,
                ))
            } else if client.tls && misdirected(&published, host, client.sni.as_deref()) {
                Err(ProxyError::Misdirected)
            } else if !route.plain {
                policy::serve(&ctx, &published, id, route, req)
                    .await
                    .map(|served| (served.response, served.endpoint))
            } else {
                let plan = Plan::from_settings(&state.settings);
                forward(&ctx, backend, req, &plan)
                    .await
                    .map(|(r, e)| (r, Some(e)))
            };
            let (response, endpoint) = match outcome {
                Ok((response, endpoint)) => (response, endpoint),
                Err(e) => {
                    if matches!(
                        e,
                        ProxyError::Connect(_) | ProxyError::Upstream(_) | ProxyError::Timeout
                    ) {
                        tracing::debug!(error = %e, upstream = %backend.upstream.label, "upstream failure");
                    }
                    (e.response(), None)
                }
            };
            metrics.record(response.status().as_u16(), started.elapsed());
            (response, Some(route), endpoint)
        }
    };
    if let Some(log) = log {
        log.emit(response.status(), route, endpoint.as_deref(), started);
    }
    Ok(finish_response(&ctx, response, active))
}

/// An error answered before or instead of routing, counted as unrouted.
fn unrouted(state: &ProxyState, error: ProxyError, started: Instant) -> Response<ProxyBody> {
    let response = error.response();
    state
        .metrics
        .unrouted
        .record(response.status().as_u16(), started.elapsed());
    response
}

/// What every response gets on its way out: HSTS on HTTPS, and the
/// connection's in-flight accounting tied to the body.
fn finish_response(
    ctx: &ConnCtx,
    mut response: Response<ProxyBody>,
    active: ActiveRequest,
) -> Response<ProxyBody> {
    if let (true, Some(hsts)) = (ctx.client.tls, &ctx.state.settings.hsts) {
        response
            .headers_mut()
            .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response.map(|b| b.with_active(active))
}

/// 308 to the same host and target over HTTPS.
fn redirect_to_https(host: &str, req: &Request<Incoming>, port: u16) -> Response<ProxyBody> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    };
    let mut response = Response::new(ProxyBody::fixed(bytes::Bytes::from_static(
        b"308 Permanent Redirect\n",
    )));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// HTTP/2 connection coalescing guard: a request whose host has its own
/// certificate, other than the one this connection's SNI selected.
fn misdirected(published: &Published, host: &str, sni: Option<&str>) -> bool {
    let wanted = published.tls.lookup(host);
    wanted.is_some() && wanted != sni.and_then(|name| published.tls.lookup(name))
}

/// The request's host: the authority of an absolute-form target or
/// `:authority`, else the Host header. HTTP/1.1 requires exactly one Host
/// (RFC 9112 §3.2): none, several, or an unreadable one is a 400.
fn request_host(req: &Request<Incoming>) -> Result<&str, ProxyError> {
    if let Some(authority) = req.uri().authority() {
        return Ok(authority.as_str());
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    match first.map(|h| h.to_str()) {
        Some(Ok(h)) => Ok(h),
        Some(Err(_)) => Err(ProxyError::BadRequest("unreadable Host header")),
        None if req.version() == Version::HTTP_11 => {
            Err(ProxyError::BadRequest("missing Host header"))
        }
        None => Ok(""),
    }
}

/// The fields of one access-log line.
struct AccessLog {
    method: http::Method,
    uri: Uri,
    host: String,
    request_id: HeaderValue,
    /// The request's client IP ([`client_ip`]).
    client: std::net::IpAddr,
}

impl AccessLog {
    fn emit(
        self,
        status: StatusCode,
        route: Option<&crate::table::Route>,
        endpoint: Option<&Endpoint>,
        started: Instant,
    ) {
        tracing::info!(
            target: "access",
            request_id = %String::from_utf8_lossy(self.request_id.as_bytes()),
            client = %self.client,
            method = %self.method,
            host = %self.host,
            path = %self.uri,
            status = status.as_u16(),
            ingress = %route.map(|r| r.ingress.as_ref()).unwrap_or(""),
            service = %route.map(|r| r.service.as_ref()).unwrap_or(""),
            upstream = %endpoint.map(|e| e.addr.to_string()).unwrap_or_default(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}

/// Rewrites the request for the upstream: hop-by-hop headers, forwarding
/// headers, origin-form target, HTTP/1.1.
fn prepare(ctx: &ConnCtx, req: &mut Request<Incoming>, upgrade: bool) {
    let from_h2 = req.version() == Version::HTTP_2;
    let host_value = match req.headers().get(HOST) {
        Some(h) => Some(h.clone()),
        None => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    let headers = req.headers_mut();
    headers::strip_hop_by_hop(headers, upgrade);
    if from_h2 {
        if let Some(h) = &host_value {
            headers.entry(HOST).or_insert_with(|| h.clone());
        }
        // HTTP/2 may split cookies over several fields; HTTP/1.1 wants one.
        if headers.get_all(COOKIE).iter().nth(1).is_some() {
            let joined = headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join("; ");
            if let Ok(v) = HeaderValue::from_str(&joined) {
                headers.insert(COOKIE, v);
            }
        }
    }
    let client_ip = ctx.client_ip(headers);
    headers::set_forwarded(headers, &ctx.client, client_ip, host_value);
    *req.version_mut() = Version::HTTP_11;
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
}

/// How one request is forwarded: the route's policy over the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub connect_timeout: Duration,
    /// Pooled upstream connections idle longer are not reused.
    pub idle_timeout: Duration,
    /// Waiting for response headers.
    pub read_timeout: Duration,
    /// Longest pause while the request body streams.
    pub send_timeout: Duration,
    pub max_body: Option<u64>,
    pub retry: Option<&'a Retry>,
    /// How the first endpoint is chosen.
    pub pick: Pick,
    /// Host header sent upstream instead of the client's (`upstream-vhost`).
    pub host: Option<&'a HeaderValue>,
}

/// How the first endpoint of a request is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The upstream's algorithm.
    Balanced,
    /// Consistent hashing of this key hash.
    Hash(u64),
    /// The endpoint with this sticky id, while it is available; else the
    /// upstream's algorithm.
    Sticky(u64),
}

impl<'a> Plan<'a> {
    /// The global flags, nothing per route.
    pub fn from_settings(settings: &ProxySettings) -> Self {
        Plan {
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.upstream_idle_timeout,
            read_timeout: settings.response_timeout,
            send_timeout: settings.response_timeout,
            max_body: None,
            retry: None,
            pick: Pick::Balanced,
            host: None,
        }
    }
}

/// Where a request is forwarded: an upstream's endpoints and how its
/// connections are secured.
#[derive(Debug, Clone, Copy)]
pub struct Backend<'a> {
    pub upstream: &'a Arc<Upstream>,
    pub tls: &'a UpstreamTls,
}

impl<'a> Backend<'a> {
    /// The published backend of upstream `id`.
    #[inline]
    pub fn of(published: &'a Published, id: UpstreamId) -> Option<Self> {
        Some(Backend {
            upstream: published.upstreams.get(id as usize)?,
            tls: published.upstream_tls.get(id as usize)?,
        })
    }

    /// What the pool needs to connect to `endpoint` of this backend.
    #[inline]
    fn dial<'e>(&self, endpoint: &'e Endpoint) -> pool::Dial<'e>
    where
        'a: 'e,
    {
        pool::Dial {
            id: endpoint.id,
            addr: &endpoint.addr,
            protocol: self.upstream.key.protocol,
            tls: self.tls,
        }
    }
}

/// Sends the request to an endpoint of `backend`; see the module invariants
/// for when it retries.
async fn forward(
    ctx: &ConnCtx,
    backend: Backend<'_>,
    req: Request<Incoming>,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    let prepared = prepare_upstream(ctx, req, plan)?;
    dispatch(backend, prepared, plan).await
}

/// A request rewritten for its upstream, not yet sent.
pub(crate) struct Prepared {
    pub req: Request<upload::UploadBody>,
    upload: Option<Arc<upload::Upload>>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// Checks the declared body size, rewrites the head for the upstream
/// ([`prepare`]) and wraps the body.
pub(crate) fn prepare_upstream(
    ctx: &ConnCtx,
    mut req: Request<Incoming>,
    plan: &Plan<'_>,
) -> Result<Prepared, ProxyError> {
    if let Some(max) = plan.max_body {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ProxyError::PayloadTooLarge);
        }
    }
    let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade_request(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    prepare(ctx, &mut req, upgrade);
    if let Some(host) = plan.host {
        req.headers_mut().insert(HOST, host.clone());
    }
    let (parts, body) = req.into_parts();
    let (body, upload) = upload::UploadBody::limited(body, plan.max_body);
    Ok(Prepared {
        req: Request::from_parts(parts, body),
        upload,
        client_upgrade,
    })
}

/// Sends a prepared request (HTTP/1.1 or HTTP/2 by the upstream's protocol).
pub(crate) async fn dispatch(
    backend: Backend<'_>,
    prepared: Prepared,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    if backend.tls.is_blocked() {
        return Err(ProxyError::NoEndpoints);
    }
    let Prepared {
        req,
        upload,
        client_upgrade,
    } = prepared;
    if backend.upstream.key.protocol.is_http2() && client_upgrade.is_none() {
        return forward_h2(backend, req, upload.as_deref(), plan).await;
    }
    send(backend, req, upload, client_upgrade, plan).await
}

/// The head of a request without a body, kept to send it again.
struct Replay {
    method: http::Method,
    uri: Uri,
    headers: http::HeaderMap,
}

impl Replay {
    fn request(&self) -> Request<upload::UploadBody> {
        let mut req = Request::new(upload::UploadBody::empty());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Sends a prepared HTTP/1.1 request to an endpoint of `upstream`.
/// Connection failures move on to another endpoint; with a retry policy,
/// so do (for requests without a body) broken connections, timeouts and
/// the listed statuses, up to its number of tries.
pub(crate) async fn send(
    backend: Backend<'_>,
    req: Request<upload::UploadBody>,
    upload: Option<Arc<upload::Upload>>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    let upstream = backend.upstream;
    let retry = plan.retry;
    let max_attempts = retry.map_or(MAX_ENDPOINT_ATTEMPTS, |r| usize::from(r.tries.max(1)));
    // Only a request without a body can be sent again once it was sent;
    // non-idempotent ones only when the policy says so (nginx's rule).
    let replay = retry
        .filter(|r| {
            upload.is_none()
                && client_upgrade.is_none()
                && r.tries > 1
                && (r.non_idempotent || idempotent(req.method()))
        })
        .map(|_| Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        });
    let retries_on_connect = retry.is_none_or(|r| r.on_error || r.tries > 1);
    if retry.is_some_and(|r| r.budget.is_some()) {
        upstream.note_budgeted_request();
    }
    let mut client_upgrade = client_upgrade;
    // `None` once sent (and not handed back).
    let mut pending = Some(req);
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut last_error = None;
    let mut pick = plan.pick;
    while tried.len() < max_attempts {
        let Some(endpoint) = next_endpoint(upstream, &tried, pick)? else {
            break;
        };
        pick = Pick::Balanced;

        // A pooled connection first; if it turns out closed before taking
        // the request, one fresh connection to the same endpoint.
        let dial = backend.dial(&endpoint);
        let mut pooled = pool::take_idle(endpoint.id, plan.idle_timeout);
        let outcome = loop {
            let reused = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(s) => s,
                None => match dial.connect(plan.connect_timeout).await {
                    Ok(s) => {
                        endpoint.mark_ok();
                        s
                    }
                    Err(e) => {
                        connect_failed(upstream, &endpoint, &e);
                        last_error = Some(ProxyError::Connect(e));
                        break None;
                    }
                },
            };
            if sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                break None;
            }
            let Some(req) = pending.take() else {
                break None;
            };
            let inflight = endpoint.start_request();
            // Latency feeds only the p2c-ewma picker: no clock read otherwise.
            let sent = (upstream.key.lb == LbAlgorithm::P2cEwma).then(Instant::now);
            let exchange = sender.try_send_request(req);
            let result = upload::with_timeouts(
                exchange,
                upload.as_deref(),
                plan.send_timeout,
                plan.read_timeout,
            )
            .await;
            let response = match result {
                Err(ProxyError::Timeout)
                    if replay.is_some() && retry.is_some_and(|r| r.on_timeout) =>
                {
                    last_error = Some(ProxyError::Timeout);
                    break None;
                }
                Err(e) => return Err(e),
                Ok(Ok(response)) => response,
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) if reused => {
                        pending = Some(unsent);
                        continue;
                    }
                    _ => {
                        if upload.as_deref().is_some_and(|u| u.too_large()) {
                            return Err(ProxyError::PayloadTooLarge);
                        }
                        let error = ProxyError::Upstream(e.into_error());
                        if replay.is_some() && retry.is_some_and(|r| r.on_error) {
                            last_error = Some(error);
                            break None;
                        }
                        return Err(error);
                    }
                },
            };
            if let Some(sent) = sent {
                endpoint
                    .observe_latency(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
            let status = response.status().as_u16();
            let again = replay.is_some()
                && tried.len() + 1 < max_attempts
                && retry.is_some_and(|r| r.on_status.contains(&status));
            if again {
                // Dropping the unread response closes that connection.
                break None;
            }
            break Some(finish(
                response,
                sender,
                &endpoint,
                inflight,
                client_upgrade.take(),
            ));
        };
        if let Some(response) = outcome {
            return Ok((response, endpoint));
        }
        if !retries_on_connect && matches!(last_error, Some(ProxyError::Connect(_))) {
            break;
        }
        tried.push(endpoint);
        if pending.is_none() {
            // Sent: only a replayable head can go elsewhere, within the
            // retry budget if there is one.
            let budget_ok = retry
                .and_then(|r| r.budget)
                .is_none_or(|percent| upstream.take_retry(percent));
            match &replay {
                Some(replay) if budget_ok => pending = Some(replay.request()),
                _ => break,
            }
        }
    }
    Err(last_error.unwrap_or(ProxyError::NoEndpoints))
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
fn idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Forwarding to an HTTP/2 upstream (`H2C`, `GRPC`, `GRPCS`): one shared
/// connection per endpoint and worker; streams, trailers and all.
async fn forward_h2(
    backend: Backend<'_>,
    mut req: Request<upload::UploadBody>,
    upload: Option<&upload::Upload>,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    let upstream = backend.upstream;
    *req.version_mut() = Version::HTTP_2;
    // HTTP/2 carries the authority in the request target.
    let scheme = if upstream.key.protocol.is_tls() {
        "https"
    } else {
        "http"
    };
    let authority = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut last_error = None;
    let mut pick = plan.pick;
    while tried.len() < MAX_ENDPOINT_ATTEMPTS {
        let Some(endpoint) = next_endpoint(upstream, &tried, pick)? else {
            break;
        };
        pick = Pick::Balanced;
        let mut sender = match backend.dial(&endpoint).h2(plan.connect_timeout).await {
            Ok(s) => {
                endpoint.mark_ok();
                s
            }
            Err(e) => {
                connect_failed(upstream, &endpoint, &e);
                last_error = Some(e);
                tried.push(endpoint);
                continue;
            }
        };
        if sender.ready().await.is_err() {
            tried.push(endpoint);
            continue;
        }
        let authority = authority
            .clone()
            .unwrap_or_else(|| endpoint.addr.to_string());
        match Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(target.as_str())
            .build()
        {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => {
                return Err(ProxyError::BadRequest(
                    "request target not valid for HTTP/2",
                ))
            }
        }
        let inflight = endpoint.start_request();
        let mut response = match upload::with_timeouts(
            sender.send_request(req),
            upload,
            plan.send_timeout,
            plan.read_timeout,
        )
        .await?
        {
            Ok(response) => response,
            Err(_) if upload.is_some_and(|u| u.too_large()) => {
                return Err(ProxyError::PayloadTooLarge)
            }
            Err(e) => return Err(ProxyError::Upstream(e)),
        };
        headers::strip_hop_by_hop(response.headers_mut(), false);
        return Ok((
            response.map(|body| ProxyBody::upstream(body, None, inflight)),
            endpoint,
        ));
    }
    match last_error {
        Some(e) => Err(ProxyError::Connect(e)),
        None => Err(ProxyError::NoEndpoints),
    }
}

/// The next endpoint to try, skipping those already tried; `Err` (503)
/// when the upstream has no endpoint at all.
fn next_endpoint(
    upstream: &Upstream,
    tried: &[Arc<Endpoint>],
    pick: Pick,
) -> Result<Option<Arc<Endpoint>>, ProxyError> {
    let set = upstream.endpoints();
    if set.endpoints.is_empty() {
        return Err(ProxyError::NoEndpoints);
    }
    let exclude: Vec<&Endpoint> = tried.iter().map(|e| e.as_ref()).collect();
    Ok(match pick {
        Pick::Balanced => upstream.pick(&set, &exclude),
        Pick::Hash(hash) => upstream.pick_hashed(&set, hash, &exclude),
        Pick::Sticky(id) => upstream
            .pick_sticky(&set, id, &exclude)
            .or_else(|| upstream.pick(&set, &exclude)),
    })
}

fn connect_failed(upstream: &Upstream, endpoint: &Endpoint, error: &pool::ConnectError) {
    endpoint.mark_failed();
    upstream.connect_errors.inc();
    tracing::debug!(%error, upstream = %upstream.label, "connect failed");
}

/// Turns the upstream response into the client response: hop-by-hop headers
/// removed, body wrapped so the connection returns to the pool at its end,
/// upgrades bridged.
fn finish(
    mut response: Response<Incoming>,
    sender: pool::Sender,
    endpoint: &Arc<Endpoint>,
    inflight: crate::lb::InFlight,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Response<ProxyBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (client, upstream) = tokio::join!(client_upgrade, upstream_upgrade);
                if let (Ok(client), Ok(upstream)) = (client, upstream) {
                    let mut client = TokioIo::new(client);
                    let mut upstream = TokioIo::new(upstream);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                drop(inflight);
            });
            headers::strip_hop_by_hop(response.headers_mut(), true);
            return response.map(|_| ProxyBody::empty());
        }
    }
    headers::strip_hop_by_hop(response.headers_mut(), false);
    let checkin = Checkin {
        sender,
        endpoint: endpoint.id,
    };
    response.map(|body| ProxyBody::upstream(body, Some(checkin), inflight))
}
