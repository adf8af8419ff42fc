//! The `TrafficPolicy` custom resource (`tollgate.dev/v1alpha1`): its Rust
//! types, the OpenAPI schema generated from them (`tollgate crd`, committed
//! as `crds/trafficpolicy.yaml`), and [`validate`], which re-checks in Rust
//! everything that schema checks.
//!
//! Invariants:
//! - One source of truth per rule: every pattern is a constant used both in
//!   the schema and by [`validate`]; every bound, enum and CEL rule of the
//!   schema has its twin in [`validate`] (the tests compare them). The API
//!   server enforces the schema in a cluster; standalone mode has no API
//!   server, so the compiler relies on [`validate`] alone.
//! - The Rust types are lenient on purpose: enums, durations and CIDRs are
//!   plain strings and integers are `i64`, so a value the schema would refuse
//!   (an old CRD installed, a manifest file) still deserializes and is
//!   reported by [`validate`] as a field path and a reason, instead of
//!   failing a whole watch or file.
//! - The parsed accessors (`algorithm()`, `connect()`, `ip_allow()`...) are
//!   total: they never panic, and on a spec that [`validate`] accepted they
//!   return a value for every field that is set.
//! - Pure: no IO, no clock.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use regex::Regex;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// `kind` of the resource.
pub const KIND: &str = "TrafficPolicy";
/// The only `targetRefs[].group` accepted.
pub const TARGET_GROUP: &str = "networking.k8s.io";
/// The only `targetRefs[].kind` accepted.
pub const TARGET_KIND: &str = "Ingress";
/// Most `targetRefs` a policy may have.
pub const MAX_TARGET_REFS: usize = 16;
/// `sessionAffinity.cookieName` when unset: ingress-nginx's default, so
/// sessions survive a migration from it.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";
/// The condition type the status writer owns.
pub const CONDITION_ACCEPTED: &str = "Accepted";

/// Load-balancing algorithms (`loadBalancer.algorithm`).
pub const ALGORITHMS: [&str; 3] = ["round-robin", "p2c-ewma", "consistent-hash"];
/// Session affinity modes (`sessionAffinity.mode`).
pub const AFFINITY_MODES: [&str; 2] = ["balanced", "persistent"];
/// Retry conditions (`retries.retryOn[]`).
pub const RETRY_ON: [&str; 3] = ["connect-failure", "5xx", "timeout"];
/// Most retry attempts (`retries.attempts`).
pub const MAX_RETRY_ATTEMPTS: i64 = 10;
/// Upper bound of the rate limit integers (they become `u32`).
pub const MAX_RATE: i64 = u32::MAX as i64;
/// Longest duration string.
pub const MAX_DURATION_LEN: usize = 32;

/// A duration: decimal numbers with a unit, concatenated (`1h30m`, `1.5s`,
/// `250ms`); a subset of Go's `time.ParseDuration` that CEL's `duration()`
/// also reads.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";
/// An HTTP token (RFC 9110): header names, cookie names, methods.
pub const TOKEN_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// An object name (DNS-1123 subdomain).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A cookie `Path`: absolute, printable ASCII without space or `;`.
pub const COOKIE_PATH_PATTERN: &str = r"^/[!-:<-~]*$";
/// A CORS origin: `*`, or `http(s)://host[:port]` where host may start
/// with `*.` or be a bracketed IPv6 literal.
pub const ORIGIN_PATTERN: &str =
    r"^(\*|https?://((\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?)$";

const V4: &str = r"((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const H: &str = "[0-9A-Fa-f]{1,4}";

/// An IPv4 or IPv6 address, optionally with a `/prefix` (CIDR). Written
/// for RE2 (the API server), ECMA/Python (tooling) and Rust alike: no
/// look-around, no back-references.
pub static CIDR_PATTERN: LazyLock<String> = LazyLock::new(|| {
    let v6 = [
        format!("({H}:){{7}}{H}"),
        format!("({H}:){{1,7}}:"),
        format!("({H}:){{1,6}}:{H}"),
        format!("({H}:){{1,5}}(:{H}){{1,2}}"),
        format!("({H}:){{1,4}}(:{H}){{1,3}}"),
        format!("({H}:){{1,3}}(:{H}){{1,4}}"),
        format!("({H}:){{1,2}}(:{H}){{1,5}}"),
        format!("{H}:(:{H}){{1,6}}"),
        format!(":((:{H}){{1,7}}|:)"),
        // IPv4-embedded forms: full, compressed, and `::ffff:a.b.c.d`.
        format!("({H}:){{6}}{V4}"),
        format!("({H}:){{1,5}}:({H}:){{0,4}}{V4}"),
        format!("::({H}:){{0,5}}{V4}"),
    ]
    .join("|");
    format!(r"^(({V4})(/(3[0-2]|[12]?[0-9]))?|({v6})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$")
});

/// A compiled pattern. `None` (a pattern that does not compile, which the
/// tests rule out) matches nothing: validation fails closed.
type Pattern = LazyLock<Option<Regex>>;

static DURATION_RE: Pattern = LazyLock::new(|| Regex::new(DURATION_PATTERN).ok());
static TOKEN_RE: Pattern = LazyLock::new(|| Regex::new(TOKEN_PATTERN).ok());
static NAME_RE: Pattern = LazyLock::new(|| Regex::new(NAME_PATTERN).ok());
static COOKIE_PATH_RE: Pattern = LazyLock::new(|| Regex::new(COOKIE_PATH_PATTERN).ok());
static ORIGIN_RE: Pattern = LazyLock::new(|| Regex::new(ORIGIN_PATTERN).ok());
static CIDR_RE: Pattern = LazyLock::new(|| Regex::new(&CIDR_PATTERN).ok());

fn matches(pattern: &Pattern, text: &str) -> bool {
    pattern.as_ref().is_some_and(|re| re.is_match(text))
}

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

/// Traffic settings for the Ingresses it targets (in its own namespace):
/// rate limits, load balancing, session affinity, timeouts, retries, CORS,
/// IP allow/deny lists and a request body limit. Every section is optional.
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
    doc = "Traffic settings (rate limits, load balancing, session affinity, timeouts, retries, CORS, IP lists, body size) for the Ingresses it targets in its namespace.",
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
    /// The Ingresses (in the policy's namespace) this policy applies to.
    /// When several policies target one Ingress, the oldest applies.
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

/// A reference to an Ingress in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct TargetRef {
    /// Always `networking.k8s.io`.
    #[schemars(extend("enum" = [TARGET_GROUP]))]
    pub group: String,
    /// Always `Ingress`.
    #[schemars(extend("enum" = [TARGET_KIND]))]
    pub kind: String,
    /// The Ingress's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub name: String,
}

/// Local rate limits, per client address.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
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

// ---------------------------------------------------------------------------
// Schemas written by hand (where attributes cannot say it)
// ---------------------------------------------------------------------------

fn target_refs_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<TargetRef>();
    json_schema!({
        "type": "array",
        "items": item,
        "minItems": 1,
        "maxItems": MAX_TARGET_REFS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["group", "kind", "name"],
        "description": "The Ingresses (in the policy's namespace) this policy applies to. When several policies target one Ingress, the oldest applies."
    })
}

fn duration_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": MAX_DURATION_LEN,
        "x-kubernetes-validations": [
            {"rule": "duration(self) > duration('0s')", "message": "must be greater than zero"}
        ]
    })
}

fn cidr_list_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "maxLength": 64, "pattern": CIDR_PATTERN.as_str()}
    })
}

fn retry_on_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": {"type": "string", "enum": RETRY_ON},
        "maxItems": RETRY_ON.len(),
        "x-kubernetes-list-type": "set",
        "description": "What is retried: `connect-failure`, `5xx`, `timeout`."
    })
}

fn date_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date-time"})
}

// ---------------------------------------------------------------------------
// Parsed values
// ---------------------------------------------------------------------------

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

/// Parses a duration of [`DURATION_PATTERN`]. Fractions are exact to the
/// nanosecond (further digits are dropped); anything above Go's limit
/// (about 292 years, `i64` nanoseconds) is refused, as CEL would.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration like 5s, 1m30s or 250ms");
    if text.len() > MAX_DURATION_LEN {
        return Err(format!(
            "`{text}` is longer than {MAX_DURATION_LEN} characters"
        ));
    }
    if !matches(&DURATION_RE, text) {
        return Err(invalid());
    }
    let too_long = || format!("`{text}` is longer than Go's largest duration (about 292 years)");
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let end = f.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
                f.split_at(end)
            }
            None => ("", after),
        };
        let (unit_nanos, after): (u128, &str) = if let Some(a) = after.strip_prefix("ms") {
            (1_000_000, a)
        } else if let Some(a) = after.strip_prefix('s') {
            (1_000_000_000, a)
        } else if let Some(a) = after.strip_prefix('m') {
            (60_000_000_000, a)
        } else if let Some(a) = after.strip_prefix('h') {
            (3_600_000_000_000, a)
        } else {
            return Err(invalid());
        };
        // Leading zeros cannot overflow; more than 30 significant digits
        // is far beyond the limit anyway.
        let digits = int_part.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(too_long());
        }
        let whole: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| invalid())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // The fraction, to the nanosecond: unit_nanos * 0.frac.
        let mut scale = unit_nanos;
        for d in frac_part.bytes().take(20) {
            scale /= 10;
            nanos += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        if total > i64::MAX as u128 {
            return Err(too_long());
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_long())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, nanos))
}

/// Parses an address or CIDR of [`CIDR_PATTERN`]. A bare address is a
/// single-address network; host bits in a CIDR are cleared
/// (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let invalid = || format!("`{text}` is not an IP address or CIDR (10.0.0.0/8, 2001:db8::/32)");
    if !matches(&CIDR_RE, text) {
        return Err(invalid());
    }
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| invalid())
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
            .any(|t| t.name == ingress_name && t.group == TARGET_GROUP && t.kind == TARGET_KIND)
    }

    /// `ipAllow` as networks (entries that do not parse are left out;
    /// [`validate`] reports them).
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

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Collects (field path, reason) pairs.
struct Problems(Vec<(String, String)>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push((field.into(), reason.into()));
    }

    fn range(&mut self, field: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            if v < min || v > max {
                self.push(field, format!("{v} is not in {min}..{max}"));
            }
        }
    }

    fn pattern(&mut self, field: String, value: &str, re: &Pattern, max_len: usize, what: &str) {
        if value.len() > max_len {
            self.push(field, format!("longer than {max_len} characters"));
        } else if !matches(re, value) {
            self.push(field, format!("`{value}` is not {what}"));
        }
    }

    fn one_of(&mut self, field: String, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.push(
                field,
                format!("`{value}` is not one of {}", allowed.join(", ")),
            );
        }
    }

    fn duration(&mut self, field: &str, value: Option<&String>) {
        if let Some(v) = value {
            match parse_duration(v) {
                Ok(d) if d.is_zero() => self.push(field, "must be greater than zero"),
                Ok(_) => {}
                Err(reason) => self.push(field, reason),
            }
        }
    }
}

/// Every problem the CRD schema (patterns, bounds, enums and CEL rules)
/// would refuse, as (field path like `spec.ipAllow[2]`, reason). Empty
/// means valid.
pub fn validate(spec: &TrafficPolicySpec) -> Vec<(String, String)> {
    let mut p = Problems(Vec::new());
    if spec.target_refs.is_empty() {
        p.push("spec.targetRefs", "at least one target is required");
    } else if spec.target_refs.len() > MAX_TARGET_REFS {
        p.push(
            "spec.targetRefs",
            format!("at most {MAX_TARGET_REFS} targets"),
        );
    }
    for (i, t) in spec.target_refs.iter().enumerate() {
        p.one_of(
            format!("spec.targetRefs[{i}].group"),
            &t.group,
            &[TARGET_GROUP],
        );
        p.one_of(
            format!("spec.targetRefs[{i}].kind"),
            &t.kind,
            &[TARGET_KIND],
        );
        if t.name.is_empty() {
            p.push(format!("spec.targetRefs[{i}].name"), "required");
        } else {
            p.pattern(
                format!("spec.targetRefs[{i}].name"),
                &t.name,
                &NAME_RE,
                253,
                "a valid object name (lowercase DNS-1123 subdomain)",
            );
        }
        if spec.target_refs[..i].contains(t) {
            p.push(
                format!("spec.targetRefs[{i}]"),
                format!("duplicate target Ingress `{}`", t.name),
            );
        }
    }
    if let Some(r) = &spec.rate_limit {
        for (name, v) in [
            ("requestsPerSecond", r.requests_per_second),
            ("requestsPerMinute", r.requests_per_minute),
            ("burst", r.burst),
            ("connections", r.connections),
        ] {
            p.range(&format!("spec.rateLimit.{name}"), v, 1, MAX_RATE);
        }
        if r.requests_per_second.is_some() && r.requests_per_minute.is_some() {
            p.push(
                "spec.rateLimit",
                "set requestsPerSecond or requestsPerMinute, not both",
            );
        }
        if r.burst.is_some() && r.requests_per_second.is_none() && r.requests_per_minute.is_none() {
            p.push(
                "spec.rateLimit.burst",
                "burst needs requestsPerSecond or requestsPerMinute",
            );
        }
        if r.requests_per_second.is_none()
            && r.requests_per_minute.is_none()
            && r.connections.is_none()
        {
            p.push(
                "spec.rateLimit",
                "set requestsPerSecond, requestsPerMinute or connections",
            );
        }
    }
    if let Some(lb) = &spec.load_balancer {
        p.one_of(
            "spec.loadBalancer.algorithm".into(),
            &lb.algorithm,
            &ALGORITHMS,
        );
        let consistent = lb.algorithm == "consistent-hash";
        match &lb.hash_by {
            None if consistent => p.push(
                "spec.loadBalancer.hashBy",
                "required when algorithm is consistent-hash",
            ),
            None => {}
            Some(_) if !consistent => p.push(
                "spec.loadBalancer.hashBy",
                "applies only to algorithm consistent-hash",
            ),
            Some(h) => {
                let set = usize::from(h.header.is_some())
                    + usize::from(h.cookie.is_some())
                    + usize::from(h.client_ip == Some(true));
                if set != 1 {
                    p.push(
                        "spec.loadBalancer.hashBy",
                        "set exactly one of header, cookie or clientIP: true",
                    );
                }
            }
        }
        if let Some(h) = &lb.hash_by {
            if let Some(v) = &h.header {
                p.pattern(
                    "spec.loadBalancer.hashBy.header".into(),
                    v,
                    &TOKEN_RE,
                    256,
                    "a header name",
                );
            }
            if let Some(v) = &h.cookie {
                p.pattern(
                    "spec.loadBalancer.hashBy.cookie".into(),
                    v,
                    &TOKEN_RE,
                    256,
                    "a cookie name",
                );
            }
        }
    }
    if let Some(s) = &spec.session_affinity {
        p.pattern(
            "spec.sessionAffinity.cookieName".into(),
            &s.cookie_name,
            &TOKEN_RE,
            256,
            "a cookie name",
        );
        p.duration("spec.sessionAffinity.maxAge", s.max_age.as_ref());
        if let Some(path) = &s.path {
            p.pattern(
                "spec.sessionAffinity.path".into(),
                path,
                &COOKIE_PATH_RE,
                1024,
                "an absolute cookie path (printable, no spaces or `;`)",
            );
        }
        p.one_of("spec.sessionAffinity.mode".into(), &s.mode, &AFFINITY_MODES);
    }
    if let Some(t) = &spec.timeouts {
        p.duration("spec.timeouts.connect", t.connect.as_ref());
        p.duration("spec.timeouts.responseHeaders", t.response_headers.as_ref());
        p.duration("spec.timeouts.idle", t.idle.as_ref());
    }
    if let Some(r) = &spec.retries {
        p.range("spec.retries.attempts", r.attempts, 0, MAX_RETRY_ATTEMPTS);
        p.range("spec.retries.budget", r.budget, 0, 100);
        for (i, on) in r.retry_on.iter().enumerate() {
            p.one_of(format!("spec.retries.retryOn[{i}]"), on, &RETRY_ON);
            if r.retry_on[..i].contains(on) {
                p.push(
                    format!("spec.retries.retryOn[{i}]"),
                    format!("duplicate `{on}`"),
                );
            }
        }
    }
    if let Some(c) = &spec.cors {
        for (i, o) in c.allow_origins.iter().enumerate() {
            p.pattern(
                format!("spec.cors.allowOrigins[{i}]"),
                o,
                &ORIGIN_RE,
                usize::MAX,
                "`*` or an origin like https://example.com[:port]",
            );
        }
        for (name, list, what) in [
            ("allowMethods", &c.allow_methods, "an HTTP method"),
            ("allowHeaders", &c.allow_headers, "a header name"),
            ("exposeHeaders", &c.expose_headers, "a header name"),
        ] {
            for (i, v) in list.iter().enumerate() {
                p.pattern(
                    format!("spec.cors.{name}[{i}]"),
                    v,
                    &TOKEN_RE,
                    usize::MAX,
                    what,
                );
            }
        }
        p.range("spec.cors.maxAge", c.max_age, 0, i64::MAX);
    }
    for (name, list) in [("ipAllow", &spec.ip_allow), ("ipDeny", &spec.ip_deny)] {
        for (i, v) in list.iter().enumerate() {
            let field = format!("spec.{name}[{i}]");
            if v.len() > 64 {
                p.push(field, "longer than 64 characters");
            } else if let Err(reason) = parse_cidr(v) {
                p.push(field, reason);
            }
        }
    }
    p.range(
        "spec.maxRequestBodyBytes",
        spec.max_request_body_bytes,
        0,
        i64::MAX,
    );
    p.0
}

/// The command that regenerates the committed CRD.
pub const REGENERATE: &str = "cargo run -- crd > crds/trafficpolicy.yaml";

/// The CustomResourceDefinition, as `tollgate crd` prints it (and
/// `crds/trafficpolicy.yaml` holds it).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let body = serde_yaml::to_string(&TrafficPolicy::crd())?;
    Ok(format!(
        "# Generated from src/crd.rs by `tollgate crd`; do not edit.\n# Regenerate: {REGENERATE}\n{body}"
    ))
}

#[cfg(test)]
mod tests;
