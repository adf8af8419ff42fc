//! The Kubernetes ingress-controller-conformance features
//! (kubernetes-sigs/ingress-controller-conformance, features/*.feature),
//! translated to standalone mode: every feature gets its own manifests
//! (the feature's single Ingress plus Services/EndpointSlices pointing at
//! `tollgate echo`) and its own `tollgate run` instance.
//!
//! The conformance suite runs in a cluster where an IngressClass for the
//! controller under test is the default class (the Ingresses in the
//! features carry no `ingressClassName`). Each instance here therefore also
//! gets IngressClass `tollgate` marked `is-default-class`.
//!
//! "The Ingress status shows the IP address" has no standalone equivalent;
//! the steps that observe traffic are all checked.

mod common;

use std::collections::HashMap;

use common::*;
use http::Version;
use http_body_util::Full;

/// Sends `method` to `host``target` and records every conformance
/// assertion that does not hold for a response the feature expects to be
/// served by `svc`.
async fn expect_served(
    f: &mut Failures,
    tg: &Tollgate,
    method: &str,
    host: &str,
    target: &str,
    svc: &str,
) -> Option<Echoed> {
    let label = format!("{method} http://{host}{target}");
    let r = match send(
        tg.http_addr(),
        req(method, host, target).body(Full::default()).unwrap(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            f.push(format!("{label}: transport error {e}"));
            return None;
        }
    };
    if r.status != 200 {
        f.push(format!(
            "{label}: expected 200 from {svc}, got {}",
            r.summary()
        ));
        return None;
    }
    f.check(r.version == Version::HTTP_11, || {
        format!("{label}: response proto {:?}, want HTTP/1.1", r.version)
    });
    for h in ["content-length", "content-type", "date", "server"] {
        f.check(r.headers.contains_key(h), || {
            format!("{label}: response header {h} missing")
        });
    }
    let e = match serde_json::from_slice::<serde_json::Value>(&r.body) {
        Ok(v) => Echoed(v),
        Err(err) => {
            f.push(format!("{label}: body not echo JSON ({err}): {}", r.text()));
            return None;
        }
    };
    f.check(e.service() == svc, || {
        format!("{label}: served by {:?}, want {svc:?}", e.service())
    });
    f.check(e.method() == method, || {
        format!("{label}: request method {:?}", e.method())
    });
    f.check(e.path() == target, || {
        format!("{label}: request path {:?}, want {target:?}", e.path())
    });
    f.check(e.proto() == "HTTP/1.1", || {
        format!("{label}: request proto {:?}", e.proto())
    });
    f.check(e.host() == host, || {
        format!("{label}: request host {:?}, want {host:?}", e.host())
    });
    f.check(
        e.header("User-Agent").as_deref() == Some("Go-http-client/1.1"),
        || format!("{label}: request User-Agent {:?}", e.header("User-Agent")),
    );
    Some(e)
}

async fn expect_status(f: &mut Failures, tg: &Tollgate, host: &str, target: &str, status: u16) {
    let label = format!("GET http://{host}{target}");
    match send(
        tg.http_addr(),
        req("GET", host, target).body(Full::default()).unwrap(),
    )
    .await
    {
        Ok(r) => f.check(r.status == status, || {
            format!("{label}: expected {status}, got {}", r.summary())
        }),
        Err(e) => f.push(format!("{label}: transport error {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend() {
    let ns = "conformance-default-backend";
    let echo = Echo::services(&["echo-service"]).await;
    let mut docs = vec![
        ingress_class("tollgate", true),
        ingress(
            ns,
            "default-backend",
            "
defaultBackend:
  service:
    name: echo-service
    port:
      number: 8080
",
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let no_host = format!("127.0.0.1:{}", tg.http_port);
    let examples = [
        ("GET", "my-host", ""),
        ("GET", "my-host", "sub-path"),
        ("POST", "some-host", ""),
        ("PUT", "", "resource"),
        ("DELETE", "some-host", "resource"),
        ("PATCH", "my-host", "resource"),
    ];
    let mut f = Failures::default();
    for (method, host, path) in examples {
        // An empty host in the feature means "the address of the ingress".
        let host = if host.is_empty() {
            no_host.as_str()
        } else {
            host
        };
        expect_served(
            &mut f,
            &tg,
            method,
            host,
            &format!("/{path}"),
            "echo-service",
        )
        .await;
    }
    f.assert_none();
}

const HOST_RULES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: host-rules
spec:
  tls:
    - hosts:
        - foo.bar.com
      secretName: conformance-tls
  rules:
    - host: "*.foo.com"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: wildcard-foo-com
                port:
                  number: 8080

    - host: foo.bar.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: foo-bar-com
                port:
                  name: http
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules() {
    let ns = "conformance-host-rules";
    let echo = Echo::services(&["wildcard-foo-com", "foo-bar-com"]).await;
    // The feature's TLS secret is not created: the HTTPS scenario ("should
    // send TLS traffic to the matching backend service") belongs to the TLS
    // work and is not tested here. The `tls` section referencing a missing
    // secret must not keep the HTTP rules from being served.
    let mut docs = vec![
        ingress_class("tollgate", true),
        ingress_object(ns, HOST_RULES),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let mut f = Failures::default();
    // host foo.bar.com matches request foo.bar.com
    expect_served(&mut f, &tg, "GET", "foo.bar.com", "/", "foo-bar-com").await;
    // host foo.bar.com does not match request subdomain.bar.com
    expect_status(&mut f, &tg, "subdomain.bar.com", "/", 404).await;
    // wildcard: matches based on shared suffix
    expect_served(&mut f, &tg, "GET", "bar.foo.com", "/", "wildcard-foo-com").await;
    // wildcard only covers a single DNS label
    expect_status(&mut f, &tg, "baz.bar.foo.com", "/", 404).await;
    // ... and not zero labels
    expect_status(&mut f, &tg, "foo.com", "/", 404).await;
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_class_invalid_is_not_served() {
    let ns = "conformance-ingress-class";
    let echo = Echo::services(&["ingress-class-prefix"]).await;
    let mut docs = vec![
        ingress_class("tollgate", true),
        ingress_object(
            ns,
            r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: test-ingress-class
spec:
  ingressClassName: some-invalid-class-name
  rules:
    - host: "ingress-class"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: ingress-class-prefix
                port:
                  number: 8080
"#,
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    // Standalone equivalent of "the Ingress status should not contain the
    // IP address": the controller does not implement it, so its host is not
    // routed at all.
    for target in ["/", "/anything"] {
        let r = tg.get("ingress-class", target).await;
        assert_eq!(
            r.status,
            404,
            "GET http://ingress-class{target}: {}",
            r.summary()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing() {
    let ns = "conformance-load-balancing";
    let echo = Echo::replicas("echo-service", 10).await;
    let mut docs = vec![
        ingress_class("tollgate", true),
        ingress(
            ns,
            "load-balancing",
            "
defaultBackend:
  service:
    name: echo-service
    port:
      number: 8080
",
        ),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    let mut pods: HashMap<String, usize> = HashMap::new();
    for i in 0..100 {
        let r = tg.get("load-balancing", "/").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.summary());
        *pods.entry(r.echo().pod()).or_default() += 1;
    }
    assert_eq!(
        pods.len(),
        10,
        "100 requests reached {} of 10 pods: {pods:?}",
        pods.len()
    );
    let expected: Vec<String> = echo
        .ports("echo-service")
        .iter()
        .map(|p| format!("echo-service@127.0.0.1:{p}"))
        .collect();
    for pod in pods.keys() {
        assert!(
            expected.contains(pod),
            "unexpected pod {pod}, expected one of {expected:?}"
        );
    }
}

const PATH_RULES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: path-rules
spec:
  rules:
    - host: "exact-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Exact
            backend:
              service:
                name: foo-exact
                port:
                  number: 8080

    - host: "prefix-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend:
              service:
                name: foo-prefix
                port:
                  number: 8080

          - path: /aaa/bbb
            pathType: Prefix
            backend:
              service:
                name: aaa-slash-bbb-prefix
                port:
                  number: 8080

          - path: /aaa
            pathType: Prefix
            backend:
              service:
                name: aaa-prefix
                port:
                  number: 8080

    - host: "mixed-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend:
              service:
                name: foo-prefix
                port:
                  number: 8080

          - path: /foo
            pathType: Exact
            backend:
              service:
                name: foo-exact
                port:
                  number: 8080

    - host: "trailing-slash-path-rules"
      http:
        paths:
          - path: /aaa/bbb/
            pathType: Prefix
            backend:
              service:
                name: aaa-slash-bbb-slash-prefix
                port:
                  number: 8080

          - path: /foo/
            pathType: Exact
            backend:
              service:
                name: foo-slash-exact
                port:
                  number: 8080
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_rules() {
    let ns = "conformance-path-rules";
    let echo = Echo::services(&[
        "foo-exact",
        "foo-prefix",
        "aaa-slash-bbb-prefix",
        "aaa-prefix",
        "aaa-slash-bbb-slash-prefix",
        "foo-slash-exact",
    ])
    .await;
    let mut docs = vec![
        ingress_class("tollgate", true),
        ingress_object(ns, PATH_RULES),
    ];
    docs.extend(echo.backends(ns));
    let tg = Tollgate::with_docs(&docs).await;

    // (host, request path, Some(service) for 200 / None for 404), in the
    // order of the feature's scenarios.
    let scenarios: &[(&str, &str, Option<&str>)] = &[
        // exact /foo matches request /foo
        ("exact-path-rules", "/foo", Some("foo-exact")),
        // exact /foo does not match request /foo/
        ("exact-path-rules", "/foo/", None),
        // exact is case sensitive
        ("exact-path-rules", "/FOO", None),
        // exact /foo does not match /bar
        ("exact-path-rules", "/bar", None),
        // prefix /foo matches /foo
        ("prefix-path-rules", "/foo", Some("foo-prefix")),
        // prefix /foo matches /foo/
        ("prefix-path-rules", "/foo/", Some("foo-prefix")),
        // prefix is case sensitive
        ("prefix-path-rules", "/FOO", None),
        // longest prefix /aaa/bbb matches /aaa/bbb
        (
            "prefix-path-rules",
            "/aaa/bbb",
            Some("aaa-slash-bbb-prefix"),
        ),
        // ... and its subpaths
        (
            "prefix-path-rules",
            "/aaa/bbb/ccc",
            Some("aaa-slash-bbb-prefix"),
        ),
        // prefix /aaa matches /aaa/ccc
        ("prefix-path-rules", "/aaa/ccc", Some("aaa-prefix")),
        // prefix matching is per path element: /aaa does not match /aaaccc
        ("prefix-path-rules", "/aaaccc", None),
        // Exact is preferred over Prefix for the same path
        ("mixed-path-rules", "/foo", Some("foo-exact")),
        // prefix /aaa/bbb/ matches /aaa/bbb
        (
            "trailing-slash-path-rules",
            "/aaa/bbb",
            Some("aaa-slash-bbb-slash-prefix"),
        ),
        // prefix /aaa/bbb/ matches /aaa/bbb/
        (
            "trailing-slash-path-rules",
            "/aaa/bbb/",
            Some("aaa-slash-bbb-slash-prefix"),
        ),
        // exact /foo/ does not match /foo
        ("trailing-slash-path-rules", "/foo", None),
    ];
    let mut f = Failures::default();
    for (host, path, want) in scenarios {
        match want {
            Some(svc) => {
                expect_served(&mut f, &tg, "GET", host, path, svc).await;
            }
            None => expect_status(&mut f, &tg, host, path, 404).await,
        }
    }
    f.assert_none();
}
