//! `backend-protocol: AUTO_HTTP`: the backend is spoken to with the
//! client's scheme, as ingress-nginx's `proxy_pass $scheme://`. A request
//! that came over TLS goes to the route's HTTPS twin upstream (same
//! Service, port and balancing; its own connections, so a pooled plain
//! connection never carries a TLS client's request); any other request
//! stays on the route's HTTP upstream.
//!
//! Invariants:
//! - Only chooses the upstream; runs before the canary choice and the
//!   `default-backend` fallback, which then see the chosen upstream.
//! - The scheme is the connection's (TLS terminated here), never a
//!   client-supplied header such as `X-Forwarded-Proto`.

use http::Request;
use hyper::body::Incoming;

use super::exchange::{Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::phases::SchemeBackend;

impl RequestStep for SchemeBackend {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        _req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if cx.conn.client.tls {
            cx.upstream = self.0;
        }
        Ok(Flow::Continue)
    }
}
