//! The ingress-nginx ConfigMap (`--configmap`) in standalone mode: its keys
//! apply to every Ingress, annotations override them, changes apply
//! without a restart, unknown keys are reported once. Cases from
//! ingress-nginx `test/e2e/settings/global_access_block.go`,
//! `configmap_change.go` and `no_tls_redirect_locations.go`.

use crate::common::*;
use crate::{config_map, ingress, NS};

fn docs(echo: &Echo, data: &[(&str, &str)], ingresses: Vec<serde_json::Value>) -> String {
    let mut all = echo.backends(NS);
    all.push(config_map("ingress-nginx-controller", data));
    all.extend(ingresses);
    yaml_docs(&all)
}

async fn post(tg: &Tollgate, host: &str, bytes: usize) -> Resp {
    let r = req("POST", host, "/")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![
            b'x';
            bytes
        ])))
        .unwrap();
    send(tg.http_addr(), r).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_defaults_apply_live_and_annotations_win() {
    let echo = Echo::services(&["app"]).await;
    let ingresses = || {
        vec![
            ingress("plain", "plain.test", "app", &[]),
            ingress("big", "big.test", "app", &[("proxy-body-size", "1m")]),
        ]
    };
    let tg = Tollgate::builder()
        .file(
            "m.yaml",
            &docs(
                &echo,
                &[("proxy-body-size", "1k"), ("made-up-key", "1")],
                ingresses(),
            ),
        )
        .env("TOLLGATE_CONFIGMAP", "default/ingress-nginx-controller")
        .start()
        .await;
    assert_eq!(post(&tg, "plain.test", 2048).await.status, 413);
    assert_eq!(post(&tg, "plain.test", 512).await.status, 200);
    // The Ingress's own annotation wins over the ConfigMap.
    assert_eq!(post(&tg, "big.test", 2048).await.status, 200);

    // global_access_block.go: "should block CIDRs defined in the
    // ConfigMap"; configmap_change.go: applied without a restart.
    let pid = tg.pid();
    tg.write(
        "m.yaml",
        &docs(
            &echo,
            &[("block-cidrs", "10.0.0.0/8,127.0.0.0/8")],
            ingresses(),
        ),
    );
    let r = tg.eventually("plain.test", "/", |r| r.status == 403).await;
    assert_eq!(r.status, 403, "{}", r.summary());
    assert_eq!(tg.get("big.test", "/").await.status, 403);
    assert_eq!(post(&tg, "plain.test", 2048).await.status, 403);
    assert_eq!(tg.pid(), pid);
    tg.write("m.yaml", &docs(&echo, &[], ingresses()));
    let r = tg.eventually("plain.test", "/", |r| r.status == 200).await;
    assert_eq!(r.service().as_deref(), Some("app"), "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_redirect_defaults_and_unknown_keys() {
    let echo = Echo::services(&["app"]).await;
    let dir = TempDir::new("configmap");
    dir.write(
        "m.yaml",
        &docs(
            &echo,
            &[
                ("force-ssl-redirect", "true"),
                ("hsts", "true"),
                ("made-up-key", "1"),
                ("another-made-up", "2"),
                ("proxy-read-timeout", "forever"),
            ],
            vec![
                ingress("forced", "forced.test", "app", &[]),
                ingress(
                    "opt-out",
                    "opt-out.test",
                    "app",
                    &[("force-ssl-redirect", "false")],
                ),
            ],
        ),
    );
    let tg = Tollgate::builder()
        .file(
            "m.yaml",
            &std::fs::read_to_string(dir.path().join("m.yaml")).unwrap(),
        )
        .args(&["--configmap", "default/ingress-nginx-controller"])
        .start()
        .await;
    let r = tg.get("forced.test", "/x").await;
    assert_eq!(r.status, 308, "{}", r.summary());
    // no_tls_redirect_locations.go: ACME challenges are never redirected.
    let r = tg.get("forced.test", "/.well-known/acme-challenge/t").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let r = tg.get("opt-out.test", "/x").await;
    assert_eq!(r.status, 200, "{}", r.summary());

    let (code, out, err) = check(
        dir.path(),
        &["--configmap", "default/ingress-nginx-controller"],
    )
    .await;
    assert_eq!(code, 0, "warnings only: {out}{err}");
    let unknown: Vec<&str> = out.lines().filter(|l| l.contains("unknown keys")).collect();
    assert_eq!(unknown.len(), 1, "{out}");
    assert!(unknown[0].contains("another-made-up, made-up-key"), "{out}");
    // `hsts` is applied from the ConfigMap now (tests/nginx_configmap.rs),
    // neither unknown nor "set by a flag".
    assert!(!unknown[0].contains("hsts"), "{out}");
    assert!(!out.contains("set by a flag"), "{out}");
    assert!(out.contains("data[proxy-read-timeout]"), "{out}");
    // Without the ConfigMap: a warning, ingress-nginx's defaults.
    let (code, out, _) = check(dir.path(), &["--configmap", "default/none"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("ConfigMap default/none") && out.contains("not found"),
        "{out}"
    );
}

/// Kubernetes mode: the ConfigMap (and the header ConfigMaps of its
/// namespace) come from the API server, watched; a change applies without
/// a restart, a deletion brings the defaults back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_mode_watches_the_config_map() {
    use crate::common::cluster::{expect_route, Cluster, CHANGE_TIMEOUT};
    let c = Cluster::new();
    let echo = Echo::services(&["app"]).await;
    c.api.apply_many(echo.backends(NS));
    c.api.apply_many(vec![
        ingress("app", "app.test", "app", &[]),
        config_map("headers", &[("X-From-Config", "watched")]),
    ]);
    let tg = c
        .tollgate()
        .args(&["--configmap", "default/ingress-nginx-controller"])
        .start()
        .await;
    expect_route(&tg, "app.test", "/", 200, Some("app")).await;
    c.api.apply(config_map(
        "ingress-nginx-controller",
        &[("add-headers", "headers"), ("block-cidrs", "192.0.2.0/24")],
    ));
    let r = tg
        .eventually_within("app.test", "/", CHANGE_TIMEOUT, |r| {
            r.header("x-from-config").is_some()
        })
        .await;
    assert_eq!(r.header("x-from-config").as_deref(), Some("watched"));
    assert_eq!(r.status, 200);
    c.api.apply(config_map(
        "ingress-nginx-controller",
        &[("block-cidrs", "127.0.0.0/8")],
    ));
    expect_route(&tg, "app.test", "/", 403, None).await;
    assert!(c
        .api
        .delete("v1", "ConfigMap", NS, "ingress-nginx-controller"));
    expect_route(&tg, "app.test", "/", 200, Some("app")).await;
    assert_eq!(tg.get("app.test", "/").await.header("x-from-config"), None);
}
