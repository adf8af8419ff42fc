//! [`Builder`]: the state of one compile, which every compile step
//! extends with its own `impl Builder` block, and the one way a step
//! reports a problem (`warn`, `reject`, `report`).
//!
//! Invariants:
//! - One builder per compile; what it resolved (each Service port, Secret
//!   and CA) is resolved once per compile and reused.
//! - Steps never format a diagnostic: they hand a problem to `report`,
//!   which turns it into a [`Diagnostic`](super::diagnostic::Diagnostic)
//!   in one place.

use std::sync::Arc;

use super::certificate::Certificate;
use super::compiled::{Compiled, HashMap, LastGood, Target};
use super::diagnostic::Severity;
use super::memo::Memo;
use super::options::CompileOptions;
use super::problem::{Problem, Subject};
use super::snapshot::{ObjectKey, Snapshot};
use crate::crd::TrafficPolicy;
use crate::table::tls::CertId;
use crate::table::upstream::{TrustAnchors, UpstreamKey};
use crate::table::{PathType, RouteId, UpstreamId};

/// The state of one compile: what is built so far, and what was already
/// resolved (each Service port, Secret and CA once per compile).
pub(super) struct Builder<'a> {
    pub(super) snapshot: &'a Snapshot,
    pub(super) opts: &'a CompileOptions,
    pub(super) last_good: &'a LastGood,
    pub(super) out: &'a mut Compiled,
    pub(super) upstreams: HashMap<UpstreamKey, UpstreamId>,
    /// TLS Secrets already resolved in this compile (`None`: unusable).
    pub(super) certs: HashMap<ObjectKey, Option<(CertId, Arc<Certificate>)>>,
    /// CA bundles already resolved in this compile.
    pub(super) roots: HashMap<ObjectKey, TrustAnchors>,
    /// Routes by (host, path, pathType), for attaching canaries.
    pub(super) paths: HashMap<(String, String, PathType), RouteId>,
    /// The TrafficPolicy applying to each target (Ingress, HTTPRoute,
    /// Gateway): (policy, its spec).
    pub(super) policies: HashMap<Target, (ObjectKey, Arc<TrafficPolicy>)>,
    /// An HTTPS listener without a hostname already gave the default
    /// certificate (the oldest one does).
    pub(super) gateway_default_cert: bool,
    /// `server-alias` (alias, host, Ingress), added once every Ingress has
    /// its paths (an alias serves all paths of its host).
    pub(super) aliases: Vec<(String, String, ObjectKey)>,
    /// `from-to-www-redirect` (twin host, host, one route of the host),
    /// added after the aliases when the twin has no Ingress of its own.
    pub(super) www_twins: Vec<(String, String, RouteId)>,
    /// The ingress-nginx ConfigMap's settings (`--configmap`).
    pub(super) nginx: super::nginx_config::NginxConfig,
    /// What earlier compiles computed per Ingress (empty for a full
    /// compile): read and filled by the steps.
    pub(super) memo: &'a mut Memo,
}

impl<'a> Builder<'a> {
    /// An empty build of `snapshot` into `out`.
    pub(super) fn new(
        snapshot: &'a Snapshot,
        opts: &'a CompileOptions,
        last_good: &'a LastGood,
        out: &'a mut Compiled,
        memo: &'a mut Memo,
    ) -> Self {
        Self {
            snapshot,
            opts,
            last_good,
            out,
            upstreams: HashMap::default(),
            certs: HashMap::default(),
            roots: HashMap::default(),
            paths: HashMap::default(),
            policies: HashMap::default(),
            gateway_default_cert: false,
            aliases: Vec::new(),
            www_twins: Vec::new(),
            nginx: Default::default(),
            memo,
        }
    }

    /// Reports a problem of an Ingress as a warning.
    pub(super) fn warn(&mut self, key: &ObjectKey, origin: &Option<Arc<str>>, problem: Problem) {
        self.report(Severity::Warning, Subject::ingress(key, origin), problem);
    }

    /// Reports a problem of an Ingress as a rejection.
    pub(super) fn reject(&mut self, key: &ObjectKey, origin: &Option<Arc<str>>, problem: Problem) {
        self.report(Severity::Rejected, Subject::ingress(key, origin), problem);
    }

    pub(super) fn report(&mut self, severity: Severity, subject: Subject<'_>, problem: Problem) {
        self.out
            .diagnostics
            .push(subject.diagnostic(severity, problem));
    }
}
