//! Fixed answers of the rewrite phase: `permanent-redirect` and
//! `temporal-redirect` (every request), `app-root` (requests for `/`).
//!
//! Invariant: the `Location` values are pre-built by the compiler; these
//! phases allocate nothing but the response.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::exchange::{fixed, Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::phases::AppRoot;
use crate::table::policy::Redirect;

impl RequestStep for Redirect {
    async fn run<'a>(
        &'a self,
        _cx: &mut Cx<'a>,
        _req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        Ok(Flow::Answer(fixed(self.status, Some(&self.location))))
    }
}

impl RequestStep for AppRoot {
    async fn run<'a>(
        &'a self,
        _cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if req.uri().path() == "/" {
            return Ok(Flow::Answer(fixed(StatusCode::FOUND, Some(&self.0))));
        }
        Ok(Flow::Continue)
    }
}
