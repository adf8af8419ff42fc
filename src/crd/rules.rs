//! The rules the `TrafficPolicy` schema and [`super::validate`] share:
//! names, enums, bounds and patterns, each stated once.
//!
//! Invariants:
//! - One source of truth per rule: the generated schema and the Rust
//!   validation both read these constants, never a copy of them (the tests
//!   compare the two).
//! - Every pattern is written for RE2 (the API server), ECMA/Python
//!   (tooling) and Rust alike: no look-around, no back-references.
//! - Pure data: no IO, no clock.

use std::sync::LazyLock;

/// `apiVersion` of the resource.
pub const API_VERSION: &str = "tollgate.dev/v1alpha1";
/// `kind` of the resource.
pub const KIND: &str = "TrafficPolicy";
/// `targetRefs[].group` of an Ingress target.
pub const TARGET_GROUP: &str = "networking.k8s.io";
/// `targetRefs[].kind` of an Ingress target.
pub const TARGET_KIND: &str = "Ingress";
/// `targetRefs[].group` of a Gateway API target.
pub const GATEWAY_TARGET_GROUP: &str = "gateway.networking.k8s.io";
/// The `targetRefs[].group` values accepted.
pub const TARGET_GROUPS: [&str; 2] = [TARGET_GROUP, GATEWAY_TARGET_GROUP];
/// The `targetRefs[].kind` values accepted.
pub const TARGET_KINDS: [&str; 4] = [TARGET_KIND, "HTTPRoute", "GRPCRoute", "Gateway"];
/// The CEL rule tying a target's kind to its group (Ingress is
/// `networking.k8s.io`, HTTPRoute, GRPCRoute and Gateway
/// `gateway.networking.k8s.io`).
pub const TARGET_GROUP_RULE: &str =
    "(self.kind == 'Ingress') == (self.group == 'networking.k8s.io')";
/// Most `targetRefs` a policy may have.
pub const MAX_TARGET_REFS: usize = 16;
/// `sessionAffinity.cookieName` when unset: ingress-nginx's default, so
/// sessions survive a migration from it.
pub const DEFAULT_COOKIE_NAME: &str = "INGRESSCOOKIE";
/// The condition type the status writer owns.
pub const CONDITION_ACCEPTED: &str = "Accepted";

/// Load-balancing algorithms (`loadBalancer.algorithm`).
pub const ALGORITHMS: [&str; 3] = ["round-robin", "p2c-ewma", "consistent-hash"];
/// Rate limit scopes (`rateLimit.scope`): per replica, or across all of
/// them in the global rate limit store.
pub const RATE_LIMIT_SCOPES: [&str; 2] = ["Local", "Global"];
/// Session affinity modes (`sessionAffinity.mode`).
pub const AFFINITY_MODES: [&str; 2] = ["balanced", "persistent"];
/// Retry conditions (`retries.retryOn[]`).
pub const RETRY_ON: [&str; 3] = ["connect-failure", "5xx", "timeout"];
/// Most retry attempts (`retries.attempts`).
pub const MAX_RETRY_ATTEMPTS: i64 = 10;
/// Upper bound of the rate limit integers (they become `u32`).
pub const MAX_RATE: i64 = u32::MAX as i64;
/// Most entries of each `headers.*.set`, `add` and `remove` list (as the
/// Gateway API's header modifiers).
pub const MAX_HEADER_EDITS: usize = 16;
/// Longest header value in `headers.*.set` and `add`.
pub const MAX_HEADER_VALUE_LEN: usize = 4096;
/// Headers `headers` may not edit (lowercase): the connection-specific
/// ones (they never cross a hop), `Host` (routing) and `Content-Length`
/// (framing).
pub const REFUSED_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];
/// Longest duration string.
pub const MAX_DURATION_LEN: usize = 32;

/// A duration: decimal numbers with a unit, concatenated (`1h30m`, `1.5s`,
/// `250ms`); a subset of Go's `time.ParseDuration` that CEL's `duration()`
/// also reads.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";
/// An HTTP token (RFC 9110): header names, cookie names, methods.
pub const TOKEN_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// A header value: visible ASCII, spaces and tabs (no control characters,
/// so no line breaks).
pub const HEADER_VALUE_PATTERN: &str = r"^[\t -~]*$";
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
