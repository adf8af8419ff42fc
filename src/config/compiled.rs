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

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

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

/// What kept working, fed back into the next compile so that bad input
/// never replaces good configuration.
#[derive(Debug, Default, Clone)]
pub struct LastGood {
    /// The last version of each Ingress that compiled without rejection.
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    /// The last certificate each TLS Secret yielded.
    pub certificates: BTreeMap<ObjectKey, Arc<Certificate>>,
    /// Endpoint resolutions, reused while the Service and EndpointSlice
    /// objects they were computed from are the same objects (`Arc`
    /// identity): a recompile then skips re-parsing unchanged endpoints.
    pub endpoints: HashMap<UpstreamKey, Arc<Resolved>>,
    /// The last valid version of each TrafficPolicy: an edit that makes a
    /// policy invalid keeps this one applying (an allow list never opens).
    pub policies: BTreeMap<ObjectKey, Arc<TrafficPolicy>>,
    /// The last users each basic-auth Secret yielded (by Secret and
    /// whether it is an `auth-map`): a broken edit keeps them.
    pub auth_users: BTreeMap<(ObjectKey, bool), Arc<Htpasswd>>,
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
