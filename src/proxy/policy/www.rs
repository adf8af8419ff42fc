//! `from-to-www-redirect`: the host the annotation adds (`www.` + the
//! rule's host, or the rule's host without `www.`) answers every request
//! with a 308 to the rule's host, as ingress-nginx's redirect server:
//! `$scheme://<host>:$server_port$request_uri`, a trailing `/` of the
//! request target dropped.
//!
//! Invariant: allocates only the `Location`; a `Location` that is not a
//! header value is a 500, never a redirect somewhere else.

use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;

use super::exchange::{fixed, Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::phases::WwwRedirect;

impl RequestStep for WwwRedirect {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        let scheme = if cx.conn.client.tls { "https" } else { "http" };
        let port = cx.conn.client.port.to_str().unwrap_or("");
        let target = req.uri().path_and_query().map_or("", |p| p.as_str());
        let target = target.strip_suffix('/').unwrap_or(target);
        let location = format!("{scheme}://{}:{port}{target}", self.0);
        let Ok(location) = HeaderValue::try_from(location) else {
            return Err(ProxyError::Internal(
                "www redirect location not a header value",
            ));
        };
        Ok(Flow::Answer(fixed(
            StatusCode::PERMANENT_REDIRECT,
            Some(&location),
        )))
    }
}
