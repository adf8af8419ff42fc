//! Typed header rules from ingress-nginx's header settings: `custom-headers`
//! (ported from ingress-nginx `test/e2e/annotations/customheaders.go`),
//! `configuration-snippet` (`snippet.go`), `server-snippet`
//! (`serversnippet.go`), the ConfigMap's `add-headers`
//! (`test/e2e/settings/custom_header.go`) and `proxy-set-headers`, and the
//! snippet subset beyond those cases.

use crate::common::*;
use crate::{call, config_map, ingress, NS};

/// tollgate on `docs` plus the backends of `echo`, with `--configmap
/// default/nginx` (the ConfigMap may or may not be among the docs).
async fn start(echo: &Echo, docs: Vec<serde_json::Value>) -> Tollgate {
    let mut all = echo.backends(NS);
    all.extend(docs);
    Tollgate::builder()
        .docs("m.yaml", &all)
        .args(&["--configmap", "default/nginx"])
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_from_a_config_map() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            config_map(
                "nginx",
                &[(
                    "global-allowed-response-headers",
                    "My-Custom-Header,My-Custom-Header-Dollar",
                )],
            ),
            config_map(
                "custom-headers",
                &[
                    ("My-Custom-Header", "42"),
                    ("My-Custom-Header-Dollar", "$remote_addr"),
                ],
            ),
            config_map("not-allowed", &[("X-Other", "1")]),
            ingress("plain", "plain.test", "app", &[]),
            ingress(
                "custom",
                "custom-headers.test",
                "app",
                &[("custom-headers", "default/custom-headers")],
            ),
            ingress(
                "missing",
                "missing.test",
                "app",
                &[("custom-headers", "default/nowhere")],
            ),
            ingress(
                "other",
                "other.test",
                "app",
                &[("custom-headers", "not-allowed")],
            ),
        ],
    )
    .await;
    // customheaders.go: "should return status code 200 when no
    // custom-headers is configured".
    let r = tg.get("plain.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("my-custom-header"), None);
    // customheaders.go: `more_set_headers 'My-Custom-Header' '42'` — values
    // are literal (`$remote_addr` is not interpolated).
    let r = tg.get("custom-headers.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("my-custom-header").as_deref(), Some("42"));
    assert_eq!(
        r.header("my-custom-header-dollar").as_deref(),
        Some("$remote_addr")
    );
    // customheaders.go: "should return status code 503 when custom-headers
    // is configured with an invalid secret": never served without its
    // headers (tollgate refuses the Ingress: it is not served at all), and
    // a header outside global-allowed-response-headers likewise.
    for host in ["missing.test", "other.test"] {
        let r = tg.get(host, "/").await;
        assert!(
            r.status >= 400 && r.service().is_none(),
            "{host}: {}",
            r.summary()
        );
    }
    let (code, out, err) = check(&tg.manifests_dir(), &["--configmap", "default/nginx"]).await;
    assert_ne!(code, 0);
    assert!(
        out.contains("ConfigMap default/nowhere not found")
            && out.contains("`X-Other` is not allowed"),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_snippets_become_header_rules_and_can_be_disallowed() {
    let echo = Echo::services(&["app"]).await;
    let snippets = |suffix: &str| {
        vec![
            ingress(
                "configuration",
                &format!("configurationsnippet{suffix}.test"),
                "app",
                &[("configuration-snippet", r#"more_set_headers "Foo1: Bar1";"#)],
            ),
            ingress(
                "server",
                &format!("serversnippet{suffix}.test"),
                "app",
                &[(
                    "server-snippet",
                    "\n  more_set_headers \"Foo: Bar\";\n  more_set_headers \"Xpto: Lalala\";",
                )],
            ),
        ]
    };
    let tg = start(&echo, snippets("")).await;
    // snippet.go: "set snippet more_set_headers in all locations".
    let r = tg.get("configurationsnippet.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("foo1").as_deref(), Some("Bar1"));
    // serversnippet.go: "add valid directives to server via server snippet".
    let r = tg.get("serversnippet.test", "/").await;
    assert_eq!(r.header("foo").as_deref(), Some("Bar"));
    assert_eq!(r.header("xpto").as_deref(), Some("Lalala"));

    // snippet.go / serversnippet.go: "drops ... if disabled by the
    // administrator" (allow-snippet-annotations: "false"): served, without
    // the headers. The ConfigMap applies without a restart.
    let mut docs = echo.backends(NS);
    docs.extend(snippets(""));
    docs.push(config_map(
        "nginx",
        &[("allow-snippet-annotations", "false")],
    ));
    tg.write("m.yaml", &yaml_docs(&docs));
    let r = tg
        .eventually("configurationsnippet.test", "/", |r| {
            r.header("foo1").is_none()
        })
        .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("foo1"), None);
    let r = tg.get("serversnippet.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!((r.header("foo"), r.header("xpto")), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snippet_subset_on_requests_and_responses() {
    let echo = Echo::services(&["app"]).await;
    let snippet = r#"
        # the security headers users write
        more_set_headers "X-Frame-Options: DENY";
        add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
        more_clear_headers Server;
        proxy_hide_header X-Echo-Service;
        proxy_set_header X-Tenant 'blue; green';
        proxy_set_header Accept-Language "";
    "#;
    let tg = start(
        &echo,
        vec![
            ingress(
                "sec",
                "sec.test",
                "app",
                &[("configuration-snippet", snippet)],
            ),
            ingress(
                "smuggled",
                "smuggled.test",
                "app",
                &[(
                    "configuration-snippet",
                    r#"more_set_headers "X-A: 1"; proxy_pass http://127.0.0.1:1;"#,
                )],
            ),
            ingress(
                "variable",
                "variable.test",
                "app",
                &[("server-snippet", "proxy_set_header X-Real-IP $remote_addr;")],
            ),
        ],
    )
    .await;
    let r = call(
        &tg,
        "GET",
        "sec.test",
        "/",
        &[("accept-language", "fr"), ("x-tenant", "spoofed")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(
        r.header("strict-transport-security").as_deref(),
        Some("max-age=31536000; includeSubDomains")
    );
    // The backend's `Server` is cleared; tollgate's own, without a version,
    // is on every response (docs/migration.md).
    assert_eq!(r.header("server").as_deref(), Some("tollgate"));
    assert_eq!(r.header("x-echo-service"), None);
    let e = r.echo();
    assert_eq!(e.header("x-tenant").as_deref(), Some("blue; green"));
    assert_eq!(e.header("accept-language"), None);
    // Anything else refuses the snippet: the Ingress is not served.
    for host in ["smuggled.test", "variable.test"] {
        let r = tg.get(host, "/").await;
        assert!(r.service().is_none(), "{host}: {}", r.summary());
    }
    let (_, out, err) = check(&tg.manifests_dir(), &[]).await;
    assert!(
        out.contains("directive `proxy_pass` is not supported")
            && out.contains("variable `$remote_addr`"),
        "{out}{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_map_header_lists_and_the_policy_over_them() {
    let echo = Echo::services(&["app"]).await;
    let tg = start(
        &echo,
        vec![
            config_map(
                "nginx",
                &[
                    ("add-headers", "default/add-headers"),
                    ("proxy-set-headers", "proxy-headers"),
                ],
            ),
            // custom_header.go: "Add multiple custom headers".
            config_map(
                "add-headers",
                &[
                    ("X-First", "Prepare for trouble!"),
                    ("X-Second", "And make it double!"),
                ],
            ),
            config_map("proxy-headers", &[("X-Via-Nginx-Config", "yes")]),
            ingress("app", "app.test", "app", &[]),
            ingress(
                "snippet",
                "snippet.test",
                "app",
                &[(
                    "configuration-snippet",
                    r#"more_set_headers "X-First: mine";"#,
                )],
            ),
        ],
    )
    .await;
    let r = tg.get("app.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.header("x-first").as_deref(), Some("Prepare for trouble!"));
    assert_eq!(r.header("x-second").as_deref(), Some("And make it double!"));
    assert_eq!(
        r.echo().header("x-via-nginx-config").as_deref(),
        Some("yes")
    );
    // The Ingress's snippet comes after the ConfigMap's headers.
    let r = tg.get("snippet.test", "/").await;
    assert_eq!(r.header("x-first").as_deref(), Some("mine"));
    assert_eq!(r.header("x-second").as_deref(), Some("And make it double!"));
}
