//! CORS: preflights answered in the rewrite phase, response headers for an
//! allowed origin.
//!
//! Two semantics (see [`Cors::nginx`]): the Fetch one (TrafficPolicy,
//! HTTPRoute) and ingress-nginx's (the annotations), where every response
//! of the route, answers of later phases included (a basic-auth 401), gets
//! the headers once the origin is allowed.
//!
//! Invariants:
//! - Nothing is added for an origin not allowed (the browser then refuses).
//! - `*` is sent only for any-origin without credentials; otherwise the
//!   origin is echoed (browsers refuse `*` with credentials) with
//!   `Vary: Origin`.
//! - Header values are pre-built by the compiler.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::exchange::{fixed, Cx, Flow, RequestStep, ResponseStep};
use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::table::policy::{Cors, CorsOrigins};

impl RequestStep for Cors {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        cx.origin = req.headers().get(header::ORIGIN).cloned();
        if self.nginx {
            return Ok(nginx_request(self, cx, req.method()));
        }
        if let Some(origin) = &cx.origin {
            if req.method() == Method::OPTIONS
                && req
                    .headers()
                    .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
            {
                let mut response = fixed(StatusCode::NO_CONTENT, None);
                preflight_headers(self, origin, response.headers_mut());
                return Ok(Flow::Answer(response));
            }
        }
        Ok(Flow::Continue)
    }
}

impl ResponseStep for Cors {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        if self.nginx {
            on_answer(cx, response);
            return;
        }
        if let Some(origin) = &cx.origin {
            response_cors_headers(self, origin, response.headers_mut());
        }
    }
}

/// ingress-nginx: decides whether the route's responses get the headers
/// (`cx.cors`) and answers any `OPTIONS` from an allowed origin.
fn nginx_request<'a>(cors: &'a Cors, cx: &mut Cx<'a>, method: &Method) -> Flow {
    let allowed = match (&cors.origins, &cx.origin) {
        (CorsOrigins::Any, _) => true,
        (origins, Some(origin)) => origin
            .to_str()
            .is_ok_and(|origin| origins.allows_nginx(origin)),
        (_, None) => false,
    };
    if !allowed {
        return Flow::Continue;
    }
    cx.cors = Some(cors);
    if method != Method::OPTIONS {
        return Flow::Continue;
    }
    // The pipeline adds the CORS headers to every answer ([`on_answer`]).
    let mut response = fixed(StatusCode::NO_CONTENT, None);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain charset=UTF-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Flow::Answer(response)
}

/// ingress-nginx: the CORS headers on a response of a route whose request
/// was allowed (an upstream response or a phase's answer); nothing
/// otherwise. Any-origin sends `*`, a listed origin is echoed.
pub(super) fn on_answer<B>(cx: &Cx<'_>, response: &mut Response<B>) {
    let Some(cors) = cx.cors else { return };
    let headers = response.headers_mut();
    match (&cors.origins, &cx.origin) {
        (CorsOrigins::List(_), Some(origin)) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        _ => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        cors.allow_methods.clone(),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        cors.allow_headers.clone(),
    );
    if let Some(expose) = &cors.expose_headers {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
}

fn preflight_headers(cors: &Cors, origin: &HeaderValue, headers: &mut HeaderMap) {
    if !allow_origin(cors, origin, headers) {
        return;
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        cors.allow_methods.clone(),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        cors.allow_headers.clone(),
    );
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
}

fn response_cors_headers(cors: &Cors, origin: &HeaderValue, headers: &mut HeaderMap) {
    if !allow_origin(cors, origin, headers) {
        return;
    }
    if let Some(expose) = &cors.expose_headers {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

/// Sets Allow-Origin (and Allow-Credentials) when the origin is allowed.
/// `*` is sent only for any-origin without credentials; otherwise the
/// origin is echoed (browsers refuse `*` with credentials) with
/// `Vary: Origin`.
fn allow_origin(cors: &Cors, origin: &HeaderValue, headers: &mut HeaderMap) -> bool {
    let Ok(origin_str) = origin.to_str() else {
        return false;
    };
    if !cors.origins.allows(origin_str) {
        return false;
    }
    let any = matches!(cors.origins, CorsOrigins::Any);
    if any && !cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cors.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    true
}
