//! ingress-nginx's `test/e2e/annotations/auth.go`, external authentication
//! cases, ported against the real `tollgate run` binary (standalone mode,
//! echo backend, an in-test auth service on 127.0.0.1): the auth answer's
//! cookies (`auth-always-set-cookie`), headers to the auth service from a
//! ConfigMap (`auth-proxy-set-headers`), `auth-request-redirect`, the
//! answer cache (`auth-cache-key`, `auth-cache-duration`) and
//! `auth-response-headers` overwriting a client's header. Each test names
//! the Go case it repeats; where the Go case only reads nginx.conf, the
//! port asserts the behaviour that configuration produces.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use common::*;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

const NS: &str = "default";
const ECHO: &str = "echo";
/// `user:password`, httpbin's `/basic-auth/user/password` credentials.
const USER_PASSWORD: &str = "Basic dXNlcjpwYXNzd29yZA==";

/// One Ingress (ingress-nginx's `framework.NewSingleIngress`): `host`,
/// Prefix `path` → `svc`:8080, `nginx.ingress.kubernetes.io/` annotations.
fn single(name: &str, path: &str, host: &str, svc: &str, annotations: &[(&str, &str)]) -> Value {
    annotated_ingress(NS, name, host, (path, "Prefix"), svc, annotations)
}

fn config_map(name: &str, data: &[(&str, &str)]) -> Value {
    common::config_map_in(NS, name, data)
}

/// The in-test auth service: httpbin's `/basic-auth/user/password` (200
/// for `user:password`, else 401), plus ingress-nginx's cookie server
/// (`/cookies/set/alma/armud`: 200 with `Set-Cookie: alma=armud`). Counts
/// the checks and keeps the last request's headers.
struct AuthService {
    backend: Option<Backend>,
    port: u16,
    hits: Arc<AtomicUsize>,
    last: Arc<ArcSwap<http::HeaderMap>>,
    /// Deleted: connections tollgate's pool still holds get a 502 (the
    /// accept loop is gone too, so new connections are refused).
    gone: Arc<AtomicBool>,
}

impl AuthService {
    async fn start() -> AuthService {
        let hits = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(ArcSwap::from_pointee(http::HeaderMap::new()));
        let gone = Arc::new(AtomicBool::new(false));
        let (h, l, g) = (hits.clone(), last.clone(), gone.clone());
        let backend = serve(move |req: Request<Incoming>| {
            let (h, l, g) = (h.clone(), l.clone(), g.clone());
            async move {
                let mut r = Response::new(full("OK\n"));
                if g.load(Ordering::SeqCst) {
                    *r.status_mut() = StatusCode::BAD_GATEWAY;
                    return r;
                }
                h.fetch_add(1, Ordering::SeqCst);
                l.store(Arc::new(req.headers().clone()));
                let path = req.uri().path().to_string();
                if let Some(rest) = path.strip_prefix("/cookies/set/") {
                    let cookie = rest.replacen('/', "=", 1);
                    r.headers_mut()
                        .insert("set-cookie", cookie.parse().unwrap());
                    return r;
                }
                let ok = req
                    .headers()
                    .get("authorization")
                    .is_some_and(|v| v == USER_PASSWORD);
                if !ok {
                    *r.status_mut() = StatusCode::UNAUTHORIZED;
                }
                r.headers_mut().insert("foo", "from-auth".parse().unwrap());
                r
            }
        })
        .await;
        AuthService {
            port: backend.port,
            backend: Some(backend),
            hits,
            last,
            gone,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn last(&self, name: &str) -> Option<String> {
        let last = self.last.load();
        last.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    /// ingress-nginx's `f.DeleteDeployment(HTTPBunService)`: the auth
    /// service is gone (connections refused).
    fn delete(&mut self) {
        self.gone.store(true, Ordering::SeqCst);
        self.backend = None;
    }
}

/// tollgate with the echo backend and these objects.
async fn site(echo: &Echo, objects: Vec<Value>) -> Tollgate {
    let mut docs = echo.backends(NS);
    docs.extend(objects);
    Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .start()
        .await
}

async fn get(tg: &Tollgate, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    tg.request("GET", host, target, headers).await
}

fn status(r: &Resp, want: u16) {
    assert_eq!(r.status, want, "{}", r.summary());
}

// auth.go, `should set "proxy_set_header "My-Custom-Header" "42";" when
// auth-headers are set`: the auth service receives the header.
#[tokio::test]
async fn auth_proxy_set_headers_reach_the_auth_service() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let url = auth.url("/basic-auth/user/password");
    let tg = site(
        &echo,
        vec![
            config_map("auth-headers", &[("My-Custom-Header", "42")]),
            single(
                "auth",
                "/",
                "auth",
                ECHO,
                &[
                    ("auth-url", &url),
                    ("auth-proxy-set-headers", &format!("{NS}/auth-headers")),
                ],
            ),
        ],
    )
    .await;
    let r = get(&tg, "auth", "/", &[("Authorization", USER_PASSWORD)]).await;
    status(&r, 200);
    assert_eq!(auth.last("my-custom-header").as_deref(), Some("42"));
    // The header goes to the auth service, not to the backend.
    assert_eq!(r.echo().header("my-custom-header"), None);
}

// The ConfigMap must exist (ingress-nginx denies the location): the
// Ingress is rejected, never served without the headers it asks for.
#[tokio::test]
async fn auth_proxy_set_headers_without_its_config_map_is_refused() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let url = auth.url("/basic-auth/user/password");
    let tg = site(
        &echo,
        vec![single(
            "auth",
            "/",
            "auth",
            ECHO,
            &[("auth-url", &url), ("auth-proxy-set-headers", "missing")],
        )],
    )
    .await;
    let r = get(&tg, "auth", "/", &[("Authorization", USER_PASSWORD)]).await;
    status(&r, 404);
    assert_eq!(auth.hits(), 0);
}

// auth.go, `should set cache_key when external auth cache is configured`
// ("200 202 401 30m"): a second request with the same key is answered
// from the cache, without asking the auth service.
#[tokio::test]
async fn auth_cache_key_and_duration_cache_the_answer() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let url = auth.url("/basic-auth/user/password");
    let tg = site(
        &echo,
        vec![single(
            "auth",
            "/",
            "auth",
            ECHO,
            &[
                ("auth-url", &url),
                ("auth-cache-key", "$http_authorization"),
                ("auth-cache-duration", "200 202 401 30m"),
            ],
        )],
    )
    .await;
    status(
        &get(&tg, "auth", "/", &[("Authorization", USER_PASSWORD)]).await,
        200,
    );
    status(
        &get(&tg, "auth", "/", &[("Authorization", USER_PASSWORD)]).await,
        200,
    );
    assert_eq!(auth.hits(), 1, "the second check comes from the cache");
    // Another key is asked (and its 401 is cached too).
    status(
        &get(&tg, "auth", "/", &[("Authorization", "Basic eDp5")]).await,
        401,
    );
    status(
        &get(&tg, "auth", "/", &[("Authorization", "Basic eDp5")]).await,
        401,
    );
    assert_eq!(auth.hits(), 2);
}

// Without auth-cache-key, every request is checked.
#[tokio::test]
async fn without_a_cache_key_every_request_is_checked() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let url = auth.url("/basic-auth/user/password");
    let tg = site(
        &echo,
        vec![single("auth", "/", "auth", ECHO, &[("auth-url", &url)])],
    )
    .await;
    for _ in 0..2 {
        status(
            &get(&tg, "auth", "/", &[("Authorization", USER_PASSWORD)]).await,
            200,
        );
    }
    assert_eq!(auth.hits(), 2);
}

/// auth.go, "when external authentication with caching is configured":
/// `/foo` and `/bar` on two hosts, key `fixed`, `200 201 401 30m`.
async fn caching_site(auth: &AuthService, echo: &Echo) -> Tollgate {
    let url = auth.url("/basic-auth/user/password");
    let annotations = [
        ("auth-url", url.as_str()),
        ("auth-signin", "http://$host/auth/start"),
        ("auth-cache-key", "fixed"),
        ("auth-cache-duration", "200 201 401 30m"),
    ];
    let mut ingresses = Vec::new();
    for host in ["auth", "different"] {
        for path in ["/foo", "/bar"] {
            let name = format!("{}-{host}-ing", &path[1..]);
            ingresses.push(single(&name, path, host, ECHO, &annotations));
        }
    }
    site(echo, ingresses).await
}

// auth.go, "should return status code 200 when signed in after auth
// backend is deleted".
#[tokio::test]
async fn cached_should_return_200_when_signed_in_after_auth_backend_is_deleted() {
    let mut auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let tg = caching_site(&auth, &echo).await;
    let creds = [("Authorization", USER_PASSWORD)];
    status(&get(&tg, "auth", "/foo", &creds).await, 200);
    auth.delete();
    status(&get(&tg, "auth", "/foo", &creds).await, 200);
}

// auth.go, "should deny login for different location on same server".
#[tokio::test]
async fn cached_should_deny_login_for_different_location_on_same_server() {
    let mut auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let tg = caching_site(&auth, &echo).await;
    let creds = [("Authorization", USER_PASSWORD)];
    status(&get(&tg, "auth", "/foo", &creds).await, 200);
    auth.delete();
    status(&get(&tg, "auth", "/foo", &creds).await, 200);
    // No cached answer for /bar: the auth service is gone, 500.
    status(&get(&tg, "auth", "/bar", &creds).await, 500);
}

// auth.go, "should deny login for different servers".
#[tokio::test]
async fn cached_should_deny_login_for_different_servers() {
    let mut auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let tg = caching_site(&auth, &echo).await;
    let creds = [("Authorization", USER_PASSWORD)];
    status(&get(&tg, "auth", "/foo", &creds).await, 200);
    auth.delete();
    status(&get(&tg, "auth", "/foo", &creds).await, 200);
    status(&get(&tg, "different", "/foo", &creds).await, 500);
}

// auth.go, "when external authentication with caching is configured",
// "should redirect to signin url when not signed in".
#[tokio::test]
async fn cached_should_redirect_to_signin_url_when_not_signed_in() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let tg = caching_site(&auth, &echo).await;
    let r = get(&tg, "auth", "/foo?a=b&c=d", &[]).await;
    status(&r, 302);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://auth/auth/start?rd=http://auth%2Ffoo%3Fa%3Db%26c%3Dd")
    );
}

/// auth.go, "cookie set by external authentication server": `/` and
/// `/error` (the backend answers 503 there) behind the cookie server.
async fn cookie_site(auth: &AuthService, extra: &[(&str, &str)]) -> (Tollgate, Backend) {
    let backend = serve(|req: Request<Incoming>| async move {
        let mut r = Response::new(full("OK\n"));
        if req.uri().path().starts_with("/error") {
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        r
    })
    .await;
    let url = auth.url("/cookies/set/alma/armud");
    let mut annotations = vec![
        ("auth-url", url.as_str()),
        ("auth-signin", "http://$host/auth/start"),
    ];
    annotations.extend_from_slice(extra);
    let host = "auth-check-cookies";
    let mut docs = backend_docs("http-cookie-with-error", backend.port);
    docs.push(single(
        host,
        "/",
        host,
        "http-cookie-with-error",
        &annotations,
    ));
    docs.push(single(
        &format!("{host}-error"),
        "/error",
        host,
        "http-cookie-with-error",
        &annotations,
    ));
    let tg = Tollgate::builder()
        .file("manifests.yaml", &yaml_docs(&docs))
        .start()
        .await;
    (tg, backend)
}

/// A Service and EndpointSlice for an in-test backend on 127.0.0.1:`port`,
/// as Service port 8080.
fn backend_docs(svc: &str, port: u16) -> Vec<Value> {
    let mut docs = vec![service(NS, svc, &[("http", 8080)])];
    docs.push(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{svc}-1"), "namespace": NS,
            "labels": {"kubernetes.io/service-name": svc}
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    }));
    docs
}

// auth.go, "user retains cookie by default".
#[tokio::test]
async fn cookies_user_retains_cookie_by_default() {
    let auth = AuthService::start().await;
    let (tg, _backend) = cookie_site(&auth, &[]).await;
    let r = get(&tg, "auth-check-cookies", "/?a=b&c=d", &[]).await;
    status(&r, 200);
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.contains("alma=armud")),
        "{:?}",
        r.headers
    );
}

// auth.go, "user does not retain cookie if upstream returns error status
// code".
#[tokio::test]
async fn cookies_user_does_not_retain_cookie_if_upstream_returns_error_status_code() {
    let auth = AuthService::start().await;
    let (tg, _backend) = cookie_site(&auth, &[]).await;
    let r = get(&tg, "auth-check-cookies", "/error?a=b&c=d", &[]).await;
    status(&r, 503);
    assert_eq!(r.header("set-cookie"), None);
}

// auth.go, "user with annotated ingress retains cookie if upstream returns
// error status code".
#[tokio::test]
async fn cookies_user_with_annotated_ingress_retains_cookie_if_upstream_returns_error_status_code()
{
    let auth = AuthService::start().await;
    let (tg, _backend) = cookie_site(&auth, &[("auth-always-set-cookie", "true")]).await;
    let r = get(&tg, "auth-check-cookies", "/error?a=b&c=d", &[]).await;
    status(&r, 503);
    assert!(
        r.header("set-cookie")
            .is_some_and(|c| c.contains("alma=armud")),
        "{:?}",
        r.headers
    );
}

// auth.go, "should overwrite Foo header with auth response": the client's
// `Foo` never reaches the backend, the auth service's does.
#[tokio::test]
async fn should_overwrite_foo_header_with_auth_response() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let url = auth.url("/basic-auth/user/password");
    let tg = site(
        &echo,
        vec![single(
            "auth",
            "/",
            "auth",
            ECHO,
            &[
                ("auth-url", &url),
                ("auth-signin", "http://$host/auth/start"),
                ("auth-response-headers", "Foo"),
            ],
        )],
    )
    .await;
    let r = get(
        &tg,
        "auth",
        "/",
        &[("Foo", "bar"), ("Authorization", USER_PASSWORD)],
    )
    .await;
    status(&r, 200);
    assert_eq!(r.echo().header("foo").as_deref(), Some("from-auth"));
}

// auth-request-redirect (annotations.md: "X-Auth-Request-Redirect"): the
// value sent to the auth service; without it, the request URI.
#[tokio::test]
async fn auth_request_redirect_sets_x_auth_request_redirect() {
    let auth = AuthService::start().await;
    let echo = Echo::services(&[ECHO]).await;
    let url = auth.url("/basic-auth/user/password");
    let tg = site(
        &echo,
        vec![
            single(
                "with",
                "/",
                "with",
                ECHO,
                &[
                    ("auth-url", &url),
                    ("auth-request-redirect", "https://sso.example.com/back"),
                ],
            ),
            single("without", "/", "without", ECHO, &[("auth-url", &url)]),
        ],
    )
    .await;
    let creds = [("Authorization", USER_PASSWORD)];
    status(&get(&tg, "with", "/p?q=1", &creds).await, 200);
    assert_eq!(
        auth.last("x-auth-request-redirect").as_deref(),
        Some("https://sso.example.com/back")
    );
    status(&get(&tg, "without", "/p?q=1", &creds).await, 200);
    assert_eq!(
        auth.last("x-auth-request-redirect").as_deref(),
        Some("/p?q=1")
    );
}
