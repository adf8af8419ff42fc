//! Sending over pooled HTTP/1.1 connections (`HTTP`, `HTTPS` upstreams, and
//! upgrades on any): endpoint attempts, retries, timeouts, and the
//! response turned into the client's.
//!
//! Invariants:
//! - A pooled connection first; one that turns out closed before taking the
//!   request is replaced by a fresh connection to the same endpoint.
//! - A request is sent again only when it provably was not sent, or when
//!   the route's retry policy allows it and the request has no body (and is
//!   idempotent unless the policy says otherwise), within the retry budget.
//! - A connection returns to its pool only at the end of its response body
//!   ([`crate::proxy::body`]), and only when the whole request body was
//!   sent before the response came (else the backend may have left part
//!   of it unread: 0.CL); upgraded connections never do.
//! - Bytes are bridged both ways only after the backend's `101`, and only
//!   when the client asked for that upgrade ([`super::prepare`] lets only
//!   WebSocket through): an unasked `101` is a 502 and its connection is
//!   dropped.
//! - A request without a body waits for its response headers on its
//!   connection's timer ([`super::pool::Sender::timer`]), reset for that
//!   request before it is polled and not polled after its response came:
//!   the same deadline as a fresh `tokio::time::timeout`, without a new
//!   timer per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};

use super::plan::{Backend, Pick, Plan, MAX_ENDPOINT_ATTEMPTS};
use super::pool::{self, Sender};
use crate::hop_by_hop;
use crate::lb::{Endpoint, InFlight};
use crate::proxy::body::{Checkin, ProxyBody};
use crate::proxy::error::ProxyError;
use crate::proxy::upload::{with_timeouts, ExchangeLimits, Stall, Upload, UploadBody};
use crate::table::upstream::LbAlgorithm;

/// The head of a request without a body, kept to send it again.
struct Replay {
    method: http::Method,
    uri: Uri,
    headers: http::HeaderMap,
}

impl Replay {
    fn request(&self) -> Request<UploadBody> {
        let mut req = Request::new(UploadBody::empty());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Sends a prepared HTTP/1.1 request to an endpoint of `backend`.
/// Connection failures move on to another endpoint; with a retry policy,
/// so do (for requests without a body) broken connections, timeouts and
/// the listed statuses, up to its number of tries.
pub fn send<'a>(
    backend: Backend<'a>,
    req: Request<UploadBody>,
    upload: Option<Arc<Upload>>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    plan: &'a Plan<'a>,
) -> impl Future<Output = Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError>> + 'a {
    send_pending(backend, Some(req), upload, client_upgrade, plan)
}

/// [`send`], with the request given as the pending slot itself.
pub(super) async fn send_pending(
    backend: Backend<'_>,
    // The request in the argument itself (`None` once sent and not handed
    // back): an async fn keeps its arguments for its whole life, so a
    // second copy in a local would make every request's future larger.
    mut pending: Option<Request<UploadBody>>,
    upload: Option<Arc<Upload>>,
    mut client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    plan: &Plan<'_>,
) -> Result<(Response<ProxyBody>, Arc<Endpoint>), ProxyError> {
    let upstream = backend.upstream;
    let retry = plan.retry;
    let max_attempts = retry.map_or(MAX_ENDPOINT_ATTEMPTS, |r| usize::from(r.tries.max(1)));
    // Only a request without a body can be sent again once it was sent;
    // non-idempotent ones only when the policy says so (nginx's rule).
    // Boxed: only requests with a retry policy keep a replayable head.
    let replay = pending.as_ref().and_then(|req| {
        retry
            .filter(|r| {
                upload.is_none()
                    && client_upgrade.is_none()
                    && r.tries > 1
                    && (r.non_idempotent || idempotent(req.method()))
            })
            .map(|_| {
                Box::new(Replay {
                    method: req.method().clone(),
                    uri: req.uri().clone(),
                    headers: req.headers().clone(),
                })
            })
    });
    let retries_on_connect = retry.is_none_or(|r| r.on_error || r.tries > 1);
    if retry.is_some_and(|r| r.budget.is_some()) {
        upstream.note_budgeted_request();
    }
    let pacing = retry.and_then(|r| r.pacing);
    let mut tried: Vec<Arc<Endpoint>> = Vec::new();
    let mut last_error = None;
    let mut pick = plan.pick;
    // `proxy-next-upstream-timeout`: no next endpoint past this instant.
    let retry_until = retry.and_then(|r| r.within).map(|d| Instant::now() + d);
    // Attempts so far; without pacing always `tried.len()`.
    let mut attempts = 0usize;
    while attempts < max_attempts {
        if attempts > 0 && retry_until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        if let (Some(pacing), Ok(retry_number)) = (pacing, u32::try_from(attempts)) {
            if attempts > 0 {
                // Boxed: two timers that requests without pacing never run.
                Box::pin(pace(pacing.wait_before(retry_number), plan)).await?;
            }
        }
        let endpoint = match backend.next_endpoint(&tried, pick)? {
            Some(endpoint) => endpoint,
            // Gateway API attempts may go to endpoints tried before.
            None if pacing.is_some() && !tried.is_empty() => {
                tried.clear();
                match backend.next_endpoint(&tried, pick)? {
                    Some(endpoint) => endpoint,
                    None => break,
                }
            }
            None => break,
        };
        attempts += 1;
        pick = Pick::Balanced;

        // A pooled connection first; if it turns out closed before taking
        // the request, one fresh connection to the same endpoint.
        let mut pooled = pool::take_idle(endpoint.id, plan.idle_timeout);
        let outcome = loop {
            let reused = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(s) => s,
                None => {
                    // Connect time is measured only when a connection opens.
                    let dialed = plan.timing.map(|timing| (timing, Instant::now()));
                    // Boxed: dialing (TCP, TLS, handshake) is a large
                    // future that pooled requests never run.
                    match Box::pin(backend.dial(&endpoint).connect(plan.connect_timeout)).await {
                        Ok(s) => {
                            endpoint.mark_ok();
                            if let Some((timing, started)) = dialed {
                                timing.connected(started.elapsed());
                            }
                            s
                        }
                        Err(e) => {
                            backend.connect_failed(&endpoint, &e);
                            last_error = Some(ProxyError::Connect(e));
                            break None;
                        }
                    }
                }
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
            // One clock read: the start of the response timeout, and of the
            // latency that feeds the p2c-ewma picker and the request's
            // timing (kept only when one of them wants it).
            let now = Instant::now();
            let ewma = upstream.key.lb == LbAlgorithm::P2cEwma;
            let sent = (ewma || plan.timing.is_some()).then_some(now);
            // Pinned here and lent: the exchange (which holds the request
            // until it is sent) is stored once in this future, not again in
            // the timeouts' future.
            let mut exchange = std::pin::pin!(sender.try_send_request(req));
            let result = match upload.as_deref() {
                // No body: the response timeout on the connection's own
                // timer (reset here), polled in place.
                None => {
                    response_within(exchange.as_mut(), sender.timer(), &plan.exchange, now).await
                }
                // Boxed: the two-phase timeouts of a body (a `select!` and
                // its timers) would make every request's future larger.
                Some(upload) => {
                    Box::pin(with_timeouts(
                        exchange.as_mut(),
                        Some(upload),
                        &plan.exchange,
                    ))
                    .await
                }
            }
            .map_err(ProxyError::from);
            let response = match result {
                Err(ProxyError::Timeout)
                    if replay.is_some()
                        && retry.is_some_and(|r| r.on_timeout)
                        && !past_deadline(plan) =>
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
                        if let Some(upload) = upload.as_deref() {
                            if upload.too_large() {
                                return Err(ProxyError::PayloadTooLarge);
                            }
                            if let Some(fault) = upload.client_fault() {
                                return Err(ProxyError::Malformed(fault));
                            }
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
            let status = response.status().as_u16();
            if let Some(sent) = sent {
                let elapsed = sent.elapsed();
                // Only p2c-ewma reads the estimate (its update reads the
                // clock and takes an `exp`).
                if ewma {
                    endpoint.observe_latency(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
                }
                if let Some(timing) = plan.timing {
                    timing.responded(elapsed, status);
                }
            }
            let again = replay.is_some()
                && attempts < max_attempts
                && retry_until.is_none_or(|until| Instant::now() < until)
                && retry.is_some_and(|r| r.on_status.contains(&status));
            if again {
                // Dropping the unread response closes that connection.
                break None;
            }
            // A response that came before the whole body was sent leaves the
            // connection's request unfinished: the backend may not read the
            // rest (0.CL), so the connection is not reused.
            let reusable = upload.as_deref().is_none_or(Upload::is_sent);
            break Some(finish(
                response,
                reusable.then_some(sender),
                &endpoint,
                inflight,
                client_upgrade.take(),
            )?);
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
    Err(match last_error {
        Some(e @ (ProxyError::Connect(_) | ProxyError::Upstream(_))) if pacing.is_some() => {
            ProxyError::Unavailable(Box::new(e))
        }
        Some(e) => e,
        None => ProxyError::NoEndpoints,
    })
}

/// Awaits the response to a request without a body under the
/// response-header timeout (`limits.read` from `now`, or the attempt's
/// deadline if earlier), as `tokio::time::timeout` would, but on the
/// connection's `timer`: reset first, so an earlier request's deadline
/// never applies, and the exchange polled before the timer, so a response
/// that is ready wins over a timer that elapsed at the same time.
fn response_within<'f, F: Future>(
    mut exchange: Pin<&'f mut F>,
    mut timer: Pin<&'f mut Sleep>,
    limits: &ExchangeLimits,
    now: Instant,
) -> impl Future<Output = Result<F::Output, Stall>> + 'f {
    let read = now
        .checked_add(limits.read)
        .unwrap_or_else(|| far_future(now));
    let deadline = limits
        .attempt_deadline()
        .map_or(read, |attempt| read.min(attempt));
    timer.as_mut().reset(deadline);
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(output) = exchange.as_mut().poll(cx) {
            return Poll::Ready(Ok(output));
        }
        timer.as_mut().poll(cx).map(|()| Err(Stall::Upstream))
    })
}

/// A deadline that never comes (about 30 years), for a timeout too large to
/// add to `now` (what `tokio::time::timeout` does then).
fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365 * 30)
}

/// Waits `wait` before a Gateway API retry; a request deadline that comes
/// first ends the request there (504), as the spec asks.
async fn pace(wait: Duration, plan: &Plan<'_>) -> Result<(), ProxyError> {
    if let Some(deadline) = plan.exchange.deadline {
        if Instant::now() + wait >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(ProxyError::Timeout);
        }
    }
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Ok(())
}

/// Whether the request's whole deadline (`timeouts.request`) has passed:
/// then a timed-out attempt is not retried.
fn past_deadline(plan: &Plan<'_>) -> bool {
    plan.exchange
        .deadline
        .is_some_and(|deadline| Instant::now() >= deadline)
}

/// Methods that may be sent twice (RFC 9110 §9.2.2).
fn idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Turns the upstream response into the client response: hop-by-hop headers
/// removed, body wrapped so the connection returns to the pool at its end,
/// upgrades bridged; a `101` the client did not ask for is refused.
fn finish(
    mut response: Response<Incoming>,
    sender: Option<Sender>,
    endpoint: &Endpoint,
    inflight: InFlight,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response<ProxyBody>, ProxyError> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // Dropping `sender` and `response` closes that upstream connection.
        let Some(client_upgrade) = client_upgrade else {
            return Err(ProxyError::UnaskedUpgrade);
        };
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
        hop_by_hop::strip_hop_by_hop(response.headers_mut(), true);
        return Ok(response.map(|_| ProxyBody::empty()));
    }
    hop_by_hop::strip_hop_by_hop(response.headers_mut(), false);
    let checkin = sender.map(|sender| Checkin {
        sender,
        endpoint: endpoint.id,
    });
    Ok(response.map(|body| ProxyBody::upstream(body, checkin, inflight)))
}
