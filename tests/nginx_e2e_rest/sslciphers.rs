//! Ported from ingress-nginx `test/e2e/annotations/sslciphers.go`.
//! `ssl-ciphers` and `ssl-prefer-server-ciphers` are no-ops in tollgate
//! (rustls offers only TLS 1.2/1.3 with modern AEAD suites): where the Go
//! cases read `ssl_ciphers` in nginx.conf, each port asserts the request is
//! served over HTTPS (the host has no `spec.tls`: the default certificate,
//! as in the Go case) and `check` reports both no-ops.

use crate::common::*;
use crate::{assert_no_op, single, Site};

const HOST: &str = "ciphers.foo.com";

async fn served_over_https(ciphers: &str, prefer: &str) {
    let docs = vec![single(
        HOST,
        "/something",
        HOST,
        &[
            ("ssl-ciphers", ciphers),
            ("ssl-prefer-server-ciphers", prefer),
        ],
    )];
    assert_no_op(&docs, "ssl-ciphers").await;
    assert_no_op(&docs, "ssl-prefer-server-ciphers").await;
    let site = Site::start(docs).await;
    let (r, _) = https_get(site.tg.https_addr(), Some(HOST), HOST, "/something")
        .await
        .expect("HTTPS");
    assert_eq!(r.status, 200, "{}", r.summary());
}

/// Go: "should change ssl ciphers".
#[tokio::test]
async fn should_change_ssl_ciphers() {
    served_over_https(
        "ALL:!aNULL:!EXPORT56:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP",
        "false",
    )
    .await;
}

/// Go: "should keep ssl ciphers".
#[tokio::test]
async fn should_keep_ssl_ciphers() {
    served_over_https(
        "ALL:!aNULL:!EXPORT56:RC4+RSA@STRENGTH:+HIGH@SECLEVEL=0:+MEDIUM:+LOW:+SSLv2:+EXP",
        "true",
    )
    .await;
}
