//! The compiler: a pure function from a [`Snapshot`] of Kubernetes objects to
//! a [`RoutingTable`], the upstreams it routes to, and diagnostics.
//!
//! [`compile`] runs the steps in order, one file each:
//! - `select`: which Ingresses are ours, oldest first, and which version of
//!   each is served (as written, or its last good one);
//! - `tls`: certificates for the hosts of `spec.tls`;
//! - `routes`: hosts and paths into the table, with the HTTPS redirects;
//! - `conflicts`: who gets a (host, path) or the default backend when two
//!   Ingresses ask for it, and which route a canary attaches to;
//! - `canary`: canary Ingresses attached to the others' routes;
//! - `backends`: Services → upstreams (protocol, load balancing, backend
//!   TLS, endpoints);
//! - `route_policy`: annotations and TrafficPolicy → each route's
//!   [`crate::table::policy::RoutePolicy`] (authentication, fallbacks,
//!   error pages);
//! - `traffic_policy`: TrafficPolicy ownership and status.
//!
//! Problems are data ([`problem::Problem`]: a field and a reason) until
//! [`problem::Subject::diagnostic`] turns them into [`Diagnostic`]s.
//!
//! Invariants:
//! - No IO, no async, no clock: the same input always gives the same output.
//!   All Ingress semantics live here and are unit-tested here.
//! - Ingresses are applied oldest first (creationTimestamp, then
//!   `namespace/name`; a missing timestamp counts as oldest), so on a
//!   conflict (same host, path and pathType) the oldest Ingress wins and the
//!   loser gets a diagnostic.
//! - An Ingress that fails validation is not served as written: its last
//!   good version (from [`LastGood`]) is served instead, if there is one.
//! - A problem confined to one backend (missing Service, missing port) does
//!   not reject the Ingress: its routes answer 503 and a warning says why.

pub mod annotations;
mod backends;
mod canary;
pub mod class;
mod conflicts;
pub mod diagnostic;
pub mod endpoints;
pub mod overlay;
pub mod problem;
mod route_policy;
mod routes;
mod select;
pub mod snapshot;
pub mod tls;
pub mod traffic_policy;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

pub use backends::{
    resolve_upstream, Resolved, BACKEND_CA_ANNOTATION, BACKEND_PROTOCOL_ANNOTATION,
    BACKEND_TLS_NAME_ANNOTATION, LOAD_BALANCE_ANNOTATION, NGINX_BACKEND_PROTOCOL_ANNOTATION,
    NGINX_LOAD_BALANCE_ANNOTATION, NGINX_PROXY_SSL_NAME, NGINX_PROXY_SSL_SECRET,
    NGINX_PROXY_SSL_VERIFY,
};
pub use diagnostic::{Diagnostic, Severity};
pub use routes::{
    NGINX_FORCE_SSL_REDIRECT_ANNOTATION, NGINX_SSL_REDIRECT_ANNOTATION, SSL_REDIRECT_ANNOTATION,
};
pub use snapshot::{Changes, Entry, Object, ObjectKey, Snapshot};

use crate::table::tls::{CertId, TlsTable};
use crate::table::upstream::{PortRef, TrustAnchors, UpstreamKey, UpstreamSpec};
use crate::table::{PathType, RouteId, RoutingTable, UpstreamId};
use problem::{Problem, Subject};

#[cfg(test)]
use crate::table::upstream::{EndpointAddr, LbAlgorithm};

/// Control-plane maps: foldhash (randomly seeded), as the data plane's
/// tables; SipHash was a tenth of a 10,000-Ingress recompile.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Settings the compiler reads (from flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    pub ingress_class: String,
    pub controller_name: String,
    /// `--default-backend-service`: served when nothing else matches.
    pub default_backend: Option<(ObjectKey, Option<PortRef>)>,
    /// `--default-certificate`: the TLS Secret for unknown names.
    pub default_certificate: Option<ObjectKey>,
    /// Current time (seconds since the Unix epoch) for certificate expiry
    /// warnings; `None` skips them. Passed in: the compiler has no clock.
    pub now: Option<i64>,
    /// Rejection statuses of the rate and connection limits.
    pub limit_statuses: annotations::LimitStatuses,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "tollgate".into(),
            controller_name: "tollgate.dev/ingress-controller".into(),
            default_backend: None,
            default_certificate: None,
            now: None,
            limit_statuses: annotations::LimitStatuses::default(),
        }
    }
}

/// What kept working, fed back into the next compile so that bad input
/// never replaces good configuration.
#[derive(Debug, Default, Clone)]
pub struct LastGood {
    /// The last version of each Ingress that compiled without rejection.
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    /// The last certificate each TLS Secret yielded.
    pub certificates: BTreeMap<ObjectKey, Arc<tls::Certificate>>,
    /// Endpoint resolutions, reused while the Service and EndpointSlice
    /// objects they were computed from are the same objects (`Arc`
    /// identity): a recompile then skips re-parsing unchanged endpoints.
    pub endpoints: HashMap<UpstreamKey, Arc<Resolved>>,
    /// The last valid version of each TrafficPolicy: an edit that makes a
    /// policy invalid keeps this one applying (an allow list never opens).
    pub policies: BTreeMap<ObjectKey, Arc<crate::crd::TrafficPolicy>>,
    /// The last users each basic-auth Secret yielded (by Secret and
    /// whether it is an `auth-map`): a broken edit keeps them.
    pub auth_users: BTreeMap<(ObjectKey, bool), Arc<crate::auth::htpasswd::Htpasswd>>,
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
    /// The `Accepted` condition of every TrafficPolicy.
    pub policy_status: BTreeMap<ObjectKey, traffic_policy::PolicyStatus>,
}

impl Compiled {
    pub fn rejected(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_rejection)
    }
}

pub fn compile(snapshot: &Snapshot, opts: &CompileOptions, last_good: &LastGood) -> Compiled {
    let mut out = Compiled::default();
    let ours = select::ours(snapshot, opts);
    let mut builder = Builder {
        snapshot,
        opts,
        last_good,
        out: &mut out,
        upstreams: HashMap::default(),
        certs: HashMap::default(),
        roots: HashMap::default(),
        paths: HashMap::default(),
        policies: HashMap::default(),
    };
    // The version of each TrafficPolicy in force (current, or last valid
    // while the current one is invalid), and which applies to which Ingress.
    builder.out.last_good.policies =
        traffic_policy::versions_in_force(snapshot, &last_good.policies);
    builder.policies = traffic_policy::owners(snapshot, &last_good.policies)
        .into_iter()
        .collect();
    let served = builder.select(ours);
    // Certificates first, for every Ingress: whether a host redirects to
    // HTTPS depends on it having a certificate, whichever Ingress gave it.
    for ingress in &served {
        builder.add_tls(ingress.key, &ingress.origin, &ingress.object);
    }
    let mut served_keys = Vec::with_capacity(served.len());
    // Canary Ingresses attach to the routes of the others: those first.
    let (canaries, mains): (Vec<_>, Vec<_>) = served
        .into_iter()
        .partition(|ingress| select::is_canary(&ingress.object));
    for ingress in mains {
        served_keys.push(ingress.key.clone());
        builder.add_ingress(ingress);
        builder.out.ingresses += 1;
    }
    for ingress in canaries {
        served_keys.push(ingress.key.clone());
        builder.add_canary(ingress);
        builder.out.ingresses += 1;
    }
    served_keys.sort();
    builder.out.served = served_keys;
    if let Some((service, port)) = &opts.default_backend {
        builder.add_default_backend_flag(service, port.as_ref());
    }
    if let Some(secret) = &opts.default_certificate {
        let origin: Option<Arc<str>> = Some("--default-certificate".into());
        if let Some(id) = builder.certificate(secret, &origin) {
            builder.out.tls.set_default(id);
        }
    }
    traffic_policy::apply(snapshot, &mut out, &last_good.policies);
    out.table = out.table.compacted();
    out
}

/// The state of one compile: what is built so far, and what was already
/// resolved (each Service port, Secret and CA once per compile).
struct Builder<'a> {
    snapshot: &'a Snapshot,
    opts: &'a CompileOptions,
    last_good: &'a LastGood,
    out: &'a mut Compiled,
    upstreams: HashMap<UpstreamKey, UpstreamId>,
    /// TLS Secrets already resolved in this compile (`None`: unusable).
    certs: HashMap<ObjectKey, Option<(CertId, Arc<tls::Certificate>)>>,
    /// CA bundles already resolved in this compile.
    roots: HashMap<ObjectKey, TrustAnchors>,
    /// Routes by (host, path, pathType), for attaching canaries.
    paths: HashMap<(String, String, PathType), RouteId>,
    /// The TrafficPolicy applying to each Ingress: (policy, its spec).
    policies: HashMap<ObjectKey, (ObjectKey, Arc<crate::crd::TrafficPolicy>)>,
}

impl Builder<'_> {
    /// Reports a problem of an Ingress as a warning.
    fn warn(&mut self, key: &ObjectKey, origin: &Option<Arc<str>>, problem: Problem) {
        self.report(Severity::Warning, Subject::ingress(key, origin), problem);
    }

    /// Reports a problem of an Ingress as a rejection.
    fn reject(&mut self, key: &ObjectKey, origin: &Option<Arc<str>>, problem: Problem) {
        self.report(Severity::Rejected, Subject::ingress(key, origin), problem);
    }

    fn report(&mut self, severity: Severity, subject: Subject<'_>, problem: Problem) {
        self.out
            .diagnostics
            .push(subject.diagnostic(severity, problem));
    }
}

/// An annotation's value, trimmed.
fn annotation<'a>(ingress: &'a Ingress, name: &str) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()?
        .get(name)
        .map(|v| v.trim())
}

#[cfg(test)]
mod tests;
