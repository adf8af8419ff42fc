//! Ported from ingress-nginx `test/e2e/annotations/serviceupstream.go`
//! (`DescribeAnnotation("service-upstream")`). The Go cases check that the
//! Service is reached (200) and, through `/dbg backends all`, whether
//! nginx balances to the Service's ClusterIP instead of its endpoints.
//! tollgate always balances over the endpoints itself (affinity, hashing
//! and retries need them): `service-upstream` is a no-op with a warning,
//! and the ConfigMap key is reported as unknown (docs/annotations.md).
//! The ports check the request is served, by an endpoint, while the
//! Service's ClusterIP is an address where nothing answers (TEST-NET-1).

use crate::common::*;
use crate::*;

const HOST: &str = "serviceupstream";

/// The echo Service with a ClusterIP nothing listens on, an Ingress with
/// `annotations`, and (when given) the ConfigMap with `data`; a GET is
/// answered by the echo endpoint.
async fn served_by_the_endpoint(annotations: &[(&str, &str)], data: Option<&[(&str, &str)]>) {
    let echo = Echo::services(&["echo"]).await;
    let mut docs = echo.backends(NS);
    for d in docs.iter_mut().filter(|d| d["kind"] == "Service") {
        d["spec"]["clusterIP"] = json!("192.0.2.1");
    }
    docs.push(single(HOST, "/", HOST, "echo", 8080, annotations));
    let mut args = Vec::new();
    let configmap = format!("{NS}/{CONFIG_MAP}");
    if let Some(data) = data {
        docs.push(config_map(data));
        args.extend(["--configmap", configmap.as_str()]);
    }
    let tg = start(&docs, &args).await;
    let r = tg.get(HOST, "/").await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.echo().service(), "echo");
}

/// Go: "when using the default value (false) and enabling in the
/// annotations" / "should use the Service Cluster IP and Port". Served
/// (by the endpoint: the difference); `tollgate check` lists the
/// annotation as a no-op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_using_the_default_value_false_and_enabling_in_the_annotations_should_use_the_service_cluster_ip_and_port(
) {
    let annotations = [("service-upstream", "true")];
    let mut docs = backend(NS, "echo", &[1]);
    docs.push(single(HOST, "/", HOST, "echo", 8080, &annotations));
    let (code, out) = check_docs(&docs).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("warning") && l.contains("service-upstream")),
        "a warning names the no-op annotation:\n{out}"
    );
    served_by_the_endpoint(&annotations, None).await;
}

/// Go: "when enabling in the configmap" / "should use the Service Cluster
/// IP and Port". Served, by the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_enabling_in_the_configmap_should_use_the_service_cluster_ip_and_port() {
    served_by_the_endpoint(&[], Some(&[("service-upstream", "true")])).await;
}

/// Go: "when enabling in the configmap and disabling in the annotations" /
/// "should not use the Service Cluster IP and Port". Served, by the
/// endpoint, as in ingress-nginx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_enabling_in_the_configmap_and_disabling_in_the_annotations_should_not_use_the_service_cluster_ip_and_port(
) {
    served_by_the_endpoint(
        &[("service-upstream", "false")],
        Some(&[("service-upstream", "true")]),
    )
    .await;
}
