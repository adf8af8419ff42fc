//! Upstream choice before forwarding: the canary (by header, cookie or
//! weight, as ingress-nginx decides) and the `default-backend` fallback.
//!
//! With session affinity on the route, the affinity cookie decides first,
//! as ingress-nginx's balancer does: a client with the main backend's
//! cookie stays there, one with the canary's (`affinity-canary-behavior:
//! sticky`, the default) stays on the canary.
//!
//! Invariant: these phases only choose an upstream id; the endpoint is
//! chosen when forwarding.

use http::{HeaderMap, Request};
use hyper::body::Incoming;

use super::affinity::cookie;
use super::error_pages::error_headers;
use super::exchange::{Cx, Flow, RequestStep};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::plan::Backend;
use crate::table::phases::Fallback;
use crate::table::policy::{Canary, CanaryMatch, CANARY_COOKIE_MARK};

impl RequestStep for Canary {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        // ingress-nginx's balancer: a request affinitized to the main
        // backend stays there; one affinitized to the canary (sticky)
        // goes there; only others are shaped by header, cookie, weight.
        if let Some(affinity) = &cx.route.policy.affinity {
            let existing = cookie(req.headers(), &affinity.cookie).filter(|v| !v.is_empty());
            match existing.map(|v| v.ends_with(CANARY_COOKIE_MARK)) {
                Some(true) if self.sticky => {
                    cx.upstream = self.upstream;
                    cx.canary = Some(self);
                    return Ok(Flow::Continue);
                }
                Some(false) => return Ok(Flow::Continue),
                _ => {}
            }
        }
        if use_canary(self, req.headers()) {
            cx.upstream = self.upstream;
            cx.canary = Some(self);
        }
        Ok(Flow::Continue)
    }
}

impl RequestStep for Fallback {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        let Some(chosen) = Backend::of(cx.published, cx.upstream) else {
            return Err(ProxyError::NoEndpoints);
        };
        if chosen.upstream.endpoints().endpoints.is_empty()
            && Backend::of(cx.published, self.0).is_some()
        {
            cx.upstream = self.0;
            // As ingress-nginx: the default backend learns why (503) and
            // for what, as for a custom error page.
            let served_by = cx.canary.map_or(&cx.route.service, |c| &c.service);
            let ingress = cx.canary.map_or(&cx.route.ingress, |c| &c.ingress);
            let uri = req.uri().clone();
            let (accept, headers) = {
                let h = req.headers_mut();
                (h.get(http::header::ACCEPT).cloned(), h)
            };
            error_headers(
                headers,
                http::StatusCode::SERVICE_UNAVAILABLE,
                accept.as_ref(),
                &uri,
                ingress,
                served_by,
            );
        }
        Ok(Flow::Continue)
    }
}

/// Header → cookie → weight, as ingress-nginx decides.
fn use_canary(canary: &Canary, headers: &HeaderMap) -> bool {
    if let Some(by_header) = &canary.header {
        if let Some(value) = headers.get(&by_header.name) {
            match &by_header.matcher {
                CanaryMatch::AlwaysNever => {
                    if value == "always" {
                        return true;
                    }
                    if value == "never" {
                        return false;
                    }
                }
                CanaryMatch::Value(wanted) => {
                    if value == wanted {
                        return true;
                    }
                }
                CanaryMatch::Pattern(pattern) => {
                    if value.to_str().is_ok_and(|v| pattern.is_match(v)) {
                        return true;
                    }
                }
            }
        }
    }
    if let Some(name) = &canary.cookie {
        match cookie(headers, name) {
            Some("always") => return true,
            Some("never") => return false,
            _ => {}
        }
    }
    canary.weight > 0 && fastrand::u32(..canary.weight_total) < canary.weight
}
