//! ingress-nginx's end-to-end cases for how backends are spoken to, ported:
//! `backend-protocol` (HTTPS, GRPC, GRPCS, AUTO_HTTP, FCGI and the
//! `fastcgi-*` annotations), gRPC through the proxy (with external auth
//! and timeouts), `proxy-ssl-*`,
//! `upstream-vhost` and `service-upstream`. Each test repeats one
//! `ginkgo.It` case of kubernetes/ingress-nginx `test/e2e/annotations/`
//! (the module names the Go file; each test's doc comment starts with
//! `Go: "<case>"`) against the real `tollgate run` binary in standalone
//! mode, with in-test backends on 127.0.0.1.
//!
//! Most Go cases only read nginx.conf (`proxy_pass https://`, `grpc_pass
//! grpc://`, `proxy_ssl_verify on`); the ports assert what that
//! configuration does instead: the backend really receives TLS, HTTP/2 or
//! gRPC (each in-test backend speaks one protocol only and records its
//! handshakes), the SNI it is sent, and verification against the CA.
//! grpcbin is replaced by [`grpcbin`], a hand-framed gRPC handler that
//! answers with the metadata it received (as grpcbin's `HeadersUnary`).

// Test backends record what they saw behind a lock (see tests/common).
#![allow(clippy::disallowed_types)]

mod common;

#[path = "nginx_e2e_backend/backendprotocol.rs"]
mod backendprotocol;
#[path = "nginx_e2e_backend/fastcgi.rs"]
mod fastcgi;
#[path = "nginx_e2e_backend/grpc.rs"]
mod grpc;
#[path = "nginx_e2e_backend/proxyssl.rs"]
mod proxyssl;
#[path = "nginx_e2e_backend/serviceupstream.rs"]
mod serviceupstream;
#[path = "nginx_e2e_backend/upstreamvhost.rs"]
mod upstreamvhost;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const NS: &str = "default";
/// The ConfigMap `--configmap` names in the ConfigMap cases.
pub const CONFIG_MAP: &str = "ingress-nginx-controller";

/// ingress-nginx's `framework.NewSingleIngress(name, path, host, ns,
/// service, port, annotations)`: one rule, one Prefix path; annotations
/// are given without the `nginx.ingress.kubernetes.io/` prefix.
pub fn single(
    name: &str,
    path: &str,
    host: &str,
    service: &str,
    port: u16,
    annotations: &[(&str, &str)],
) -> Value {
    let mut ing = annotated_ingress(NS, name, host, (path, "Prefix"), service, annotations);
    ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] =
        json!(port);
    ing
}

/// `NewSingleIngressWithTLS`: [`single`] with a `tls` entry for `host`
/// and the Secret `secret`.
pub fn single_tls(
    name: &str,
    path: &str,
    host: &str,
    service: &str,
    port: u16,
    secret: &str,
    annotations: &[(&str, &str)],
) -> Value {
    let mut ing = single(name, path, host, service, port, annotations);
    ing["spec"]["tls"] = json!([{"hosts": [host], "secretName": secret}]);
    ing
}

/// ingress-nginx's `CreateIngressMASecret(host, name)`: a TLS Secret for
/// `host` issued by `ca`, with `ca.crt` (the mutual-auth shape
/// `proxy-ssl-secret` reads).
pub fn ma_secret(ca: &TestCa, host: &str, name: &str) -> Value {
    let leaf = ca.leaf(host, &[host]);
    let mut secret = tls_secret(NS, name, &leaf.chain_pem, &leaf.key_pem);
    secret["stringData"]["ca.crt"] = json!(ca.pem);
    secret
}

/// A TLS Secret for `host` issued by `ca` (the Ingress's own certificate).
pub fn host_secret(ca: &TestCa, host: &str, name: &str) -> Value {
    let leaf = ca.leaf(host, &[host]);
    tls_secret(NS, name, &leaf.chain_pem, &leaf.key_pem)
}

/// Service `name` (port 8080) with one endpoint, 127.0.0.1:`port`.
pub fn service_at(name: &str, port: u16) -> Vec<Value> {
    backend(NS, name, &[port])
}

/// An `ExternalName` Service `name` → `localhost` (ingress-nginx's grpc
/// cases point one at grpcbin's cluster DNS name); the Ingress names the
/// backend's real port, as ExternalName Services have no endpoints.
pub fn external_name(name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "grpc", "port": port}]}
    })
}

/// The ingress-nginx ConfigMap with `data`.
pub fn config_map(data: &[(&str, &str)]) -> Value {
    common::config_map_in(NS, CONFIG_MAP, data)
}

/// `tollgate run` on these manifests with these arguments.
pub async fn start(docs: &[Value], args: &[&str]) -> Tollgate {
    Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(docs))
        .args(args)
        .start()
        .await
}

/// `tollgate check` on these manifests: (exit code, stdout + stderr).
pub async fn check_docs(docs: &[Value]) -> (i32, String) {
    let dir = TempDir::new("e2e-backend-check");
    dir.write("manifests.yaml", &yaml_docs(docs));
    let (code, out, err) = check(dir.path(), &[]).await;
    (code, format!("{out}\n{err}"))
}

/// What a backend saw of a request (grpcbin's `HeadersUnary` metadata,
/// httpbun's echo): version, authority, and the headers a test asks about.
pub fn seen(parts: &http::request::Parts) -> Value {
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    json!({
        "version": format!("{:?}", parts.version),
        ":authority": parts.uri.authority().map(|a| a.to_string()),
        "host": header("host"),
        "content-type": header("content-type"),
        "authorization": header("authorization"),
        "path": parts.uri.path(),
    })
}

/// The in-test grpcbin: a gRPC call answers one message, the JSON of what
/// it saw ([`seen`]), with `grpc-status: 0`; a first request message
/// `delay=<ms>` waits that long before answering (grpcbin-delay's
/// `RequestAttributes.Delay`). Any other request answers the JSON as a
/// plain 200.
pub async fn grpcbin(req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let saw = seen(&parts);
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let is_grpc = saw["content-type"]
        .as_str()
        .is_some_and(|c| c.starts_with("application/grpc"));
    if !is_grpc {
        return Response::builder()
            .header("content-type", "application/json")
            .body(full(saw.to_string()))
            .unwrap();
    }
    let first = grpc_messages(&body)
        .ok()
        .and_then(|m| m.first().cloned())
        .unwrap_or_default();
    if let Some(ms) = std::str::from_utf8(&first)
        .ok()
        .and_then(|s| s.strip_prefix("delay="))
        .and_then(|s| s.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    grpc_response(grpc_body(
        vec![Bytes::from(saw.to_string())],
        Duration::ZERO,
        header_map(&[("grpc-status", "0"), ("grpc-message", "")]),
    ))
}

/// The metadata the in-test grpcbin answered with (its one message).
pub fn metadata(reply: &GrpcReply) -> Value {
    let bodies = reply.bodies();
    let first = bodies.first().unwrap_or_else(|| {
        panic!(
            "no gRPC message (status {}, grpc-status {:?}, message {:?})",
            reply.status,
            reply.grpc_status(),
            reply.grpc_message()
        )
    });
    serde_json::from_slice(first).expect("grpcbin answers JSON")
}

/// An in-test backend inside TLS with a given certificate, speaking HTTP/2
/// (ALPN `h2`) or HTTP/1.1 (ALPN `http/1.1`) only; records each
/// handshake's SNI. Aborted on drop.
pub struct TlsBackend {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
    /// The SNI of each completed handshake.
    pub sni: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsBackend {
    /// Serves [`grpcbin`] with `cert` (its chain and key).
    pub async fn start(cert: &TestCert, http2: bool) -> TlsBackend {
        let alpn: &[u8] = if http2 { b"h2" } else { b"http/1.1" };
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config(&[alpn]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let sni = Arc::new(Mutex::new(Vec::new()));
        let (count, names) = (connections.clone(), sni.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, names) = (acceptor.clone(), names.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let name = tls.get_ref().1.server_name().map(str::to_string);
                    names.lock().unwrap().push(name);
                    let svc = hyper::service::service_fn(|r| async move {
                        Ok::<_, Infallible>(grpcbin(r).await)
                    });
                    let io = TokioIo::new(tls);
                    if http2 {
                        let _ = hyper::server::conn::http2::Builder::new(executor())
                            .serve_connection(io, svc)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                });
            }
        });
        TlsBackend {
            port,
            connections,
            sni,
            task,
        }
    }

    pub fn snis(&self) -> Vec<Option<String>> {
        self.sni.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// An in-test backend speaking HTTP/1.1 both in cleartext and inside TLS
/// (with `cert`) on one port, as an `AUTO_HTTP` backend must: a connection
/// whose first byte is a TLS record header (0x16) is TLS. Answers the JSON
/// of what it saw ([`seen`]) with `"tls"` telling which it was.
pub struct DualBackend {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DualBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DualBackend {
    pub async fn start(cert: &TestCert) -> DualBackend {
        let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config(&[b"http/1.1"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut first = [0u8; 1];
                    let tls = matches!(tcp.peek(&mut first).await, Ok(1) if first[0] == 0x16);
                    let svc = hyper::service::service_fn(move |r: Request<Incoming>| async move {
                        let (parts, _) = r.into_parts();
                        let mut saw = seen(&parts);
                        saw["tls"] = json!(tls);
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(full(saw.to_string()))
                                .unwrap(),
                        )
                    });
                    let http1 = hyper::server::conn::http1::Builder::new();
                    if tls {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = http1.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    } else {
                        let _ = http1.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                });
            }
        });
        DualBackend { port, task }
    }
}

/// The JSON a plain (non-gRPC) response of [`grpcbin`] carries.
pub fn json_of(r: &Resp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.summary()))
}

/// A gRPC call to `https://host/...` over TLS (ALPN h2, any certificate)
/// on tollgate's HTTPS port, SNI `host`.
pub async fn grpc_over_tls(tg: &Tollgate, host: &str, msg: &[u8]) -> Result<GrpcReply, String> {
    let mut client = h2_tls_connect(&TlsClient::default(), tg.https_addr(), host).await?;
    grpc_call(
        &mut client,
        &format!("https://{host}/grpcbin.GRPCBin/HeadersUnary"),
        msg,
    )
    .await
}

/// A gRPC call on `sender` with extra request `headers`, answered as a
/// plain response (status, headers, the framed body): for calls whose
/// answer may not be gRPC (a proxy's 504) or that need metadata.
pub async fn grpc_request(
    sender: &mut H2Sender,
    uri: &str,
    headers: &[(&str, &str)],
    msg: &[u8],
) -> Result<Resp, String> {
    let mut call = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        call = call.header(*k, *v);
    }
    let call = call
        .body(http_body_util::Full::new(grpc_frame(msg)))
        .unwrap();
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = sender.send_request(call).await.map_err(|e| e.to_string())?;
        collect(resp).await
    })
    .await
    .map_err(|_| format!("{uri}: timed out"))?
}

/// A gRPC call over cleartext HTTP/2 (prior knowledge) on tollgate's HTTP
/// port with `:authority` `host`.
pub async fn grpc_cleartext(tg: &Tollgate, host: &str, msg: &[u8]) -> Result<GrpcReply, String> {
    let mut client = h2c_connect(tg.http_addr()).await?;
    grpc_call(
        &mut client,
        &format!("http://{host}/grpcbin.GRPCBin/HeadersUnary"),
        msg,
    )
    .await
}
