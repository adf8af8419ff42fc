//! TLS termination by `tollgate run`: certificate selection by SNI
//! (exact, wildcard, default), Secrets in their accepted encodings, the
//! HTTP → HTTPS redirect and its annotations, HSTS, ALPN, forwarded
//! headers, the 421 guard against connection coalescing, protocol
//! versions, rotation and broken or expired Secrets.
//!
//! Certificates are generated per test (see the TLS helpers in
//! `common`); a test identifies the certificate it was served by
//! comparing the presented leaf with the ones it generated.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::Version;
use serde_json::{json, Value};

const NS: &str = "tls";

/// A rotated Secret must reach new handshakes within this time (contract:
/// ~1 s).
const ROTATION_TIMEOUT: Duration = Duration::from_secs(2);

/// Ingress `name`: `host` (Prefix /) to `svc` port 8080, with a `tls`
/// entry for `tls_hosts` and `secret` unless `tls_hosts` is empty.
fn tls_ingress(name: &str, host: &str, svc: &str, tls_hosts: &[&str], secret: &str) -> Value {
    let mut v = ingress(NS, name, &simple_spec(host, svc));
    if !tls_hosts.is_empty() {
        v["spec"]["tls"] = json!([{"hosts": tls_hosts, "secretName": secret}]);
    }
    v
}

fn annotated(mut v: Value, key: &str, value: &str) -> Value {
    v["metadata"]["annotations"][key] = json!(value);
    v
}

/// IngressClass plus the Services and EndpointSlices of `echo`.
fn base_docs(echo: &Echo) -> Vec<Value> {
    let mut docs = vec![ingress_class("tollgate", false)];
    docs.extend(echo.backends(NS));
    docs
}

/// Certificate served for `sni`; panics on handshake failure.
async fn cert_for(tg: &Tollgate, sni: Option<&str>) -> PeerCert {
    served_cert(tg.https_addr(), sni)
        .await
        .unwrap_or_else(|e| panic!("handshake with SNI {sni:?}: {e}"))
}

/// GET over a fresh TLS connection with SNI = Host = `host`.
async fn https(tg: &Tollgate, host: &str, path: &str) -> (Resp, PeerCert) {
    https_get(tg.https_addr(), Some(host), host, path)
        .await
        .unwrap_or_else(|e| panic!("GET https://{host}{path}: {e}"))
}

// ---------------------------------------------------------------------------
// Certificate selection
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_the_certificate_of_each_host() {
    let ca = TestCa::new("tollgate test CA");
    let cert_a = ca.leaf("leaf a.test", &["a.test"]);
    let cert_b = ca.leaf("leaf b.test", &["b.test"]);
    let cert_c = ca.leaf("leaf c.test", &["c.test"]);
    let echo = Echo::services(&["svc-a", "svc-b", "svc-c"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        // One Ingress with two tls entries, one with a single entry.
        ingress(
            NS,
            "ab",
            "ingressClassName: tollgate
tls:
  - hosts: [a.test]
    secretName: secret-a
  - hosts: [b.test]
    secretName: secret-b
rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-a, port: {number: 8080}}}}
  - host: b.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc-b, port: {number: 8080}}}}
",
        ),
        tls_ingress("c", "c.test", "svc-c", &["c.test"], "secret-c"),
        // stringData with the full chain; base64 data with the leaf alone.
        tls_secret(NS, "secret-a", &cert_a.chain_pem, &cert_a.key_pem),
        tls_secret_b64(NS, "secret-b", &cert_b.cert_pem, &cert_b.key_pem),
        tls_secret(NS, "secret-c", &cert_c.chain_pem, &cert_c.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    // A client that verifies the chain and the name against the test CA.
    let verifying = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    let mut f = Failures::default();
    for (host, cert, svc) in [
        ("a.test", &cert_a, "svc-a"),
        ("b.test", &cert_b, "svc-b"),
        ("c.test", &cert_c, "svc-c"),
    ] {
        let mut c = match HttpsConn::open_with(&verifying, tg.https_addr(), Some(host)).await {
            Ok(c) => c,
            Err(e) => {
                f.push(format!("SNI {host}: verified handshake failed: {e}"));
                continue;
            }
        };
        f.check(c.cert.is(cert), || {
            format!("SNI {host}: served {}", c.cert.describe())
        });
        f.check(c.cert.sans == vec![host.to_string()], || {
            format!("SNI {host}: leaf SANs {:?}", c.cert.sans)
        });
        f.check(
            c.cert.cn.as_deref() == Some(&format!("leaf {host}")),
            || format!("SNI {host}: leaf subject CN {:?}", c.cert.cn),
        );
        match c.get(host, "/x").await {
            Ok(r) => f.check(
                r.status == 200 && r.service().as_deref() == Some(svc),
                || {
                    format!(
                        "GET https://{host}/x: {} (want 200 from {svc})",
                        r.summary()
                    )
                },
            ),
            Err(e) => f.push(format!("GET https://{host}/x: {e}")),
        }
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_tls_host_covers_exactly_one_label() {
    let ca = TestCa::new("tollgate test CA");
    let wild = ca.leaf("leaf wildcard", &["*.wild.test"]);
    let exact = ca.leaf("leaf exact", &["exact.wild.test"]);
    let echo = Echo::services(&["svc-w", "svc-e"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("w", "*.wild.test", "svc-w", &["*.wild.test"], "wild"),
        tls_ingress(
            "e",
            "exact.wild.test",
            "svc-e",
            &["exact.wild.test"],
            "exact",
        ),
        tls_secret(NS, "wild", &wild.chain_pem, &wild.key_pem),
        tls_secret(NS, "exact", &exact.chain_pem, &exact.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    for (sni, want) in [
        ("a.wild.test", Some(&wild)),
        ("other.wild.test", Some(&wild)),
        ("exact.wild.test", Some(&exact)),
        // A wildcard covers one label: neither the bare domain nor two labels.
        ("wild.test", None),
        ("x.y.wild.test", None),
    ] {
        let c = cert_for(&tg, Some(sni)).await;
        let ok = match want {
            Some(cert) => c.is(cert),
            None => c.is_generated_default(),
        };
        f.check(ok, || {
            let want = want.map_or("the generated default certificate".to_string(), |w| {
                PeerCert::from_der(&w.der).describe()
            });
            format!("SNI {sni}: served {}, want {want}", c.describe())
        });
    }
    let (r, c) = https(&tg, "a.wild.test", "/w").await;
    f.check(c.is(&wild), || format!("a.wild.test: {}", c.describe()));
    f.check(
        r.status == 200 && r.service().as_deref() == Some("svc-w"),
        || format!("GET https://a.wild.test/w: {}", r.summary()),
    );
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_missing_sni_gets_the_generated_default_certificate() {
    let ca = TestCa::new("tollgate test CA");
    let cert_a = ca.leaf("leaf a.test", &["a.test"]);
    let echo = Echo::services(&["svc-a", "svc-plain"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("a", "a.test", "svc-a", &["a.test"], "secret-a"),
        tls_ingress("plain", "plain.test", "svc-plain", &[], ""),
        tls_secret(NS, "secret-a", &cert_a.chain_pem, &cert_a.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let unknown = cert_for(&tg, Some("unknown.test")).await;
    assert!(
        unknown.is_generated_default(),
        "unknown SNI: served {}, want CN {DEFAULT_CERT_CN:?}",
        unknown.describe()
    );
    // An IP address as server name: rustls sends no SNI at all.
    let none = cert_for(&tg, None).await;
    assert!(
        none.is_generated_default(),
        "no SNI: served {}, want CN {DEFAULT_CERT_CN:?}",
        none.describe()
    );
    assert_eq!(
        unknown.der, none.der,
        "one default certificate expected for unknown and missing SNI"
    );

    // A host without a certificate of its own is served normally on a
    // connection that has the default certificate.
    for sni in [None, Some("plain.test")] {
        let (r, c) = https_get(tg.https_addr(), sni, "plain.test", "/p")
            .await
            .unwrap_or_else(|e| panic!("GET https://plain.test/p (SNI {sni:?}): {e}"));
        assert!(c.is_generated_default(), "SNI {sni:?}: {}", c.describe());
        assert_eq!(
            r.service().as_deref(),
            Some("svc-plain"),
            "GET https://plain.test/p with SNI {sni:?}: {}",
            r.summary()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_certificate_flag_selects_a_secret() {
    let ca = TestCa::new("tollgate test CA");
    let fallback = ca.leaf("leaf fallback", &["fallback.test"]);
    let cert_a = ca.leaf("leaf a.test", &["a.test"]);
    let echo = Echo::services(&["svc-a"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("a", "a.test", "svc-a", &["a.test"], "secret-a"),
        tls_secret(NS, "secret-a", &cert_a.chain_pem, &cert_a.key_pem),
        tls_secret(NS, "fallback", &fallback.chain_pem, &fallback.key_pem),
    ]);
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--default-certificate", "tls/fallback"])
        .start()
        .await;

    let mut f = Failures::default();
    for (sni, want, what) in [
        (Some("unknown.test"), &fallback, "--default-certificate"),
        (None, &fallback, "--default-certificate"),
        (Some("a.test"), &cert_a, "a.test's own certificate"),
    ] {
        let c = cert_for(&tg, sni).await;
        f.check(c.is(want), || {
            format!("SNI {sni:?}: served {}, want {what}", c.describe())
        });
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_not_covering_a_tls_host_is_not_used_for_it() {
    let ca = TestCa::new("tollgate test CA");
    let cert_a = ca.leaf("leaf a.test", &["a.test"]);
    let elsewhere = ca.leaf("leaf x.test", &["x.test"]);
    let wild = ca.leaf("leaf wildcard", &["*.w.test"]);
    let echo = Echo::services(&["svc-a", "svc-o", "svc-x", "svc-w"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        // An exact TLS host is covered by a wildcard SAN.
        tls_ingress("w", "api.w.test", "svc-w", &["api.w.test"], "secret-w"),
        tls_secret(NS, "secret-w", &wild.chain_pem, &wild.key_pem),
        // other.test is listed but the certificate's SANs do not cover it.
        tls_ingress(
            "a",
            "a.test",
            "svc-a",
            &["a.test", "other.test"],
            "secret-a",
        ),
        tls_ingress("o", "other.test", "svc-o", &[], ""),
        tls_secret(NS, "secret-a", &cert_a.chain_pem, &cert_a.key_pem),
        // The Secret exists, but in another namespace than the Ingress.
        tls_ingress("x", "x.test", "svc-x", &["x.test"], "secret-x"),
        tls_secret(
            "elsewhere",
            "secret-x",
            &elsewhere.chain_pem,
            &elsewhere.key_pem,
        ),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    for (sni, cert) in [("a.test", &cert_a), ("api.w.test", &wild)] {
        let c = cert_for(&tg, Some(sni)).await;
        f.check(c.is(cert), || format!("SNI {sni}: {}", c.describe()));
    }
    for sni in ["other.test", "x.test"] {
        let c = cert_for(&tg, Some(sni)).await;
        f.check(c.is_generated_default(), || {
            format!(
                "SNI {sni}: served {}, want the default certificate",
                c.describe()
            )
        });
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_key_encodings_pkcs8_pkcs1_and_sec1_are_accepted() {
    if !have_openssl() {
        eprintln!("note: `openssl` not found; skipping the PKCS#1/SEC1 key test");
        return;
    }
    let ca = TestCa::new("tollgate test CA");
    let dir = TempDir::new("keys");
    let openssl = |args: &[&str]| -> String {
        let out =
            run_external("openssl", args, &[], Duration::from_secs(30)).expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // SEC1 ("EC PRIVATE KEY") of an rcgen P-256 key.
    let ec = rcgen::KeyPair::generate().unwrap();
    let ec_pkcs8 = dir.path().join("ec.pem");
    std::fs::write(&ec_pkcs8, ec.serialize_pem()).unwrap();
    let sec1 = openssl(&["ec", "-in", ec_pkcs8.to_str().unwrap()]);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "not SEC1: {sec1}");
    let cert_sec1 = ca.leaf_for_key("leaf sec1", &["sec1.test"], &ec, sec1, |_| {});
    // PKCS#1 ("RSA PRIVATE KEY"): an RSA key made by openssl.
    let rsa_pkcs8 = openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
    ]);
    let rsa_path = dir.path().join("rsa.pem");
    std::fs::write(&rsa_path, &rsa_pkcs8).unwrap();
    let pkcs1 = openssl(&["rsa", "-in", rsa_path.to_str().unwrap(), "-traditional"]);
    assert!(
        pkcs1.contains("BEGIN RSA PRIVATE KEY"),
        "not PKCS#1: {pkcs1}"
    );
    let rsa = rcgen::KeyPair::from_pem(&rsa_pkcs8).expect("rcgen loads the RSA key");
    let cert_rsa = ca.leaf_for_key("leaf rsa", &["rsa.test"], &rsa, pkcs1, |_| {});
    // PKCS#8 ("PRIVATE KEY"), as rcgen writes it.
    let cert_p8 = ca.leaf("leaf pkcs8", &["p8.test"]);

    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("sec1", "sec1.test", "svc", &["sec1.test"], "sec1"),
        tls_ingress("rsa", "rsa.test", "svc", &["rsa.test"], "rsa"),
        tls_ingress("p8", "p8.test", "svc", &["p8.test"], "p8"),
        tls_secret(NS, "sec1", &cert_sec1.chain_pem, &cert_sec1.key_pem),
        tls_secret_b64(NS, "rsa", &cert_rsa.chain_pem, &cert_rsa.key_pem),
        tls_secret_b64(NS, "p8", &cert_p8.chain_pem, &cert_p8.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    for (host, cert, encoding) in [
        ("sec1.test", &cert_sec1, "SEC1"),
        ("rsa.test", &cert_rsa, "PKCS#1"),
        ("p8.test", &cert_p8, "PKCS#8"),
    ] {
        match https_get(tg.https_addr(), Some(host), host, "/").await {
            Ok((r, c)) => {
                f.check(c.is(cert), || {
                    format!("{encoding} key ({host}): served {}", c.describe())
                });
                f.check(r.status == 200, || format!("{host}: {}", r.summary()));
            }
            Err(e) => f.push(format!("{encoding} key ({host}): {e}")),
        }
    }
    let (code, out, err) = check(&tg.manifests_dir(), &[]).await;
    f.check(code == 0, || {
        format!("check with PKCS#8/PKCS#1/SEC1 keys exited {code}\n{out}\n{err}")
    });
    f.assert_none();
}

// ---------------------------------------------------------------------------
// HTTP → HTTPS redirect and HSTS
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_for_a_tls_host_gets_308_to_https() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf r.test", &["r.test"]);
    let echo = Echo::services(&["svc-r", "svc-p"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("r", "r.test", "svc-r", &["r.test"], "secret-r"),
        tls_ingress("p", "p.test", "svc-p", &[], ""),
        tls_secret(NS, "secret-r", &cert.chain_pem, &cert.key_pem),
    ]);
    // The builder picks the listening HTTPS port itself; the redirect port
    // is only what goes into Location (the port clients reach, e.g. behind
    // a Service), so any port shows that the flag is used.
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--https-redirect-port", "8443"])
        .start()
        .await;
    let mut f = Failures::default();
    let want = "https://r.test:8443/a/b?x=1&y=two";
    for host in ["r.test".to_string(), format!("r.test:{}", tg.http_port)] {
        let r = tg.get(&host, "/a/b?x=1&y=two").await;
        f.check(r.status == 308, || {
            format!("http://{host}/a/b?x=1&y=two: {} (want 308)", r.summary())
        });
        let loc = r.header("location");
        f.check(loc.as_deref() == Some(want), || {
            format!("Host {host}: Location {loc:?}, want {want:?}")
        });
    }
    let r = tg.get("p.test", "/a?x=1").await;
    f.check(r.service().as_deref() == Some("svc-p"), || {
        format!(
            "host without tls over HTTP: {} (want 200 from svc-p)",
            r.summary()
        )
    });
    let (r, _) = https(&tg, "r.test", "/a/b?x=1").await;
    f.check(
        r.status == 200 && r.service().as_deref() == Some("svc-r"),
        || {
            format!(
                "https://r.test/a/b?x=1: {} (want 200, no redirect)",
                r.summary()
            )
        },
    );
    f.assert_none();

    // Without --https-redirect-port the port is 443 and left out.
    let tg443 = Tollgate::builder().docs("m.yaml", &docs).start().await;
    let r = tg443.get("r.test", "/a?x=1").await;
    assert_eq!(r.status, 308, "{}", r.summary());
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://r.test/a?x=1"),
        "default redirect port 443 must be omitted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_redirect_false_annotation_turns_the_redirect_off() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf", &["n1.test", "n2.test", "r.test"]);
    let echo = Echo::services(&["svc-n1", "svc-n2", "svc-r"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        annotated(
            tls_ingress("n1", "n1.test", "svc-n1", &["n1.test"], "secret"),
            "tollgate.dev/ssl-redirect",
            "false",
        ),
        annotated(
            tls_ingress("n2", "n2.test", "svc-n2", &["n2.test"], "secret"),
            "nginx.ingress.kubernetes.io/ssl-redirect",
            "false",
        ),
        tls_ingress("r", "r.test", "svc-r", &["r.test"], "secret"),
        tls_secret(NS, "secret", &cert.chain_pem, &cert.key_pem),
    ]);
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--https-redirect-port", "8443"])
        .start()
        .await;

    let mut f = Failures::default();
    for (host, svc) in [("n1.test", "svc-n1"), ("n2.test", "svc-n2")] {
        let r = tg.get(host, "/q?a=1").await;
        f.check(
            r.status == 200 && r.service().as_deref() == Some(svc),
            || format!("http://{host}/q?a=1: {} (want 200 from {svc})", r.summary()),
        );
        let (r, c) = https(&tg, host, "/q").await;
        f.check(r.service().as_deref() == Some(svc) && c.is(&cert), || {
            format!("https://{host}/q: {} with {}", r.summary(), c.describe())
        });
    }
    let r = tg.get("r.test", "/q?a=1").await;
    f.check(r.status == 308, || {
        format!(
            "control host without the annotation: {} (want 308)",
            r.summary()
        )
    });
    f.check(
        r.header("location").as_deref() == Some("https://r.test:8443/q?a=1"),
        || format!("control host Location: {:?}", r.header("location")),
    );
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_ssl_redirect_redirects_without_a_tls_section() {
    let echo = Echo::services(&["svc-f", "svc-p"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        annotated(
            tls_ingress("f", "f.test", "svc-f", &[], ""),
            "nginx.ingress.kubernetes.io/force-ssl-redirect",
            "true",
        ),
        tls_ingress("p", "p.test", "svc-p", &[], ""),
    ]);
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--https-redirect-port", "8443"])
        .start()
        .await;

    let r = tg.get("f.test", "/p/q?z=9").await;
    assert_eq!(r.status, 308, "force-ssl-redirect: {}", r.summary());
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://f.test:8443/p/q?z=9")
    );
    let r = tg.get("p.test", "/p").await;
    assert_eq!(
        r.service().as_deref(),
        Some("svc-p"),
        "host without tls and annotation must not redirect: {}",
        r.summary()
    );
    // Over HTTPS the forced host is served (default certificate).
    let (r, _) = https(&tg, "f.test", "/p").await;
    assert_eq!(r.service().as_deref(), Some("svc-f"), "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_on_https_responses_only() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf", &["h.test", "r.test"]);
    let echo = Echo::services(&["svc-h", "svc-r"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        annotated(
            tls_ingress("h", "h.test", "svc-h", &["h.test"], "secret"),
            "tollgate.dev/ssl-redirect",
            "false",
        ),
        tls_ingress("r", "r.test", "svc-r", &["r.test"], "secret"),
        tls_secret(NS, "secret", &cert.chain_pem, &cert.key_pem),
    ]);
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .args(&["--hsts", "max-age=31536000"])
        .start()
        .await;

    let mut f = Failures::default();
    for host in ["h.test", "r.test"] {
        let (r, _) = https(&tg, host, "/").await;
        f.check(r.status == 200, || {
            format!("https://{host}/: {}", r.summary())
        });
        let hsts = r.header("strict-transport-security");
        f.check(hsts.as_deref() == Some("max-age=31536000"), || {
            format!("https://{host}/: Strict-Transport-Security {hsts:?}")
        });
    }
    // Error responses over HTTPS carry it too (no rule for this host).
    let (r, _) = https(&tg, "none.test", "/").await;
    f.check(r.status == 404, || {
        format!("https://none.test/: {}", r.summary())
    });
    let hsts = r.header("strict-transport-security");
    f.check(hsts.as_deref() == Some("max-age=31536000"), || {
        format!("HTTPS 404: Strict-Transport-Security {hsts:?}")
    });
    let r = tg.get("h.test", "/").await;
    f.check(r.status == 200, || {
        format!("http://h.test/: {}", r.summary())
    });
    let hsts = r.header("strict-transport-security");
    f.check(hsts.is_none(), || {
        format!("plain HTTP 200 carries Strict-Transport-Security {hsts:?}")
    });
    let r = tg.get("r.test", "/").await;
    f.check(r.status == 308, || {
        format!("http://r.test/: {}", r.summary())
    });
    let hsts = r.header("strict-transport-security");
    f.check(hsts.is_none(), || {
        format!("plain HTTP redirect carries Strict-Transport-Security {hsts:?}")
    });
    f.assert_none();
}

// ---------------------------------------------------------------------------
// Protocols and headers over TLS
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_negotiates_h2_and_requests_are_routed_over_it() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf", &["alpn.test"]);
    let echo = Echo::services(&["svc-a", "svc-b"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        ingress(
            NS,
            "alpn",
            "ingressClassName: tollgate
tls:
  - hosts: [alpn.test]
    secretName: secret
rules:
  - host: alpn.test
    http:
      paths:
      - path: /a
        pathType: Prefix
        backend: {service: {name: svc-a, port: {number: 8080}}}
      - path: /b
        pathType: Prefix
        backend: {service: {name: svc-b, port: {number: 8080}}}
",
        ),
        tls_secret(NS, "secret", &cert.chain_pem, &cert.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    for (offer, want_alpn, want_version) in [
        (vec!["h2", "http/1.1"], Some("h2"), Version::HTTP_2),
        (vec!["http/1.1"], Some("http/1.1"), Version::HTTP_11),
        (vec![], None, Version::HTTP_11),
    ] {
        let client = TlsClient::alpn(&offer);
        let mut c = match HttpsConn::open_with(&client, tg.https_addr(), Some("alpn.test")).await {
            Ok(c) => c,
            Err(e) => {
                f.push(format!("ALPN {offer:?}: {e}"));
                continue;
            }
        };
        f.check(c.alpn.as_deref() == want_alpn, || {
            format!(
                "ALPN offer {offer:?}: server chose {:?}, want {want_alpn:?}",
                c.alpn
            )
        });
        for (path, svc) in [("/a/1?k=v", "svc-a"), ("/b/2", "svc-b")] {
            match c.get("alpn.test", path).await {
                Ok(r) => {
                    f.check(r.version == want_version, || {
                        format!("ALPN {offer:?} {path}: response version {:?}", r.version)
                    });
                    f.check(
                        r.status == 200 && r.service().as_deref() == Some(svc),
                        || format!("ALPN {offer:?} {path}: {} (want {svc})", r.summary()),
                    );
                    if r.status == 200 {
                        let e = r.echo();
                        f.check(e.host() == "alpn.test" && e.path() == path, || {
                            format!(
                                "ALPN {offer:?}: upstream saw host {} path {}",
                                e.host(),
                                e.path()
                            )
                        });
                    }
                }
                Err(e) => f.push(format!("ALPN {offer:?} {path}: {e}")),
            }
        }
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sees_forwarded_proto_and_port_of_https() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf", &["xf.test"]);
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        annotated(
            tls_ingress("xf", "xf.test", "svc", &["xf.test"], "secret"),
            "tollgate.dev/ssl-redirect",
            "false",
        ),
        tls_secret(NS, "secret", &cert.chain_pem, &cert.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    let https_port = tg.https_port.to_string();
    let http_port = tg.http_port.to_string();
    for h2 in [false, true] {
        let client = TlsClient::alpn(if h2 { &["h2"] } else { &["http/1.1"] });
        let mut c = HttpsConn::open_with(&client, tg.https_addr(), Some("xf.test"))
            .await
            .unwrap_or_else(|e| panic!("TLS connection (h2: {h2}): {e}"));
        let r = c.get("xf.test", "/h").await.unwrap();
        assert_eq!(r.status, 200, "h2 {h2}: {}", r.summary());
        let e = r.echo();
        for (h, want) in [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Port", https_port.as_str()),
            ("X-Forwarded-Host", "xf.test"),
        ] {
            let got = e.header(h);
            f.check(got.as_deref() == Some(want), || {
                format!("over HTTPS (h2: {h2}) {h}: got {got:?}, want {want:?}")
            });
        }
    }
    // The same host over plain HTTP, for contrast.
    let e = tg.get("xf.test", "/h").await.echo();
    for (h, want) in [
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", http_port.as_str()),
    ] {
        let got = e.header(h);
        f.check(got.as_deref() == Some(want), || {
            format!("over HTTP {h}: got {got:?}, want {want:?}")
        });
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_a_host_with_another_certificate_gets_421() {
    let ca = TestCa::new("tollgate test CA");
    let cert_a = ca.leaf("leaf a.test", &["a.test"]);
    let cert_b = ca.leaf("leaf b.test", &["b.test"]);
    let echo = Echo::services(&["svc-a", "svc-b", "svc-plain"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("a", "a.test", "svc-a", &["a.test"], "secret-a"),
        tls_ingress("b", "b.test", "svc-b", &["b.test"], "secret-b"),
        tls_ingress("plain", "plain.test", "svc-plain", &[], ""),
        tls_secret(NS, "secret-a", &cert_a.chain_pem, &cert_a.key_pem),
        tls_secret(NS, "secret-b", &cert_b.chain_pem, &cert_b.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    // One connection per protocol, SNI a.test, asking for a.test then b.test.
    for offer in [["http/1.1"], ["h2"]] {
        let client = TlsClient::alpn(&offer);
        let mut c = HttpsConn::open_with(&client, tg.https_addr(), Some("a.test"))
            .await
            .unwrap_or_else(|e| panic!("TLS connection ({offer:?}): {e}"));
        assert!(c.cert.is(&cert_a), "SNI a.test: {}", c.cert.describe());
        let a_port = format!("a.test:{}", tg.https_port);
        let mut asks = vec![("a.test", 200), (a_port.as_str(), 200), ("b.test", 421)];
        if offer == ["h2"] {
            // A 421 answers one stream; the connection goes on.
            asks.push(("a.test", 200));
        }
        for (host, want) in asks {
            match c.get(host, "/m").await {
                Ok(r) => f.check(r.status == want, || {
                    format!(
                        "{offer:?}, SNI a.test, Host {host}: {} (want {want})",
                        r.summary()
                    )
                }),
                Err(e) => f.push(format!("{offer:?}, SNI a.test, Host {host}: {e}")),
            }
        }
    }
    // A connection with the default certificate serves a host that has
    // none of its own.
    let (r, c) = https_get(tg.https_addr(), Some("unknown.test"), "plain.test", "/m")
        .await
        .unwrap();
    assert!(c.is_generated_default(), "{}", c.describe());
    f.check(r.service().as_deref() == Some("svc-plain"), || {
        format!(
            "default-cert connection, Host plain.test: {} (want 200)",
            r.summary()
        )
    });
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_a_host_with_the_same_certificate_is_served() {
    // Legitimate HTTP/2 coalescing: the connection's certificate is also
    // the one of the requested host.
    let ca = TestCa::new("tollgate test CA");
    let wild = ca.leaf("leaf wildcard", &["*.w.test"]);
    let shared = ca.leaf("leaf shared", &["s1.test", "s2.test"]);
    let echo = Echo::services(&["svc-w", "svc-s1", "svc-s2"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("w", "*.w.test", "svc-w", &["*.w.test"], "wild"),
        // Two Ingresses naming the same Secret.
        tls_ingress("s1", "s1.test", "svc-s1", &["s1.test"], "shared"),
        tls_ingress("s2", "s2.test", "svc-s2", &["s2.test"], "shared"),
        tls_secret(NS, "wild", &wild.chain_pem, &wild.key_pem),
        tls_secret(NS, "shared", &shared.chain_pem, &shared.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    for (sni, host, svc) in [
        ("x.w.test", "y.w.test", "svc-w"),
        ("s1.test", "s2.test", "svc-s2"),
    ] {
        let client = TlsClient::alpn(&["h2"]);
        let mut c = HttpsConn::open_with(&client, tg.https_addr(), Some(sni))
            .await
            .unwrap_or_else(|e| panic!("TLS connection (SNI {sni}): {e}"));
        match c.get(host, "/c").await {
            Ok(r) => f.check(r.service().as_deref() == Some(svc), || {
                format!(
                    "h2, SNI {sni}, :authority {host} (same certificate): {} (want 200 from {svc})",
                    r.summary()
                )
            }),
            Err(e) => f.push(format!("h2, SNI {sni}, :authority {host}: {e}")),
        }
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_and_1_3_are_served_and_1_1_is_refused() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf", &["v.test"]);
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("v", "v.test", "svc", &["v.test"], "secret"),
        tls_secret(NS, "secret", &cert.chain_pem, &cert.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    for (version, want) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let client = TlsClient {
            versions: vec![version],
            ..TlsClient::default()
        };
        let mut c = HttpsConn::open_with(&client, tg.https_addr(), Some("v.test"))
            .await
            .unwrap_or_else(|e| panic!("{want:?} handshake: {e}"));
        assert_eq!(c.tls_version, Some(want));
        assert!(c.cert.is(&cert), "{want:?}: {}", c.cert.describe());
        let r = c.get("v.test", "/").await.unwrap();
        assert_eq!(r.status, 200, "{want:?}: {}", r.summary());
    }

    if !have_openssl() {
        eprintln!("note: `openssl` not found; skipping the TLS 1.1 refusal check");
        return;
    }
    let connect = format!("127.0.0.1:{}", tg.https_port);
    let s_client = |version_flag: &'static str| {
        let connect = connect.clone();
        tokio::task::spawn_blocking(move || {
            // An empty configuration and security level 0, so that the
            // client itself is willing to speak TLS 1.1.
            let out = run_external(
                "openssl",
                &[
                    "s_client",
                    "-connect",
                    &connect,
                    "-servername",
                    "v.test",
                    version_flag,
                    "-cipher",
                    "DEFAULT@SECLEVEL=0",
                ],
                &[("OPENSSL_CONF", "/dev/null")],
                Duration::from_secs(20),
            )
            .expect("openssl runs");
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let handshook = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
            (out.status.success() && handshook, text)
        })
    };
    let (ok12, text12) = s_client("-tls1_2").await.unwrap();
    assert!(
        ok12 && text12.contains("TLSv1.2"),
        "control: openssl s_client -tls1_2 should handshake:\n{text12}"
    );
    let (ok11, text11) = s_client("-tls1_1").await.unwrap();
    assert!(
        !text11.contains("no protocols available"),
        "inconclusive: this openssl cannot offer TLS 1.1:\n{text11}"
    );
    assert!(!ok11, "TLS 1.1 handshake succeeded:\n{text11}");
}

// ---------------------------------------------------------------------------
// Rotation, broken and expired Secrets
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_reaches_new_handshakes_and_open_connections_keep_working() {
    let ca = TestCa::new("tollgate test CA");
    let old = ca.leaf("leaf old", &["rot.test"]);
    let new = ca.leaf("leaf new", &["rot.test"]);
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.push(tls_ingress("rot", "rot.test", "svc", &["rot.test"], "rot"));
    let tg = Tollgate::builder()
        .docs("m.yaml", &docs)
        .docs(
            "secret.yaml",
            &[tls_secret(NS, "rot", &old.chain_pem, &old.key_pem)],
        )
        .start()
        .await;

    let mut open = HttpsConn::open(tg.https_addr(), Some("rot.test"))
        .await
        .unwrap();
    assert!(
        open.cert.is(&old),
        "before rotation: {}",
        open.cert.describe()
    );
    let r = open.get("rot.test", "/before").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());

    tg.write(
        "secret.yaml",
        &yaml_docs(&[tls_secret(NS, "rot", &new.chain_pem, &new.key_pem)]),
    );
    let written = Instant::now();
    let c = eventually_cert(tg.https_addr(), "rot.test", ROTATION_TIMEOUT, |c| {
        c.is(&new)
    })
    .await
    .unwrap();
    assert!(
        c.is(&new),
        "new handshakes still get {} {:?} after the Secret was rewritten",
        c.describe(),
        written.elapsed()
    );

    for i in 0..3 {
        let r = open
            .get("rot.test", &format!("/after/{i}"))
            .await
            .unwrap_or_else(|e| panic!("connection opened before the rotation, request {i}: {e}"));
        assert_eq!(
            r.status,
            200,
            "old connection, request {i}: {}",
            r.summary()
        );
    }
    let (r, c) = https(&tg, "rot.test", "/new").await;
    assert!(c.is(&new), "{}", c.describe());
    assert_eq!(r.status, 200, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_added_after_start_is_picked_up() {
    let ca = TestCa::new("tollgate test CA");
    let cert = ca.leaf("leaf late", &["late.test"]);
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.push(tls_ingress(
        "late",
        "late.test",
        "svc",
        &["late.test"],
        "late",
    ));
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let c = cert_for(&tg, Some("late.test")).await;
    assert!(
        c.is_generated_default(),
        "Secret missing: served {}, want the default certificate",
        c.describe()
    );
    tg.write(
        "secret.yaml",
        &yaml_docs(&[tls_secret(NS, "late", &cert.chain_pem, &cert.key_pem)]),
    );
    let c = eventually_cert(tg.https_addr(), "late.test", ROTATION_TIMEOUT, |c| {
        c.is(&cert)
    })
    .await
    .unwrap();
    assert!(c.is(&cert), "added Secret not served: {}", c.describe());
}

/// A Secret whose `tls.crt`/`tls.key` are not PEM at all.
fn garbage_secret(name: &str) -> Value {
    tls_secret(
        NS,
        name,
        "this is not a certificate\n",
        "nor is this a key\n",
    )
}

/// A Secret whose key does not belong to its certificate.
fn mismatched_secret(ca: &TestCa, name: &str, host: &str) -> Value {
    let cert = ca.leaf("leaf mismatched", &[host]);
    let other = rcgen::KeyPair::generate().unwrap();
    tls_secret(NS, name, &cert.chain_pem, &other.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_secret_never_good_gets_the_default_certificate() {
    let ca = TestCa::new("tollgate test CA");
    let ok = ca.leaf("leaf ok", &["ok.test"]);
    let echo = Echo::services(&["svc-g", "svc-m", "svc-ok"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("g", "g.test", "svc-g", &["g.test"], "garbage"),
        tls_ingress("m", "m.test", "svc-m", &["m.test"], "mismatched"),
        tls_ingress("ok", "ok.test", "svc-ok", &["ok.test"], "ok"),
        garbage_secret("garbage"),
        mismatched_secret(&ca, "mismatched", "m.test"),
        tls_secret(NS, "ok", &ok.chain_pem, &ok.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let mut f = Failures::default();
    for (host, svc, kind) in [
        ("g.test", "svc-g", "garbage PEM"),
        ("m.test", "svc-m", "mismatched key"),
    ] {
        match https_get(tg.https_addr(), Some(host), host, "/").await {
            Ok((r, c)) => {
                f.check(c.is_generated_default(), || {
                    format!("{kind} ({host}): served {}, want the default", c.describe())
                });
                f.check(r.service().as_deref() == Some(svc), || {
                    format!("{kind} ({host}): {} (want 200 from {svc})", r.summary())
                });
            }
            Err(e) => f.push(format!("{kind} ({host}): {e}")),
        }
    }
    let (r, c) = https(&tg, "ok.test", "/").await;
    f.check(c.is(&ok), || {
        format!("unaffected ok.test: {}", c.describe())
    });
    f.check(r.service().as_deref() == Some("svc-ok"), || {
        format!("unaffected ok.test: {}", r.summary())
    });
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_secret_keeps_the_last_good_certificate() {
    let ca = TestCa::new("tollgate test CA");
    let g1 = ca.leaf("leaf g1", &["g.test"]);
    let m1 = ca.leaf("leaf m1", &["m.test"]);
    let ok = ca.leaf("leaf ok", &["ok.test"]);
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    for host in ["g", "m", "ok"] {
        docs.push(tls_ingress(
            host,
            &format!("{host}.test"),
            "svc",
            &[&format!("{host}.test")],
            host,
        ));
    }
    let secret_file = |s: Value| yaml_docs(&[s]);
    let tg = Tollgate::builder()
        .docs("ingresses.yaml", &docs)
        .file(
            "secret-g.yaml",
            &secret_file(tls_secret(NS, "g", &g1.chain_pem, &g1.key_pem)),
        )
        .file(
            "secret-m.yaml",
            &secret_file(tls_secret(NS, "m", &m1.chain_pem, &m1.key_pem)),
        )
        .file(
            "secret-ok.yaml",
            &secret_file(tls_secret(NS, "ok", &ok.chain_pem, &ok.key_pem)),
        )
        .start()
        .await;
    for (sni, cert) in [("g.test", &g1), ("m.test", &m1), ("ok.test", &ok)] {
        let c = cert_for(&tg, Some(sni)).await;
        assert!(c.is(cert), "before breaking, SNI {sni}: {}", c.describe());
    }

    // Break both Secrets, then make a change that proves a reload after it.
    tg.write("secret-g.yaml", &secret_file(garbage_secret("g")));
    tg.write(
        "secret-m.yaml",
        &secret_file(mismatched_secret(&ca, "m", "m.test")),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    tg.write(
        "marker.yaml",
        &yaml_docs(&[tls_ingress("marker", "marker.test", "svc", &[], "")]),
    );
    let r = tg.eventually("marker.test", "/", |r| r.status == 200).await;
    assert_eq!(r.status, 200, "reload marker not applied: {}", r.summary());

    let mut f = Failures::default();
    for i in 0..5 {
        for (sni, cert, what) in [
            ("g.test", &g1, "last good (Secret now garbage)"),
            ("m.test", &m1, "last good (Secret now mismatched)"),
            ("ok.test", &ok, "unaffected"),
        ] {
            let c = cert_for(&tg, Some(sni)).await;
            f.check(c.is(cert), || {
                format!("round {i}, SNI {sni}: served {}, want {what}", c.describe())
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.assert_none();

    // Repairing the Secret applies the new certificate.
    let g2 = ca.leaf("leaf g2", &["g.test"]);
    tg.write(
        "secret-g.yaml",
        &secret_file(tls_secret(NS, "g", &g2.chain_pem, &g2.key_pem)),
    );
    let c = eventually_cert(tg.https_addr(), "g.test", RELOAD_TIMEOUT, |c| c.is(&g2))
        .await
        .unwrap();
    assert!(c.is(&g2), "repaired Secret not applied: {}", c.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_1_naming_a_broken_secret() {
    let ca = TestCa::new("tollgate test CA");
    let ok = ca.leaf("leaf ok", &["ok.test"]);
    let mut f = Failures::default();
    for (kind, secret) in [
        ("garbage PEM", garbage_secret("broken")),
        ("mismatched key", mismatched_secret(&ca, "broken", "b.test")),
    ] {
        let dir = TempDir::new("check-tls");
        let mut docs = vec![
            ingress_class("tollgate", false),
            tls_ingress("b", "b.test", "svc", &["b.test"], "broken"),
            tls_ingress("ok", "ok.test", "svc", &["ok.test"], "ok"),
            tls_secret(NS, "ok", &ok.chain_pem, &ok.key_pem),
            secret,
        ];
        docs.extend(backend(NS, "svc", &[9101]));
        dir.write("m.yaml", &yaml_docs(&docs));
        let (code, out, err) = check(dir.path(), &[]).await;
        let all = format!("{out}\n{err}");
        f.check(code == 1, || {
            format!("{kind}: check exited {code}, want 1\n{all}")
        });
        f.check(all.contains("tls/broken"), || {
            format!("{kind}: diagnostic should name the Secret tls/broken:\n{all}")
        });
    }
    f.assert_none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_still_served_with_a_warning() {
    let ca = TestCa::new("tollgate test CA");
    let expired = ca.leaf_with("leaf expired", &["exp.test"], |p| {
        p.not_before = rcgen::date_time_ymd(2019, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 1, 1);
    });
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("exp", "exp.test", "svc", &["exp.test"], "expired"),
        tls_secret(NS, "expired", &expired.chain_pem, &expired.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let (r, c) = https(&tg, "exp.test", "/").await;
    assert!(
        c.is(&expired),
        "expired certificate not served: {}",
        c.describe()
    );
    assert_eq!(r.status, 200, "{}", r.summary());

    let (code, out, err) = check(&tg.manifests_dir(), &[]).await;
    let all = format!("{out}\n{err}");
    assert_eq!(code, 0, "an expired certificate is a warning only\n{all}");
    assert!(
        all.contains("tls/expired"),
        "check should warn about the Secret tls/expired:\n{all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_expiry_metrics() {
    let ca = TestCa::new("tollgate test CA");
    let leaf = ca.leaf("leaf m", &["m.test"]);
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.extend([
        tls_ingress("m", "m.test", "svc", &["m.test"], "m-tls"),
        tls_secret(NS, "m-tls", &leaf.chain_pem, &leaf.key_pem),
    ]);
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;

    let (r, _) = https(&tg, "m.test", "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    // A client that offers only an application protocol we do not speak.
    let refused = TlsClient::alpn(&["spdy/1"])
        .connect(tg.https_addr(), Some("m.test"))
        .await;
    assert!(refused.is_err(), "ALPN mismatch must fail the handshake");

    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let metrics = tg.metrics().await;
        let handshakes = |result| {
            metric_sum(
                &metrics,
                "tollgate_tls_handshakes_total",
                &[("result", result)],
            )
            .unwrap_or(0.0)
        };
        let (ok, no_alpn) = (handshakes("ok"), handshakes("no_alpn"));
        let secret = format!("{NS}/m-tls");
        let expiry = metric_sum(
            &metrics,
            "tollgate_certificate_expiry_timestamp_seconds",
            &[("secret", &secret)],
        )
        .unwrap_or(0.0);
        if ok >= 1.0 && no_alpn >= 1.0 {
            assert!(
                expiry > 1.7e9,
                "expiry gauge should be the certificate's notAfter:\n{metrics}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "handshake metrics missing:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sessions_resume() {
    let echo = Echo::services(&["svc"]).await;
    let tg = Tollgate::builder()
        .docs("m.yaml", &base_docs(&echo))
        .start()
        .await;
    // One client configuration (one session store) for both connections.
    let connector = tokio_rustls::TlsConnector::from(TlsClient::default().config());
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(tg.https_addr())
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("resume.test").unwrap();
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        // TLS 1.3 tickets arrive after the handshake: read until the
        // server's first flight is processed (a request/response does it).
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(b"GET / HTTP/1.1\r\nHost: resume.test\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut buf)).await;
        kinds.push(tls.get_ref().1.handshake_kind());
    }
    assert_eq!(kinds[0], Some(rustls::HandshakeKind::Full), "{kinds:?}");
    assert_eq!(
        kinds[1],
        Some(rustls::HandshakeKind::Resumed),
        "second handshake should resume: {kinds:?}"
    );
}

/// Two requests in two TLS records that reach the server in one socket
/// write (pipelined): both are answered, in order, on the one connection
/// (the listener reads the plaintext of every record a read brought).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_in_separate_records_of_one_write_are_both_answered() {
    use std::io::Write;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = Echo::services(&["svc"]).await;
    let mut docs = base_docs(&echo);
    docs.push(tls_ingress("pipe", "pipe.test", "svc", &[], ""));
    let tg = Tollgate::builder().docs("m.yaml", &docs).start().await;
    let connector = tokio_rustls::TlsConnector::from(TlsClient::default().config());
    let tcp = tokio::net::TcpStream::connect(tg.https_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("pipe.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    // Each `writer()` write is sealed into its own record; the flush
    // sends both records with one socket write.
    let conn = tls.get_mut().1;
    conn.writer()
        .write_all(b"GET /first HTTP/1.1\r\nHost: pipe.test\r\n\r\n")
        .unwrap();
    conn.writer()
        .write_all(b"GET /second HTTP/1.1\r\nHost: pipe.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf))
        .await
        .expect("both responses in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    let first = text.find("/first").expect("first echoed");
    let second = text.find("/second").expect("second echoed");
    assert!(first < second, "{text}");
}
