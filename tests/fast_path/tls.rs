//! The differential test over HTTPS: both proxies terminate TLS with the
//! same certificates (`fp.test` and `other.test` each have a Secret of
//! their own, `bare.test` has none and gets the default certificate), and
//! the client speaks HTTP/1.1 (ALPN `http/1.1`) with a chosen server name.
//! The fast path serves only requests whose Host is the connection's SNI,
//! adding HSTS (replacing the backend's) and `X-Forwarded-Proto: https` /
//! `X-Forwarded-Port` = the HTTPS listener's port; any other request goes
//! to hyper, whose misdirected-request guard answers 421 for a host with a
//! certificate of its own. `fp.test`'s Ingress has `tls:`, so its plain
//! HTTP requests are redirected (308), by hyper in both modes.
//!
//! The access log adds `$scheme $ssl_protocol $server_protocol` to
//! `upstreaminfo`, so that the comparison covers them.

use serde_json::Value;

use super::backend::Action;
use super::common::*;
use super::pair::{access_log, get, paused, pipe, raw, seq, Pair, Req, HOST, NS};
use super::{assert_statuses, ends, SETTLE_POOL};

/// A host with a certificate of its own, other than `fp.test`'s.
const OTHER: &str = "other.test";
/// A host without a certificate of its own (the default one is shown).
const BARE: &str = "bare.test";
/// The ConfigMap giving HSTS in [`hsts_from_the_config_map`].
const CM: &str = "tollgate";
/// What the backend's `/hsts` answer says (replaced over HTTPS only).
const BACKEND_HSTS: &str = "max-age=1";

/// The backend's answers: the plain test's, and `/hsts` with the
/// backend's own `Strict-Transport-Security`.
fn script(path: &str) -> Action {
    match path {
        "/hsts" => Action::Reply(
            format!(
                "HTTP/1.1 200 OK\r\nStrict-Transport-Security: {BACKEND_HSTS}\r\n\
                 Content-Length: 4\r\n\r\nhsts"
            )
            .into_bytes(),
        ),
        p => super::script(p),
    }
}

/// `GET path` to `host`, keep-alive.
fn get_to(host: &str, path: &str) -> Req {
    raw(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

/// A one-rule Ingress spec for `host` → Service `fp` with `tls:` for
/// `host` from Secret `secret`.
fn tls_spec(host: &str, secret: &str) -> String {
    simple_spec(host, "fp").replacen(
        "rules:\n",
        &format!("tls:\n  - hosts: [\"{host}\"]\n    secretName: {secret}\nrules:\n"),
        1,
    )
}

/// A pair terminating TLS: `fp.test` (Ingress with `tls:`), `other.test`
/// (its own Ingress and Secret) and `bare.test` (no `tls:`), all to the
/// backend; the access log format of the module docs; `args` and `extra`
/// manifests added.
async fn tls_pair(args: &[&str], extra: Vec<Value>) -> Pair {
    let ca = TestCa::new("fast path test CA");
    let fp = ca.leaf("fp", &[HOST]);
    let other = ca.leaf("other", &[OTHER]);
    let mut docs = vec![
        tls_secret(NS, "fp-tls", &fp.chain_pem, &fp.key_pem),
        tls_secret(NS, "other-tls", &other.chain_pem, &other.key_pem),
        ingress(NS, "other-ing", &tls_spec(OTHER, "other-tls")),
        ingress(NS, "bare-ing", &simple_spec(BARE, "fp")),
    ];
    docs.extend(extra);
    let format = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
        $body_bytes_sent \"$http_referer\" \"$http_user_agent\" $request_length \
        $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name] \
        $upstream_addr $upstream_response_length $upstream_response_time \
        $upstream_status $req_id $scheme $ssl_protocol $server_protocol";
    let mut all = vec!["--access-log-format", format];
    all.extend(args);
    Pair::start_with(script, &all, &tls_spec(HOST, "fp-tls"), docs).await
}

/// The values of `name` in a response, in order.
fn values<'a>(got: &'a super::wire::Got, name: &str) -> Vec<&'a str> {
    got.head
        .fields
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Asserts every response of the run carries exactly `want` as HSTS.
fn assert_hsts(run: &super::pair::Run, want: Option<&str>) {
    for (i, conn) in run.conns.iter().enumerate() {
        for got in conn.responses.iter().flatten() {
            let hsts = values(got, "strict-transport-security");
            assert_eq!(hsts, Vec::from_iter(want), "conn {i}: {}", got.transcript());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_from_the_config_map() {
    let cm = config_map_in(NS, CM, &[("hsts-max-age", "600"), ("hsts-preload", "true")]);
    let pair = tls_pair(&["--configmap", &format!("{NS}/{CM}")], vec![cm]).await;
    let spoofed = "GET /spoofed HTTP/1.1\r\nHost: fp.test\r\nX-Forwarded-Proto: http\r\n\
        X-Forwarded-Port: 1\r\nX-Forwarded-Host: evil.test\r\n\r\n";
    let mixed = || {
        vec![
            get("/a"),
            get("/chunked"),
            get("/204"),
            get("/hsts"),
            raw(spoofed),
            get("/b?x=1"),
        ]
    };
    let r = pair
        .run(
            "HTTPS keep-alive, HSTS from the ConfigMap",
            vec![seq(mixed()).over_tls(HOST), pipe(mixed()).over_tls(HOST)],
        )
        .await;
    let statuses: &[u16] = &[200, 200, 204, 200, 200, 200];
    assert_statuses(&r, &[statuses; 2]);
    assert_eq!(ends(&r), ["open"; 2]);
    assert_hsts(&r, Some("max-age=600; includeSubDomains; preload"));
    let chunked = r.conns[0].responses[1].as_ref().unwrap();
    assert_eq!(chunked.body, b"hello, world");
    for seen in &r.backend {
        for want in [
            "x-forwarded-proto: https ;",
            "x-forwarded-port: <https listener port> ;",
            "x-forwarded-host: fp.test ;",
        ] {
            assert!(seen.contains(want), "{want:?} not in {seen}");
        }
    }
    let log = access_log(&pair.fast);
    assert_eq!(log.len(), 12, "{log:#?}");
    for line in &log {
        assert!(line.ends_with(" https TLSv1.3 HTTP/1.1"), "{line}");
    }
    pair.assert_metrics_equal().await;
}

/// HSTS from `--hsts` (no ConfigMap); the upstream connection is reused
/// alike on both sides; plain HTTP gets none added (the backend's own
/// passes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_from_the_flag() {
    let pair = tls_pair(&["--hsts", "max-age=60"], Vec::new()).await;
    let three = || vec![get("/a"), get("/hsts"), get("/chunked-plain")];
    let r = pair
        .run_pooled(
            "HTTPS keep-alive, HSTS from the flag",
            vec![
                paused(three(), SETTLE_POOL).over_tls(HOST),
                paused(three(), SETTLE_POOL).over_tls(HOST),
            ],
        )
        .await;
    assert_statuses(&r, &[&[200; 3], &[200; 3]]);
    assert_hsts(&r, Some("max-age=60"));
    assert_eq!((r.accepted, r.upstream_conns), (1, 1), "one upstream");
    let r = pair
        .run(
            "plain HTTP, no HSTS",
            vec![seq(vec![get_to(BARE, "/hsts"), get_to(BARE, "/a")])],
        )
        .await;
    assert_statuses(&r, &[&[200, 200]]);
    let [backend_own, none] = [0, 1].map(|i| r.conns[0].responses[i].as_ref().unwrap());
    assert_eq!(
        values(backend_own, "strict-transport-security"),
        [BACKEND_HSTS],
        "plain HTTP passes the backend's own on"
    );
    assert_eq!(values(none, "strict-transport-security"), [""; 0]);
    pair.assert_metrics_equal().await;
}

/// A Host other than the SNI (or no SNI at all): 421 for a host with a
/// certificate of its own, served for one without; the connection goes on
/// either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_other_than_the_server_name() {
    let pair = tls_pair(&["--hsts", "max-age=60"], Vec::new()).await;
    let cased = "GET /cased HTTP/1.1\r\nHost: FP.Test:443\r\n\r\n";
    let r = pair
        .run(
            "Host other than SNI",
            vec![
                seq(vec![get_to(OTHER, "/x"), get("/after")]).over_tls(HOST),
                seq(vec![get_to(BARE, "/y"), get("/after")]).over_tls(HOST),
                seq(vec![get("/z"), get_to(OTHER, "/after")]).over_tls(OTHER),
                seq(vec![get_to(BARE, "/w"), get_to(BARE, "/w2")]).over_tls(BARE),
                seq(vec![raw(cased), get("/after")]).over_tls(HOST),
                pipe(vec![get("/a"), get_to(OTHER, "/x"), get("/b")]).over_tls(HOST),
                seq(vec![get_to(BARE, "/n"), get("/n2")]).over_tls_without_sni(),
            ],
        )
        .await;
    assert_statuses(
        &r,
        &[
            &[421, 200],
            &[200, 200],
            &[421, 200],
            &[200, 200],
            &[200, 200],
            &[200, 421, 200],
            &[200, 421],
        ],
    );
    assert_hsts(&r, Some("max-age=60"));
    pair.assert_metrics_equal().await;
}

/// `fp.test`'s Ingress has `tls:` (ssl-redirect on by default): plain
/// HTTP is redirected, HTTPS served, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_redirect_applies_to_plain_http_only() {
    let pair = tls_pair(&[], Vec::new()).await;
    let r = pair
        .run(
            "ssl-redirect",
            vec![
                seq(vec![get("/r?q=1"), get("/r2")]),
                pipe(vec![get("/r"), get_to(BARE, "/plain")]),
                seq(vec![get("/r?q=1"), get("/r2")]).over_tls(HOST),
            ],
        )
        .await;
    assert_statuses(&r, &[&[308, 308], &[308, 200], &[200, 200]]);
    let redirect = r.conns[0].responses[0].as_ref().unwrap();
    assert_eq!(redirect.field("location"), Some("https://fp.test/r?q=1"));
    assert_hsts(&r, None);
    pair.assert_metrics_equal().await;
}

/// Upstream failures over HTTPS: the fast path's own 502/504 carry HSTS as
/// hyper's do; a dead endpoint and a host without a route are answered
/// alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_over_https() {
    let args = ["--hsts", "max-age=60", "--upstream-response-timeout", "1s"];
    let pair = tls_pair(&args, Vec::new()).await;
    let dead = "dead.test";
    let nowhere = "nowhere.test";
    let r = pair
        .run(
            "upstream failures over HTTPS",
            vec![
                seq(vec![get("/no-answer"), get("/after")]).over_tls(HOST),
                seq(vec![get("/slow"), get("/after")]).over_tls(HOST),
                seq(vec![get_to(dead, "/dead"), get_to(dead, "/again")]).over_tls(dead),
                seq(vec![get_to(nowhere, "/x"), get_to(nowhere, "/y")]).over_tls(nowhere),
                pipe(vec![get("/no-answer"), get("/after")]).over_tls(HOST),
            ],
        )
        .await;
    assert_statuses(
        &r,
        &[
            &[502, 200],
            &[504, 200],
            &[502, 502],
            &[404, 404],
            &[502, 200],
        ],
    );
    assert_hsts(&r, Some("max-age=60"));
    pair.assert_metrics_equal().await;
}
