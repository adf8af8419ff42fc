//! The weighted backend choice of a Gateway rule (`backendRefs`): one
//! choice per request, drawn by weight.
//!
//! Invariants:
//! - Only chooses (the upstream id and the choice whose header edits apply
//!   later); the endpoint is chosen when forwarding.
//! - A choice without a valid upstream, and a rule with no weight at all
//!   (no backendRefs, or all weights 0), answer 500 as the Gateway API
//!   specifies; never another backend.

use http::Request;
use hyper::body::Incoming;

use super::exchange::{Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::policy::Backends;

impl RequestStep for Backends {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        _req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if self.total == 0 {
            return Err(ProxyError::Internal("route has no backend"));
        }
        let Some(choice) = self.choose(fastrand::u32(..self.total)) else {
            return Err(ProxyError::Internal("route has no backend"));
        };
        let Some(upstream) = choice.upstream else {
            return Err(ProxyError::Internal("backend reference not valid"));
        };
        cx.upstream = upstream;
        cx.choice = Some(choice);
        Ok(Flow::Continue)
    }
}
