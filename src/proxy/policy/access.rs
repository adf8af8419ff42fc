//! The access phase: client-IP allow and deny lists.
//!
//! Invariant: a client not permitted is refused (403) before anything is
//! sent upstream; the lists only exist in valid form (the compiler rejects
//! an unparsable one).

use http::Request;
use hyper::body::Incoming;

use super::exchange::{Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::policy::AccessList;

impl RequestStep for AccessList {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        _req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if !self.permits(cx.client) {
            return Err(ProxyError::Forbidden);
        }
        Ok(Flow::Continue)
    }
}
