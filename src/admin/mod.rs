//! The admin listener: `/healthz` (process alive), `/readyz` (a routing
//! table is installed, listeners are up, not draining), `/metrics`
//! (Prometheus text format), and `/debug/routes` and `/debug/diagnostics`
//! (`debug`: what the control plane compiled, as JSON).
//!
//! Invariant: separate from the proxy listeners, so probes and scrapes never
//! compete with (or get routed like) user traffic.

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod debug;

use crate::inspect::Inspect;
use crate::metrics::Metrics;
use crate::state::Health;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn handle(
    req: Request<Incoming>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    inspect: Arc<ArcSwap<Inspect>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/healthz" => respond(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => {
            if health.ready() {
                respond(StatusCode::OK, "text/plain", "ready\n")
            } else {
                respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n")
            }
        }
        "/metrics" => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/debug/routes" | "/debug/diagnostics" => {
            let inspect = inspect.load();
            let body = if req.uri().path() == "/debug/routes" {
                debug::routes(&inspect)
            } else {
                debug::diagnostics(&inspect)
            };
            match body {
                Ok(body) => respond(StatusCode::OK, "application/json", body),
                Err(e) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("{e}\n"),
                ),
            }
        }
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}

/// Serves the admin endpoints until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    inspect: Arc<ArcSwap<Inspect>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let (health, metrics, inspect) = (health.clone(), metrics.clone(), inspect.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                handle(req, health.clone(), metrics.clone(), inspect.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
