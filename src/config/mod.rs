//! The compiler: a pure function from a [`Snapshot`] of Kubernetes objects to
//! a [`RoutingTable`], the upstreams it routes to, and diagnostics.
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
pub mod class;
pub mod diagnostic;
pub mod endpoints;
pub mod overlay;
pub mod snapshot;
pub mod tls;
pub mod traffic_policy;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};

pub use diagnostic::{Diagnostic, Severity};
pub use snapshot::{Changes, Entry, Object, ObjectKey, Snapshot};

use crate::table::policy::{Canary, CanaryHeader, CustomErrors, RoutePolicy};
use crate::table::tls::{CertId, TlsTable};
use crate::table::upstream::{
    BackendProtocol, BackendVerify, EndpointAddr, LbAlgorithm, PortRef, TrustAnchors, UpstreamKey,
    UpstreamSpec,
};
use crate::table::{Insert, PathType, Route, RouteId, RoutingTable, UpstreamId};

/// Control-plane maps: foldhash (randomly seeded), as the data plane's
/// tables; SipHash was a tenth of a 10,000-Ingress recompile.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Annotation selecting the load-balancing algorithm of an Ingress's backends.
pub const LOAD_BALANCE_ANNOTATION: &str = "tollgate.dev/load-balance";
/// ingress-nginx's equivalent, honoured for migrated Ingresses.
pub const NGINX_LOAD_BALANCE_ANNOTATION: &str = "nginx.ingress.kubernetes.io/load-balance";
/// `HTTP | HTTPS | H2C | GRPC | GRPCS`: the protocol spoken to the backends.
pub const BACKEND_PROTOCOL_ANNOTATION: &str = "tollgate.dev/backend-protocol";
pub const NGINX_BACKEND_PROTOCOL_ANNOTATION: &str = "nginx.ingress.kubernetes.io/backend-protocol";
/// A TLS Secret (in the Ingress's namespace) whose `ca.crt` verifies
/// HTTPS/GRPCS backends; `backend-tls-name` is the name they must present
/// (default `<service>.<namespace>.svc`).
pub const BACKEND_CA_ANNOTATION: &str = "tollgate.dev/backend-ca-secret";
pub const BACKEND_TLS_NAME_ANNOTATION: &str = "tollgate.dev/backend-tls-name";
pub const NGINX_PROXY_SSL_SECRET: &str = "nginx.ingress.kubernetes.io/proxy-ssl-secret";
pub const NGINX_PROXY_SSL_VERIFY: &str = "nginx.ingress.kubernetes.io/proxy-ssl-verify";
pub const NGINX_PROXY_SSL_NAME: &str = "nginx.ingress.kubernetes.io/proxy-ssl-name";
/// `"false"` turns off the HTTP → HTTPS redirect of an Ingress's TLS hosts.
pub const SSL_REDIRECT_ANNOTATION: &str = "tollgate.dev/ssl-redirect";
pub const NGINX_SSL_REDIRECT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
/// `"true"` redirects to HTTPS even without a `spec.tls` section.
pub const NGINX_FORCE_SSL_REDIRECT_ANNOTATION: &str =
    "nginx.ingress.kubernetes.io/force-ssl-redirect";

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

/// One memoized endpoint resolution and the objects it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    service: Arc<k8s_openapi::api::core::v1::Service>,
    slices: Vec<Arc<k8s_openapi::api::discovery::v1::EndpointSlice>>,
    endpoints: Vec<EndpointAddr>,
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

/// Compiles a snapshot. See the module documentation for the rules.
pub fn compile(snapshot: &Snapshot, opts: &CompileOptions, last_good: &LastGood) -> Compiled {
    let mut out = Compiled::default();
    let mut ours: Vec<(&ObjectKey, &Entry<Ingress>)> = snapshot
        .ingresses
        .iter()
        .filter(|(_, e)| class::is_ours(&e.object, &snapshot.ingress_classes, opts))
        .collect();
    ours.sort_by(|(ka, a), (kb, b)| {
        let ta = a.object.metadata.creation_timestamp.as_ref().map(|t| &t.0);
        let tb = b.object.metadata.creation_timestamp.as_ref().map(|t| &t.0);
        ta.cmp(&tb).then_with(|| ka.cmp(kb))
    });

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
    let mut served = Vec::with_capacity(ours.len());
    for (key, entry) in ours {
        let origin = Some(entry.origin.clone());
        // The very object that was last good passed validation then.
        let validated = last_good
            .ingresses
            .get(key)
            .is_some_and(|good| Arc::ptr_eq(good, &entry.object));
        let problems = if validated {
            Vec::new()
        } else {
            let mut problems = validate_ingress(&entry.object);
            problems.extend(validate_annotations(snapshot, key, &entry.object, opts));
            problems
        };
        let chosen = if problems.is_empty() {
            Some(entry.object.clone())
        } else {
            for (field, reason) in problems {
                builder.out.diagnostics.push(Diagnostic::new(
                    Severity::Rejected,
                    "Ingress",
                    key,
                    origin.clone(),
                    field,
                    reason,
                ));
            }
            let previous = last_good.ingresses.get(key).cloned();
            let reason = match &previous {
                Some(_) => "the Ingress is rejected; its last good version keeps serving",
                None => "the Ingress is rejected and not served",
            };
            builder.out.diagnostics.push(Diagnostic::new(
                Severity::Rejected,
                "Ingress",
                key,
                origin.clone(),
                "metadata",
                reason,
            ));
            previous
        };
        if let Some(ingress) = chosen {
            builder
                .out
                .last_good
                .ingresses
                .insert(key.clone(), ingress.clone());
            served.push((key, origin, ingress));
        }
    }
    // Certificates first, for every Ingress: whether a host redirects to
    // HTTPS depends on it having a certificate, whichever Ingress gave it.
    for (key, origin, ingress) in &served {
        builder.add_tls(key, origin, ingress);
    }
    let mut served_keys = Vec::with_capacity(served.len());
    // Canary Ingresses attach to the routes of the others: those first.
    let (canaries, mains): (Vec<_>, Vec<_>) = served
        .into_iter()
        .partition(|(_, _, ingress)| is_canary(ingress));
    for (key, origin, ingress) in mains {
        builder.add_ingress(key, origin, &ingress);
        builder.out.ingresses += 1;
        served_keys.push(key.clone());
    }
    for (key, origin, ingress) in canaries {
        builder.add_canary(key, origin, &ingress);
        builder.out.ingresses += 1;
        served_keys.push(key.clone());
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

/// A validated `pathType` (anything but Exact and Prefix is
/// ImplementationSpecific).
fn path_type_of(path_type: &str) -> PathType {
    match path_type {
        "Exact" => PathType::Exact,
        "Prefix" => PathType::Prefix,
        _ => PathType::ImplementationSpecific,
    }
}

/// Whether an Ingress is a canary (`nginx.ingress.kubernetes.io/canary`).
fn is_canary(ingress: &Ingress) -> bool {
    annotation(ingress, "nginx.ingress.kubernetes.io/canary") == Some("true")
}

/// Annotation problems that reject an Ingress (fail closed), and regular
/// expression paths that do not compile.
fn validate_annotations(
    snapshot: &Snapshot,
    key: &ObjectKey,
    ingress: &Ingress,
    opts: &CompileOptions,
) -> Vec<(String, String)> {
    let (parsed, problems) =
        annotations::parse(ingress.metadata.annotations.as_ref(), opts.limit_statuses);
    let mut out: Vec<(String, String)> = problems
        .into_iter()
        .filter(|p| p.reject)
        .map(|p| (p.field, p.reason))
        .collect();
    // Authentication that cannot be set up fails closed.
    if let Some(spec) = &parsed.basic_auth {
        if let Err(reason) = basic_auth_users(snapshot, &key.namespace, spec) {
            out.push((
                "metadata.annotations[nginx.ingress.kubernetes.io/auth-secret]".into(),
                reason,
            ));
        }
    }
    if let Some(spec) = &parsed.external_auth {
        if let Err(reason) = external_auth(spec) {
            out.push((
                "metadata.annotations[nginx.ingress.kubernetes.io/auth-url]".into(),
                reason,
            ));
        }
    }
    if parsed.use_regex {
        let spec = ingress.spec.as_ref();
        for (i, rule) in spec
            .and_then(|s| s.rules.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                if path.path_type == "Exact" {
                    continue;
                }
                if let Err(reason) = path_regex(path.path.as_deref().unwrap_or("/")) {
                    out.push((format!("spec.rules[{i}].http.paths[{j}].path"), reason));
                }
            }
        }
    }
    out
}

/// The users of an Ingress's basic authentication, from its Secret (in
/// the Ingress's namespace): key `auth` holds an htpasswd file, or with
/// `auth-map` every key is a user.
fn basic_auth_users(
    snapshot: &Snapshot,
    namespace: &str,
    spec: &annotations::BasicAuthSpec,
) -> Result<crate::auth::htpasswd::Htpasswd, String> {
    use crate::auth::htpasswd::Htpasswd;
    let name = match spec.secret.split_once('/') {
        None => spec.secret.as_str(),
        Some((ns, name)) if ns == namespace => name,
        Some(_) => {
            return Err(format!(
                "`{}`: the Secret must be in the Ingress's namespace `{namespace}`",
                spec.secret
            ))
        }
    };
    let key = ObjectKey::new(namespace, name);
    let Some(entry) = snapshot.secrets.get(&key) else {
        return Err(format!(
            "Secret {key} not found; requests are not served without their authentication"
        ));
    };
    let secret = &entry.object;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        fields.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        fields.insert(k.clone(), v.clone());
    }
    let users = if spec.map {
        Htpasswd::from_pairs(fields.iter())
    } else {
        let Some(file) = fields.get("auth") else {
            return Err(format!("Secret {key} has no `auth` key (an htpasswd file)"));
        };
        Htpasswd::parse(file)
    };
    let users = users.map_err(|e| format!("Secret {key}: {e}"))?;
    if users.is_empty() {
        return Err(format!("Secret {key} lists no users"));
    }
    Ok(users)
}

/// External authentication from its annotations.
fn external_auth(
    spec: &annotations::ExternalAuthSpec,
) -> Result<crate::auth::external::ExternalAuth, String> {
    crate::auth::external::ExternalAuth::from_annotations(
        &spec.url,
        Some(spec.method.as_str()),
        Some(spec.response_headers.join(",").as_str()),
        spec.signin.as_deref(),
        crate::auth::external::DEFAULT_TIMEOUT,
    )
    .map_err(|e| e.to_string())
}

/// The regex of a `use-regex` path: case-insensitive, anchored at the start
/// (ingress-nginx's `location ~* "^PATH"`), size-limited.
fn path_regex(path: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{path})"))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("`{path}` is not a valid regular expression: {e}"))
}

/// Structural problems that reject an Ingress, as (field, reason).
fn validate_ingress(ingress: &Ingress) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let Some(spec) = &ingress.spec else {
        problems.push(("spec".into(), "missing".into()));
        return problems;
    };
    if let Some(backend) = &spec.default_backend {
        if let Err(reason) = validate_backend(backend) {
            problems.push(("spec.defaultBackend".into(), reason));
        }
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            if let Err(reason) = validate::host(host) {
                problems.push((format!("spec.rules[{i}].host"), reason));
            }
        }
        let Some(http) = &rule.http else { continue };
        for (j, path) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            match path.path_type.as_str() {
                "Exact" | "Prefix" | "ImplementationSpecific" => {}
                "" => problems.push((format!("{field}.pathType"), "required".into())),
                other => problems.push((
                    format!("{field}.pathType"),
                    format!("`{other}` is not one of Exact, Prefix, ImplementationSpecific"),
                )),
            }
            let p = path.path.as_deref().unwrap_or("/");
            // `use-regex` paths are regular expressions, checked as such.
            let regex_path = path.path_type != "Exact" && uses_regex(ingress);
            if !regex_path {
                if let Err(reason) = validate::path(p) {
                    problems.push((format!("{field}.path"), reason));
                }
            } else if !p.starts_with('/') {
                problems.push((
                    format!("{field}.path"),
                    format!("`{p}` must start with `/`"),
                ));
            }
            if let Err(reason) = validate_backend(&path.backend) {
                problems.push((format!("{field}.backend"), reason));
            }
        }
    }
    problems
}

/// `use-regex: "true"`, or `rewrite-target` (which implies it, as in
/// ingress-nginx).
fn uses_regex(ingress: &Ingress) -> bool {
    annotation(ingress, "nginx.ingress.kubernetes.io/use-regex") == Some("true")
        || annotation(ingress, "nginx.ingress.kubernetes.io/rewrite-target").is_some()
}

fn validate_backend(backend: &IngressBackend) -> Result<(), String> {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => Err("set either service or resource, not both".into()),
        (None, Some(_)) => Err("resource backends are not supported; use a service backend".into()),
        (None, None) => Err("a service backend is required".into()),
        (Some(svc), None) => {
            if svc.name.is_empty() {
                return Err("service.name is required".into());
            }
            let port = svc.port.as_ref();
            match (
                port.and_then(|p| p.number),
                port.and_then(|p| p.name.as_deref()),
            ) {
                (Some(_), Some(_)) => {
                    Err("set service.port.number or service.port.name, not both".into())
                }
                (None, None) => Err("service.port.number or service.port.name is required".into()),
                (Some(n), None) if !(1..=65535).contains(&n) => {
                    Err(format!("service.port.number {n} is not in 1..65535"))
                }
                _ => Ok(()),
            }
        }
    }
}

fn port_ref(backend: &IngressBackend) -> Option<(&str, PortRef)> {
    let svc = backend.service.as_ref()?;
    let port = svc.port.as_ref()?;
    let port = match (port.number, &port.name) {
        (Some(n), _) => PortRef::Number(n),
        (None, Some(name)) => PortRef::Name(name.clone()),
        (None, None) => return None,
    };
    Some((svc.name.as_str(), port))
}

/// `backend-protocol`: how to speak to this Ingress's backends.
fn backend_protocol(ingress: &Ingress) -> Result<BackendProtocol, (String, String)> {
    for name in [
        BACKEND_PROTOCOL_ANNOTATION,
        NGINX_BACKEND_PROTOCOL_ANNOTATION,
    ] {
        if let Some(value) = annotation(ingress, name) {
            return match value.to_ascii_uppercase().as_str() {
                "HTTP" => Ok(BackendProtocol::Http),
                "HTTPS" => Ok(BackendProtocol::Https),
                "H2C" => Ok(BackendProtocol::H2c),
                "GRPC" => Ok(BackendProtocol::Grpc),
                "GRPCS" => Ok(BackendProtocol::Grpcs),
                other => Err((
                    format!("metadata.annotations[{name}]"),
                    format!("`{other}` is not one of HTTP, HTTPS, H2C, GRPC, GRPCS; using HTTP"),
                )),
            };
        }
    }
    Ok(BackendProtocol::Http)
}

fn lb_algorithm(ingress: &Ingress) -> Result<LbAlgorithm, (String, String)> {
    let annotations = ingress.metadata.annotations.as_ref();
    for name in [LOAD_BALANCE_ANNOTATION, NGINX_LOAD_BALANCE_ANNOTATION] {
        if let Some(value) = annotations.and_then(|a| a.get(name)) {
            return match value.trim() {
                "round-robin" | "round_robin" => Ok(LbAlgorithm::RoundRobin),
                "p2c-ewma" | "ewma" => Ok(LbAlgorithm::P2cEwma),
                other => Err((
                    format!("metadata.annotations[{name}]"),
                    format!("`{other}` is not round-robin or p2c-ewma; using round-robin"),
                )),
            };
        }
    }
    Ok(LbAlgorithm::RoundRobin)
}

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

/// How an Ingress's backends are spoken to.
struct BackendPolicy {
    lb: LbAlgorithm,
    protocol: BackendProtocol,
    /// CA Secret and server name to verify TLS backends with.
    verify: Option<(ObjectKey, Option<String>)>,
}

fn annotation<'a>(ingress: &'a Ingress, name: &str) -> Option<&'a str> {
    ingress
        .metadata
        .annotations
        .as_ref()?
        .get(name)
        .map(|v| v.trim())
}

impl Builder<'_> {
    /// [`resolve_upstream`], memoized across compiles by object identity.
    fn resolve(&mut self, key: &UpstreamKey) -> Result<Vec<EndpointAddr>, String> {
        let svc_key = ObjectKey::new(key.namespace.clone(), key.service.clone());
        let Some(service) = self.snapshot.services.get(&svc_key) else {
            return resolve_upstream(self.snapshot, key);
        };
        let slices = self.snapshot.slice_entries_of(&svc_key);
        if let Some(memo) = self.last_good.endpoints.get(key) {
            let mut same = Arc::ptr_eq(&memo.service, &service.object);
            let mut remembered = memo.slices.iter();
            for entry in slices {
                same &= remembered
                    .next()
                    .is_some_and(|s| Arc::ptr_eq(s, &entry.object));
                if !same {
                    break;
                }
            }
            if same && remembered.next().is_none() {
                let endpoints = memo.endpoints.clone();
                self.out
                    .last_good
                    .endpoints
                    .insert(key.clone(), memo.clone());
                return Ok(endpoints);
            }
        }
        let endpoints = resolve_upstream(self.snapshot, key)?;
        let memo = Arc::new(Resolved {
            service: service.object.clone(),
            slices: self
                .snapshot
                .slice_entries_of(&svc_key)
                .map(|e| e.object.clone())
                .collect(),
            endpoints: endpoints.clone(),
        });
        self.out.last_good.endpoints.insert(key.clone(), memo);
        Ok(endpoints)
    }

    fn warn(&mut self, key: &ObjectKey, origin: &Option<Arc<str>>, field: String, reason: String) {
        self.out.diagnostics.push(Diagnostic::new(
            Severity::Warning,
            "Ingress",
            key,
            origin.clone(),
            field,
            reason,
        ));
    }

    fn reject(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        field: String,
        reason: String,
    ) {
        self.out.diagnostics.push(Diagnostic::new(
            Severity::Rejected,
            "Ingress",
            key,
            origin.clone(),
            field,
            reason,
        ));
    }

    /// The upstream for a backend, created on first use; warns (on the
    /// Ingress) when the Service or port cannot be resolved.
    fn upstream(
        &mut self,
        ingress: &ObjectKey,
        origin: &Option<Arc<str>>,
        field: &str,
        service: &str,
        port: PortRef,
        policy: &BackendPolicy,
    ) -> UpstreamId {
        let verify = policy.verify.as_ref().map(|(ca, name)| BackendVerify {
            ca_secret: ca.to_string(),
            server_name: name
                .clone()
                .unwrap_or_else(|| format!("{service}.{}.svc", ingress.namespace)),
        });
        let key = UpstreamKey {
            namespace: ingress.namespace.clone(),
            service: service.to_string(),
            port,
            lb: policy.lb,
            protocol: policy.protocol,
            verify,
        };
        if let Some(&id) = self.upstreams.get(&key) {
            return id;
        }
        let trust = match &policy.verify {
            None => TrustAnchors::Unverified,
            Some((ca, _)) => self.trust_anchors(ca, ingress, origin),
        };
        let endpoints = match self.resolve(&key) {
            Ok(endpoints) => endpoints,
            Err(reason) => {
                self.warn(ingress, origin, format!("{field}.service"), reason);
                Vec::new()
            }
        };
        let id = UpstreamId::try_from(self.out.upstreams.len()).unwrap_or(UpstreamId::MAX);
        self.out.upstreams.push(UpstreamSpec {
            label: key.to_string().into(),
            key: key.clone(),
            endpoints,
            trust,
        });
        self.upstreams.insert(key, id);
        id
    }

    /// The CAs in a TLS Secret's `ca.crt`, for verifying HTTPS backends.
    /// Fails closed: an unusable CA blocks the upstream (503), it never
    /// falls back to an unverified connection.
    fn trust_anchors(
        &mut self,
        ca: &ObjectKey,
        ingress: &ObjectKey,
        origin: &Option<Arc<str>>,
    ) -> TrustAnchors {
        if let Some(roots) = self.roots.get(ca) {
            return roots.clone();
        }
        let entry = self.snapshot.secrets.get(ca);
        let parsed = match entry {
            None => Err(format!("TLS Secret {ca} (with ca.crt) not found")),
            Some(e) => tls::parse_ca(&e.object),
        };
        let anchors = match parsed {
            Ok(roots) => TrustAnchors::Roots(Arc::new(roots)),
            Err(reason) => {
                self.out.diagnostics.push(Diagnostic::new(
                    Severity::Rejected,
                    "Ingress",
                    ingress,
                    origin.clone(),
                    format!("metadata.annotations[{BACKEND_CA_ANNOTATION}]"),
                    format!("{reason}; backends that must be verified with it get 503 (never an unverified connection)"),
                ));
                TrustAnchors::Unusable
            }
        };
        self.roots.insert(ca.clone(), anchors.clone());
        anchors
    }

    /// The certificate of a TLS Secret, parsed once per compile. A Secret
    /// that fails gets a diagnostic and falls back to its last good
    /// certificate, if any.
    fn certificate(&mut self, secret: &ObjectKey, origin: &Option<Arc<str>>) -> Option<CertId> {
        if let Some(done) = self.certs.get(secret) {
            return done.as_ref().map(|(id, _)| *id);
        }
        let entry = self.snapshot.secrets.get(secret);
        let parsed = match entry {
            None => Err(("metadata.name", format!("TLS Secret {secret} not found"))),
            Some(e) => tls::parse_secret(&e.object),
        };
        let secret_origin = entry.map(|e| e.origin.clone()).or_else(|| origin.clone());
        let certificate = match parsed {
            Ok(c) => {
                if let (Some(now), true) = (
                    self.opts.now,
                    c.not_after < self.opts.now.unwrap_or(i64::MIN),
                ) {
                    self.out.diagnostics.push(Diagnostic::new(
                        Severity::Warning,
                        "Secret",
                        secret,
                        secret_origin.clone(),
                        "data[tls.crt]",
                        format!(
                            "the certificate expired {} days ago; it is still served",
                            (now - c.not_after) / 86_400
                        ),
                    ));
                }
                Some(Arc::new(c))
            }
            Err((field, reason)) => {
                let fallback = self.last_good.certificates.get(secret).cloned();
                let what = match (&fallback, entry.is_some()) {
                    (Some(_), _) => "its hosts keep the Secret's last good certificate",
                    (None, _) => "its hosts get the default certificate",
                };
                self.out.diagnostics.push(Diagnostic::new(
                    Severity::Rejected,
                    "Secret",
                    secret,
                    secret_origin,
                    field,
                    format!("{reason}; {what}"),
                ));
                fallback
            }
        };
        let resolved = certificate.map(|c| {
            self.out
                .last_good
                .certificates
                .insert(secret.clone(), c.clone());
            (self.out.tls.push_cert(c.key.clone()), c)
        });
        let id = resolved.as_ref().map(|(id, _)| *id);
        self.certs.insert(secret.clone(), resolved);
        id
    }

    /// `spec.tls`: certificates for the listed hosts.
    fn add_tls(&mut self, key: &ObjectKey, origin: &Option<Arc<str>>, ingress: &Ingress) {
        let Some(spec) = &ingress.spec else {
            return;
        };
        let rule_hosts: Vec<String> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.clone())
            .filter(|h| !h.is_empty())
            .collect();
        for (i, entry) in spec.tls.iter().flatten().enumerate() {
            let hosts: Vec<String> = match &entry.hosts {
                Some(h) if !h.is_empty() => h.iter().map(|h| h.to_ascii_lowercase()).collect(),
                _ => rule_hosts.clone(),
            };
            let Some(secret_name) = entry.secret_name.as_deref().filter(|n| !n.is_empty()) else {
                self.warn(
                    key,
                    origin,
                    format!("spec.tls[{i}].secretName"),
                    "no secretName: these hosts get the default certificate".into(),
                );
                continue;
            };
            let secret = ObjectKey::new(key.namespace.clone(), secret_name);
            let Some(id) = self.certificate(&secret, origin) else {
                continue;
            };
            let names = self
                .certs
                .get(&secret)
                .and_then(|c| c.as_ref())
                .map(|(_, c)| c.names.clone())
                .unwrap_or_default();
            for host in &hosts {
                if !names.iter().any(|n| tls::covers(n, host)) {
                    self.warn(
                        key,
                        origin,
                        format!("spec.tls[{i}].hosts"),
                        format!(
                            "Secret {secret}'s certificate does not cover `{host}` (it names {}); `{host}` gets the default certificate",
                            names.join(", ")
                        ),
                    );
                    continue;
                }
                if self.out.tls.insert_host(host, id) != id {
                    self.warn(
                        key,
                        origin,
                        format!("spec.tls[{i}].hosts"),
                        format!("`{host}` already has a certificate from an older Ingress; that one is used"),
                    );
                }
            }
        }
    }

    /// Backend certificate verification from the annotations:
    /// `tollgate.dev/backend-ca-secret` (+ `tollgate.dev/backend-tls-name`),
    /// or ingress-nginx's `proxy-ssl-secret` with `proxy-ssl-verify: "on"`
    /// (+ `proxy-ssl-name`). The CA Secret must be in the Ingress's
    /// namespace; anything else fails closed.
    fn backend_verify(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        ingress: &Ingress,
        protocol: BackendProtocol,
    ) -> Option<(ObjectKey, Option<String>)> {
        let (field, reference) = match annotation(ingress, BACKEND_CA_ANNOTATION) {
            Some(name) => (BACKEND_CA_ANNOTATION, name.to_string()),
            None => match (
                annotation(ingress, NGINX_PROXY_SSL_SECRET),
                annotation(ingress, NGINX_PROXY_SSL_VERIFY),
            ) {
                (Some(secret), Some("on")) => (NGINX_PROXY_SSL_SECRET, secret.to_string()),
                _ => return None,
            },
        };
        let name = annotation(ingress, BACKEND_TLS_NAME_ANNOTATION)
            .or_else(|| annotation(ingress, NGINX_PROXY_SSL_NAME))
            .map(str::to_string);
        if !protocol.is_tls() {
            self.warn(
                key,
                origin,
                format!("metadata.annotations[{field}]"),
                format!(
                    "backend-protocol is {}: there is no backend TLS to verify",
                    protocol.as_str()
                ),
            );
            return None;
        }
        let secret = match reference.split_once('/') {
            None => ObjectKey::new(key.namespace.clone(), reference),
            Some((ns, name)) if ns == key.namespace => ObjectKey::new(ns, name),
            Some(_) => {
                // Fail closed: point verification at a Secret that cannot
                // exist here, so the backends get 503, not an unverified
                // connection.
                self.reject(
                    key,
                    origin,
                    format!("metadata.annotations[{field}]"),
                    format!(
                        "`{reference}`: the CA Secret must be in the Ingress's namespace `{}`",
                        key.namespace
                    ),
                );
                ObjectKey::new(key.namespace.clone(), "")
            }
        };
        Some((secret, name))
    }

    /// The route policy of an Ingress from its parsed annotations; reports
    /// the annotation warnings (rejections were handled by validation).
    fn route_policy(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        parsed: &annotations::Annotations,
        backend: &BackendPolicy,
    ) -> RoutePolicy {
        let mut policy = RoutePolicy {
            access: parsed.access.clone(),
            rate: parsed.rate,
            connections: parsed.connections,
            limit_exempt: parsed.limit_exempt.clone(),
            redirect: parsed.redirect.clone(),
            app_root: parsed.app_root.clone(),
            rewrite: None,
            max_body: parsed.max_body,
            timeouts: parsed.timeouts,
            retry: parsed.retry.clone(),
            affinity: parsed.affinity.clone(),
            hash_by: parsed.hash_by.clone(),
            cors: parsed.cors.clone(),
            forwarded_prefix: parsed.forwarded_prefix.clone(),
            upstream_vhost: parsed.upstream_vhost.clone(),
            custom_errors: None,
            fallback: None,
            basic_auth: None,
            external_auth: None,
        };
        // Validation already rejected an Ingress whose authentication does
        // not resolve; if it fails here anyway, refuse every request.
        if let Some(spec) = &parsed.basic_auth {
            let challenge = format!("Basic realm=\"{}\"", spec.realm.replace(['"', '\\'], ""));
            let secret = (
                ObjectKey::new(key.namespace.clone(), spec.secret.clone()),
                spec.map,
            );
            let users = match basic_auth_users(self.snapshot, &key.namespace, spec) {
                Ok(users) => Some(Arc::new(users)),
                // Served from its last good version: the Secret's last good
                // users keep working; with none, nobody gets in.
                Err(_) => self.last_good.auth_users.get(&secret).cloned(),
            };
            if let Some(users) = &users {
                self.out.last_good.auth_users.insert(secret, users.clone());
            }
            policy.basic_auth = Some(crate::table::policy::BasicAuth {
                users: users.unwrap_or_default(),
                challenge: HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Basic")),
            });
        }
        if let Some(spec) = &parsed.external_auth {
            match external_auth(spec) {
                Ok(auth) => policy.external_auth = Some(Arc::new(auth)),
                Err(reason) => {
                    self.reject(
                        key,
                        origin,
                        "metadata.annotations[nginx.ingress.kubernetes.io/auth-url]".into(),
                        format!("{reason}; every request is refused"),
                    );
                    policy.basic_auth = Some(crate::table::policy::BasicAuth {
                        users: Arc::default(),
                        challenge: HeaderValue::from_static("Basic"),
                    });
                }
            }
        }
        if let Some(name) = &parsed.default_backend {
            let field = "metadata.annotations[nginx.ingress.kubernetes.io/default-backend]";
            policy.fallback = self.named_service_upstream(key, origin, field, name, backend);
        }
        if !parsed.custom_errors.is_empty() {
            let upstream = policy.fallback.or_else(|| {
                let route = self.out.table.default_route()?;
                self.out.table.route(route).map(|r| r.upstream)
            });
            match upstream {
                Some(upstream) => {
                    policy.custom_errors = Some(CustomErrors {
                        codes: parsed.custom_errors.clone(),
                        upstream,
                    })
                }
                None => self.warn(
                    key,
                    origin,
                    "metadata.annotations[nginx.ingress.kubernetes.io/custom-http-errors]".into(),
                    "needs a default backend (the default-backend annotation or --default-backend-service); ignored".into(),
                ),
            }
        }
        policy
    }

    /// The upstream of a Service named by an annotation, in the Ingress's
    /// namespace, on its first port.
    fn named_service_upstream(
        &mut self,
        key: &ObjectKey,
        origin: &Option<Arc<str>>,
        field: &str,
        name: &str,
        backend: &BackendPolicy,
    ) -> Option<UpstreamId> {
        if name.contains('/') {
            self.warn(
                key,
                origin,
                field.into(),
                format!("`{name}`: the Service must be in the Ingress's namespace; ignored"),
            );
            return None;
        }
        let svc = ObjectKey::new(key.namespace.clone(), name);
        let Some(port) = self.first_port(&svc) else {
            self.warn(
                key,
                origin,
                field.into(),
                format!("Service {svc} does not exist or has no ports; ignored"),
            );
            return None;
        };
        let plain = BackendPolicy {
            lb: LbAlgorithm::RoundRobin,
            protocol: backend.protocol,
            verify: backend.verify.clone(),
        };
        Some(self.upstream(key, origin, field, name, PortRef::Number(port), &plain))
    }

    fn add_ingress(&mut self, key: &ObjectKey, origin: Option<Arc<str>>, ingress: &Ingress) {
        let Some(spec) = &ingress.spec else { return };
        let (mut parsed, problems) = annotations::parse(
            ingress.metadata.annotations.as_ref(),
            self.opts.limit_statuses,
        );
        for problem in problems.into_iter().filter(|p| !p.reject) {
            self.warn(key, &origin, problem.field, problem.reason);
        }
        // A TrafficPolicy wins over the annotations, section by section.
        let mut policy_lb = None;
        if let Some((policy_key, policy)) = self.policies.get(key).cloned() {
            let annotation_lb = [LOAD_BALANCE_ANNOTATION, NGINX_LOAD_BALANCE_ANNOTATION]
                .iter()
                .any(|a| annotation(ingress, a).is_some());
            let applied = overlay::apply(
                &mut parsed,
                &policy.spec,
                self.opts.limit_statuses,
                annotation_lb,
            );
            policy_lb = applied.lb;
            if !applied.overridden.is_empty() {
                self.warn(
                    key,
                    &origin,
                    "metadata.annotations".into(),
                    format!(
                        "TrafficPolicy {policy_key} overrides these annotations: {}",
                        applied.overridden.join(", ")
                    ),
                );
            }
        }
        let ssl_redirect = ![SSL_REDIRECT_ANNOTATION, NGINX_SSL_REDIRECT_ANNOTATION]
            .iter()
            .any(|a| annotation(ingress, a) == Some("false"));
        let force_redirect =
            annotation(ingress, NGINX_FORCE_SSL_REDIRECT_ANNOTATION) == Some("true");
        // Like ingress-nginx: hosts redirect to HTTPS when they have a
        // certificate of their own (not when their Secret is missing, where
        // HTTPS could only offer the default certificate).
        let tls = &self.out.tls;
        let redirects: Vec<(String, bool)> = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.clone())
            .chain(parsed.aliases.iter().cloned())
            .map(|h| {
                let r = force_redirect || (ssl_redirect && tls.lookup(&h).is_some());
                (h, r)
            })
            .collect();
        let redirects =
            |host: &str| force_redirect || redirects.iter().any(|(h, r)| *r && h == host);
        let ingress_label: Arc<str> = key.to_string().into();
        let mut lb = match (policy_lb, lb_algorithm(ingress)) {
            (Some(lb), _) | (None, Ok(lb)) => lb,
            (None, Err((field, reason))) => {
                self.warn(key, &origin, field, reason);
                LbAlgorithm::RoundRobin
            }
        };
        // Hash-based picking needs the ring on the upstream.
        let balanced_affinity = parsed
            .affinity
            .as_ref()
            .is_some_and(|a| a.mode == crate::table::policy::AffinityMode::Balanced);
        if parsed.hash_by.is_some() || balanced_affinity {
            lb = LbAlgorithm::ConsistentHash;
        }
        let protocol = match backend_protocol(ingress) {
            Ok(p) => p,
            Err((field, reason)) => {
                self.warn(key, &origin, field, reason);
                BackendProtocol::Http
            }
        };
        let verify = self.backend_verify(key, &origin, ingress, protocol);
        let lb = BackendPolicy {
            lb,
            protocol,
            verify,
        };
        let policy = Arc::new(self.route_policy(key, &origin, &parsed, &lb));

        let default_route = spec
            .default_backend
            .as_ref()
            .and_then(port_ref)
            .map(|(svc, port)| {
                let upstream = self.upstream(key, &origin, "spec.defaultBackend", svc, port, &lb);
                let service = self.out.upstreams[upstream as usize].label.clone();
                self.out.table.push_route(Route {
                    ingress: ingress_label.clone(),
                    host: "".into(),
                    path: "".into(),
                    path_type: None,
                    service,
                    upstream,
                    redirect_https: force_redirect,
                    plain: policy.is_plain(),
                    policy: policy.clone(),
                    canary: None,
                })
            });

        // `server-alias` hosts serve the paths of every rule with a host.
        let mut hosts: Vec<(usize, String)> = Vec::new();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = rule.host.clone().unwrap_or_default();
            let named = !host.is_empty();
            hosts.push((i, host));
            if named {
                for alias in &parsed.aliases {
                    hosts.push((i, alias.clone()));
                }
            }
        }
        for (i, host) in hosts {
            let Some(rule) = spec.rules.as_ref().and_then(|r| r.get(i)) else {
                continue;
            };
            let host = host.as_str();
            let host_label: Arc<str> = host.into();
            // Make sure the host exists even without paths, so that its
            // default backend (or a 404) answers rather than hostless rules.
            self.out.table.host_mut(host);
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}].backend");
                let Some((svc, port)) = port_ref(&path.backend) else {
                    continue;
                };
                let path_type = path_type_of(&path.path_type);
                let path_str = path.path.as_deref().unwrap_or("/");
                let regex = (parsed.use_regex && path_type != PathType::Exact)
                    .then(|| path_regex(path_str).ok().map(Arc::new))
                    .flatten();
                let route_policy = match (&parsed.rewrite_target, &regex) {
                    (Some(target), Some(pattern)) => Arc::new(RoutePolicy {
                        rewrite: Some(crate::table::policy::Rewrite {
                            pattern: pattern.clone(),
                            target: target.as_str().into(),
                        }),
                        ..(*policy).clone()
                    }),
                    _ => policy.clone(),
                };
                let upstream = self.upstream(key, &origin, &field, svc, port, &lb);
                let service = self.out.upstreams[upstream as usize].label.clone();
                let route = self.out.table.push_route(Route {
                    ingress: ingress_label.clone(),
                    host: host_label.clone(),
                    path: path_str.into(),
                    path_type: Some(path_type),
                    service,
                    upstream,
                    redirect_https: redirects(host),
                    plain: route_policy.is_plain(),
                    policy: route_policy,
                    canary: None,
                });
                let table = self.out.table.host_mut(host);
                let inserted = match &regex {
                    Some(pattern) => table.insert_regex(path_str, pattern.clone(), route),
                    None => table.insert(path_str, path_type, route),
                };
                if let Insert::Taken(holder) = inserted {
                    self.out.table.pop_route();
                    let holder = self
                        .out
                        .table
                        .route(holder)
                        .map(|r| r.ingress.to_string())
                        .unwrap_or_default();
                    let shown_host = if host.is_empty() { "*" } else { host };
                    let reason = if holder == *ingress_label {
                        format!(
                            "duplicate: host `{shown_host}` path `{path_str}` ({}) matches the same requests as an earlier path of this Ingress; the earlier one is used",
                            path_type.as_str()
                        )
                    } else {
                        format!(
                            "conflict: host `{shown_host}` path `{path_str}` ({}) is already served by Ingress {holder}, which is older; this path is ignored",
                            path_type.as_str()
                        )
                    };
                    self.reject(
                        key,
                        &origin,
                        format!("spec.rules[{i}].http.paths[{j}]"),
                        reason,
                    );
                } else {
                    self.paths
                        .insert((host.to_string(), path_str.to_string(), path_type), route);
                }
            }
            // Hostless rules share the catch-all table; it gets the default
            // backend below, with the oldest-wins check.
            if let Some(route) = default_route.filter(|_| !host.is_empty()) {
                self.out.table.host_mut(host).set_fallback(route);
            }
        }
        if let Some(route) = default_route {
            // Requests matching no host at all: the oldest default backend.
            if !self.out.table.host_mut("").set_fallback(route) {
                self.warn(
                    key,
                    &origin,
                    "spec.defaultBackend".into(),
                    "an older Ingress already provides the default backend for unmatched hosts; this one serves only its own hosts".into(),
                );
            }
        }
    }

    /// A canary Ingress: each of its paths becomes the canary of the route
    /// another Ingress serves for the same host, path and pathType (as in
    /// ingress-nginx, a canary without such a route serves nothing).
    fn add_canary(&mut self, key: &ObjectKey, origin: Option<Arc<str>>, ingress: &Ingress) {
        let Some(spec) = &ingress.spec else { return };
        let (parsed, problems) = annotations::parse(
            ingress.metadata.annotations.as_ref(),
            self.opts.limit_statuses,
        );
        for problem in problems.into_iter().filter(|p| !p.reject) {
            self.warn(key, &origin, problem.field, problem.reason);
        }
        let Some(canary) = parsed.canary else { return };
        let protocol = backend_protocol(ingress).unwrap_or(BackendProtocol::Http);
        let verify = self.backend_verify(key, &origin, ingress, protocol);
        let lb = BackendPolicy {
            lb: lb_algorithm(ingress).unwrap_or(LbAlgorithm::RoundRobin),
            protocol,
            verify,
        };
        let ingress_label: Arc<str> = key.to_string().into();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = rule.host.as_deref().unwrap_or("");
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let Some((svc, port)) = port_ref(&path.backend) else {
                    continue;
                };
                let path_type = path_type_of(&path.path_type);
                let path_str = path.path.as_deref().unwrap_or("/");
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                let Some(&main) =
                    self.paths
                        .get(&(host.to_string(), path_str.to_string(), path_type))
                else {
                    self.warn(
                        key,
                        &origin,
                        field,
                        format!(
                            "canary: no other Ingress serves host `{}` path `{path_str}` ({}); this path serves nothing",
                            if host.is_empty() { "*" } else { host },
                            path_type.as_str()
                        ),
                    );
                    continue;
                };
                if self
                    .out
                    .table
                    .route(main)
                    .is_some_and(|r| r.canary.is_some())
                {
                    self.warn(
                        key,
                        &origin,
                        field,
                        "canary: an older canary Ingress already serves this path; ignored".into(),
                    );
                    continue;
                }
                let upstream =
                    self.upstream(key, &origin, &format!("{field}.backend"), svc, port, &lb);
                let service = self.out.upstreams[upstream as usize].label.clone();
                let canary = Canary {
                    upstream,
                    service,
                    ingress: ingress_label.clone(),
                    header: canary
                        .header
                        .clone()
                        .map(|(name, matcher)| CanaryHeader { name, matcher }),
                    cookie: canary.cookie.clone(),
                    weight: canary.weight,
                    weight_total: canary.weight_total,
                };
                if let Some(route) = self.out.table.route_mut(main) {
                    route.canary = Some(Box::new(canary));
                    route.plain = false;
                }
            }
        }
    }

    /// The first port of a Service, for backends named without one.
    fn first_port(&self, service: &ObjectKey) -> Option<i32> {
        self.snapshot
            .services
            .get(service)?
            .object
            .spec
            .as_ref()?
            .ports
            .as_ref()?
            .first()
            .map(|p| p.port)
    }

    fn add_default_backend_flag(&mut self, service: &ObjectKey, port: Option<&PortRef>) {
        let origin: Option<Arc<str>> = Some("--default-backend-service".into());
        let port = match port {
            Some(p) => p.clone(),
            None => match self.first_port(service) {
                Some(n) => PortRef::Number(n),
                None => {
                    self.out.diagnostics.push(Diagnostic::new(
                            Severity::Warning,
                            "Service",
                            service,
                            origin,
                            "spec.ports",
                            "the default backend Service does not exist or has no ports; unmatched requests get 404",
                        ));
                    return;
                }
            },
        };
        let key = UpstreamKey {
            namespace: service.namespace.clone(),
            service: service.name.clone(),
            port,
            lb: LbAlgorithm::RoundRobin,
            protocol: BackendProtocol::Http,
            verify: None,
        };
        let endpoints = match self.resolve(&key) {
            Ok(e) => e,
            Err(reason) => {
                self.out.diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    "Service",
                    service,
                    origin,
                    "spec.ports",
                    reason,
                ));
                Vec::new()
            }
        };
        let id = UpstreamId::try_from(self.out.upstreams.len()).unwrap_or(UpstreamId::MAX);
        let label: Arc<str> = key.to_string().into();
        self.out.upstreams.push(UpstreamSpec {
            key,
            label: label.clone(),
            endpoints,
            trust: TrustAnchors::Unverified,
        });
        let route = self.out.table.push_route(Route {
            ingress: "".into(),
            host: "".into(),
            path: "".into(),
            path_type: None,
            service: label,
            upstream: id,
            redirect_https: false,
            policy: Default::default(),
            canary: None,
            plain: true,
        });
        self.out.table.set_default_route(route);
    }
}

/// Resolves the current endpoints of an upstream from a snapshot. Used by the
/// compiler and by the runtime's endpoint-only fast path.
pub fn resolve_upstream(
    snapshot: &Snapshot,
    key: &UpstreamKey,
) -> Result<Vec<EndpointAddr>, String> {
    let svc_key = ObjectKey::new(key.namespace.clone(), key.service.clone());
    let Some(service) = snapshot.services.get(&svc_key) else {
        return Err(format!("Service {svc_key} not found; requests get 503"));
    };
    endpoints::resolve(&service.object, &key.port, snapshot.slices_of(&svc_key))
        .map_err(|problem| format!("Service {svc_key}: {problem}"))
}

#[cfg(test)]
mod tests;
