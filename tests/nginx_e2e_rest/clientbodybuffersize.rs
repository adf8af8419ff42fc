//! Ported from ingress-nginx `test/e2e/annotations/clientbodybuffersize.go`.
//! `client-body-buffer-size` is a no-op in tollgate (bodies stream; nginx's
//! buffers have no counterpart): where the Go cases read
//! `client_body_buffer_size` in nginx.conf, each port asserts the request
//! is served (a body larger than the buffer too) and `tollgate check`
//! reports the no-op. An invalid size (`1b`, which ingress-nginx drops) is
//! the same no-op.

use http_body_util::Full;

use crate::common::*;
use crate::{assert_no_op, single, Site};

const HOST: &str = "client-body-buffer-size.com";

async fn served_with(size: &str) {
    let docs = vec![single(
        HOST,
        "/",
        HOST,
        &[("client-body-buffer-size", size)],
    )];
    assert_no_op(&docs, "client-body-buffer-size").await;
    let site = Site::start(docs).await;
    let r = site.get(HOST, "/", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let body = vec![b'x'; 64 * 1024];
    let r = send(
        site.tg.http_addr(),
        req("POST", HOST, "/").body(Full::from(body)).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().body_bytes(), 64 * 1024);
}

/// Go: "should set client_body_buffer_size to 1000".
#[tokio::test]
async fn should_set_client_body_buffer_size_to_1000() {
    served_with("1000").await;
}

/// Go: "should set client_body_buffer_size to 1K".
#[tokio::test]
async fn should_set_client_body_buffer_size_to_1k_upper() {
    served_with("1K").await;
}

/// Go: "should set client_body_buffer_size to 1k".
#[tokio::test]
async fn should_set_client_body_buffer_size_to_1k() {
    served_with("1k").await;
}

/// Go: "should set client_body_buffer_size to 1m".
#[tokio::test]
async fn should_set_client_body_buffer_size_to_1m() {
    served_with("1m").await;
}

/// Go: "should set client_body_buffer_size to 1M".
#[tokio::test]
async fn should_set_client_body_buffer_size_to_1m_upper() {
    served_with("1M").await;
}

/// Go: "should not set client_body_buffer_size to invalid 1b".
#[tokio::test]
async fn should_not_set_client_body_buffer_size_to_invalid_1b() {
    served_with("1b").await;
}
