//! A fake API server ([`super::fakeapi::FakeApi`]) with a kubeconfig
//! pointing at it, for the Kubernetes-mode tests; each test file adds the
//! queries it needs in an `impl Cluster` of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::fakeapi::FakeApi;
use super::{metric_sum, TempDir, Tollgate, TollgateBuilder};

/// Upper bound for a change in the fake to show in routing, status or
/// Events (about 100 ms expected).
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A fake API server and a kubeconfig pointing at it.
pub struct Cluster {
    pub api: FakeApi,
    pub kubeconfig: PathBuf,
    _dir: TempDir,
}

impl Cluster {
    pub fn new() -> Cluster {
        let api = FakeApi::start();
        let dir = TempDir::new("kube");
        let kubeconfig = api.write_kubeconfig(dir.path());
        Cluster {
            api,
            kubeconfig,
            _dir: dir,
        }
    }

    /// `tollgate run` in Kubernetes mode against this cluster.
    pub fn tollgate(&self) -> TollgateBuilder {
        Tollgate::builder().kubeconfig(&self.kubeconfig)
    }
}

/// Waits until `host``path` answers `status` (and, when given, from echo
/// service `service`); panics with the last response otherwise.
pub async fn expect_route(
    tg: &Tollgate,
    host: &str,
    path: &str,
    status: u16,
    service: Option<&str>,
) {
    let r = tg
        .eventually_within(host, path, CHANGE_TIMEOUT, |r| {
            r.status == status && (service.is_none() || r.service().as_deref() == service)
        })
        .await;
    assert!(
        r.status == status && (service.is_none() || r.service().as_deref() == service),
        "http://{host}{path}: {} (want {status} from {service:?})\n{}",
        r.summary(),
        tg.proc_.logs()
    );
}

/// The value of a metric (summed over matching label sets; 0 if absent).
pub async fn metric(tg: &Tollgate, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sum(&tg.metrics().await, name, labels).unwrap_or(0.0)
}
