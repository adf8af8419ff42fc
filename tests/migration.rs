//! Moving off ingress-nginx (issue 13, items 2 to 6), end to end through a
//! real `tollgate` binary and real sockets: typed header rules from
//! ingress-nginx's `custom-headers`, `proxy-set-headers`, `add-headers`
//! and the snippet subset (`headers`), ACME HTTP-01 on hosts that force
//! HTTPS (`acme`), the ingress-nginx ConfigMap (`configmap`), `tollgate
//! check` for migration (`check`) and TLS passthrough (`passthrough`).
//! Cases ported from ingress-nginx's e2e suite name their source file.

mod common;

#[path = "migration/acme.rs"]
mod acme;
#[path = "migration/check.rs"]
mod check;
#[path = "migration/configmap.rs"]
mod configmap;
#[path = "migration/headers.rs"]
mod headers;

use serde_json::Value;

/// The namespace of every object here.
pub const NS: &str = "default";

/// An Ingress `name` for `host` → Prefix `/` → `svc`:8080; annotation keys
/// without a `/` are ingress-nginx's.
pub fn ingress(name: &str, host: &str, svc: &str, annotations: &[(&str, &str)]) -> Value {
    common::annotated_ingress(NS, name, host, ("/", "Prefix"), svc, annotations)
}

/// A ConfigMap in [`NS`].
pub fn config_map(name: &str, data: &[(&str, &str)]) -> Value {
    common::config_map_in(NS, name, data)
}

/// A request to the proxy's HTTP port with extra headers.
pub async fn call(
    t: &common::Tollgate,
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> common::Resp {
    let mut r = common::req(method, host, target);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let body = http_body_util::Full::<bytes::Bytes>::default();
    common::send(t.http_addr(), r.body(body).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {host}{target}: {e}"))
}
