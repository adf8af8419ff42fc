//! More of ingress-nginx's own end-to-end expectations, ported: the
//! annotations tollgate once refused for lack of the feature
//! (`from-to-www-redirect`, `relative-redirects`, `proxy-redirect-*`,
//! `proxy-cookie-*`, `disable-proxy-intercept-errors`, `limit-rate`,
//! `affinity-canary-behavior`, `mirror-*`). As in `tests/nginx_e2e.rs`, each test
//! repeats one `ginkgo.It` case of kubernetes/ingress-nginx
//! `test/e2e/annotations/` (the module names the Go file) against the real
//! `tollgate run` binary, with assertions on what a client sees; where the
//! Go case only inspects nginx.conf, the port asserts the behaviour that
//! configuration produces.

mod common;

#[path = "nginx_e2e_more/canary_affinity.rs"]
mod canary_affinity;
#[path = "nginx_e2e_more/disableproxyintercepterrors.rs"]
mod disableproxyintercepterrors;
#[path = "nginx_e2e_more/fromtowwwredirect.rs"]
mod fromtowwwredirect;
#[path = "nginx_e2e_more/limitrate.rs"]
mod limitrate;
#[path = "nginx_e2e_more/mirror.rs"]
mod mirror;
#[path = "nginx_e2e_more/proxy.rs"]
mod proxy;
#[path = "nginx_e2e_more/relativeredirects.rs"]
mod relativeredirects;

use common::*;
use serde_json::Value;

pub const NS: &str = "default";
/// The echo Service (ingress-nginx's EchoService).
pub const ECHO: &str = "echo";

/// ingress-nginx's `framework.NewSingleIngress(name, path, host, ...)`: one
/// rule, one Prefix path to `service` (port 8080), with
/// `nginx.ingress.kubernetes.io/` annotations given without the prefix.
pub fn single_to(
    name: &str,
    path: &str,
    host: &str,
    service: &str,
    annotations: &[(&str, &str)],
) -> Value {
    annotated_ingress(NS, name, host, (path, "Prefix"), service, annotations)
}

/// [`single_to`] the echo Service.
pub fn single(name: &str, path: &str, host: &str, annotations: &[(&str, &str)]) -> Value {
    single_to(name, path, host, ECHO, annotations)
}

/// A running tollgate with echo Services and some objects.
pub struct Site {
    pub tg: Tollgate,
    _echo: Echo,
}

impl Site {
    pub async fn start(docs: Vec<Value>) -> Site {
        Site::with_services(&[ECHO], docs).await
    }

    /// With echo listeners for each of `services`.
    pub async fn with_services(services: &[&str], docs: Vec<Value>) -> Site {
        let echo = Echo::services(services).await;
        let mut all = echo.backends(NS);
        all.extend(docs);
        let tg = Tollgate::builder()
            .file("manifests.yaml", &yaml_docs(&all))
            .start()
            .await;
        Site { tg, _echo: echo }
    }

    /// A request with these headers (ingress-nginx's `HTTPTestClient()`).
    pub async fn get(&self, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.tg.request("GET", host, target, headers).await
    }
}

/// The value of cookie `name` in the response's `Set-Cookie` headers.
pub fn set_cookie_value(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}
