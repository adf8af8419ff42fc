//! Request header rules: `X-Forwarded-Prefix`. (`upstream-vhost` is part
//! of forwarding: the Host header is set when the request is prepared.)
//!
//! Invariant: header values are pre-built by the compiler.

use http::header::HeaderName;
use http::Request;
use hyper::body::Incoming;

use super::exchange::{Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::phases::ForwardedPrefix;

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
