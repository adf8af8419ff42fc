//! Ported from ingress-nginx `test/e2e/annotations/fastcgi.go`
//! (`DescribeAnnotation("backend-protocol - FastCGI")`). tollgate has no
//! FastCGI client: `backend-protocol: FCGI`, `fastcgi-index` and
//! `fastcgi-params-configmap` each reject the Ingress with a diagnostic
//! naming them (docs/annotations.md), where ingress-nginx writes
//! `fastcgi_pass`, `fastcgi_index` and `fastcgi_param` lines and serves.
//! The ports assert that refusal: `tollgate check` fails naming each
//! annotation, the host is not served (404), and the FastCGI server never
//! gets a connection (tollgate never speaks HTTP to it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::*;

/// Stands in for `fastcgi-helloserver`: counts the connections it gets.
async fn fastcgi_server() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((_conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, count, task)
}

/// An Ingress for `host` (`/hello` → `fastcgi-helloserver`) with
/// `annotations` and the `extra` objects: refused by `check` with a
/// diagnostic naming each of `named`, and not served.
async fn refused(host: &str, annotations: &[(&str, &str)], extra: Vec<Value>, named: &[&str]) {
    let (port, connections, task) = fastcgi_server().await;
    let mut docs = service_at("fastcgi-helloserver", port);
    docs.extend(extra);
    docs.push(single(
        host,
        "/hello",
        host,
        "fastcgi-helloserver",
        8080,
        annotations,
    ));
    let (code, out) = check_docs(&docs).await;
    assert_eq!(code, 1, "the Ingress is rejected:\n{out}");
    for name in named {
        assert!(
            out.lines()
                .any(|l| l.contains("rejected") && l.contains(name)),
            "a rejection names {name}:\n{out}"
        );
    }
    let tg = start(&docs, &[]).await;
    let r = tg.get(host, "/hello").await;
    assert_eq!(r.status, 404, "not served: {}", r.summary());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "FastCGI server reached"
    );
    task.abort();
}

/// Go: "should use fastcgi_pass in the configuration file".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_use_fastcgi_pass_in_the_configuration_file() {
    refused(
        "fastcgi",
        &[("backend-protocol", "FCGI")],
        Vec::new(),
        &["FCGI"],
    )
    .await;
}

/// Go: "should add fastcgi_index in the configuration file".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_add_fastcgi_index_in_the_configuration_file() {
    refused(
        "fastcgi-index",
        &[("backend-protocol", "FCGI"), ("fastcgi-index", "index.php")],
        Vec::new(),
        &["FCGI", "fastcgi-index"],
    )
    .await;
}

/// Go: "should add fastcgi_param in the configuration file".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_add_fastcgi_param_in_the_configuration_file() {
    let params = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "fastcgi-configmap", "namespace": NS},
        "data": {"SCRIPT_FILENAME": "$fastcgi_script_name", "REDIRECT_STATUS": "200"},
    });
    refused(
        "fastcgi-params-configmap",
        &[
            ("backend-protocol", "FCGI"),
            ("fastcgi-params-configmap", "fastcgi-configmap"),
        ],
        vec![params],
        &["FCGI", "fastcgi-params-configmap"],
    )
    .await;
}

/// Go: "should return OK for service with backend protocol FastCGI".
/// The difference: not served (404, the FastCGI server never reached)
/// instead of 200 "Hello world!".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_return_ok_for_service_with_backend_protocol_fastcgi() {
    refused(
        "fastcgi-helloserver",
        &[("backend-protocol", "FCGI")],
        Vec::new(),
        &["FCGI"],
    )
    .await;
}
