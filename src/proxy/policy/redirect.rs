//! Answers of the rewrite phase: `permanent-redirect` and
//! `temporal-redirect` (every request), `app-root` (requests for `/`), and
//! the Gateway RequestRedirect, whose `Location` is computed from the
//! request ([`RedirectTo::location`]).
//!
//! Invariants:
//! - The fixed `Location` values are pre-built by the compiler; those
//!   phases allocate nothing but the response. A computed one allocates
//!   the new `Location` only.
//! - An ACME HTTP-01 challenge (`/.well-known/acme-challenge/`) over HTTP
//!   is never redirected to HTTPS by a computed redirect.
//! - A computed `Location` that is not a valid header value is a 500,
//!   never a redirect somewhere else.

use http::header::HOST;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;

use super::exchange::{fixed, Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::table::phases::AppRoot;
use crate::table::policy::{Redirect, RedirectTo};
use crate::table::{host, path};

impl RequestStep for Redirect {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if !self.absolute {
            return Ok(Flow::Answer(fixed(self.status, Some(&self.location))));
        }
        // nginx's `absolute_redirect on`: a path becomes
        // `$scheme://$host<path>`, the Host as the client sent it.
        let scheme = if cx.conn.client.tls {
            "https://"
        } else {
            "http://"
        };
        let host = request_host(req);
        let path = self.location.as_bytes();
        let mut location = Vec::with_capacity(scheme.len() + host.len() + path.len());
        location.extend_from_slice(scheme.as_bytes());
        location.extend_from_slice(host.as_bytes());
        location.extend_from_slice(path);
        let Ok(location) = HeaderValue::try_from(location) else {
            return Err(ProxyError::Internal("redirect location not a header value"));
        };
        Ok(Flow::Answer(fixed(self.status, Some(&location))))
    }
}

/// The request's host as sent: the target's authority, else `Host`.
fn request_host(req: &Request<Incoming>) -> &str {
    match req.uri().authority() {
        Some(authority) => authority.as_str(),
        None => req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    }
}

impl RequestStep for AppRoot {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if req.uri().path() == "/" {
            // ingress-nginx: `return 302 $scheme://$http_host<app-root>`.
            let scheme = if cx.conn.client.tls {
                "https://"
            } else {
                "http://"
            };
            let host = request_host(req);
            let mut location = String::with_capacity(scheme.len() + host.len() + self.0.len());
            location.push_str(scheme);
            location.push_str(host);
            location.push_str(self.0.to_str().unwrap_or("/"));
            let Ok(location) = HeaderValue::try_from(location) else {
                return Err(ProxyError::Internal("app-root location not a header value"));
            };
            return Ok(Flow::Answer(fixed(StatusCode::FOUND, Some(&location))));
        }
        Ok(Flow::Continue)
    }
}

impl RequestStep for RedirectTo {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        let scheme = if cx.conn.client.tls { "https" } else { "http" };
        // An ACME HTTP-01 challenge is never sent to HTTPS: the route's
        // other phases and backends answer it.
        if scheme == "http"
            && self.scheme.as_deref() == Some("https")
            && path::is_acme_challenge(&path::normalize(req.uri().path()))
        {
            return Ok(Flow::Continue);
        }
        // A path modifier works on the path as matched (normalized), as
        // the rule's prefix was; without one the path is kept as sent.
        let path = match self.path {
            Some(_) => path::normalize(req.uri().path()),
            None => std::borrow::Cow::Borrowed(req.uri().path()),
        };
        // The routed host as the service read it (already checked there):
        // the target's authority, else the Host header; without its port.
        let raw = request_host(req);
        let mut buf = [0u8; host::MAX_HOST_LEN + 2];
        let host = host::normalize(raw, &mut buf).unwrap_or("");
        let location = self.location(scheme, host, &path, req.uri().query());
        let Ok(location) = HeaderValue::try_from(location) else {
            return Err(ProxyError::Internal("redirect location not a header value"));
        };
        Ok(Flow::Answer(fixed(self.status, Some(&location))))
    }
}
