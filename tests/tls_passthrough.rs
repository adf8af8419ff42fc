//! TLS passthrough (`nginx.ingress.kubernetes.io/ssl-passthrough` with
//! `--enable-ssl-passthrough`, issue 13 item 4) through a real `tollgate
//! run` and real sockets: a TLS backend with its own certificate (rustls in
//! the test), clients that verify it, a terminated host on the same port,
//! the ClientHello forwarded byte for byte, PROXY protocol, endpoint
//! changes, a configuration swap under an open connection, the peek's
//! timeout, and the flag off (rejected, never terminated).
//!
//! As ingress-nginx (its e2e "[Flag] enable-ssl-passthrough", ported in
//! `nginx_e2e_ssl_passthrough_handles_known_and_throttled_traffic`): the
//! client sees the backend's certificate and the backend's answer.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const NS: &str = "pass";
const ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-passthrough";

/// A TLS server with its own certificate: answers an HTTP/1.1 request with
/// its name (then closes), and echoes anything else.
struct TlsBackend {
    port: u16,
    cert: TestCert,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_backend(ca: &TestCa, name: &'static str, host: &str) -> TlsBackend {
    let cert = ca.leaf(&format!("backend {name}"), &[host]);
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> = pem_blocks(&cert.chain_pem)
        .into_iter()
        .map(rustls::pki_types::CertificateDer::from)
        .collect();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pem_blocks(&cert.key_pem).remove(0).into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut head = Vec::new();
                loop {
                    let n = match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if head.is_empty() && !buf.starts_with(b"GET ") && !buf.starts_with(b"HEAD ") {
                        // Echo mode.
                        if tls.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let body = format!("backend {name}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(resp.as_bytes()).await;
                        let _ = tls.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    TlsBackend { port, cert, task }
}

/// Service `svc` (port 8080) with one EndpointSlice per port.
fn backend_docs(svc: &str, ports: &[u16]) -> Vec<Value> {
    backend(NS, svc, ports)
}

/// Ingress `name`: `host` `/` → `svc`, passed through (`value`) and with
/// `extra` annotations.
fn pass_ingress(name: &str, host: &str, svc: &str, value: &str, extra: &[(&str, &str)]) -> Value {
    let mut v = ingress(NS, name, &simple_spec(host, svc));
    v["metadata"]["annotations"][ANNOTATION] = json!(value);
    for (k, val) in extra {
        v["metadata"]["annotations"][*k] = json!(val);
    }
    v
}

/// A terminated host: `host` `/` → `svc`, with its own certificate.
fn terminated(name: &str, host: &str, svc: &str, cert: &TestCert) -> Vec<Value> {
    let mut v = ingress(NS, name, &simple_spec(host, svc));
    v["spec"]["tls"] = json!([{"hosts": [host], "secretName": format!("{name}-tls")}]);
    vec![
        v,
        tls_secret(NS, &format!("{name}-tls"), &cert.chain_pem, &cert.key_pem),
    ]
}

async fn start(docs: &[Value], args: &[&str]) -> Tollgate {
    Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(docs))
        .args(args)
        .start()
        .await
}

/// Connects to tollgate's HTTPS port with SNI `host`, verifying the
/// certificate against `ca`.
async fn verified(tg: &Tollgate, ca: &TestCa, host: &str) -> Result<TlsStream, String> {
    let client = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    client.connect(tg.https_addr(), Some(host)).await
}

/// One GET over `stream` (the backend answers and closes); the body.
async fn get_over(mut stream: TlsStream, host: &str) -> String {
    let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// Sends `line` and reads the same number of bytes back.
async fn echo_round(stream: &mut TlsStream, line: &str) -> String {
    stream.write_all(line.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; line.len()];
    tokio::time::timeout(REQUEST_TIMEOUT, stream.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    String::from_utf8(buf).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_host_sees_the_backend_and_others_terminate_on_the_same_port() {
    let ca = TestCa::new("passthrough test CA");
    let app = tls_backend(&ca, "app", "pass.test").await;
    let term_cert = ca.leaf("tollgate term.test", &["term.test"]);
    let echo = Echo::services(&["svc-term"]).await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(echo.backends(NS));
    docs.extend(backend_docs("app", &[app.port]));
    docs.push(pass_ingress(
        "app",
        "pass.test",
        "app",
        "true",
        // For plain HTTP on port 80 (tollgate → backend over TLS).
        &[("nginx.ingress.kubernetes.io/backend-protocol", "HTTPS")],
    ));
    docs.extend(terminated("term", "term.test", "svc-term", &term_cert));
    let tg = start(&docs, &["--enable-ssl-passthrough"]).await;

    // The client verifies the backend's own certificate and gets its answer.
    let stream = verified(&tg, &ca, "pass.test")
        .await
        .expect("passthrough handshake");
    assert!(
        PeerCert::of(&stream).is(&app.cert),
        "{}",
        PeerCert::of(&stream).describe()
    );
    assert_eq!(get_over(stream, "pass.test").await, "backend app");
    // Upper case SNI is the same host.
    let stream = verified(&tg, &ca, "PASS.test")
        .await
        .expect("passthrough handshake");
    assert!(PeerCert::of(&stream).is(&app.cert));

    // Same port, another host: terminated by tollgate with its certificate.
    let (resp, cert) = https_get(tg.https_addr(), Some("term.test"), "term.test", "/")
        .await
        .expect("terminated host");
    assert!(cert.is(&term_cert), "{}", cert.describe());
    assert_eq!(
        (resp.status, resp.echo().service()),
        (200, "svc-term".into())
    );
    // Unknown SNI and no SNI: terminated, default certificate.
    let cert = served_cert(tg.https_addr(), Some("unknown.test"))
        .await
        .unwrap();
    assert!(cert.is_generated_default(), "{}", cert.describe());
    let cert = served_cert(tg.https_addr(), None).await.unwrap();
    assert!(cert.is_generated_default(), "{}", cert.describe());

    // Plain HTTP for the passthrough host keeps its route (as ingress-nginx).
    let resp = tg.get("pass.test", "/").await;
    assert_eq!((resp.status, resp.text()), (200, "backend app".into()));

    let metrics = tg.metrics().await;
    let spliced = metric_sum(
        &metrics,
        "tollgate_tls_passthrough_connections_total",
        &[("result", "spliced")],
    );
    assert_eq!(spliced, Some(2.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_hello_reaches_the_backend_byte_for_byte_without_the_proxy_header() {
    // A raw TCP backend records what it receives.
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let raw_port = raw.local_addr().unwrap().port();
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(backend_docs("raw", &[raw_port]));
    docs.push(pass_ingress("raw", "raw.test", "raw", "true", &[]));
    let tg = start(&docs, &["--enable-ssl-passthrough", "--proxy-protocol"]).await;

    let hello = client_hello("raw.test");
    let mut client = TcpStream::connect(tg.https_addr()).await.unwrap();
    client
        .write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 4711 443\r\n")
        .await
        .unwrap();
    client.write_all(&hello).await.unwrap();
    client.write_all(b"and after it").await.unwrap();
    let (mut upstream, _) = tokio::time::timeout(REQUEST_TIMEOUT, raw.accept())
        .await
        .expect("backend connection in time")
        .unwrap();
    let mut got = vec![0u8; hello.len() + "and after it".len()];
    tokio::time::timeout(REQUEST_TIMEOUT, upstream.read_exact(&mut got))
        .await
        .expect("bytes in time")
        .unwrap();
    assert_eq!(
        &got[..hello.len()],
        &hello[..],
        "the ClientHello, unchanged"
    );
    assert_eq!(&got[hello.len()..], b"and after it");
    // And the other way, untouched too.
    upstream.write_all(b"from the backend").await.unwrap();
    let mut back = vec![0u8; "from the backend".len()];
    tokio::time::timeout(REQUEST_TIMEOUT, client.read_exact(&mut back))
        .await
        .expect("bytes in time")
        .unwrap();
    assert_eq!(back, b"from the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_works_behind_a_proxy_protocol_load_balancer() {
    let ca = TestCa::new("passthrough test CA");
    let app = tls_backend(&ca, "app", "pass.test").await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(backend_docs("app", &[app.port]));
    docs.push(pass_ingress("app", "pass.test", "app", "true", &[]));
    let tg = start(&docs, &["--enable-ssl-passthrough", "--proxy-protocol"]).await;

    let mut tcp = TcpStream::connect(tg.https_addr()).await.unwrap();
    tcp.write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 4711 443\r\n")
        .await
        .unwrap();
    let client = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    let name = rustls::pki_types::ServerName::try_from("pass.test").unwrap();
    let stream = tokio_rustls::TlsConnector::from(client.config())
        .connect(name, tcp)
        .await
        .expect("backend handshake through the PROXY header");
    assert!(PeerCert::of(&stream).is(&app.cert));
    assert_eq!(get_over(stream, "pass.test").await, "backend app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_changes_are_followed_and_open_connections_survive_a_swap() {
    let ca = TestCa::new("passthrough test CA");
    let a = tls_backend(&ca, "a", "pass.test").await;
    let b = tls_backend(&ca, "b", "pass.test").await;
    let echo = Echo::services(&["svc-other"]).await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(echo.backends(NS));
    docs.push(pass_ingress("app", "pass.test", "app", "true", &[]));
    let with_slice = |port: u16| {
        let mut d = docs.clone();
        d.extend(backend_docs("app", &[port]));
        yaml_docs(&d)
    };
    let tg = Tollgate::builder()
        .file("manifests.yaml", &with_slice(a.port))
        .arg("--enable-ssl-passthrough")
        .start()
        .await;

    // An open passthrough connection to backend a.
    let mut open = verified(&tg, &ca, "pass.test").await.expect("handshake");
    assert!(PeerCert::of(&open).is(&a.cert));
    assert_eq!(echo_round(&mut open, "ping 1\n").await, "ping 1\n");

    // The Service's endpoints move to b: new connections follow, without
    // a recompile (the EndpointSlice fast path).
    let reloads = |m: &str| metric_sum(m, "tollgate_reloads_total", &[]);
    let before = tg.metrics().await;
    tg.write("manifests.yaml", &with_slice(b.port));
    let deadline = Instant::now() + RELOAD_TIMEOUT * 2;
    loop {
        let s = verified(&tg, &ca, "pass.test").await.expect("handshake");
        if PeerCert::of(&s).is(&b.cert) {
            break;
        }
        assert!(Instant::now() < deadline, "new connections still reach a");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = tg.metrics().await;
    assert_eq!(reloads(&after), reloads(&before), "{after}");
    assert!(
        metric_sum(&after, "tollgate_endpoint_updates_total", &[])
            > metric_sum(&before, "tollgate_endpoint_updates_total", &[]),
        "{after}"
    );
    // A configuration swap (another Ingress) and the removal of the
    // passthrough Ingress itself: the open connection keeps working.
    let mut swapped = docs.clone();
    swapped.retain(|d| d["metadata"]["name"] != "app");
    swapped.extend(backend_docs("app", &[b.port]));
    swapped.push(ingress(
        NS,
        "other",
        &simple_spec("other.test", "svc-other"),
    ));
    tg.write("manifests.yaml", &yaml_docs(&swapped));
    tg.eventually("other.test", "/", |r| r.status == 200).await;
    assert_eq!(echo_round(&mut open, "ping 2\n").await, "ping 2\n");
    // New connections for the host are no longer passed through.
    let cert = served_cert(tg.https_addr(), Some("pass.test"))
        .await
        .unwrap();
    assert!(cert.is_generated_default(), "{}", cert.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hello_that_never_completes_is_cut_at_the_header_timeout() {
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(backend_docs("raw", &[raw.local_addr().unwrap().port()]));
    docs.push(pass_ingress("raw", "raw.test", "raw", "true", &[]));
    let tg = start(
        &docs,
        &["--enable-ssl-passthrough", "--client-header-timeout", "1s"],
    )
    .await;
    let hello = client_hello("raw.test");
    let mut client = TcpStream::connect(tg.https_addr()).await.unwrap();
    client.write_all(&hello[..hello.len() / 2]).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
        .await
        .expect("closed by tollgate");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let metrics = tg.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "tollgate_tls_handshakes_total",
            &[("result", "timeout")]
        ) >= Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_the_ingress_is_refused_and_never_terminated() {
    let ca = TestCa::new("passthrough test CA");
    let app = tls_backend(&ca, "app", "pass.test").await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(backend_docs("app", &[app.port]));
    docs.push(pass_ingress("app", "pass.test", "app", "true", &[]));

    // `tollgate check` names the Ingress and the annotation.
    let dir = TempDir::new("pass-check");
    dir.write("manifests.yaml", &yaml_docs(&docs));
    let (code, out, err) = check(dir.path(), &[]).await;
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains("pass/app"), "{out}");
    assert!(
        out.contains("annotations[nginx.ingress.kubernetes.io/ssl-passthrough]")
            && out.contains("--enable-ssl-passthrough"),
        "{out}"
    );
    assert!(out.contains("refused: ssl-passthrough (1)"), "{out}");
    // With the flag, check accepts it.
    let (code, out, err) = check(dir.path(), &["--enable-ssl-passthrough"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 supported"), "{out}");
    assert!(
        out.contains("TLS passthrough: pass.test -> pass/app:8080"),
        "{out}"
    );

    // `run` without the flag: nothing passed through, nothing served.
    let tg = start(&docs, &[]).await;
    let cert = served_cert(tg.https_addr(), Some("pass.test"))
        .await
        .unwrap();
    assert!(cert.is_generated_default(), "{}", cert.describe());
    assert!(verified(&tg, &ca, "pass.test").await.is_err());
    assert_eq!(tg.get("pass.test", "/").await.status, 404);
    let metrics = tg.metrics().await;
    assert_eq!(
        metric_sum(&metrics, "tollgate_tls_passthrough_connections_total", &[]),
        Some(0.0),
        "{metrics}"
    );
}

/// Writes at most `chunk` bytes at a time (ingress-nginx's
/// `writeThrottledConn`): the ClientHello arrives in pieces.
struct Throttled {
    inner: TcpStream,
    chunk: usize,
}

impl tokio::io::AsyncRead for Throttled {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Throttled {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.chunk);
        std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Ported from ingress-nginx's e2e suite, "[Flag] enable-ssl-passthrough"
/// ("when handling traffic", its settings tests): known
/// traffic is passed through, verified or not, with or without a Host
/// header, also when the client writes its ClientHello in small pieces
/// ("on throttled connections", chunks of len(host)/3 bytes); a TLS host
/// without the annotation is terminated by the controller. (Its first case,
/// `--ssl-passthrough-proxy-port`, has no counterpart: tollgate passes
/// connections through in the listener, with no internal proxy port.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_e2e_ssl_passthrough_handles_known_and_throttled_traffic() {
    let host = "testpassthrough.com";
    let ca = TestCa::new("passthrough test CA");
    let app = tls_backend(&ca, "echopass", host).await;
    let bad_cert = ca.leaf(
        "tollgate noannotationnopassthrough.com",
        &["noannotationnopassthrough.com"],
    );
    let echo = Echo::services(&["svc-bad"]).await;
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(echo.backends(NS));
    docs.extend(backend_docs("echopass", &[app.port]));
    docs.push(pass_ingress("echopass", host, "echopass", "true", &[]));
    docs.extend(terminated(
        "bad",
        "noannotationnopassthrough.com",
        "svc-bad",
        &bad_cert,
    ));
    let tg = start(&docs, &["--enable-ssl-passthrough"]).await;

    for (verify, chunk, with_host) in [
        (true, usize::MAX, true),
        (false, usize::MAX, true),
        (true, host.len() / 3, false),
        (false, host.len() / 3, false),
        (true, host.len() / 3, true),
        (false, host.len() / 3, true),
    ] {
        let client = TlsClient {
            trust: verify.then(|| ca.pem.clone()),
            ..TlsClient::default()
        };
        let tcp = TcpStream::connect(tg.https_addr()).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from(host).unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(client.config())
            .connect(name, Throttled { inner: tcp, chunk })
            .await
            .unwrap_or_else(|e| panic!("verify {verify} chunk {chunk}: {e}"));
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        assert_eq!(presented, app.cert.der, "verify {verify} chunk {chunk}");
        let head = if with_host {
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n")
        } else {
            "GET / HTTP/1.1\r\n\r\n".to_string()
        };
        tls.write_all(head.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, tls.read_to_end(&mut out)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("HTTP/1.1 200 "),
            "verify {verify} chunk {chunk}: {out}"
        );
        assert!(out.ends_with("backend echopass"), "{out}");
    }
    // The host without the annotation: terminated, with its own certificate.
    let (resp, cert) = https_get(
        tg.https_addr(),
        Some("noannotationnopassthrough.com"),
        "noannotationnopassthrough.com",
        "/",
    )
    .await
    .unwrap();
    assert!(cert.is(&bad_cert), "{}", cert.describe());
    assert_eq!(resp.echo().service(), "svc-bad");
}

/// The first flight of a rustls client for `server_name`.
fn client_hello(server_name: &str) -> Vec<u8> {
    let config = TlsClient::default().config();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}
