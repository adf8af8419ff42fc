//! Gateway API objects (`gateway.networking.k8s.io`) as plain serde types:
//! GatewayClass, Gateway, HTTPRoute, GRPCRoute and ReferenceGrant, with the
//! fields tollgate reads.
//!
//! Hand-written rather than the `gateway-api` crate: that crate is built on
//! another kube/k8s-openapi major version (two copies of both in the build)
//! and asks for a newer compiler than our `rust-version`; the fields read
//! here are few and stable (standard channel, v1).
//!
//! Invariants:
//! - Lenient types, strict compiler: enums stay strings and numbers `i64`,
//!   so any value the API server could hold parses; [`crate::config`]
//!   decides what a value means and reports what it does not support.
//! - Nothing unknown is dropped silently: a field these types do not know
//!   is recorded in the object's `unknown_fields` (by the provider that
//!   parsed it) and the compiler reports it as a warning. `status` is known
//!   and never read (it is ours to write).
//! - Pure data: no behaviour here but defaults and small accessors.

pub mod gateway;
pub mod grant;
pub mod route;

pub use gateway::{Gateway, GatewayClass, Listener};
pub use grant::ReferenceGrant;
pub use route::{GrpcRoute, HttpRoute};

/// The API group of every Gateway API kind.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The version read for GatewayClass, Gateway, HTTPRoute and GRPCRoute.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// ReferenceGrant is read as `v1` and as `v1beta1` (the same schema).
pub const REFERENCE_GRANT_VERSIONS: [&str; 2] = [
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
];

pub const GATEWAY_CLASS_KIND: &str = "GatewayClass";
pub const GATEWAY_KIND: &str = "Gateway";
pub const HTTP_ROUTE_KIND: &str = "HTTPRoute";
pub const GRPC_ROUTE_KIND: &str = "GRPCRoute";
pub const REFERENCE_GRANT_KIND: &str = "ReferenceGrant";
/// The route kinds an HTTP or HTTPS listener accepts.
pub const ROUTE_KINDS: [&str; 2] = [HTTP_ROUTE_KIND, GRPC_ROUTE_KIND];

/// Whether a `group` field names the Gateway API group (unset means it for
/// parent references; see each use).
pub fn is_gateway_group(group: Option<&str>) -> bool {
    group.is_none_or(|g| g == GROUP)
}

/// Whether a `group` field names the core group (unset or `""`).
pub fn is_core_group(group: Option<&str>) -> bool {
    group.is_none_or(str::is_empty)
}
