//! Header rules: `X-Forwarded-Prefix` on the request; the header edits of a
//! route (Gateway Request/ResponseHeaderModifier, TrafficPolicy `headers`)
//! and of the chosen weighted backend (backendRef filters), on the request
//! as it will be sent and on the upstream's response. (`upstream-vhost` is
//! part of forwarding: the Host header is set when the request is
//! prepared.)
//!
//! Invariants:
//! - Header names and values are pre-built by the compiler; applying edits
//!   clones them and allocates nothing else.
//! - Request edits run on the prepared request, after the forwarding
//!   headers are set: what they say is what the upstream gets.

use http::header::HeaderName;
use http::{Request, Response};
use hyper::body::Incoming;

use super::exchange::{Cx, Flow, RequestStep, ResponseStep, UpstreamStep};
use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::prepare::Prepared;
use crate::table::phases::{BackendHeaders, ForwardedPrefix};
use crate::table::policy::HeaderEdits;

const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

impl RequestStep for ForwardedPrefix {
    async fn run<'a>(
        &'a self,
        _cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        req.headers_mut().insert(X_FORWARDED_PREFIX, self.0.clone());
        Ok(Flow::Continue)
    }
}

impl UpstreamStep for HeaderEdits {
    async fn run(&self, _cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        self.apply(prepared.req.headers_mut());
        Ok(Flow::Continue)
    }
}

impl ResponseStep for HeaderEdits {
    async fn run(&self, _cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        self.apply(response.headers_mut());
    }
}

impl UpstreamStep for BackendHeaders {
    async fn run(&self, cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        if let Some(edits) = cx.choice.and_then(|c| c.request_headers.as_deref()) {
            edits.apply(prepared.req.headers_mut());
        }
        Ok(Flow::Continue)
    }
}

impl ResponseStep for BackendHeaders {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        if let Some(edits) = cx.choice.and_then(|c| c.response_headers.as_deref()) {
            edits.apply(response.headers_mut());
        }
    }
}
