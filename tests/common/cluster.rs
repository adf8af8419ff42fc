//! A fake API server ([`super::fakeapi::FakeApi`]) with a kubeconfig
//! pointing at it, for the Kubernetes-mode tests; each test file adds the
//! queries it needs in an `impl Cluster` of its own.

use std::path::PathBuf;

use super::fakeapi::FakeApi;
use super::{TempDir, Tollgate, TollgateBuilder};

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
