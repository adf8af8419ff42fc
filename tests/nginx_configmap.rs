//! The ingress-nginx ConfigMap keys of the whole request path, through the
//! real binary in standalone mode: `use-forwarded-headers`,
//! `enable-real-ip`, `proxy-real-ip-cidr`, `forwarded-for-header`,
//! `compute-full-forwarded-for`, `server-tokens`, `block-user-agents`,
//! `hsts*`, `use-http2` and `ssl-protocols`. Each change is a write of the
//! manifests file: it applies without a restart (same pid).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const NS: &str = "default";
const CM: &str = "ingress-nginx-controller";

fn config_map(data: &[(&str, &str)]) -> Value {
    common::config_map_in(NS, CM, data)
}

fn docs(echo: &Echo, data: &[(&str, &str)]) -> String {
    let mut all = echo.backends(NS);
    all.push(config_map(data));
    all.push(annotated_ingress(
        NS,
        "app",
        "app.test",
        ("/", "Prefix"),
        "app",
        &[],
    ));
    yaml_docs(&all)
}

async fn start(echo: &Echo, data: &[(&str, &str)], args: &[&str]) -> Tollgate {
    Tollgate::builder()
        .file("m.yaml", &docs(echo, data))
        .args(&["--configmap", &format!("{NS}/{CM}")])
        .args(args)
        .start()
        .await
}

/// GET app.test/ with these headers.
async fn get_with(tg: &Tollgate, headers: &[(&str, &str)]) -> Resp {
    tg.request("GET", "app.test", "/", headers).await
}

/// Repeats [`get_with`] until `pred` holds (the new ConfigMap is
/// published), bounded; returns the last response.
async fn until<F: Fn(&Resp) -> bool>(tg: &Tollgate, headers: &[(&str, &str)], pred: F) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_with(tg, headers).await;
        if pred(&r) || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn upstream(r: &Resp, name: &str) -> Option<String> {
    r.echo().header(name)
}

const XFF: (&str, &str) = ("x-forwarded-for", "203.0.113.9");
const PROTO: (&str, &str) = ("x-forwarded-proto", "https");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_trust_follows_the_config_map_live_and_fails_closed() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(&echo, &[], &[]).await;
    let pid = tg.pid();
    let sent = [XFF, PROTO];

    // No key, no flag: the peer is the client; its headers are replaced.
    let r = get_with(&tg, &sent).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        upstream(&r, "x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(upstream(&r, "x-forwarded-proto").as_deref(), Some("http"));

    // use-forwarded-headers from a trusted CIDR: the real IP is the
    // client's, X-Forwarded-For is the client IP alone (ingress-nginx's
    // `$remote_addr`), X-Forwarded-Proto is passed on.
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", "127.0.0.0/8"),
            ],
        ),
    );
    let r = until(&tg, &sent, |r| {
        upstream(r, "x-real-ip").as_deref() == Some("203.0.113.9")
    })
    .await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("203.0.113.9"));
    assert_eq!(
        upstream(&r, "x-forwarded-for").as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(upstream(&r, "x-forwarded-proto").as_deref(), Some("https"));

    // compute-full-forwarded-for: the chain plus the peer.
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("use-forwarded-headers", "true"),
                ("compute-full-forwarded-for", "true"),
                ("proxy-real-ip-cidr", "127.0.0.0/8"),
            ],
        ),
    );
    let r = until(&tg, &sent, |r| {
        upstream(r, "x-forwarded-for").as_deref() == Some("203.0.113.9, 127.0.0.1")
    })
    .await;
    assert_eq!(
        upstream(&r, "x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );

    // A peer outside proxy-real-ip-cidr is not believed.
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", "10.0.0.0/8"),
            ],
        ),
    );
    let r = until(&tg, &sent, |r| {
        upstream(r, "x-real-ip").as_deref() == Some("127.0.0.1")
    })
    .await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(upstream(&r, "x-forwarded-proto").as_deref(), Some("http"));

    // enable-real-ip with forwarded-for-header: the real IP comes from that
    // header; X-Forwarded-* are not passed on (that is
    // use-forwarded-headers).
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("enable-real-ip", "true"),
                ("forwarded-for-header", "CF-Connecting-IP"),
                ("proxy-real-ip-cidr", "127.0.0.1/32"),
            ],
        ),
    );
    let with_cf = [XFF, PROTO, ("cf-connecting-ip", "198.51.100.4")];
    let r = until(&tg, &with_cf, |r| {
        upstream(r, "x-real-ip").as_deref() == Some("198.51.100.4")
    })
    .await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("198.51.100.4"));
    assert_eq!(upstream(&r, "x-forwarded-proto").as_deref(), Some("http"));

    // A bad CIDR fails closed: nobody is trusted (not the rest of the
    // list, not ingress-nginx's 0.0.0.0/0).
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", "127.0.0.0/8, not-a-cidr"),
            ],
        ),
    );
    let r = until(&tg, &sent, |r| {
        upstream(r, "x-real-ip").as_deref() == Some("127.0.0.1")
    })
    .await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        upstream(&r, "x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(upstream(&r, "x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(tg.pid(), pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_overrides_trusted_proxies_and_inherits_it_as_cidr() {
    let echo = Echo::services(&["app"]).await;
    // The flag alone trusts 127.0.0.0/8: the chain is kept (tollgate's
    // rule for --trusted-proxies).
    let tg = start(&echo, &[], &["--trusted-proxies", "127.0.0.0/8"]).await;
    let r = get_with(&tg, &[XFF]).await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("203.0.113.9"));
    assert_eq!(
        upstream(&r, "x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    // use-forwarded-headers: "false" in the ConfigMap turns the trust off.
    tg.write(
        "m.yaml",
        &docs(&echo, &[("use-forwarded-headers", "false")]),
    );
    let r = until(&tg, &[XFF], |r| {
        upstream(r, "x-real-ip").as_deref() == Some("127.0.0.1")
    })
    .await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("127.0.0.1"));
    // On without proxy-real-ip-cidr: the flag's networks are the CIDRs.
    tg.write("m.yaml", &docs(&echo, &[("use-forwarded-headers", "true")]));
    let r = until(&tg, &[XFF], |r| {
        upstream(r, "x-real-ip").as_deref() == Some("203.0.113.9")
    })
    .await;
    assert_eq!(upstream(&r, "x-real-ip").as_deref(), Some("203.0.113.9"));
    assert_eq!(
        upstream(&r, "x-forwarded-for").as_deref(),
        Some("203.0.113.9")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_user_agents_and_server_tokens_apply_live() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(&echo, &[], &[]).await;
    let pid = tg.pid();
    let ua = |s: &'static str| [("user-agent", s)];
    assert_eq!(get_with(&tg, &ua("BadBot/1.0")).await.status, 200);
    let r = tg.get("nowhere.test", "/").await;
    assert_eq!(r.header("server").as_deref(), Some("tollgate"));

    // nginx map semantics: `~*` regex without case, `~` with case, exact
    // strings without case.
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("block-user-agents", "~*badbot, ~^curl/, \"Evil Agent\""),
                ("server-tokens", "true"),
            ],
        ),
    );
    let r = until(&tg, &ua("BadBot/1.0"), |r| r.status == 403).await;
    assert_eq!(r.status, 403, "{}", r.summary());
    assert_eq!(get_with(&tg, &ua("curl/8.0")).await.status, 403);
    assert_eq!(get_with(&tg, &ua("CURL/8.0")).await.status, 200);
    assert_eq!(get_with(&tg, &ua("evil agent")).await.status, 403);
    assert_eq!(get_with(&tg, &ua("evil agent 2")).await.status, 200);
    assert_eq!(get_with(&tg, &ua("Mozilla/5.0")).await.status, 200);
    // Every host, routed or not.
    let mut r = req("GET", "nowhere.test", "/")
        .body(Default::default())
        .unwrap();
    r.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("xbadbotx"),
    );
    let r = send(tg.http_addr(), r).await.unwrap();
    assert_eq!(r.status, 403);
    let r = tg.get("nowhere.test", "/").await;
    let version = format!("tollgate/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(r.header("server"), Some(version));

    // A pattern the regex engine refuses (look-behind): reported, and the
    // last good list stays in force; the other keys still apply.
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("block-user-agents", "~(?<=x)y"),
                ("server-tokens", "false"),
            ],
        ),
    );
    let r = tg
        .eventually("nowhere.test", "/", |r| {
            r.header("server").as_deref() == Some("tollgate")
        })
        .await;
    assert_eq!(r.header("server").as_deref(), Some("tollgate"));
    assert_eq!(get_with(&tg, &ua("BadBot/1.0")).await.status, 403);
    let diagnostics = tg.admin("/debug/diagnostics").await.unwrap().text();
    assert!(
        diagnostics.contains("block-user-agents") && diagnostics.contains("last good"),
        "{diagnostics}"
    );

    // Removing the key lifts the block.
    tg.write("m.yaml", &docs(&echo, &[]));
    let r = until(&tg, &ua("BadBot/1.0"), |r| r.status == 200).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(tg.pid(), pid);
}

/// One GET over a fresh TLS connection with `client`.
async fn https_with(tg: &Tollgate, client: &TlsClient) -> Result<(Resp, HttpsConn), String> {
    let mut c = HttpsConn::open_with(client, tg.https_addr(), Some("app.test")).await?;
    let r = c.get("app.test", "/").await?;
    Ok((r, c))
}

async fn until_tls<F: Fn(&Result<(Resp, HttpsConn), String>) -> bool>(
    tg: &Tollgate,
    client: &TlsClient,
    pred: F,
) -> Result<(Resp, HttpsConn), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = https_with(tg, client).await;
        if pred(&r) || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hsts(r: &Result<(Resp, HttpsConn), String>) -> Option<String> {
    r.as_ref()
        .ok()
        .and_then(|(r, _)| r.header("strict-transport-security"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_http2_and_tls_protocols_apply_live() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(&echo, &[], &["--hsts", "max-age=60"]).await;
    let pid = tg.pid();
    let h1 = TlsClient::default();
    let h2 = TlsClient::alpn(&["h2", "http/1.1"]);
    let tls12 = TlsClient {
        versions: vec![&rustls::version::TLS12],
        ..TlsClient::default()
    };

    // No key: the flag's HSTS; ingress-nginx's TLS defaults (1.2, 1.3, h2).
    let r = https_with(&tg, &h2).await;
    assert_eq!(hsts(&r).as_deref(), Some("max-age=60"));
    assert_eq!(r.as_ref().unwrap().1.alpn.as_deref(), Some("h2"));
    assert!(https_with(&tg, &tls12).await.is_ok());

    // hsts-max-age alone: ingress-nginx's defaults for the other keys
    // (includeSubDomains on, preload off) override the flag.
    tg.write("m.yaml", &docs(&echo, &[("hsts-max-age", "600")]));
    let r = until_tls(&tg, &h1, |r| {
        hsts(r).as_deref() == Some("max-age=600; includeSubDomains")
    })
    .await;
    assert_eq!(hsts(&r).as_deref(), Some("max-age=600; includeSubDomains"));

    // hsts off, HTTP/2 off, TLS 1.3 only.
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("hsts", "false"),
                ("use-http2", "false"),
                ("ssl-protocols", "TLSv1.3"),
            ],
        ),
    );
    let r = until_tls(&tg, &h2, |r| {
        r.as_ref()
            .is_ok_and(|(_, c)| c.alpn.as_deref() == Some("http/1.1"))
    })
    .await;
    let (resp, conn) = r.as_ref().unwrap();
    assert_eq!(resp.status, 200, "{}", resp.summary());
    assert_eq!(conn.alpn.as_deref(), Some("http/1.1"));
    assert_eq!(conn.tls_version, Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(hsts(&r), None);
    let refused = https_with(&tg, &tls12).await;
    assert!(refused.is_err(), "a TLS 1.2 client must be refused");

    // Back to the defaults: TLS 1.2 and h2 again, the flag's HSTS.
    tg.write("m.yaml", &docs(&echo, &[]));
    let r = until_tls(&tg, &tls12, |r| r.is_ok()).await;
    assert!(r.is_ok(), "{:?}", r.err());
    let r = https_with(&tg, &h2).await;
    assert_eq!(r.as_ref().unwrap().1.alpn.as_deref(), Some("h2"));
    assert_eq!(hsts(&r).as_deref(), Some("max-age=60"));
    assert_eq!(tg.pid(), pid);
}
