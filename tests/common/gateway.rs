//! Gateway API objects for the end-to-end tests: our GatewayClass,
//! Gateways, HTTPRoutes, ReferenceGrants and Namespaces, built from YAML
//! text as the upstream conformance manifests write them.

use std::time::Duration;

use serde_json::{json, Value};

use super::{yaml, Echo};

/// The namespace the upstream conformance suite puts its infrastructure in.
pub const INFRA: &str = "gateway-conformance-infra";
pub const APP_BACKEND: &str = "gateway-conformance-app-backend";
pub const WEB_BACKEND: &str = "gateway-conformance-web-backend";

/// GatewayClass `tollgate` with our controller name.
pub fn gateway_class() -> Value {
    yaml(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: tollgate}
spec: {controllerName: tollgate.dev/gateway-controller}",
    )
}

/// A Gateway of class `tollgate` with `listeners` (YAML flow or block text).
pub fn gateway(ns: &str, name: &str, listeners: &str) -> Value {
    let mut v = yaml(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {ns}}}
spec:
  gatewayClassName: tollgate
  listeners: {listeners}"
    ));
    v["metadata"]["namespace"] = json!(ns);
    v
}

/// An HTTPRoute with `spec` as YAML text.
pub fn http_route(ns: &str, name: &str, spec: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml(spec),
    })
}

/// A Namespace with labels.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    })
}

/// A ReferenceGrant in `ns` letting HTTPRoutes of `from_ns` refer to the
/// Service `to_name` (every Service when `None`).
pub fn service_grant(ns: &str, name: &str, from_ns: &str, to_name: Option<&str>) -> Value {
    let mut to = json!({"group": "", "kind": "Service"});
    if let Some(n) = to_name {
        to["name"] = json!(n);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": from_ns}],
            "to": [to],
        },
    })
}

/// Our class, Gateway `same-namespace` in [`INFRA`] (one HTTP listener on
/// port 80), the echo backends' Services there, and `extra`.
pub fn infra(echo: &Echo, extra: Vec<Value>) -> Vec<Value> {
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "same-namespace",
            "[{name: http, port: 80, protocol: HTTP}]",
        ),
    ];
    docs.extend(echo.backends(INFRA));
    docs.extend(extra);
    docs
}

/// A flaky backend like upstream's echo-basic `/retry/` handler: a request
/// carrying `uuid` and `succeedAfter=N` fails its first N attempts (per
/// uuid) and then answers 200 with echo-style JSON naming `service`. A
/// failing attempt waits `delayRetry` (milliseconds, `300ms` form) and then
/// answers `responseCode`, or, without one, resets the connection (TCP
/// RST). One request per connection. The attempts per uuid are counted in
/// [`RetrySim::attempts`].
pub struct RetrySim {
    pub port: u16,
    attempts: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RetrySim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RetrySim {
    pub async fn start(service: &'static str) -> RetrySim {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let attempts = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
            String,
            u32,
        >::new()));
        let counts = attempts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let counts = counts.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let target = text.split(' ').nth(1).unwrap_or("/").to_string();
                    let query = |key: &str| {
                        target.split_once('?').and_then(|(_, q)| {
                            q.split('&').find_map(|kv| {
                                kv.split_once('=')
                                    .filter(|(k, _)| *k == key)
                                    .map(|(_, v)| v.to_string())
                            })
                        })
                    };
                    let uuid = query("uuid").unwrap_or_default();
                    let succeed_after: u32 = query("succeedAfter")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let failing = {
                        let mut map = counts.lock().unwrap();
                        let n = map.entry(uuid).or_insert(0);
                        *n += 1;
                        *n <= succeed_after
                    };
                    let (status, body) = if failing {
                        if let Some(ms) = query("delayRetry")
                            .and_then(|d| d.trim_end_matches("ms").parse::<u64>().ok())
                        {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        match query("responseCode").and_then(|c| c.parse::<u16>().ok()) {
                            Some(code) => (code, String::new()),
                            None => {
                                let _ = socket2::SockRef::from(&stream)
                                    .set_linger(Some(Duration::ZERO));
                                drop(stream);
                                return;
                            }
                        }
                    } else {
                        (
                            200,
                            json!({"service": service, "path": target, "namespace": INFRA})
                                .to_string(),
                        )
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        RetrySim {
            port,
            attempts,
            task,
        }
    }

    /// How many attempts reached the backend for `uuid`.
    pub fn attempts(&self, uuid: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(uuid)
            .copied()
            .unwrap_or(0)
    }
}
