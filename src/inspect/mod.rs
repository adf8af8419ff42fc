//! What the control plane shows to readers outside the request path: the
//! admin endpoints `/debug/routes` and `/debug/diagnostics`, and the
//! admission webhook, which compiles the current objects with one changed.
//!
//! Invariants:
//! - Written only by the publisher ([`crate::publisher`]), once per
//!   recompile, right after the [`Published`] state it describes: one
//!   `ArcSwap::store` of a whole [`Inspect`], never modified after.
//! - Never read on the request path: the proxy does not import this module.
//! - The snapshot is the publisher's as it was compiled, shared, not
//!   copied (its maps are persistent): storing it costs O(1), and later
//!   changes never reach it.
//! - A diagnostic's `since` is when that diagnostic (object, field, reason)
//!   was first seen by this process and has stood in every compile since;
//!   a diagnostic that goes away and comes back starts again.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::gateway::status::GatewayApiStatus;
use crate::config::{CompileOptions, Diagnostic, LastGood, Snapshot};
use crate::state::Published;
use report::Report;

pub mod report;

/// The control plane's state after one recompile, as the debug endpoints
/// and the admission webhook read it.
#[derive(Debug, Default)]
pub struct Inspect {
    /// The generation of the [`Published`] state this describes (0: none).
    pub generation: u64,
    /// The objects that were compiled.
    pub snapshot: Snapshot,
    /// What the compile handed on (fed to a webhook compile, which then
    /// reuses the memoized endpoint resolutions).
    pub last_good: Arc<LastGood>,
    /// The options the table was compiled with (without the clock).
    pub options: Option<CompileOptions>,
    /// The state the proxy serves from.
    pub published: Arc<Published>,
    /// Current diagnostics (source and compiler) with their first-seen time.
    pub diagnostics: Vec<Tracked>,
    /// The Gateway API statuses of the compile.
    pub gateway_status: GatewayApiStatus,
}

/// A diagnostic and since when it has stood.
#[derive(Debug, Clone, Serialize)]
pub struct Tracked {
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
    /// RFC 3339, UTC, seconds.
    pub since: String,
    /// The same instant in seconds since the Unix epoch.
    #[serde(rename = "sinceUnix")]
    pub since_unix: u64,
}

impl Tracked {
    pub fn new(diagnostic: Diagnostic, since: SystemTime) -> Self {
        Self {
            diagnostic,
            since: humantime::format_rfc3339_seconds(since).to_string(),
            since_unix: since
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

/// What identifies a diagnostic across recompiles: everything but where
/// the object was read from (an edit above it moves its line).
pub type DiagnosticKey = (&'static str, String, String, String, String);

/// The key of `d`.
pub fn diagnostic_key(d: &Diagnostic) -> DiagnosticKey {
    (
        d.kind,
        d.namespace.clone(),
        d.name.clone(),
        d.field.clone(),
        d.reason.clone(),
    )
}

impl Inspect {
    /// The routing table as `tollgate check --output json` prints it, with
    /// the endpoints the proxy currently balances over.
    pub fn routes_report(&self) -> Report {
        let published = &self.published;
        Report::new(
            &published.table,
            |upstream| {
                published
                    .upstreams
                    .get(upstream)
                    .map(|u| {
                        u.endpoints()
                            .endpoints
                            .iter()
                            .map(|e| e.addr.to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            },
            self.diagnostics
                .iter()
                .map(|t| t.diagnostic.clone())
                .collect(),
            &self.gateway_status,
        )
    }
}
