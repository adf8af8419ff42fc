//! The compiler's problems as data: which object, which field, what is
//! wrong. Compile steps return a [`Problem`] (a [`Field`] and a [`Reason`])
//! and never format a diagnostic themselves; [`Subject::diagnostic`] is the
//! one place a problem becomes a [`Diagnostic`].
//!
//! Invariants:
//! - A [`Reason`]'s `Display` is the exact text users see (`tollgate check`,
//!   Events, `--output json`): changing a message is changing a variant's
//!   `#[error]`, nowhere else.
//! - A [`Field`] renders as the JSON path of the field in the object's
//!   manifest (`spec.rules[0].http.paths[1].backend`).
//! - Pure data: building a problem formats nothing.

use std::fmt;
use std::sync::Arc;

use super::diagnostic::{Diagnostic, Severity};
use super::endpoints::PortProblem;
use super::snapshot::ObjectKey;
use crate::auth::external::ExternalAuthError;
use crate::auth::htpasswd::HtpasswdError;
use crate::table::PathType;

/// Where in an object a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `metadata`.
    Metadata,
    /// `metadata.name`.
    Name,
    /// `metadata.annotations`.
    Annotations,
    /// `metadata.annotations[NAME]`.
    Annotation(&'static str),
    /// `spec`.
    Spec,
    /// `spec.defaultBackend`.
    DefaultBackend,
    /// `spec.rules[rule].host`.
    RuleHost { rule: usize },
    /// `spec.rules[rule].http.paths[path]`, or a part of it.
    Path {
        rule: usize,
        path: usize,
        part: PathPart,
    },
    /// `spec.tls[entry].secretName`.
    TlsSecretName { entry: usize },
    /// `spec.tls[entry].hosts`.
    TlsHosts { entry: usize },
    /// `spec.ports` (of a Service).
    ServicePorts,
    /// `type` (of a Secret).
    SecretType,
    /// `data[KEY]` (of a Secret).
    SecretData(&'static str),
    /// `spec.targetRefs` (of a TrafficPolicy).
    TargetRefs,
    /// `FIELD.service`: the Service a backend (or an annotation) names.
    Service(Box<Field>),
    /// A path another parser reported (the annotation parser, TrafficPolicy
    /// validation), as it gave it.
    Reported(String),
}

/// Which part of an Ingress path a [`Field::Path`] means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathPart {
    /// The path entry as a whole.
    Whole,
    /// `.path`.
    Path,
    /// `.pathType`.
    PathType,
    /// `.backend`.
    Backend,
}

impl Field {
    /// `metadata.annotations[NAME]`.
    pub fn annotation(name: &'static str) -> Self {
        Field::Annotation(name)
    }

    /// `spec.rules[rule].http.paths[path]` + `part`.
    pub fn path(rule: usize, path: usize, part: PathPart) -> Self {
        Field::Path { rule, path, part }
    }

    /// This field's `.service`.
    pub fn service(self) -> Self {
        Field::Service(Box::new(self))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Metadata => f.write_str("metadata"),
            Field::Name => f.write_str("metadata.name"),
            Field::Annotations => f.write_str("metadata.annotations"),
            Field::Annotation(name) => write!(f, "metadata.annotations[{name}]"),
            Field::Spec => f.write_str("spec"),
            Field::DefaultBackend => f.write_str("spec.defaultBackend"),
            Field::RuleHost { rule } => write!(f, "spec.rules[{rule}].host"),
            Field::Path { rule, path, part } => {
                write!(f, "spec.rules[{rule}].http.paths[{path}]")?;
                f.write_str(match part {
                    PathPart::Whole => "",
                    PathPart::Path => ".path",
                    PathPart::PathType => ".pathType",
                    PathPart::Backend => ".backend",
                })
            }
            Field::TlsSecretName { entry } => write!(f, "spec.tls[{entry}].secretName"),
            Field::TlsHosts { entry } => write!(f, "spec.tls[{entry}].hosts"),
            Field::ServicePorts => f.write_str("spec.ports"),
            Field::SecretType => f.write_str("type"),
            Field::SecretData(key) => write!(f, "data[{key}]"),
            Field::TargetRefs => f.write_str("spec.targetRefs"),
            Field::Service(of) => write!(f, "{of}.service"),
            Field::Reported(path) => f.write_str(path),
        }
    }
}

/// What is wrong, with the values that say why. `Display` is the reason a
/// user reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    // ---------------------------------------------------------- the Ingress
    #[error("missing")]
    Missing,
    #[error("required")]
    Required,
    #[error("the Ingress is rejected; its last good version keeps serving")]
    RejectedLastGoodServes,
    #[error("the Ingress is rejected and not served")]
    RejectedNotServed,
    /// A problem the annotation parser reported, in its words.
    #[error("{0}")]
    Annotation(String),
    #[error("TrafficPolicy {policy} overrides these annotations: {}", .overridden.join(", "))]
    OverriddenByPolicy {
        policy: ObjectKey,
        overridden: Vec<&'static str>,
    },

    // ------------------------------------------------------ hosts and paths
    /// A host or path the API server would refuse too
    /// ([`super::validate`]'s words).
    #[error("{0}")]
    Invalid(String),
    #[error("`{0}` is not one of Exact, Prefix, ImplementationSpecific")]
    UnknownPathType(String),
    #[error("`{0}` must start with `/`")]
    RegexPathNotAbsolute(String),
    #[error("`{path}` is not a valid regular expression: {error}")]
    InvalidRegex { path: String, error: String },

    // ------------------------------------------------------------- backends
    #[error("set either service or resource, not both")]
    ServiceAndResource,
    #[error("resource backends are not supported; use a service backend")]
    ResourceBackend,
    #[error("a service backend is required")]
    NoServiceBackend,
    #[error("service.name is required")]
    NoServiceName,
    #[error("set service.port.number or service.port.name, not both")]
    PortNumberAndName,
    #[error("service.port.number or service.port.name is required")]
    NoPort,
    #[error("service.port.number {0} is not in 1..65535")]
    PortOutOfRange(i32),
    #[error("Service {0} not found; requests get 503")]
    ServiceNotFound(ObjectKey),
    #[error("Service {service}: {problem}")]
    ServicePort {
        service: ObjectKey,
        problem: PortProblem,
    },
    #[error("`{0}` is not one of HTTP, HTTPS, AUTO_HTTP, H2C, GRPC, GRPCS; using HTTP")]
    UnknownBackendProtocol(String),
    #[error("FCGI: FastCGI backends are not supported")]
    FastCgiBackendProtocol,
    #[error("`{0}` is not round-robin or p2c-ewma; using round-robin")]
    UnknownLoadBalance(String),
    #[error("backend-protocol is {0}: there is no backend TLS to verify")]
    NoBackendTls(&'static str),
    #[error("`{reference}`: the CA Secret must be in the Ingress's namespace `{namespace}`")]
    CaSecretElsewhere {
        reference: String,
        namespace: String,
    },
    #[error("TLS Secret {0} (with ca.crt) not found; backends that must be verified with it get 503 (never an unverified connection)")]
    CaSecretNotFound(ObjectKey),
    #[error(
        "{0}; backends that must be verified with it get 503 (never an unverified connection)"
    )]
    UnusableCa(String),
    #[error("`{0}`: the Service must be in the Ingress's namespace; ignored")]
    ServiceElsewhere(String),
    #[error("Service {0} does not exist or has no ports; ignored")]
    NoServicePorts(ObjectKey),
    #[error(
        "the default backend Service does not exist or has no ports; unmatched requests get 404"
    )]
    NoDefaultBackendPorts,
    #[error("needs a default backend (the default-backend annotation or --default-backend-service); ignored")]
    CustomErrorsWithoutDefaultBackend,
    #[error("a global rate limit, but no --global-rate-limit-store: counted per replica (every replica allows the whole limit)")]
    GlobalLimitWithoutStore,

    // ------------------------------------------------------- authentication
    #[error("`{secret}`: the Secret must be in the Ingress's namespace `{namespace}`")]
    AuthSecretElsewhere { secret: String, namespace: String },
    #[error("Secret {0} not found; requests are not served without their authentication")]
    AuthSecretNotFound(ObjectKey),
    #[error("Secret {0} has no `auth` key (an htpasswd file)")]
    NoHtpasswd(ObjectKey),
    #[error("Secret {secret}: {error}")]
    BadHtpasswd {
        secret: ObjectKey,
        error: Box<HtpasswdError>,
    },
    #[error("Secret {0} lists no users")]
    NoUsers(ObjectKey),
    #[error("{0}")]
    ExternalAuth(ExternalAuthError),
    #[error("`{secret}`: the CA Secret must be in the Ingress's namespace `{namespace}`; {}", .consequence)]
    ClientCaElsewhere {
        secret: String,
        namespace: String,
        consequence: &'static str,
    },
    #[error("Secret {secret} (auth-tls-secret) not found; {}", .consequence)]
    ClientCaNotFound {
        secret: ObjectKey,
        consequence: &'static str,
    },
    #[error("Secret {secret} (auth-tls-secret): {problem}; {}", .consequence)]
    UnusableClientCa {
        secret: ObjectKey,
        problem: String,
        consequence: &'static str,
    },

    // --------------------------------------------------------- certificates
    #[error("no secretName: these hosts get the default certificate")]
    NoSecretName,
    #[error("Secret {secret}'s certificate does not cover `{host}` (it names {}); `{host}` gets the default certificate", .names.join(", "))]
    NotCovered {
        secret: Box<ObjectKey>,
        host: String,
        names: Vec<String>,
    },
    #[error("`{0}` already has a certificate from an older Ingress; that one is used")]
    HostHasCertificate(String),
    #[error("the certificate expired {days} days ago; it is still served")]
    Expired { days: i64 },
    #[error("{reason}; {}", if *.last_good { "its hosts keep the Secret's last good certificate" } else { "its hosts get the default certificate" })]
    BadCertificate { reason: String, last_good: bool },

    // ------------------------------------------------------------ conflicts
    #[error("duplicate: host `{host}` path `{path}` ({}) matches the same requests as an earlier path of this Ingress; the earlier one is used", .path_type.as_str())]
    DuplicatePath {
        host: String,
        path: String,
        path_type: PathType,
    },
    #[error("conflict: host `{host}` path `{path}` ({}) is already served by Ingress {holder}, which is older; this path is ignored", .path_type.as_str())]
    PathTaken {
        host: String,
        path: String,
        path_type: PathType,
        holder: Arc<str>,
    },
    #[error("an older Ingress already provides the default backend for unmatched hosts; this one serves only its own hosts")]
    DefaultBackendTaken,
    #[error("canary: no other Ingress serves host `{host}` path `{path}` ({}); this path serves nothing", .path_type.as_str())]
    CanaryWithoutRoute {
        host: String,
        path: String,
        path_type: PathType,
    },
    #[error("canary: an older canary Ingress already serves this path; ignored")]
    CanaryTaken,

    // ------------------------------------------------------ TrafficPolicies
    /// A problem [`crate::crd::validate`] reported, and what follows.
    #[error("{reason}; {}", if *.last_valid_applies { "its last valid version keeps applying" } else { "the policy is not applied" })]
    InvalidPolicy {
        reason: String,
        last_valid_applies: bool,
    },
    // ------------------------------------------------------ TLS passthrough
    #[error("TLS passthrough needs --enable-ssl-passthrough (as in ingress-nginx); without it this Ingress is not served, never terminated in its place")]
    PassthroughDisabled,
    #[error("`{0}` is not true or false; the Ingress is not served rather than guess")]
    PassthroughValue(String),
    #[error("TLS passthrough needs a host: the ClientHello's SNI is matched against it")]
    PassthroughWithoutHost,
    #[error("`{0}`: TLS passthrough matches the SNI exactly, not wildcards")]
    PassthroughWildcard(String),
    #[error("`{0}` has no `/` path: TLS passthrough sends a host to the Service of its `/` path (as ingress-nginx)")]
    PassthroughWithoutRoot(String),
    #[error("`{host}` is passed through; these annotations apply to its plain HTTP requests only, never to its TLS connections (spliced untouched): {}", .annotations.join(", "))]
    PassthroughHttpOnly {
        host: String,
        annotations: Vec<String>,
    },
    #[error("`{host}` is passed through by Ingress {holder}: its TLS connections never reach this Ingress, only plain HTTP does")]
    PassthroughShadows { host: String, holder: String },
    #[error("canary Ingresses are never passed through; ignored")]
    PassthroughCanary,

    // ----------------------------------------------------------- Gateway API
    #[error("unknown field; ignored (tollgate does not read it)")]
    UnknownField,
    /// A condition a Gateway API object gets, as its status says it.
    #[error("{type_} {reason}: {message}")]
    GatewayCondition {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    GatewayApi(String),

    #[error("{status}: {message}; the policy applies to nothing")]
    PolicyAppliesNowhere {
        status: &'static str,
        message: String,
    },
}

/// One problem: a field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: Field,
    pub reason: Reason,
}

impl Problem {
    pub fn new(field: Field, reason: Reason) -> Self {
        Self { field, reason }
    }
}

impl From<super::annotations::parser::Problem> for Problem {
    /// The annotation parser's problem, with its field and reason as it
    /// gave them (whether it rejects is the caller's business).
    fn from(p: super::annotations::parser::Problem) -> Self {
        Problem::new(Field::Reported(p.field), Reason::Annotation(p.reason))
    }
}

/// The object problems are reported on: its kind, key and origin.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: &'static str,
    pub key: &'a ObjectKey,
    pub origin: &'a Option<Arc<str>>,
}

impl<'a> Subject<'a> {
    pub fn ingress(key: &'a ObjectKey, origin: &'a Option<Arc<str>>) -> Self {
        Self {
            kind: "Ingress",
            key,
            origin,
        }
    }

    /// The one place a [`Problem`] becomes a [`Diagnostic`].
    pub fn diagnostic(&self, severity: Severity, problem: Problem) -> Diagnostic {
        Diagnostic::new(
            severity,
            self.kind,
            self.key,
            self.origin.clone(),
            problem.field.to_string(),
            problem.reason.to_string(),
        )
    }
}

/// `*` for the empty (catch-all) host, as diagnostics show it.
pub fn shown_host(host: &str) -> String {
    if host.is_empty() { "*" } else { host }.to_string()
}
