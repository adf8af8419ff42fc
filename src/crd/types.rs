//! The `TrafficPolicy` resource as Rust types (the `CustomResource` derive
//! makes `TrafficPolicy` from [`TrafficPolicySpec`]), and their parsed
//! accessors.
//!
//! Invariants:
//! - The doc comments and `schemars` attributes here *are* the CRD's
//!   descriptions and checks: changing one changes `crds/trafficpolicy.yaml`
//!   (a test compares them).
//! - Lenient fields (strings, `i64`), strict accessors: an accessor returns
//!   `None` or leaves out what [`super::validate`] would report, and never
//!   panics.

use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::parse::{parse_cidr, parse_duration};
use super::rules::{
    AFFINITY_MODES, ALGORITHMS, CONDITION_ACCEPTED, COOKIE_PATH_PATTERN, DEFAULT_COOKIE_NAME,
    MAX_RATE, MAX_RETRY_ATTEMPTS, MAX_TARGET_REFS, NAME_PATTERN, ORIGIN_PATTERN, RATE_LIMIT_SCOPES,
    TARGET_GROUPS, TARGET_GROUP_RULE, TARGET_KIND, TARGET_KINDS, TOKEN_PATTERN,
};
use super::schema::{
    cidr_list_schema, date_time_schema, duration_schema, header_edits_schema, header_names_schema,
    retry_on_schema,
};

/// Traffic settings for the Ingresses it targets (in its own namespace):
/// rate limits, load balancing, session affinity, timeouts, retries, CORS,
/// header edits, IP allow/deny lists and a request body limit. Every
/// section is optional.
// Clippy reads the two printcolumns' equal `type_ = "string"` as a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tollgate.dev",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    namespaced,
    status = "TrafficPolicyStatus",
    derive = "PartialEq",
    shortname = "tp",
    category = "tollgate",
    doc = "Traffic settings (rate limits, load balancing, session affinity, timeouts, retries, CORS, header edits, IP lists, body size) for the Ingresses it targets in its namespace.",
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicySpec {
    /// The Ingresses, HTTPRoutes, GRPCRoutes and Gateways (in the policy's namespace)
    /// this policy applies to. When several policies target one object,
    /// the oldest applies.
    #[schemars(schema_with = "target_refs_schema")]
    pub target_refs: Vec<TargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Headers>,
    /// Client addresses or CIDRs allowed; when set, every other client
    /// gets 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "cidr_list_schema")]
    pub ip_allow: Vec<String>,
    /// Client addresses or CIDRs refused with 403 (checked before ipAllow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "cidr_list_schema")]
    pub ip_deny: Vec<String>,
    /// Largest request body accepted, in bytes (larger gets 413); 0 means
    /// no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_request_body_bytes: Option<i64>,
}

/// A reference to an Ingress, HTTPRoute, GRPCRoute or Gateway in the
/// policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": TARGET_GROUP_RULE,
     "message": "kind Ingress is in group networking.k8s.io; HTTPRoute, GRPCRoute and Gateway in gateway.networking.k8s.io"},
]))]
pub struct TargetRef {
    /// `networking.k8s.io` for an Ingress, `gateway.networking.k8s.io`
    /// for an HTTPRoute, a GRPCRoute or a Gateway.
    #[schemars(extend("enum" = TARGET_GROUPS))]
    pub group: String,
    /// `Ingress`, `HTTPRoute`, `GRPCRoute` or `Gateway`.
    #[schemars(extend("enum" = TARGET_KINDS))]
    pub kind: String,
    /// The object's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub name: String,
}

/// What a [`TargetRef`] names, by its group and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TargetKind {
    Ingress,
    HttpRoute,
    GrpcRoute,
    Gateway,
}

impl TargetKind {
    /// The kind as written in `targetRefs[].kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Ingress => TARGET_KIND,
            TargetKind::HttpRoute => TARGET_KINDS[1],
            TargetKind::GrpcRoute => TARGET_KINDS[2],
            TargetKind::Gateway => TARGET_KINDS[3],
        }
    }
}

impl TargetRef {
    /// The kind of object named, `None` for a group and kind that do not
    /// go together (which [`super::validate`] reports).
    pub fn target_kind(&self) -> Option<TargetKind> {
        let kind = [
            TargetKind::Ingress,
            TargetKind::HttpRoute,
            TargetKind::GrpcRoute,
            TargetKind::Gateway,
        ]
        .into_iter()
        .find(|k| k.as_str() == self.kind)?;
        let group = match kind {
            TargetKind::Ingress => TARGET_GROUPS[0],
            _ => TARGET_GROUPS[1],
        };
        (self.group == group).then_some(kind)
    }
}

/// The schema of `targetRefs`: a map-keyed list, so the API server merges
/// and compares it by (group, kind, name).
fn target_refs_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<TargetRef>();
    json_schema!({
        "type": "array",
        "items": item,
        "minItems": 1,
        "maxItems": MAX_TARGET_REFS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["group", "kind", "name"],
        "description": "The Ingresses, HTTPRoutes and Gateways (in the policy's namespace) this policy applies to. When several policies target one object, the oldest applies."
    })
}

/// Rate limits, per client address: per replica, or (`scope: Global`)
/// the request rate across every replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.scope) || self.scope != 'Global' || has(self.requestsPerSecond) || has(self.requestsPerMinute)",
     "message": "scope Global needs requestsPerSecond or requestsPerMinute"},
    {"rule": "!(has(self.requestsPerSecond) && has(self.requestsPerMinute))",
     "message": "set requestsPerSecond or requestsPerMinute, not both"},
    {"rule": "!has(self.burst) || has(self.requestsPerSecond) || has(self.requestsPerMinute)",
     "message": "burst needs requestsPerSecond or requestsPerMinute"},
    {"rule": "has(self.requestsPerSecond) || has(self.requestsPerMinute) || has(self.connections)",
     "message": "set requestsPerSecond, requestsPerMinute or connections"},
]))]
pub struct RateLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RATE))]
    pub requests_per_second: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RATE))]
    pub requests_per_minute: Option<i64>,
    /// Requests allowed at once from a client whose budget is full
    /// (default: the rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RATE))]
    pub burst: Option<i64>,
    /// Concurrent connections per client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_RATE))]
    pub connections: Option<i64>,
    /// `Local` (default): the request rate is counted per replica.
    /// `Global`: counted across every replica in the global rate limit
    /// store (`--global-rate-limit-store`). `connections` stays per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = RATE_LIMIT_SCOPES))]
    pub scope: Option<String>,
}

/// How requests are spread over the backends' endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.algorithm != 'consistent-hash' || has(self.hashBy)",
     "message": "hashBy is required when algorithm is consistent-hash"},
    {"rule": "!has(self.hashBy) || self.algorithm == 'consistent-hash'",
     "message": "hashBy applies only to algorithm consistent-hash"},
]))]
pub struct LoadBalancer {
    /// `round-robin`, `p2c-ewma` or `consistent-hash`.
    #[schemars(extend("enum" = ALGORITHMS))]
    pub algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_by: Option<HashBy>,
}

/// The consistent-hash key: exactly one of the three.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + ((has(self.clientIP) && self.clientIP) ? 1 : 0) == 1",
     "message": "set exactly one of header, cookie or clientIP: true"},
]))]
pub struct HashBy {
    /// A request header's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), regex(pattern = TOKEN_PATTERN))]
    pub header: Option<String>,
    /// A request cookie's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), regex(pattern = TOKEN_PATTERN))]
    pub cookie: Option<String>,
    /// The client address.
    #[serde(rename = "clientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<bool>,
}

/// Sticky sessions through a cookie naming the endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// The cookie's name (default `INGRESSCOOKIE`, as ingress-nginx).
    #[serde(default = "default_cookie_name")]
    #[schemars(length(max = 256), regex(pattern = TOKEN_PATTERN))]
    pub cookie_name: String,
    /// The cookie's lifetime (`Max-Age`); unset: a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub max_age: Option<String>,
    /// The cookie's `Path` (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = COOKIE_PATH_PATTERN))]
    pub path: Option<String>,
    /// `balanced`: a new endpoint set may move sessions to keep the load
    /// even; `persistent`: sessions stay while their endpoint lives.
    #[serde(default = "default_affinity_mode")]
    #[schemars(extend("enum" = AFFINITY_MODES))]
    pub mode: String,
}

/// Upstream timeouts, as durations (`5s`, `1m30s`, `250ms`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Establishing a connection to an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub connect: Option<String>,
    /// From sending the request to the response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub response_headers: Option<String>,
    /// An idle upstream keep-alive connection is closed after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_schema")]
    pub idle: Option<String>,
}

/// Retries of failed requests on another endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Retries after the first attempt (0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = MAX_RETRY_ATTEMPTS))]
    pub attempts: Option<i64>,
    /// What is retried: `connect-failure`, `5xx`, `timeout`. (Not `on`:
    /// YAML 1.1 parsers, kubectl's included, read an unquoted `on` key as
    /// the boolean `true`.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "retry_on_schema")]
    pub retry_on: Vec<String>,
    /// Percent of requests that may be retries (0..100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub budget: Option<i64>,
}

/// Cross-origin resource sharing: answers preflights and adds the
/// `Access-Control-*` headers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// `*` or `https://host[:port]` (`https://*.example.com` for subdomains).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = ORIGIN_PATTERN)))]
    pub allow_origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = TOKEN_PATTERN)))]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = TOKEN_PATTERN)))]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = TOKEN_PATTERN)))]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// How long a preflight may be cached, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_age: Option<i64>,
}

/// Header edits on the requests sent to the backends and on their
/// responses, applied in the order set, add, remove (as the Gateway API's
/// RequestHeaderModifier and ResponseHeaderModifier). Hop-by-hop headers,
/// Host and Content-Length cannot be edited.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Headers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderModifier>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderModifier>,
}

/// Edits of one message's headers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct HeaderModifier {
    /// Headers set, replacing any value they had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "header_edits_schema")]
    pub set: Vec<HeaderEdit>,
    /// Headers added: a further value beside any the header had.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "header_edits_schema")]
    pub add: Vec<HeaderEdit>,
    /// Header names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "header_names_schema")]
    pub remove: Vec<String>,
}

/// A header and its value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct HeaderEdit {
    pub name: String,
    pub value: String,
}

/// What the controller reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TrafficPolicyStatus {
    /// `Accepted` (True, or False with reason Invalid, TargetNotFound or
    /// Conflicted), written by the leader.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["type"]
    ))]
    pub conditions: Vec<Condition>,
}

/// The standard `metav1.Condition` shape.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    #[schemars(length(max = 32768))]
    pub message: String,
    /// The `metadata.generation` this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When `status` last changed.
    #[schemars(schema_with = "date_time_schema")]
    pub last_transition_time: Time,
}

fn default_cookie_name() -> String {
    DEFAULT_COOKIE_NAME.to_string()
}

fn default_affinity_mode() -> String {
    AFFINITY_MODES[0].to_string()
}

/// `loadBalancer.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    P2cEwma,
    ConsistentHash,
}

/// `loadBalancer.hashBy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Header(String),
    Cookie(String),
    ClientIp,
}

/// `sessionAffinity.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityMode {
    Balanced,
    Persistent,
}

/// One of `retries.retryOn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    ConnectFailure,
    Status5xx,
    Timeout,
}

/// `rateLimit.requestsPerSecond` or `requestsPerMinute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    PerSecond(u32),
    PerMinute(u32),
}

fn parse_duration_opt(value: Option<&String>) -> Option<Duration> {
    value.and_then(|v| parse_duration(v).ok())
}

fn cidrs(values: &[String]) -> Vec<IpNet> {
    values.iter().filter_map(|v| parse_cidr(v).ok()).collect()
}

fn u32_of(value: Option<i64>) -> Option<u32> {
    value.and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0)
}

impl TrafficPolicySpec {
    /// Whether `targetRefs` names this Ingress (in the policy's namespace).
    pub fn targets(&self, ingress_name: &str) -> bool {
        self.target_refs
            .iter()
            .any(|t| t.name == ingress_name && t.target_kind() == Some(TargetKind::Ingress))
    }

    /// `ipAllow` as networks (entries that do not parse are left out;
    /// [`super::validate`] reports them).
    pub fn ip_allow(&self) -> Vec<IpNet> {
        cidrs(&self.ip_allow)
    }

    /// `ipDeny` as networks (see [`Self::ip_allow`]).
    pub fn ip_deny(&self) -> Vec<IpNet> {
        cidrs(&self.ip_deny)
    }

    /// `maxRequestBodyBytes`; `None` when unset, 0 or negative (no limit).
    pub fn max_request_body_bytes(&self) -> Option<u64> {
        self.max_request_body_bytes
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v > 0)
    }
}

impl RateLimit {
    /// The request rate, if one is set (and valid).
    pub fn rate(&self) -> Option<Rate> {
        match (
            u32_of(self.requests_per_second),
            u32_of(self.requests_per_minute),
        ) {
            (Some(rps), None) => Some(Rate::PerSecond(rps)),
            (None, Some(rpm)) => Some(Rate::PerMinute(rpm)),
            _ => None,
        }
    }

    pub fn burst(&self) -> Option<u32> {
        u32_of(self.burst)
    }

    pub fn connections(&self) -> Option<u32> {
        u32_of(self.connections)
    }

    /// `scope: Global`.
    pub fn is_global(&self) -> bool {
        self.scope.as_deref() == Some("Global")
    }
}

impl LoadBalancer {
    pub fn algorithm(&self) -> Option<Algorithm> {
        match self.algorithm.as_str() {
            "round-robin" => Some(Algorithm::RoundRobin),
            "p2c-ewma" => Some(Algorithm::P2cEwma),
            "consistent-hash" => Some(Algorithm::ConsistentHash),
            _ => None,
        }
    }

    /// The hash key (set, and only, for consistent-hash).
    pub fn hash_key(&self) -> Option<HashKey> {
        let h = self.hash_by.as_ref()?;
        match (&h.header, &h.cookie, h.client_ip == Some(true)) {
            (Some(name), None, false) => Some(HashKey::Header(name.to_ascii_lowercase())),
            (None, Some(name), false) => Some(HashKey::Cookie(name.clone())),
            (None, None, true) => Some(HashKey::ClientIp),
            _ => None,
        }
    }
}

impl SessionAffinity {
    pub fn mode(&self) -> Option<AffinityMode> {
        match self.mode.as_str() {
            "balanced" => Some(AffinityMode::Balanced),
            "persistent" => Some(AffinityMode::Persistent),
            _ => None,
        }
    }

    pub fn max_age(&self) -> Option<Duration> {
        parse_duration_opt(self.max_age.as_ref())
    }
}

impl Timeouts {
    pub fn connect(&self) -> Option<Duration> {
        parse_duration_opt(self.connect.as_ref())
    }

    pub fn response_headers(&self) -> Option<Duration> {
        parse_duration_opt(self.response_headers.as_ref())
    }

    pub fn idle(&self) -> Option<Duration> {
        parse_duration_opt(self.idle.as_ref())
    }
}

impl Retries {
    pub fn attempts(&self) -> Option<u32> {
        self.attempts
            .filter(|a| (0..=MAX_RETRY_ATTEMPTS).contains(a))
            .and_then(|a| u32::try_from(a).ok())
    }

    /// `retryOn`, parsed (unknown entries are left out).
    pub fn conditions(&self) -> Vec<RetryOn> {
        self.retry_on
            .iter()
            .filter_map(|c| match c.as_str() {
                "connect-failure" => Some(RetryOn::ConnectFailure),
                "5xx" => Some(RetryOn::Status5xx),
                "timeout" => Some(RetryOn::Timeout),
                _ => None,
            })
            .collect()
    }

    /// `budget` as a percentage (0..=100).
    pub fn budget(&self) -> Option<u8> {
        self.budget
            .filter(|b| (0..=100).contains(b))
            .and_then(|b| u8::try_from(b).ok())
    }
}

impl TrafficPolicyStatus {
    /// The `Accepted` condition, if any.
    pub fn accepted(&self) -> Option<&Condition> {
        self.conditions
            .iter()
            .find(|c| c.type_ == CONDITION_ACCEPTED)
    }
}
