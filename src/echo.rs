//! The built-in echo backend (`tollgate echo`), like Traefik's whoami or the
//! Kubernetes ingress conformance echoserver: it answers every request with
//! a JSON description of the request it received and the service it plays.
//! Examples, tests and benchmarks share it.
//!
//! A query parameter `bytes=N` (`GET /x?bytes=1073741824`) answers N zero
//! bytes instead, streamed in 64 KiB chunks: the download side of streaming
//! tests and benchmarks. `status=NNN` answers with that status (the JSON
//! body unchanged) and `delay=MS` waits that long (at most 60 s) before
//! answering: failing and slow backends for tests.
//!
//! Invariant: request bodies are counted while streaming, never buffered,
//! and downloads are generated while streaming, so transfers of any size
//! keep memory flat.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

#[derive(Serialize)]
struct Echoed<'a> {
    path: String,
    host: &'a str,
    method: &'a str,
    proto: &'static str,
    headers: BTreeMap<String, Vec<String>>,
    namespace: &'a str,
    ingress: &'a str,
    service: &'a str,
    pod: &'a str,
    #[serde(rename = "bodyBytes")]
    body_bytes: u64,
}

/// `X-Forwarded-For` → `X-Forwarded-For` (Go's canonical header form).
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

struct Identity {
    service: String,
    pod: String,
    fixed: bool,
}

/// N zero bytes in 64 KiB chunks.
struct Zeros {
    remaining: u64,
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl http_body::Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.remaining.min(ZEROS.len() as u64);
        self.remaining -= n;
        let chunk = Bytes::from_static(ZEROS.get(..n as usize).unwrap_or_default());
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

type EchoBody = http_body_util::Either<Full<Bytes>, Zeros>;

fn query_number(uri: &http::Uri, key: &str) -> Option<u64> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|n| n.parse().ok())
}

fn download_size(uri: &http::Uri) -> Option<u64> {
    query_number(uri, "bytes")
}

async fn handle(
    req: Request<Incoming>,
    id: Arc<Identity>,
) -> Result<Response<EchoBody>, Infallible> {
    if let Some(n) = download_size(req.uri()) {
        let mut body = req.into_body();
        while let Some(Ok(_)) = body.frame().await {}
        let mut response = Response::new(EchoBody::Right(Zeros { remaining: n }));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
            .headers_mut()
            .insert(header::SERVER, HeaderValue::from_static("tollgate-echo"));
        return Ok(response);
    }
    let status = query_number(req.uri(), "status")
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok());
    if let Some(ms) = query_number(req.uri(), "delay") {
        tokio::time::sleep(std::time::Duration::from_millis(ms.min(60_000))).await;
    }
    let mut response = echo(req, id).await.map(EchoBody::Left);
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    Ok(response)
}

async fn echo(req: Request<Incoming>, id: Arc<Identity>) -> Response<Full<Bytes>> {
    let mut response = if id.fixed {
        // Drain the body so the connection stays reusable.
        let mut body = req.into_body();
        while let Some(Ok(_)) = body.frame().await {}
        Response::new(Full::new(Bytes::from_static(b"ok\n")))
    } else {
        let (parts, mut body) = req.into_parts();
        let mut body_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => body_bytes += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                Err(_) => break,
            }
        }
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in &parts.headers {
            headers
                .entry(canonical(name.as_str()))
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into());
        }
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let echoed = Echoed {
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
            host,
            method: parts.method.as_str(),
            proto: match parts.version {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            headers,
            namespace: "",
            ingress: "",
            service: &id.service,
            pod: &id.pod,
            body_bytes,
        };
        let mut json = serde_json::to_vec_pretty(&echoed).unwrap_or_default();
        json.push(b'\n');
        let mut r = Response::new(Full::new(Bytes::from(json)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static("tollgate-echo"));
    if let Ok(v) = HeaderValue::from_str(&id.service) {
        response.headers_mut().insert("x-echo-service", v);
    }
    response
}

/// Serves one echo listener forever.
pub async fn serve(listener: TcpListener, service: String, fixed: bool) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let id = Arc::new(Identity {
        pod: format!("{service}@{addr}"),
        service,
        fixed,
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let id = id.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, id.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Binds every address, then serves them all.
pub async fn run(listen: Vec<(SocketAddr, String)>, fixed: bool) -> std::io::Result<()> {
    let mut tasks = Vec::new();
    for (addr, service) in listen {
        let listener = TcpListener::bind(addr).await?;
        tracing::info!(%addr, %service, "echo backend listening");
        tasks.push(tokio::spawn(serve(listener, service, fixed)));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn canonical_header_names() {
        assert_eq!(super::canonical("x-forwarded-for"), "X-Forwarded-For");
        assert_eq!(super::canonical("user-agent"), "User-Agent");
        assert_eq!(super::canonical("te"), "Te");
    }
}
