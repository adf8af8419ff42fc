//! The Gateway API data plane through real sockets: tables built by hand
//! (guarded candidates, weighted backends, header edits, redirects, URL
//! rewrites, mirrors, timeouts), published through the publisher and served
//! by the proxy's listener in this process on 127.0.0.1, in front of
//! in-process echo backends. The input side (HTTPRoute manifests lowered
//! into these tables) is tested end to end elsewhere.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{black_hole, req, send, serve, Resp};
use http::{HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;

use tollgate::config::{CompileOptions, Compiled};
use tollgate::metrics::Metrics;
use tollgate::proxy::listener::{self, ConnSettings, ConnTracker};
use tollgate::proxy::{ProxySettings, ProxyState};
use tollgate::publisher::Publisher;
use tollgate::state::Health;
use tollgate::table::guard::{anchored, Guard, HeaderCond, QueryCond, ValueMatch};
use tollgate::table::policy::{
    BackendChoice, Backends, HeaderEdits, Mirror, PathModifier, RedirectTo, RoutePolicy, Timeouts,
    UrlRewrite,
};
use tollgate::table::upstream::{EndpointAddr, PortRef, TrustAnchors, UpstreamKey, UpstreamSpec};
use tollgate::table::{PathType, Route, RouteId, RouteKind, RoutingTable, UpstreamId};

const HOST: &str = "gw.example";

/// A table under construction with its upstreams (one per backend port).
#[derive(Default)]
struct Build {
    table: RoutingTable,
    upstreams: Vec<UpstreamSpec>,
}

impl Build {
    /// An upstream named `name` at 127.0.0.1:`port`.
    fn upstream(&mut self, name: &str, port: u16) -> UpstreamId {
        let key = UpstreamKey {
            namespace: "gw".into(),
            service: name.into(),
            port: PortRef::Number(80),
            lb: Default::default(),
            protocol: Default::default(),
            verify: None,
        };
        self.upstreams.push(UpstreamSpec {
            label: key.to_string().into(),
            key,
            endpoints: vec![EndpointAddr::Socket(SocketAddr::from((
                [127, 0, 0, 1],
                port,
            )))],
            trust: TrustAnchors::Unverified,
        });
        u32::try_from(self.upstreams.len() - 1).unwrap()
    }

    /// An HTTPRoute route to `upstream` with `guard` and `policy`.
    fn route(
        &mut self,
        upstream: UpstreamId,
        guard: Option<Guard>,
        policy: RoutePolicy,
    ) -> RouteId {
        let service = self.upstreams[upstream as usize].label.clone();
        self.table.push_route(Route {
            ingress: "gw/route".into(),
            kind: RouteKind::HttpRoute,
            guard: guard.map(Box::new),
            host: HOST.into(),
            path: "/".into(),
            path_type: Some(PathType::Prefix),
            service,
            upstream,
            redirect_https: false,
            plain: policy.is_plain(),
            policy: Arc::new(policy),
            canary: None,
        })
    }

    /// Adds `route` as a candidate at `path`.
    fn at(&mut self, path: &str, path_type: PathType, route: RouteId) -> &mut Self {
        self.table
            .host_mut(HOST)
            .insert_candidate(path, path_type, route);
        self
    }
}

/// The proxy serving one hand-built table; stops when dropped.
struct Proxy {
    addr: SocketAddr,
    _drain: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy(build: Build) -> Proxy {
    let metrics = Arc::new(Metrics::new());
    let mut publisher = Publisher::new(
        CompileOptions::default(),
        metrics.clone(),
        Arc::new(Health::default()),
    );
    publisher.publish(Compiled {
        table: build.table.compacted(),
        upstreams: build.upstreams,
        ..Default::default()
    });
    let state = Arc::new(ProxyState {
        published: publisher.published(),
        settings: ProxySettings {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            access_log: false,
            https_redirect_port: 443,
            hsts: None,
            max_header_bytes: 16 * 1024,
        },
        metrics,
        auth_client: None,
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (drain, drain_rx) = watch::channel(false);
    let settings = ConnSettings {
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        max_header_bytes: 16 * 1024,
        proxy_protocol: false,
        http2_max_concurrent_streams: 256,
        http2_max_control_frames: 200,
        http1_fast_path: true,
    };
    let task = tokio::spawn(listener::serve(
        listener,
        state,
        settings,
        None,
        Arc::new(ConnTracker::default()),
        drain_rx,
    ));
    Proxy {
        addr,
        _drain: drain,
        task,
    }
}

/// An in-process echo backend playing `name`; returns its port.
async fn echo(name: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(tollgate::echo::serve(listener, name.to_string(), false));
    port
}

async fn call(p: &Proxy, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = req(method, HOST, target);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(p.addr, b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

fn json(r: &Resp) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// The echo service that answered (200 expected).
fn served_by(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    json(r)["service"].as_str().unwrap_or_default().to_string()
}

fn header(name: &'static str, value: ValueMatch) -> HeaderCond {
    HeaderCond {
        name: HeaderName::from_static(name),
        value,
    }
}

fn exact(v: &str) -> ValueMatch {
    ValueMatch::Exact(v.into())
}

fn edits(
    set: &[(&'static str, &'static str)],
    add: &[(&'static str, &'static str)],
    remove: &[&'static str],
) -> Arc<HeaderEdits> {
    let pairs = |l: &[(&'static str, &'static str)]| -> Box<[(HeaderName, HeaderValue)]> {
        l.iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    };
    Arc::new(HeaderEdits {
        set: pairs(set),
        add: pairs(add),
        remove: remove.iter().map(|k| HeaderName::from_static(k)).collect(),
    })
}

#[tokio::test]
async fn guards_choose_among_candidates_in_precedence() {
    let (a, b, c, d) = (
        echo("a").await,
        echo("b").await,
        echo("c").await,
        echo("d").await,
    );
    let mut t = Build::default();
    let (ua, ub, uc, ud) = (
        t.upstream("a", a),
        t.upstream("b", b),
        t.upstream("c", c),
        t.upstream("d", d),
    );
    let by_header = t.route(
        ua,
        Some(Guard {
            headers: vec![header("version", exact("two"))].into(),
            ..Default::default()
        }),
        RoutePolicy::default(),
    );
    let by_method_query = t.route(
        ub,
        Some(Guard {
            method: Some(Method::POST),
            query: vec![QueryCond {
                name: "animal".into(),
                value: ValueMatch::Regex(anchored("wha.e").unwrap()),
            }]
            .into(),
            ..Default::default()
        }),
        RoutePolicy::default(),
    );
    let fallback = t.route(uc, None, RoutePolicy::default());
    let exact_path = t.route(ud, None, RoutePolicy::default());
    t.at("/", PathType::Prefix, by_header)
        .at("/", PathType::Prefix, by_method_query)
        .at("/", PathType::Prefix, fallback)
        .at("/exact", PathType::Exact, exact_path);
    let p = proxy(t).await;

    assert_eq!(
        served_by(&call(&p, "GET", "/x", &[("Version", "two")]).await),
        "a"
    );
    assert_eq!(
        served_by(&call(&p, "POST", "/x?animal=whale", &[]).await),
        "b"
    );
    assert_eq!(
        served_by(&call(&p, "GET", "/x?animal=whale", &[]).await),
        "c"
    );
    assert_eq!(
        served_by(&call(&p, "POST", "/x?animal=whales", &[]).await),
        "c"
    );
    assert_eq!(
        served_by(&call(&p, "GET", "/exact", &[("version", "two")]).await),
        "d"
    );
    assert_eq!(
        served_by(&call(&p, "GET", "/exact/more", &[("version", "two")]).await),
        "a"
    );
    let other = send(
        p.addr,
        req("GET", "other.example", "/")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(other.status, 404);
}

fn choice(weight: u32, upstream: Option<UpstreamId>) -> BackendChoice {
    BackendChoice {
        weight,
        upstream,
        service: "gw/x:80".into(),
        request_headers: None,
        response_headers: None,
    }
}

fn weighted(choices: Vec<BackendChoice>) -> RoutePolicy {
    let total = choices.iter().map(|c| c.weight).sum();
    RoutePolicy {
        backends: Some(Box::new(Backends {
            choices: choices.into(),
            total,
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn weighted_backends_and_invalid_shares() {
    let (a, b) = (echo("a").await, echo("b").await);
    let mut t = Build::default();
    let (ua, ub) = (t.upstream("a", a), t.upstream("b", b));
    let split = t.route(
        ua,
        None,
        weighted(vec![
            choice(1, Some(ua)),
            choice(1, Some(ub)),
            choice(0, Some(ub)),
        ]),
    );
    let zero = t.route(
        ua,
        None,
        weighted(vec![choice(0, Some(ua)), choice(3, Some(ub))]),
    );
    let half_invalid = t.route(
        ua,
        None,
        weighted(vec![choice(1, None), choice(1, Some(ua))]),
    );
    let invalid = t.route(ua, None, weighted(vec![choice(1, None)]));
    let none = t.route(ua, None, weighted(vec![]));
    let all_zero = t.route(ua, None, weighted(vec![choice(0, Some(ua))]));
    t.at("/split", PathType::Exact, split)
        .at("/zero", PathType::Exact, zero)
        .at("/half", PathType::Exact, half_invalid)
        .at("/invalid", PathType::Exact, invalid)
        .at("/none", PathType::Exact, none)
        .at("/all-zero", PathType::Exact, all_zero);
    let p = proxy(t).await;

    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..60 {
        *seen
            .entry(served_by(&call(&p, "GET", "/split", &[]).await))
            .or_insert(0) += 1;
    }
    assert!(seen.get("a").is_some_and(|n| *n > 10), "{seen:?}");
    assert!(seen.get("b").is_some_and(|n| *n > 10), "{seen:?}");
    for _ in 0..20 {
        assert_eq!(served_by(&call(&p, "GET", "/zero", &[]).await), "b");
    }
    let mut statuses = std::collections::BTreeSet::new();
    for _ in 0..60 {
        statuses.insert(call(&p, "GET", "/half", &[]).await.status);
    }
    assert_eq!(statuses.into_iter().collect::<Vec<_>>(), [200, 500]);
    for path in ["/invalid", "/none", "/all-zero"] {
        assert_eq!(call(&p, "GET", path, &[]).await.status, 500, "{path}");
    }
}

#[tokio::test]
async fn header_edits_of_route_and_backend() {
    let a = echo("a").await;
    let mut t = Build::default();
    let ua = t.upstream("a", a);
    let mut backend = choice(1, Some(ua));
    backend.request_headers = Some(edits(&[("x-backend", "yes")], &[], &[]));
    backend.response_headers = Some(edits(&[], &[("x-resp-backend", "b")], &[]));
    let policy = RoutePolicy {
        request_headers: Some(edits(
            &[("x-set", "set"), ("user-agent", "tollgate-test")],
            &[("x-add", "two")],
            &["x-remove"],
        )),
        response_headers: Some(edits(
            &[("x-resp-set", "r")],
            &[("x-resp-add", "2")],
            &["content-type"],
        )),
        ..weighted(vec![backend])
    };
    let route = t.route(ua, None, policy);
    t.at("/", PathType::Prefix, route);
    let p = proxy(t).await;

    let r = call(
        &p,
        "GET",
        "/h",
        &[("x-set", "old"), ("x-add", "one"), ("x-remove", "gone")],
    )
    .await;
    assert_eq!(r.status, 200);
    let h = &json(&r)["headers"];
    assert_eq!(h["X-Set"], serde_json::json!(["set"]));
    assert_eq!(h["User-Agent"], serde_json::json!(["tollgate-test"]));
    assert_eq!(h["X-Add"], serde_json::json!(["one", "two"]));
    assert_eq!(h["X-Backend"], serde_json::json!(["yes"]));
    assert!(h.get("X-Remove").is_none(), "{h}");
    assert_eq!(r.headers["x-resp-set"], "r");
    assert_eq!(r.headers["x-resp-add"], "2");
    assert_eq!(r.headers["x-resp-backend"], "b");
    assert!(r.headers.get("content-type").is_none());
}

#[tokio::test]
async fn redirects_compute_location_from_the_request() {
    let a = echo("a").await;
    let mut t = Build::default();
    let ua = t.upstream("a", a);
    let redirect =
        |scheme: Option<&str>, hostname: Option<&str>, port, path, status, listener_port| {
            RoutePolicy {
                redirect_to: Some(Box::new(RedirectTo {
                    scheme: scheme.map(Into::into),
                    hostname: hostname.map(Into::into),
                    port,
                    path,
                    status,
                    listener_port,
                })),
                ..Default::default()
            }
        };
    let cases = [
        (
            "/plain",
            redirect(None, None, None, None, StatusCode::FOUND, 80),
        ),
        (
            "/listener",
            redirect(None, None, None, None, StatusCode::FOUND, 8080),
        ),
        (
            "/https",
            redirect(
                Some("https"),
                None,
                None,
                None,
                StatusCode::MOVED_PERMANENTLY,
                8080,
            ),
        ),
        (
            "/port",
            redirect(
                None,
                Some("other.example"),
                Some(8443),
                None,
                StatusCode::SEE_OTHER,
                80,
            ),
        ),
        (
            "/prefix",
            redirect(
                None,
                None,
                None,
                Some(PathModifier::Prefix {
                    matched: "/prefix".into(),
                    replacement: "/replaced".into(),
                }),
                StatusCode::TEMPORARY_REDIRECT,
                80,
            ),
        ),
        (
            "/full",
            redirect(
                None,
                None,
                None,
                Some(PathModifier::Full("/new".into())),
                StatusCode::PERMANENT_REDIRECT,
                80,
            ),
        ),
    ];
    for (path, policy) in cases {
        let route = t.route(ua, None, policy);
        t.at(path, PathType::Prefix, route);
    }
    let p = proxy(t).await;

    let expect = [
        ("/plain/a?q=1", 302, "http://gw.example/plain/a?q=1"),
        ("/listener", 302, "http://gw.example:8080/listener"),
        ("/https/x", 301, "https://gw.example/https/x"),
        ("/port", 303, "http://other.example:8443/port"),
        (
            "/prefix/lemon?x=y",
            307,
            "http://gw.example/replaced/lemon?x=y",
        ),
        ("/full/a/b", 308, "http://gw.example/new"),
    ];
    for (target, status, location) in expect {
        let r = call(&p, "GET", target, &[]).await;
        assert_eq!(r.status, status, "{target}");
        assert_eq!(r.headers["location"], location, "{target}");
    }
    // The request's port never leaks into the Location.
    let r = send(
        p.addr,
        req("GET", "gw.example:9999", "/plain")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.headers["location"], "http://gw.example/plain");
}

#[tokio::test]
async fn url_rewrites_path_and_host() {
    let a = echo("a").await;
    let mut t = Build::default();
    let ua = t.upstream("a", a);
    let rewrite = |hostname: Option<&'static str>, path| RoutePolicy {
        url_rewrite: Some(Box::new(UrlRewrite {
            hostname: hostname.map(HeaderValue::from_static),
            path,
        })),
        ..Default::default()
    };
    let prefix = t.route(
        ua,
        None,
        rewrite(
            Some("rewritten.example"),
            Some(PathModifier::Prefix {
                matched: "/prefix/one".into(),
                replacement: "/one".into(),
            }),
        ),
    );
    let strip = t.route(
        ua,
        None,
        rewrite(
            None,
            Some(PathModifier::Prefix {
                matched: "/strip-prefix".into(),
                replacement: "/".into(),
            }),
        ),
    );
    let full = t.route(
        ua,
        None,
        rewrite(None, Some(PathModifier::Full("/one".into()))),
    );
    t.at("/prefix/one", PathType::Prefix, prefix)
        .at("/strip-prefix", PathType::Prefix, strip)
        .at("/full/path", PathType::Prefix, full);
    let p = proxy(t).await;

    let cases = [
        ("/prefix/one/two?q=1", "/one/two?q=1", "rewritten.example"),
        ("/strip-prefix/three", "/three", HOST),
        ("/strip-prefix", "/", HOST),
        ("/full/path/original", "/one", HOST),
    ];
    for (target, path, host) in cases {
        let r = call(&p, "GET", target, &[]).await;
        let body = json(&r);
        assert_eq!(body["path"], path, "{target}");
        assert_eq!(body["host"], host, "{target}");
    }
}

#[tokio::test]
async fn mirrors_get_a_copy_and_never_hold_up_the_main_request() {
    let a = echo("a").await;
    let seen = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, u64)>();
    let counter = seen.clone();
    let mirror = serve(move |r: http::Request<hyper::body::Incoming>| {
        let tx = tx.clone();
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let method = r.method().to_string();
            let path = r.uri().to_string();
            let body = r
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            let _ = tx.send((method, path, body as u64));
            Response::new(common::full("mirrored"))
        }
    })
    .await;
    let hole = black_hole().await;
    let mut t = Build::default();
    let ua = t.upstream("a", a);
    let um = t.upstream("mirror", mirror.port);
    let uh = t.upstream("hole", hole.port);
    let never = t.upstream("never", mirror.port);
    let mirrors = |list: Vec<Mirror>| RoutePolicy {
        mirrors: list.into(),
        ..Default::default()
    };
    let m = |upstream, per_million| Mirror {
        upstream,
        service: "gw/m:80".into(),
        per_million,
        target: None,
    };
    let both = t.route(
        ua,
        None,
        mirrors(vec![m(um, 1_000_000), m(uh, 1_000_000), m(never, 0)]),
    );
    t.at("/", PathType::Prefix, both);
    let p = proxy(t).await;

    let started = Instant::now();
    let r = call(&p, "GET", "/m?x=1", &[]).await;
    assert_eq!(served_by(&r), "a");
    // The black-hole mirror never answers: the main request did not wait.
    assert!(started.elapsed() < Duration::from_secs(2));
    let (method, path, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/m?x=1"));

    // A request with a body: the mirror gets the body too (teed from the
    // main request's as it streams; it used to get the head only).
    let body = req("POST", HOST, "/upload")
        .body(Full::new(Bytes::from(vec![7u8; 100_000])))
        .unwrap();
    let r = send(p.addr, body).await.unwrap();
    assert_eq!(json(&r)["bodyBytes"], 100_000);
    let (method, path, bytes) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (method.as_str(), path.as_str(), bytes),
        ("POST", "/upload", 100_000)
    );
    // The 0% mirror (same backend) was never sent to.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn request_and_backend_request_timeouts_answer_504() {
    let a = echo("a").await;
    let mut t = Build::default();
    let ua = t.upstream("a", a);
    let timeouts = |request, backend_request| RoutePolicy {
        timeouts: Timeouts {
            request,
            backend_request,
            ..Default::default()
        },
        ..Default::default()
    };
    let ms = |n| Some(Duration::from_millis(n));
    let request = t.route(ua, None, timeouts(ms(300), None));
    let backend = t.route(ua, None, timeouts(None, ms(300)));
    t.at("/request", PathType::Prefix, request)
        .at("/backend", PathType::Prefix, backend);
    let p = proxy(t).await;

    for path in ["/request", "/backend"] {
        assert_eq!(
            call(&p, "GET", &format!("{path}?delay=50"), &[])
                .await
                .status,
            200,
            "{path}"
        );
        let started = Instant::now();
        let r = call(&p, "GET", &format!("{path}?delay=3000"), &[]).await;
        assert_eq!(r.status, 504, "{path}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}");
    }
}
