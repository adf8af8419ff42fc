//! The webhook's HTTPS listener and its certificate.
//!
//! Invariants:
//! - The certificate is the `kubernetes.io/tls` Secret named by
//!   `--admission-certificate`, read from the compiled objects (the API
//!   server's Secrets in Kubernetes mode, the manifests standalone): a new
//!   version of the Secret is parsed at the next handshake after its
//!   compile; until a valid one exists, handshakes fail (the API server
//!   then applies the webhook's `failurePolicy`).
//! - Bodies are bounded ([`MAX_BODY`]), handshakes and requests are
//!   bounded in time, and at most [`CONCURRENT_REVIEWS`] compiles run at
//!   once, on the blocking pool.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Secret;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::review::{self, ReviewAnswer};
use crate::config::{parse_secret, ObjectKey};
use crate::inspect::Inspect;

/// Largest AdmissionReview body read (an object and its old version, each
/// at most etcd's 1.5 MiB, plus the envelope).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Compiles running at once; more reviews wait their turn.
pub const CONCURRENT_REVIEWS: usize = 2;
/// Time for a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for one review (the API server's own default timeout is 10 s).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("admission webhook TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The webhook's serving certificate: the Secret in the current objects,
/// parsed once per version of it.
#[derive(Debug)]
pub struct AdmissionCertificate {
    inspect: Arc<ArcSwap<Inspect>>,
    secret: ObjectKey,
    /// The Secret version last parsed and its certificate.
    parsed: ArcSwapOption<(Arc<Secret>, Arc<CertifiedKey>)>,
}

impl AdmissionCertificate {
    pub fn new(inspect: Arc<ArcSwap<Inspect>>, secret: ObjectKey) -> Self {
        Self {
            inspect,
            secret,
            parsed: ArcSwapOption::empty(),
        }
    }

    /// The certificate of the Secret's current version, if it is usable.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        let inspect = self.inspect.load();
        let Some(entry) = inspect.snapshot.secrets.get(&self.secret) else {
            tracing::warn!(secret = %self.secret, "admission webhook: the certificate Secret is not there (yet)");
            return None;
        };
        if let Some(cached) = self.parsed.load().as_ref() {
            if Arc::ptr_eq(&cached.0, &entry.object) {
                return Some(cached.1.clone());
            }
        }
        match parse_secret(&entry.object) {
            Ok(certificate) => {
                tracing::info!(secret = %self.secret, "admission webhook: certificate loaded");
                self.parsed.store(Some(Arc::new((
                    entry.object.clone(),
                    certificate.key.clone(),
                ))));
                Some(certificate.key)
            }
            Err((field, reason)) => {
                tracing::warn!(secret = %self.secret, field = %field, reason, "admission webhook: the certificate Secret is not usable");
                None
            }
        }
    }
}

impl ResolvesServerCert for AdmissionCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The rustls configuration of the webhook listener (HTTP/1.1 only).
pub fn server_config(
    certificate: Arc<AdmissionCertificate>,
) -> Result<Arc<ServerConfig>, AdmissionError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn handle(
    req: Request<Incoming>,
    inspect: Arc<ArcSwap<Inspect>>,
    permits: Arc<Semaphore>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/validate" {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found\n".to_vec(),
        ));
    }
    if req.method() != Method::POST {
        return Ok(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"POST an AdmissionReview\n".to_vec(),
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                format!("{e}\n").into_bytes(),
            ))
        }
    };
    let request = match review::parse(&body) {
        Ok(request) => request,
        Err(e) => {
            return Ok(respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("{e}\n").into_bytes(),
            ))
        }
    };
    let Ok(_permit) = permits.acquire_owned().await else {
        return Ok(respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"shutting down\n".to_vec(),
        ));
    };
    let started = std::time::Instant::now();
    let decided = tokio::task::spawn_blocking(move || {
        let inspect = inspect.load_full();
        review::decide(&inspect, &request)
    })
    .await;
    let Ok(response) = decided else {
        return Ok(respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            b"review failed\n".to_vec(),
        ));
    };
    tracing::debug!(
        uid = %response.uid,
        allowed = response.allowed,
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "admission review"
    );
    Ok(match serde_json::to_vec(&ReviewAnswer::new(response)) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(_) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            b"cannot encode the answer\n".to_vec(),
        ),
    })
}

/// Serves `POST /validate` over TLS until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    inspect: Arc<ArcSwap<Inspect>>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(CONCURRENT_REVIEWS));
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let (acceptor, inspect, permits) = (acceptor.clone(), inspect.clone(), permits.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let service = service_fn(move |req| {
                let (inspect, permits) = (inspect.clone(), permits.clone());
                async move {
                    match tokio::time::timeout(REVIEW_TIMEOUT, handle(req, inspect, permits)).await
                    {
                        Ok(answer) => answer,
                        Err(_) => Ok(respond(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "text/plain",
                            b"review timed out\n".to_vec(),
                        )),
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HANDSHAKE_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
