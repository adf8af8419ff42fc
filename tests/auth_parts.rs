//! External authentication (`tollgate::auth::external`) against real auth
//! services on 127.0.0.1: the decision for each answer, what the auth
//! service receives, failures that must fail closed, https and keep-alive.
//!
//! Every server is bound to port 0 and aborted when its handle drops; every
//! wait is bounded by a timeout.

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tollgate::auth::{AuthClient, Decision, ExternalAuth, RequestVars};

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// What the auth service saw of one sub-request.
#[derive(Debug)]
struct Seen {
    method: Method,
    uri: String,
    headers: HeaderMap,
}

/// An in-test auth service.
struct AuthServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AuthServer {
    /// Answers every request with `respond`, over TLS when `tls` is set.
    async fn start<F>(tls: Option<Arc<rustls::ServerConfig>>, respond: F) -> AuthServer
    where
        F: Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, seen) = mpsc::unbounded_channel();
        let respond = Arc::new(respond);
        let counter = connections.clone();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let (respond, tx, acceptor) = (respond.clone(), tx.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = Seen {
                            method: req.method().clone(),
                            uri: req.uri().to_string(),
                            headers: req.headers().clone(),
                        };
                        let response = respond(&seen);
                        let _ = tx.send(seen);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        AuthServer {
            addr,
            connections,
            seen,
            task,
        }
    }

    async fn plain<F>(respond: F) -> AuthServer
    where
        F: Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        AuthServer::start(None, respond).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn next_seen(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(5), self.seen.recv())
            .await
            .expect("the auth service saw no request")
            .expect("the auth service stopped")
    }
}

fn status(code: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"auth says no")));
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

/// A client request to `app.test:8443`, as the proxy would hand it over.
fn client_request(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("host", "app.test:8443");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn auth(url: &str, response_headers: Option<&str>, signin: Option<&str>) -> ExternalAuth {
    ExternalAuth::from_annotations(url, None, response_headers, signin, Duration::from_secs(5))
        .unwrap()
}

async fn check(auth: &ExternalAuth, client: &AuthClient, req: &Parts) -> Decision {
    let vars = RequestVars::new(req, "https", CLIENT_IP);
    tokio::time::timeout(Duration::from_secs(10), auth.check(client, req, &vars))
        .await
        .expect("check() is bounded by its own timeout")
}

fn denied(decision: Decision) -> Response<Bytes> {
    match decision {
        Decision::Deny(response) => response,
        Decision::Allow(headers) => panic!("allowed with {headers:?}"),
    }
}

fn client() -> AuthClient {
    AuthClient::new().unwrap()
}

#[tokio::test]
async fn allow_copies_only_the_listed_response_headers() {
    let server = AuthServer::plain(|_| {
        let mut r = status(200);
        let h = r.headers_mut();
        h.insert("x-auth-user", HeaderValue::from_static("alice"));
        h.append("x-auth-group", HeaderValue::from_static("admins"));
        h.append("x-auth-group", HeaderValue::from_static("devs"));
        h.insert("x-internal", HeaderValue::from_static("secret"));
        r
    })
    .await;
    let auth = auth(
        &server.url("/auth"),
        Some("X-Auth-User, x-auth-group,X-Auth-Email"),
        None,
    );
    let req = client_request("/private", &[]);
    let Decision::Allow(allowed) = check(&auth, &client(), &req).await else {
        panic!("a 200 from the auth service must allow");
    };
    assert_eq!(allowed.get("x-auth-user").unwrap(), "alice");
    let groups: Vec<_> = allowed.get_all("x-auth-group").iter().collect();
    assert_eq!(groups, ["admins", "devs"]);
    assert!(!allowed.contains_key("x-internal"));
    assert!(!allowed.contains_key("x-auth-email"));

    // On the upstream request, the auth service's values replace the
    // client's, and a listed header the auth service did not return is
    // removed rather than passed through from the client.
    let mut upstream = HeaderMap::new();
    upstream.insert("x-auth-user", HeaderValue::from_static("mallory"));
    upstream.insert("x-auth-email", HeaderValue::from_static("spoofed@evil"));
    upstream.insert("accept", HeaderValue::from_static("*/*"));
    auth.apply_allowed(allowed, &mut upstream);
    assert_eq!(
        upstream.get_all("x-auth-user").iter().collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(upstream.get_all("x-auth-group").iter().count(), 2);
    assert!(!upstream.contains_key("x-auth-email"));
    assert_eq!(upstream.get("accept").unwrap(), "*/*");
}

#[tokio::test]
async fn the_auth_service_receives_the_original_request_headers() {
    let mut server = AuthServer::plain(|_| status(204)).await;
    let auth = ExternalAuth::from_annotations(
        &format!(
            "http://{}/verify?tenant=$http_x_tenant&back=$escaped_request_uri",
            server.addr
        ),
        Some("PUT"),
        None,
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let req = client_request(
        "/private/page?a=1&b=two",
        &[
            ("authorization", "Bearer abc"),
            ("cookie", "session=s1"),
            ("cookie", "theme=dark"),
            ("x-tenant", "blue"),
            ("content-length", "12"),
            ("transfer-encoding", "chunked"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "must not pass"),
            ("keep-alive", "timeout=5"),
            ("expect", "100-continue"),
            ("x-original-url", "https://spoofed/"),
            ("x-sent-from", "someone else"),
        ],
    );
    assert!(matches!(
        check(&auth, &client(), &req).await,
        Decision::Allow(_)
    ));
    let seen = server.next_seen().await;
    assert_eq!(seen.method, Method::PUT, "auth-method");
    assert_eq!(
        seen.uri,
        "/verify?tenant=blue&back=%2Fprivate%2Fpage%3Fa%3D1%26b%3Dtwo"
    );
    let h = &seen.headers;
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(get("host"), Some(server.addr.to_string()));
    assert_eq!(get("authorization").as_deref(), Some("Bearer abc"));
    assert_eq!(get("cookie").as_deref(), Some("session=s1; theme=dark"));
    assert_eq!(get("x-tenant").as_deref(), Some("blue"));
    assert_eq!(
        get("x-original-url").as_deref(),
        Some("https://app.test:8443/private/page?a=1&b=two")
    );
    assert_eq!(get("x-original-method").as_deref(), Some("POST"));
    assert_eq!(
        get("x-auth-request-redirect").as_deref(),
        Some("/private/page?a=1&b=two")
    );
    assert_eq!(get("x-sent-from").as_deref(), Some("tollgate"));
    assert_eq!(h.get_all("x-original-url").iter().count(), 1);
    for gone in [
        "content-length",
        "transfer-encoding",
        "x-hop",
        "keep-alive",
        "expect",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the auth service");
    }
}

#[tokio::test]
async fn unauthorized_without_signin_passes_www_authenticate() {
    let server = AuthServer::plain(|_| {
        let mut r = status(401);
        r.headers_mut().append(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"x\""),
        );
        r.headers_mut()
            .append("www-authenticate", HeaderValue::from_static("Bearer"));
        r.headers_mut()
            .insert("x-leak", HeaderValue::from_static("internal"));
        r
    })
    .await;
    let response = denied(
        check(
            &auth(&server.url("/auth"), None, None),
            &client(),
            &client_request("/", &[]),
        )
        .await,
    );
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .collect();
    assert_eq!(challenges, ["Basic realm=\"x\"", "Bearer"]);
    assert!(!response.headers().contains_key("x-leak"));
}

#[tokio::test]
async fn unauthorized_with_signin_redirects_with_rd() {
    let server = AuthServer::plain(|_| status(401)).await;
    let client = client();
    let req = client_request("/p/q?x=1&y=2", &[]);
    // ingress-nginx: `$scheme://$http_host$escaped_request_uri`.
    let original = "https://app.test:8443%2Fp%2Fq%3Fx%3D1%26y%3D2";
    let cases = [
        (
            "https://login.test/oauth2/start".to_string(),
            format!("https://login.test/oauth2/start?rd={original}"),
        ),
        (
            "https://login.test/start?team=a".to_string(),
            format!("https://login.test/start?team=a&rd={original}"),
        ),
        (
            "https://$host/start?rd=$escaped_request_uri".to_string(),
            "https://app.test/start?rd=%2Fp%2Fq%3Fx%3D1%26y%3D2".to_string(),
        ),
    ];
    for (signin, location) in cases {
        let auth = auth(&server.url("/auth"), None, Some(&signin));
        let response = denied(check(&auth, &client, &req).await);
        assert_eq!(response.status(), StatusCode::FOUND, "{signin}");
        assert_eq!(
            response.headers().get("location").unwrap(),
            location.as_str(),
            "{signin}"
        );
    }
}

#[tokio::test]
async fn forbidden_stays_forbidden_and_other_answers_fail_closed() {
    for (code, want) in [
        (403, StatusCode::FORBIDDEN),
        (500, StatusCode::INTERNAL_SERVER_ERROR),
        (503, StatusCode::INTERNAL_SERVER_ERROR),
        (404, StatusCode::INTERNAL_SERVER_ERROR),
        (302, StatusCode::INTERNAL_SERVER_ERROR),
        (101, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let server = AuthServer::plain(move |_| status(code)).await;
        let auth = auth(&server.url("/auth"), None, Some("https://login.test/"));
        let response = denied(check(&auth, &client(), &client_request("/", &[])).await);
        assert_eq!(response.status(), want, "auth service answered {code}");
    }
}

#[tokio::test]
async fn an_unreachable_auth_service_fails_closed() {
    // A port that was just free: nothing listens on it any more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let auth = auth(&format!("http://{addr}/auth"), None, None);
    let response = denied(check(&auth, &client(), &client_request("/", &[])).await);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_silent_auth_service_times_out_and_fails_closed() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    let auth =
        ExternalAuth::from_annotations(&format!("http://{addr}/auth"), None, None, None, timeout)
            .unwrap();
    let started = Instant::now();
    let response = denied(check(&auth, &client(), &client_request("/", &[])).await);
    let took = started.elapsed();
    hold.abort();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(took >= timeout, "gave up early: {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "timeout not enforced: {took:?}"
    );
}

#[tokio::test]
async fn unusable_rendered_urls_fail_closed() {
    // `$host` escaping turns a hostile Host into a percent-encoded
    // authority, which is refused: the check fails instead of asking
    // another server.
    let auth = auth("http://$host/auth", None, None);
    let mut req = client_request("/", &[]);
    req.headers
        .insert("host", HeaderValue::from_static("evil.example/steal?"));
    let response = denied(check(&auth, &client(), &req).await);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let mut server = AuthServer::plain(|_| status(200)).await;
    let auth = auth(&server.url("/auth"), None, None);
    let client = client();
    for _ in 0..5 {
        assert!(matches!(
            check(&auth, &client, &client_request("/", &[])).await,
            Decision::Allow(_)
        ));
        server.next_seen().await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_auth_services_are_verified() {
    let ca = common::TestCa::new("auth test CA");
    let leaf = ca.leaf("localhost", &["localhost"]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der.clone())],
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let server = AuthServer::start(Some(Arc::new(server_tls)), |_| {
        let mut r = status(200);
        r.headers_mut()
            .insert("x-auth-user", HeaderValue::from_static("tls-user"));
        r
    })
    .await;
    let auth = auth(
        &format!("https://localhost:{}/auth", server.addr.port()),
        Some("x-auth-user"),
        None,
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der())).unwrap();
    let trusting = AuthClient::with_roots(roots).unwrap();
    let Decision::Allow(allowed) = check(&auth, &trusting, &client_request("/", &[])).await else {
        panic!("a verified https auth service must be usable");
    };
    assert_eq!(allowed.get("x-auth-user").unwrap(), "tls-user");

    // The same service with a certificate nobody vouches for: fail closed.
    let untrusting = AuthClient::with_roots(rustls::RootCertStore::empty()).unwrap();
    let response = denied(check(&auth, &untrusting, &client_request("/", &[])).await);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn annotation_values_are_validated() {
    let five = Duration::from_secs(5);
    let err = |url: &str, method: Option<&str>, headers: Option<&str>, signin: Option<&str>| {
        ExternalAuth::from_annotations(url, method, headers, signin, five)
            .unwrap_err()
            .to_string()
    };
    assert!(err("ftp://auth/", None, None, None).contains("http://"));
    assert!(err("/relative", None, None, None).contains("http://"));
    assert!(err("http://a/$foo", None, None, None).contains("$foo"));
    assert!(err("http://a/", Some("GE T"), None, None).contains("GE T"));
    assert!(err("http://a/", None, Some("x-ok, bad header"), None).contains("bad header"));
    assert!(err("http://a/", None, Some("x-ok, Content-Length"), None).contains("content-length"));
    assert!(err("http://a/", None, Some("host"), None).contains("host"));
    assert!(err("http://a/", None, None, Some("https://s/$nope")).contains("$nope"));
    let ok = ExternalAuth::from_annotations(
        "HTTPS://auth/$request_uri",
        Some(" "),
        Some(" x-a ,, x-b "),
        Some(""),
        five,
    )
    .unwrap();
    assert_eq!(
        ok.response_headers(),
        [
            HeaderName::from_static("x-a"),
            HeaderName::from_static("x-b")
        ]
    );
}
