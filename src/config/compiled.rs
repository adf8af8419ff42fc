//! What one compile produces ([`Compiled`]) and what it hands to the next
//! ([`LastGood`]): the table, certificates, upstreams, diagnostics, and the
//! status of every TrafficPolicy.
//!
//! Invariants:
//! - Plain data: built by the compile steps, read by the publisher; no
//!   step reaches back here for anything but these types.
//! - [`LastGood`] only ever holds versions that compiled without
//!   rejection, so feeding it back never replaces good configuration with
//!   bad.
//! - [`LastGood`]'s per-Ingress and per-upstream maps are persistent
//!   (`imbl`): an incremental compile hands on a copy of them with every
//!   patch, which then costs O(1), not O(Ingresses).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::snapshot::CompactIngress;

use super::certificate::Certificate;
use super::diagnostic::Diagnostic;
use super::snapshot::ObjectKey;
use crate::auth::htpasswd::Htpasswd;
use crate::crd::{TargetKind, TrafficPolicy};
use crate::table::tls::TlsTable;
use crate::table::upstream::{EndpointAddr, UpstreamKey, UpstreamSpec};
use crate::table::RoutingTable;

/// Control-plane maps: foldhash (randomly seeded), as the data plane's
/// tables; SipHash was a tenth of a 10,000-Ingress recompile.
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A persistent hash map (`imbl`'s HAMT) with the same hasher: its clone
/// shares the whole map.
pub type SharedHashMap<K, V> =
    imbl::GenericHashMap<K, V, foldhash::fast::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// What kept working, fed back into the next compile so that bad input
/// never replaces good configuration.
#[derive(Debug, Default, Clone)]
pub struct LastGood {
    /// The last version of each Ingress that compiled without rejection.
    pub ingresses: super::snapshot::Map<ObjectKey, Arc<CompactIngress>>,
    /// The last certificate each TLS Secret yielded.
    pub certificates: BTreeMap<ObjectKey, Arc<Certificate>>,
    /// Endpoint resolutions, reused while the Service and EndpointSlice
    /// objects they were computed from are the same objects (`Arc`
    /// identity): a recompile then skips re-parsing unchanged endpoints.
    pub endpoints: SharedHashMap<UpstreamKey, Arc<Resolved>>,
    /// The last valid version of each TrafficPolicy: an edit that makes a
    /// policy invalid keeps this one applying (an allow list never opens).
    pub policies: BTreeMap<ObjectKey, Arc<TrafficPolicy>>,
    /// The last users each basic-auth Secret yielded (by Secret and
    /// whether it is an `auth-map`): a broken edit keeps them.
    pub auth_users: BTreeMap<(ObjectKey, bool), Arc<Htpasswd>>,
    /// The last CA verifier each `auth-tls-secret` Secret yielded: a
    /// broken edit keeps it (client certificates keep being checked).
    pub client_cas: BTreeMap<ObjectKey, crate::table::client_cert::CaVerifier>,
    /// The ConfigMap's last `block-user-agents` without a bad pattern.
    pub block_agents: Option<crate::table::globals::AgentBlock>,
}

impl LastGood {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Everything one compile produces.
#[derive(Debug, Default)]
pub struct Compiled {
    pub table: RoutingTable,
    /// Certificates by TLS host.
    pub tls: TlsTable,
    pub upstreams: Vec<UpstreamSpec>,
    pub diagnostics: Vec<Diagnostic>,
    /// Feed back into the next compile.
    pub last_good: LastGood,
    /// Ingresses served (ours and accepted, or served from last good).
    pub ingresses: usize,
    /// The Ingresses served (as written or from their last good version),
    /// sorted: the ones whose status gets our addresses.
    pub served: Vec<ObjectKey>,
    /// The HTTPRoutes in the table and the Gateways of ours: the Gateway
    /// API objects a TrafficPolicy can apply to.
    pub gateway_targets: Vec<Target>,
    /// The `Accepted` condition of every TrafficPolicy.
    pub policy_status: BTreeMap<ObjectKey, PolicyStatus>,
    /// Every Gateway API condition (GatewayClasses, Gateways, listeners,
    /// route parents): what kube mode writes and `tollgate check` prints.
    pub gateway_status: super::gateway::status::GatewayApiStatus,
}

impl Compiled {
    pub fn rejected(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_rejection)
    }

    /// Everything this compile produced as one canonical text: the table
    /// by [`RoutingTable::canonical`] (upstreams named by their keys),
    /// certificates by their DER bytes, the upstreams routes reach, and
    /// the rest in key order. Two compiles that serve alike give the same
    /// text, whatever their numbering of routes and upstreams and whatever
    /// unreachable entries a patch left behind. Off the request path;
    /// tests compare an incremental compile with a full one through it.
    pub fn canonical(&self) -> String {
        use std::cell::RefCell;
        use std::collections::BTreeSet;
        use std::fmt::Write;
        let reached: RefCell<BTreeSet<u32>> = RefCell::default();
        let name = |id: u32| {
            reached.borrow_mut().insert(id);
            self.upstreams
                .get(id as usize)
                .map_or_else(|| format!("missing upstream {id}"), |u| u.key.to_string())
        };
        let mut out = self.table.canonical(&name);
        let mut tls: Vec<(String, Vec<u8>)> = self
            .tls
            .hosts()
            .map(|(h, c)| (h, c.cert.first().map(|d| d.to_vec()).unwrap_or_default()))
            .collect();
        tls.sort();
        let _ = writeln!(out, "tls {tls:?}");
        for (host, id) in self.tls.passthrough_hosts() {
            let _ = writeln!(out, "passthrough {host} {}", name(id));
        }
        let _ = writeln!(out, "globals {:?}", self.table.globals());
        let _ = writeln!(out, "last good agents {:?}", self.last_good.block_agents);
        let mut upstreams: Vec<String> = reached
            .borrow()
            .iter()
            .filter_map(|&id| self.upstreams.get(id as usize))
            .map(|u| format!("{} {:?} {:?} {:?}", u.key, u.label, u.endpoints, u.trust))
            .collect();
        upstreams.sort();
        for u in &upstreams {
            let _ = writeln!(out, "upstream {u}");
        }
        for d in &self.diagnostics {
            let _ = writeln!(out, "diagnostic {d:?}");
        }
        let lg = &self.last_good;
        for (k, v) in &lg.ingresses {
            let _ = writeln!(out, "last good ingress {k} {v:?}");
        }
        for (k, v) in &lg.certificates {
            let der = v.key.cert.first().map(|d| d.to_vec()).unwrap_or_default();
            let _ = writeln!(
                out,
                "last good cert {k} {:?} {} {der:?}",
                v.names, v.not_after
            );
        }
        let reached_keys: BTreeSet<&UpstreamKey> = reached
            .borrow()
            .iter()
            .filter_map(|&id| self.upstreams.get(id as usize))
            .map(|u| &u.key)
            .collect();
        let mut endpoints: Vec<_> = lg
            .endpoints
            .iter()
            .filter(|(k, _)| reached_keys.contains(k))
            .collect();
        endpoints.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in endpoints {
            let _ = writeln!(out, "last good endpoints {k} {:?}", v.endpoints);
        }
        let _ = writeln!(out, "last good policies {:?}", lg.policies);
        let users: Vec<_> = lg.auth_users.keys().collect();
        let _ = writeln!(out, "last good users {users:?}");
        let _ = writeln!(
            out,
            "ingresses {} served {:?} targets {:?}\npolicy status {:?}\ngateway status {:?}",
            self.ingresses,
            self.served,
            self.gateway_targets,
            self.policy_status,
            self.gateway_status
        );
        out
    }
}

/// An object a TrafficPolicy can target: its kind and `namespace/name`.
pub type Target = (TargetKind, ObjectKey);

/// What a policy's `Accepted` condition should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStatus {
    pub accepted: bool,
    /// [`ACCEPTED`](super::traffic_policy::ACCEPTED),
    /// [`INVALID`](super::traffic_policy::INVALID),
    /// [`TARGET_NOT_FOUND`](super::traffic_policy::TARGET_NOT_FOUND) or
    /// [`CONFLICTED`](super::traffic_policy::CONFLICTED).
    pub reason: &'static str,
    pub message: String,
}

/// One memoized endpoint resolution and the objects it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub(super) service: Arc<super::snapshot::CompactService>,
    pub(super) slices: Vec<Arc<super::snapshot::CompactSlice>>,
    pub(super) endpoints: Vec<EndpointAddr>,
}
