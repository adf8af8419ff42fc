//! Authentication phases: Basic (htpasswd) on the client's request, external
//! authentication (`auth-url`) on the request as it will be sent, and the
//! auth answer's cookies on the client's response (as ingress-nginx's
//! `add_header Set-Cookie $auth_cookie`, `always` with
//! `auth-always-set-cookie`).
//!
//! Invariants:
//! - Fail closed: credentials that cannot be checked are refused, and
//!   external authentication without a client or an answer is a 500, never
//!   an allow.
//! - A bcrypt verification not in the success cache runs on the blocking
//!   pool: it costs milliseconds and must not stall the worker's other
//!   connections.

use http::header::{self, HeaderMap};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::exchange::{fixed, Cx, Flow, RequestStep, ResponseStep, UpstreamStep};
use crate::auth::external::client::Decision;
use crate::auth::external::ExternalAuth;
use crate::auth::htpasswd::CachedCheck;
use crate::auth::template::RequestVars;
use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::prepare::Prepared;
use crate::proxy::upload::UploadBody;
use crate::table::phases::AuthCookies;
use crate::table::policy::BasicAuth;

impl RequestStep for BasicAuth {
    async fn run<'a>(
        &'a self,
        _cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        if self.unavailable {
            return Ok(Flow::Answer(fixed(StatusCode::SERVICE_UNAVAILABLE, None)));
        }
        if basic_auth_ok(self, req.headers()).await {
            return Ok(Flow::Continue);
        }
        let mut response = fixed(StatusCode::UNAUTHORIZED, None);
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        Ok(Flow::Answer(response))
    }
}

impl UpstreamStep for ExternalAuth {
    async fn run(&self, cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        let Some(auth_client) = &cx.conn.state.auth_client else {
            return Err(ProxyError::Internal(
                "no client for external authentication",
            ));
        };
        let req = std::mem::replace(&mut prepared.req, Request::new(UploadBody::empty()));
        let (mut parts, body) = req.into_parts();
        let scheme = if cx.conn.client.tls { "https" } else { "http" };
        let decision = {
            let vars = RequestVars::new(&parts, scheme, cx.client);
            self.check_at(auth_client, &parts, &vars, &cx.route.path)
                .await
        };
        match decision {
            Decision::Allow(headers) => {
                // Only the listed names go upstream; the cookies go to the
                // client (the response phase below).
                cx.auth_cookies
                    .extend(headers.get_all(header::SET_COOKIE).iter().cloned());
                self.apply_allowed(headers, &mut parts.headers)
            }
            Decision::Deny(response) => return Ok(Flow::Answer(response.map(ProxyBody::fixed))),
        }
        prepared.req = Request::from_parts(parts, body);
        Ok(Flow::Continue)
    }
}

/// The auth answer's cookies on the client's response: on the statuses of
/// nginx's `add_header` (2xx success and redirects), or on every status
/// with `auth-always-set-cookie`.
impl ResponseStep for AuthCookies {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        if cx.auth_cookies.is_empty() {
            return;
        }
        let status = response.status().as_u16();
        let add_header = matches!(
            status,
            200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308
        );
        if add_header || self.0.always_set_cookie() {
            for cookie in cx.auth_cookies.drain(..) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
    }
}

/// Checks Basic credentials (see the module invariants).
async fn basic_auth_ok(basic: &BasicAuth, headers: &HeaderMap) -> bool {
    let authorization = headers.get(header::AUTHORIZATION);
    match basic.users.check_header_cached(authorization) {
        CachedCheck::Decided(ok) => ok,
        CachedCheck::Slow => {
            let users = basic.users.clone();
            let value = authorization.cloned();
            tokio::task::spawn_blocking(move || users.check_header(value.as_ref()))
                .await
                .unwrap_or(false)
        }
    }
}
