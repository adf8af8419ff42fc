//! The rest of ingress-nginx's annotation end-to-end cases, ported: the
//! files of kubernetes/ingress-nginx `test/e2e/annotations/` that no other
//! target covers (affinity modes, no-op buffer and TLS-cipher settings,
//! `connection-proxy-header`, the access-log switches, `force-ssl-redirect`,
//! `limit-connections`, `upstream-hash-by`, `x-forwarded-prefix`, and the
//! refused `satisfy` and `stream-snippet`). As in `tests/nginx_e2e_more.rs`,
//! each test repeats one `ginkgo.It` case (the module names the Go file)
//! against the real `tollgate run` binary, with assertions on what a client
//! sees; where the Go case only inspects nginx.conf, the port asserts the
//! behaviour that configuration produces, and for a no-op or refused
//! annotation, what `tollgate check` reports (docs/annotations.md).

mod common;

#[path = "nginx_e2e_rest/affinitymode.rs"]
mod affinitymode;
#[path = "nginx_e2e_rest/clientbodybuffersize.rs"]
mod clientbodybuffersize;
#[path = "nginx_e2e_rest/connection.rs"]
mod connection;
#[path = "nginx_e2e_rest/customheaders.rs"]
mod customheaders;
#[path = "nginx_e2e_rest/disableaccesslog.rs"]
mod disableaccesslog;
#[path = "nginx_e2e_rest/forcesslredirect.rs"]
mod forcesslredirect;
#[path = "nginx_e2e_rest/http2pushpreload.rs"]
mod http2pushpreload;
#[path = "nginx_e2e_rest/limitconnections.rs"]
mod limitconnections;
#[path = "nginx_e2e_rest/log.rs"]
mod log;
#[path = "nginx_e2e_rest/preservetrailingslash.rs"]
mod preservetrailingslash;
#[path = "nginx_e2e_rest/satisfy.rs"]
mod satisfy;
#[path = "nginx_e2e_rest/serversnippet.rs"]
mod serversnippet;
#[path = "nginx_e2e_rest/snippet.rs"]
mod snippet;
#[path = "nginx_e2e_rest/sslciphers.rs"]
mod sslciphers;
#[path = "nginx_e2e_rest/streamsnippet.rs"]
mod streamsnippet;
#[path = "nginx_e2e_rest/upstreamhashby.rs"]
mod upstreamhashby;
#[path = "nginx_e2e_rest/xforwardedprefix.rs"]
mod xforwardedprefix;

use common::*;
use serde_json::Value;

pub const NS: &str = "default";
/// The echo Service (ingress-nginx's EchoService).
pub const ECHO: &str = "echo";
/// The ingress-nginx ConfigMap the tests that need one pass as
/// `--configmap` (ingress-nginx's `f.UpdateNginxConfigMapData`).
pub const CONFIGMAP: &str = "default/nginx";

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

/// A ConfigMap `default/name` with `data`.
pub fn config_map(name: &str, data: &[(&str, &str)]) -> Value {
    common::config_map_in(NS, name, data)
}

/// A running tollgate with echo Services and some objects.
pub struct Site {
    pub tg: Tollgate,
    pub echo: Echo,
}

impl Site {
    pub async fn start(docs: Vec<Value>) -> Site {
        Site::with(Echo::services(&[ECHO]).await, docs, &[]).await
    }

    /// With `echo`'s backends and these `tollgate run` arguments.
    pub async fn with(echo: Echo, docs: Vec<Value>, args: &[&str]) -> Site {
        let mut all = echo.backends(NS);
        all.extend(docs);
        let tg = Tollgate::builder()
            .file("manifests.yaml", &yaml_docs(&all))
            .args(args)
            .start()
            .await;
        Site { tg, echo }
    }

    /// A request with these headers (ingress-nginx's `HTTPTestClient()`).
    pub async fn get(&self, host: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.tg.request("GET", host, target, headers).await
    }
}

/// `tollgate check` over `docs` (plus an echo Service) with `extra`
/// arguments: (exit code, stdout + stderr).
pub async fn check_docs(docs: &[Value], extra: &[&str]) -> (i32, String) {
    let dir = TempDir::new("e2e-rest-check");
    let mut all = backend(NS, ECHO, &[1]);
    all.extend(docs.iter().cloned());
    dir.write("manifests.yaml", &yaml_docs(&all));
    let (code, out, err) = check(dir.path(), extra).await;
    (code, format!("{out}\n{err}"))
}

/// `tollgate check` accepts `docs` and reports `annotation` as a no-op
/// (docs/annotations.md: "accepted, no effect in tollgate").
pub async fn assert_no_op(docs: &[Value], annotation: &str) {
    let (code, out) = check_docs(docs, &[]).await;
    assert_eq!(code, 0, "accepted:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("accepted, no effect in tollgate") && l.contains(annotation)),
        "{annotation} is reported as a no-op:\n{out}"
    );
}

/// `tollgate check` rejects `docs`, naming `annotation`.
pub async fn assert_refused(docs: &[Value], annotation: &str) {
    let (code, out) = check_docs(docs, &[]).await;
    assert_eq!(code, 1, "the Ingress is rejected:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("rejected") && l.contains(annotation)),
        "a rejection names {annotation}:\n{out}"
    );
}
