//! Ported from ingress-nginx `test/e2e/annotations/proxyssl.go`
//! (`DescribeAnnotation("proxy-ssl-*")`). The Go cases read the
//! `proxy_ssl_*` lines (`assertProxySSL`), then check that HTTP redirects
//! (308) and HTTPS with the mutual-auth client configuration serves (200).
//! Their echo backend is plain HTTP (no `backend-protocol`), so in nginx
//! the `proxy_ssl_*` lines have no effect on those requests: the ports
//! check the same two requests, and, for the case that does set
//! `backend-protocol: HTTPS` with `proxy-ssl-verify: on`, what that
//! does: the backend is verified against the Secret's `ca.crt`.
//!
//! Differences (docs/annotations.md): `proxy-ssl-ciphers`,
//! `-protocols`, `-verify-depth` and `-server-name` are no-ops (rustls:
//! TLS 1.2/1.3, whole chain; the SNI is the verified name); the Secret's
//! `tls.crt`/`tls.key` are not presented to the backend as a client
//! certificate.

use crate::common::*;
use crate::*;

const HOST: &str = "proxyssl.foo.com";

/// The Go cases' common part: `proxy-ssl-secret: default/<HOST>` plus
/// `extra`, TLS for HOST with the mutual-auth Secret; HTTP answers 308,
/// HTTPS (verifying tollgate's certificate with the Secret's CA) 200 from
/// the echo backend.
async fn proxy_ssl_case(extra: &[(&str, &str)]) {
    let echo = Echo::services(&["echo"]).await;
    let ca = TestCa::new("proxyssl CA");
    let secret = format!("{NS}/{HOST}");
    let mut annotations = vec![("proxy-ssl-secret", secret.as_str())];
    annotations.extend_from_slice(extra);
    let mut docs = echo.backends(NS);
    docs.push(single_tls(
        HOST,
        "/",
        HOST,
        "echo",
        8080,
        HOST,
        &annotations,
    ));
    docs.push(ma_secret(&ca, HOST, HOST));
    let tg = start(&docs, &[]).await;

    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 308, "HTTP: {}", r.summary());
    let client = TlsClient {
        trust: Some(ca.pem.clone()),
        ..TlsClient::default()
    };
    let mut conn = HttpsConn::open_with(&client, tg.https_addr(), Some(HOST))
        .await
        .expect("HTTPS, verifying the Secret's certificate");
    let r = conn.get(HOST, "/").await.expect("GET over HTTPS");
    assert_eq!(r.status, 200, "HTTPS: {}", r.summary());
    assert_eq!(r.echo().service(), "echo");
}

/// Go: "should set valid proxy-ssl-secret".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_valid_proxy_ssl_secret() {
    proxy_ssl_case(&[]).await;
}

/// Go: "should set valid proxy-ssl-secret, proxy-ssl-verify to on,
/// proxy-ssl-verify-depth to 2, and proxy-ssl-server-name to on". With a
/// plain-HTTP backend there is no backend TLS to verify (a warning says
/// so); served as in nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_valid_proxy_ssl_secret_proxy_ssl_verify_to_on_proxy_ssl_verify_depth_to_2_and_proxy_ssl_server_name_to_on(
) {
    proxy_ssl_case(&[
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-verify-depth", "2"),
        ("proxy-ssl-server-name", "on"),
    ])
    .await;
}

/// Go: "should set valid proxy-ssl-secret, proxy-ssl-ciphers to HIGH:!AES"
/// (a no-op in tollgate: served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_valid_proxy_ssl_secret_proxy_ssl_ciphers_to_high_aes() {
    proxy_ssl_case(&[("proxy-ssl-ciphers", "HIGH:!AES")]).await;
}

/// Go: "should set valid proxy-ssl-secret, proxy-ssl-protocols"
/// (`TLSv1.2 TLSv1.3`, what rustls offers anyway: served).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_set_valid_proxy_ssl_secret_proxy_ssl_protocols() {
    proxy_ssl_case(&[("proxy-ssl-protocols", "TLSv1.2 TLSv1.3")]).await;
}

/// Go: "proxy-ssl-location-only flag should change the nginx config
/// server part". The Go case flips the ConfigMap key
/// `proxy-ssl-location-only` and reads where the `proxy_ssl_*` lines
/// are; tollgate's backend TLS is per backend (per location) either way.
/// The port checks the Ingress's behaviour under both values:
/// `backend-protocol: HTTPS`, `proxy-ssl-verify: on` with Secret
/// `secretone` verifies the backend against its `ca.crt`, for the name
/// `<service>.<namespace>.svc`, sent as SNI (200); a backend whose
/// certificate another CA issued is never spoken to (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_ssl_location_only_flag_should_change_the_nginx_config_server_part() {
    const HOST: &str = "proxyssl.com";
    let ca = TestCa::new("secretone CA");
    let name = format!("echodeployment.{NS}.svc");
    let good = TlsBackend::start(&ca.leaf("echodeployment", &[&name]), false).await;
    let rogue_ca = TestCa::new("another CA");
    let rogue = TlsBackend::start(&rogue_ca.leaf("rogue", &[&name]), false).await;

    let annotations = [
        ("proxy-ssl-secret", "default/secretone"),
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-server-name", "on"),
    ];
    let docs = |location_only: &str| {
        let mut docs = service_at("echodeployment", good.port);
        docs.extend(service_at("rogue", rogue.port));
        docs.push(single_tls(
            HOST,
            "/bar",
            HOST,
            "echodeployment",
            8080,
            "secretone",
            &annotations,
        ));
        docs.push(single_tls(
            "rogue",
            "/rogue",
            HOST,
            "rogue",
            8080,
            "secretone",
            &annotations,
        ));
        docs.push(ma_secret(&ca, HOST, "secretone"));
        docs.push(config_map(&[("proxy-ssl-location-only", location_only)]));
        yaml_docs(&docs)
    };
    let tg = Tollgate::builder()
        .file("manifests.yaml", &docs("true"))
        .args(&["--configmap", &format!("{NS}/{CONFIG_MAP}")])
        .start()
        .await;

    for round in ["true", "false"] {
        if round == "false" {
            tg.write("manifests.yaml", &docs("false"));
            // Same behaviour after the reload: wait for it to apply.
            tokio::time::sleep(RELOAD_TIMEOUT).await;
        }
        let (r, _) = https_get(tg.https_addr(), Some(HOST), HOST, "/bar")
            .await
            .expect("HTTPS GET /bar");
        assert_eq!(r.status, 200, "location-only {round}: {}", r.summary());
        assert_eq!(json_of(&r)["path"], "/bar");
        let snis = good.snis();
        assert!(
            !snis.is_empty() && snis.iter().all(|s| s.as_deref() == Some(name.as_str())),
            "SNI sent to the verified backend: {snis:?}"
        );
        let (r, _) = https_get(tg.https_addr(), Some(HOST), HOST, "/rogue")
            .await
            .expect("HTTPS GET /rogue");
        assert_eq!(
            r.status,
            502,
            "a backend the CA did not issue: {}",
            r.summary()
        );
    }
}
