//! ingress-nginx's own end-to-end expectations, ported: each test repeats
//! one `ginkgo.It` case of kubernetes/ingress-nginx `test/e2e/annotations/`
//! (the module names the Go file, the test the case) against the real
//! `tollgate run` binary in standalone mode, echo backends and real
//! sockets. Assertions are on what a client sees (status, headers, the
//! request the backend received), never on generated configuration: where
//! the Go case only inspects nginx.conf, the port asserts the behaviour
//! that configuration produces.

mod common;

#[path = "nginx_e2e/affinity.rs"]
mod affinity;
#[path = "nginx_e2e/alias.rs"]
mod alias;
#[path = "nginx_e2e/approot.rs"]
mod approot;
#[path = "nginx_e2e/auth.rs"]
mod auth;
#[path = "nginx_e2e/cors.rs"]
mod cors;
#[path = "nginx_e2e/default_backend.rs"]
mod default_backend;
#[path = "nginx_e2e/iplists.rs"]
mod iplists;
#[path = "nginx_e2e/proxy.rs"]
mod proxy;
#[path = "nginx_e2e/redirect.rs"]
mod redirect;
#[path = "nginx_e2e/rewrite.rs"]
mod rewrite;

use common::*;
use serde_json::{json, Value};

pub const NS: &str = "default";
/// The echo Service every Ingress points at (ingress-nginx's EchoService).
pub const ECHO: &str = "echo";

/// ingress-nginx's `framework.NewSingleIngress(name, path, host, ...)`: one
/// rule, one Prefix path to the echo Service.
pub fn single(name: &str, path: &str, host: &str, annotations: &[(&str, &str)]) -> Value {
    typed(name, path, "Prefix", host, annotations)
}

/// As [`single`] with a path type.
pub fn typed(
    name: &str,
    path: &str,
    path_type: &str,
    host: &str,
    annotations: &[(&str, &str)],
) -> Value {
    let rule = if host.is_empty() {
        json!({"http": {"paths": [path_entry(path, path_type)]}})
    } else {
        json!({"host": host, "http": {"paths": [path_entry(path, path_type)]}})
    };
    with_rules(name, annotations, vec![rule])
}

pub fn path_entry(path: &str, path_type: &str) -> Value {
    json!({
        "path": path, "pathType": path_type,
        "backend": {"service": {"name": ECHO, "port": {"number": 8080}}}
    })
}

/// An Ingress with these rules and `nginx.ingress.kubernetes.io/`
/// annotations (given without the prefix).
pub fn with_rules(name: &str, annotations: &[(&str, &str)], rules: Vec<Value>) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (format!("nginx.ingress.kubernetes.io/{k}"), json!(v)))
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {"ingressClassName": "tollgate", "rules": rules}
    })
}

/// A running tollgate with the echo backend and some Ingresses.
pub struct Site {
    pub tg: Tollgate,
    _echo: Echo,
}

impl Site {
    pub async fn start(ingresses: Vec<Value>) -> Site {
        Site::start_with(ingresses, Vec::new()).await
    }

    /// With further objects (Secrets, Services).
    pub async fn start_with(ingresses: Vec<Value>, extra: Vec<Value>) -> Site {
        Site::start_args(ingresses, extra, &[]).await
    }

    /// With further objects and command-line arguments.
    pub async fn start_args(ingresses: Vec<Value>, extra: Vec<Value>, args: &[&str]) -> Site {
        let echo = Echo::services(&[ECHO]).await;
        let mut docs = echo.backends(NS);
        docs.extend(extra);
        docs.extend(ingresses);
        let tg = Tollgate::builder()
            .file("manifests.yaml", &yaml_docs(&docs))
            .args(args)
            .start()
            .await;
        Site { tg, _echo: echo }
    }

    /// A request with these headers (ingress-nginx's `HTTPTestClient()`).
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.tg.request(method, host, target, headers).await
    }

    pub async fn get(&self, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", host, target, headers).await
    }
}
