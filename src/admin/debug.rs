//! `/debug/routes` and `/debug/diagnostics`: what the control plane
//! compiled, as JSON, for `kubectl port-forward` and `curl`.
//!
//! Invariants:
//! - Read-only views of the last [`Inspect`] the publisher stored; serving
//!   them never touches the request path's state beyond loading it.
//! - `/debug/routes` is exactly the report `tollgate check --output json`
//!   prints ([`crate::check::Report`]), with the endpoints the proxy
//!   balances over right now.

use serde::Serialize;

use crate::inspect::{Inspect, Tracked};

/// The body of `/debug/diagnostics`.
#[derive(Serialize)]
struct Diagnostics<'a> {
    /// The table generation these come from.
    generation: u64,
    diagnostics: &'a [Tracked],
}

/// `/debug/routes`: the check report of the published table.
pub fn routes(inspect: &Inspect) -> serde_json::Result<Vec<u8>> {
    let mut body = inspect.routes_report().to_json()?.into_bytes();
    body.push(b'\n');
    Ok(body)
}

/// `/debug/diagnostics`: every current diagnostic with since when it stands.
pub fn diagnostics(inspect: &Inspect) -> serde_json::Result<Vec<u8>> {
    let mut body = serde_json::to_vec_pretty(&Diagnostics {
        generation: inspect.generation,
        diagnostics: &inspect.diagnostics,
    })?;
    body.push(b'\n');
    Ok(body)
}
