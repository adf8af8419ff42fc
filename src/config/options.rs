//! [`CompileOptions`]: the settings the compiler reads, which come from
//! flags rather than from Kubernetes objects.
//!
//! Invariants:
//! - Plain, comparable data: equal options and an equal snapshot give an
//!   equal compile.
//! - The current time is an option (`now`), so the compiler has no clock.

use super::annotations::parser::LimitStatuses;
use super::snapshot::ObjectKey;
use crate::table::upstream::PortRef;

/// The default `--gateway-controller-name`.
pub const DEFAULT_GATEWAY_CONTROLLER_NAME: &str = "tollgate.dev/gateway-controller";

/// Settings the compiler reads (from flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    pub ingress_class: String,
    pub controller_name: String,
    /// GatewayClass `spec.controllerName` that selects this controller
    /// (`--gateway-controller-name`).
    pub gateway_controller_name: String,
    /// `--default-backend-service`: served when nothing else matches.
    pub default_backend: Option<(ObjectKey, Option<PortRef>)>,
    /// `--default-certificate`: the TLS Secret for unknown names.
    pub default_certificate: Option<ObjectKey>,
    /// Current time (seconds since the Unix epoch) for certificate expiry
    /// warnings; `None` skips them. Passed in: the compiler has no clock.
    pub now: Option<i64>,
    /// Rejection statuses of the rate and connection limits.
    pub limit_statuses: LimitStatuses,
    /// `--configmap`: ingress-nginx's global settings.
    pub configmap: Option<ObjectKey>,
    /// A global rate limit store is configured; without one, global limits
    /// are counted per replica and reported.
    pub global_rate_limit_store: bool,
    /// `--enable-ssl-passthrough`: `ssl-passthrough` Ingresses are served
    /// by splicing TLS connections; without it they are rejected.
    pub ssl_passthrough: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "tollgate".into(),
            controller_name: "tollgate.dev/ingress-controller".into(),
            gateway_controller_name: DEFAULT_GATEWAY_CONTROLLER_NAME.into(),
            default_backend: None,
            default_certificate: None,
            now: None,
            limit_statuses: LimitStatuses::default(),
            configmap: None,
            global_rate_limit_store: false,
            ssl_passthrough: false,
        }
    }
}
