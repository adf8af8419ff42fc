//! The request path of routes with a policy (annotations, TrafficPolicy):
//! the steps between routing and forwarding, and after the response.
//!
//! Order, as nginx's phases run ingress-nginx's configuration: fixed
//! redirects, `app-root` and CORS preflights (rewrite phase) → rate and
//! connection limits (preaccess: they also slow down password guessing) →
//! access lists (403) → basic authentication (401) → canary choice and
//! request headers → external authentication (sees the request as sent) →
//! rewrite → forward (with the route's timeouts, retries, body limit,
//! affinity or hashing) → custom error pages, CORS and affinity headers on
//! the response.
//!
//! Invariants:
//! - Only routes whose policy is not plain come here; the plain path in
//!   [`super::service`] pays nothing for any of this.
//! - Every step that can refuse runs before anything is sent upstream, and
//!   a step that cannot decide refuses (fail closed).
//! - No lock: limiters are lock-free, the policy is immutable.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue, COOKIE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::error::ProxyError;
use super::listener::ConnCtx;
use super::forward::h1::send;
use super::forward::{dispatch, prepare_upstream, Backend, Pick, Plan};
use crate::auth::external::Decision;
use crate::auth::htpasswd::CachedCheck;
use crate::auth::template::RequestVars;
use crate::lb::{stable_hash, Endpoint, StableHasher};
use crate::runtime::Published;
use crate::table::policy::{
    AffinityMode, BasicAuth, Canary, CanaryMatch, Cors, HashPart, RoutePolicy,
};
use crate::table::{path, Route, RouteId};

const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_CODE: HeaderName = HeaderName::from_static("x-code");
const X_FORMAT: HeaderName = HeaderName::from_static("x-format");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");
const X_INGRESS_NAME: HeaderName = HeaderName::from_static("x-ingress-name");
const X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
const X_SERVICE_PORT: HeaderName = HeaderName::from_static("x-service-port");

/// What served a routed request.
pub struct Served {
    pub response: Response<ProxyBody>,
    pub endpoint: Option<Arc<Endpoint>>,
}

/// Serves a request on a route with a policy.
pub async fn serve(
    ctx: &ConnCtx,
    published: &Published,
    route_id: RouteId,
    route: &Route,
    mut req: Request<Incoming>,
) -> Result<Served, ProxyError> {
    let policy = &*route.policy;
    let client = client_ip(ctx, req.headers());

    if let Some(redirect) = &policy.redirect {
        return Ok(fixed(redirect.status, Some(&redirect.location)));
    }
    if let Some(root) = &policy.app_root {
        if req.uri().path() == "/" {
            return Ok(fixed(StatusCode::FOUND, Some(root)));
        }
    }
    let origin = policy
        .cors
        .as_ref()
        .and_then(|_| req.headers().get(header::ORIGIN).cloned());
    if let (Some(cors), Some(origin)) = (&policy.cors, &origin) {
        if req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut served = fixed(StatusCode::NO_CONTENT, None);
            preflight_headers(cors, origin, served.response.headers_mut());
            return Ok(served);
        }
    }
    let limits = published.route_limits.get(route_id as usize);
    let permit = match limits {
        Some(limits) if !policy.limit_exempt.iter().any(|n| n.contains(&client)) => {
            if let (Some(limiter), Some(spec)) = (&limits.rate, &policy.rate) {
                if let Err(wait) = limiter.check(client) {
                    ctx.state.metrics.limited_rate.inc();
                    return Ok(limited(spec.status, Some(wait)));
                }
            }
            match (&limits.connections, &policy.connections) {
                (Some(limiter), Some(spec)) => match limiter.acquire(client) {
                    Some(permit) => Some(permit),
                    None => {
                        ctx.state.metrics.limited_connections.inc();
                        return Ok(limited(spec.status, None));
                    }
                },
                _ => None,
            }
        }
        _ => None,
    };

    if let Some(access) = &policy.access {
        if !access.permits(client) {
            return Err(ProxyError::Forbidden);
        }
    }
    if let Some(basic) = &policy.basic_auth {
        if !basic_auth_ok(basic, req.headers()).await {
            let mut served = fixed(StatusCode::UNAUTHORIZED, None);
            served
                .response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, basic.challenge.clone());
            return Ok(served);
        }
    }
    // The canary takes the request when its header, cookie or weight say so.
    let (upstream_id, canary) = match route.canary.as_deref() {
        Some(canary) if use_canary(canary, req.headers()) => (canary.upstream, Some(canary)),
        _ => (route.upstream, None),
    };
    let Some(mut backend) = Backend::of(published, upstream_id) else {
        return Err(ProxyError::NoEndpoints);
    };
    if let Some(fallback) = policy.fallback {
        if backend.upstream.endpoints().endpoints.is_empty() {
            if let Some(b) = Backend::of(published, fallback) {
                backend = b;
            }
        }
    }

    if let Some(prefix) = &policy.forwarded_prefix {
        req.headers_mut().insert(X_FORWARDED_PREFIX, prefix.clone());
    }
    // Kept for the custom error page request.
    let error_page = policy.custom_errors.as_ref().map(|_| ErrorPageInfo {
        uri: req.uri().clone(),
        accept: req.headers().get(header::ACCEPT).cloned(),
        request_id: req.headers().get(super::headers::X_REQUEST_ID).cloned(),
    });

    let (pick, new_cookie) = choose(policy, client, &req);
    let settings = &ctx.state.settings;
    let plan = Plan {
        connect_timeout: policy.timeouts.connect.unwrap_or(settings.connect_timeout),
        idle_timeout: policy
            .timeouts
            .idle
            .unwrap_or(settings.upstream_idle_timeout),
        read_timeout: policy.timeouts.read.unwrap_or(settings.response_timeout),
        send_timeout: policy.timeouts.send.unwrap_or(settings.response_timeout),
        max_body: policy.max_body,
        retry: policy.retry.as_ref(),
        pick,
        host: policy.upstream_vhost.as_ref(),
    };
    let mut prepared = prepare_upstream(ctx, req, &plan)?;
    if let Some(auth) = &policy.external_auth {
        let Some(auth_client) = &ctx.state.auth_client else {
            return Err(ProxyError::Internal(
                "no client for external authentication",
            ));
        };
        let (mut parts, body) = prepared.req.into_parts();
        let scheme = if ctx.client.tls { "https" } else { "http" };
        let decision = {
            let vars = RequestVars::new(&parts, scheme, client);
            auth.check(auth_client, &parts, &vars).await
        };
        match decision {
            Decision::Allow(headers) => auth.apply_allowed(headers, &mut parts.headers),
            Decision::Deny(response) => {
                return Ok(Served {
                    response: response.map(ProxyBody::fixed),
                    endpoint: None,
                })
            }
        }
        prepared.req = Request::from_parts(parts, body);
    }
    // Last: the auth service, error pages and hashing see the request as
    // the client sent it (`$request_uri`), the upstream the rewritten one.
    if let Some(rewrite) = &policy.rewrite {
        rewrite_path(&mut prepared.req, &rewrite.pattern, &rewrite.target)?;
    }
    let (mut response, endpoint) = dispatch(backend, prepared, &plan).await?;

    if let (Some(errors), Some(info)) = (&policy.custom_errors, &error_page) {
        let status = response.status();
        if errors.codes.contains(&status.as_u16()) {
            if let Some(page) = Backend::of(published, errors.upstream) {
                let served_by = canary.map_or(&route.service, |c| &c.service);
                let ingress = canary.map_or(&route.ingress, |c| &c.ingress);
                if let Some(mut page) =
                    error_page_response(page, status, info, ingress, served_by, &plan).await
                {
                    *page.status_mut() = status;
                    response = page;
                }
            }
        }
    }
    if let (Some(cors), Some(origin)) = (&policy.cors, &origin) {
        response_cors_headers(cors, origin, response.headers_mut());
    }
    if let Some(affinity) = &policy.affinity {
        let value = match (affinity.mode, new_cookie) {
            (AffinityMode::Balanced, Some(key)) => Some(key),
            (AffinityMode::Persistent, _) if Pick::Sticky(endpoint.sticky_id) != pick => {
                Some(format!("{:016x}", endpoint.sticky_id))
            }
            _ => None,
        };
        if let Some(value) = value {
            let mut cookie = format!(
                "{}={value}; Path={}; HttpOnly",
                affinity.cookie,
                affinity.path.as_deref().unwrap_or("/")
            );
            if let Some(age) = affinity.max_age {
                cookie.push_str(&format!("; Max-Age={age}"));
            }
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    if let Some(permit) = permit {
        response = response.map(|b| b.with_permit(permit));
    }
    Ok(Served {
        response,
        endpoint: Some(endpoint),
    })
}

/// Checks Basic credentials. A bcrypt verification not in the success
/// cache runs on the blocking pool: it costs milliseconds and must not
/// stall the worker's other connections.
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

/// The client IP limits and access lists apply to.
fn client_ip(ctx: &ConnCtx, headers: &HeaderMap) -> IpAddr {
    ctx.client_ip(headers)
}

fn fixed(status: StatusCode, location: Option<&HeaderValue>) -> Served {
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = status;
    if let Some(location) = location {
        response
            .headers_mut()
            .insert(header::LOCATION, location.clone());
    }
    Served {
        response,
        endpoint: None,
    }
}

/// A limit's rejection; `Retry-After` (whole seconds, at least 1) when the
/// wait is known.
fn limited(status: StatusCode, wait: Option<std::time::Duration>) -> Served {
    let body: &'static [u8] = if status == StatusCode::TOO_MANY_REQUESTS {
        b"429 Too Many Requests\n"
    } else {
        b"503 Service Temporarily Unavailable\n"
    };
    let mut response = Response::new(ProxyBody::fixed(Bytes::from_static(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(wait) = wait {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    Served {
        response,
        endpoint: None,
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

/// The value of cookie `name` in the request's Cookie header(s).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// How the first endpoint is chosen: affinity cookie, hash key, or the
/// upstream's algorithm. Returns a new balanced-affinity key to set as the
/// cookie when the request had none.
fn choose(policy: &RoutePolicy, client: IpAddr, req: &Request<Incoming>) -> (Pick, Option<String>) {
    if let Some(affinity) = &policy.affinity {
        let existing = cookie(req.headers(), &affinity.cookie);
        return match affinity.mode {
            AffinityMode::Persistent => {
                match existing.and_then(|v| u64::from_str_radix(v, 16).ok()) {
                    Some(id) => (Pick::Sticky(id), None),
                    None => (Pick::Balanced, None),
                }
            }
            AffinityMode::Balanced => match existing.filter(|v| !v.is_empty() && v.len() <= 64) {
                Some(key) => (Pick::Hash(stable_hash(&[key.as_bytes()])), None),
                None => {
                    let key = format!("{:032x}", fastrand::u128(..));
                    (Pick::Hash(stable_hash(&[key.as_bytes()])), Some(key))
                }
            },
        };
    }
    if let Some(key) = &policy.hash_by {
        let mut h = StableHasher::new();
        for part in &key.parts {
            match part {
                HashPart::Literal(s) => h.write(s.as_bytes()),
                HashPart::RemoteAddr => match client {
                    IpAddr::V4(ip) => h.write(&ip.octets()),
                    IpAddr::V6(ip) => h.write(&ip.octets()),
                },
                HashPart::RequestUri => h.write(
                    req.uri()
                        .path_and_query()
                        .map_or(b"/".as_slice(), |p| p.as_str().as_bytes()),
                ),
                HashPart::Header(name) => h.write(
                    req.headers()
                        .get(name)
                        .map_or(b"".as_slice(), |v| v.as_bytes()),
                ),
                HashPart::Cookie(name) => {
                    h.write(cookie(req.headers(), name).unwrap_or("").as_bytes())
                }
            }
        }
        return (Pick::Hash(h.finish()), None);
    }
    (Pick::Balanced, None)
}

/// nginx `rewrite PATTERN TARGET break`: the whole path becomes the target
/// with `$N` replaced by capture N; the query string is kept.
fn rewrite_path<B>(
    req: &mut Request<B>,
    pattern: &regex::Regex,
    target: &str,
) -> Result<(), ProxyError> {
    let normalized = path::normalize(req.uri().path());
    let Some(caps) = pattern.captures(&normalized) else {
        return Ok(());
    };
    let mut out = String::with_capacity(target.len() + normalized.len());
    let mut chars = target.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' {
            let braced = chars.peek().is_some_and(|(_, c)| *c == '{');
            if braced {
                chars.next();
            }
            let mut n = String::new();
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            if braced && chars.peek().is_some_and(|(_, c)| *c == '}') {
                chars.next();
            }
            match n.parse::<usize>() {
                Ok(i) => out.push_str(caps.get(i).map_or("", |m| m.as_str())),
                Err(_) => out.push('$'),
            }
        } else {
            out.push(c);
        }
    }
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    if let Some(query) = req.uri().query() {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(query);
    }
    let uri: Uri = out
        .parse()
        .map_err(|_| ProxyError::BadRequest("rewritten path is not a valid request target"))?;
    *req.uri_mut() = uri;
    Ok(())
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
    let any = matches!(cors.origins, crate::table::policy::CorsOrigins::Any);
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

/// What the custom error page request needs of the original request.
struct ErrorPageInfo {
    uri: Uri,
    accept: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
}

/// Asks the default backend for the page of `status`, with ingress-nginx's
/// headers (X-Code, X-Format, X-Original-URI, X-Namespace, X-Ingress-Name,
/// X-Service-Name, X-Service-Port, X-Request-ID). `None` when it fails:
/// the upstream's own response is kept.
async fn error_page_response(
    page: Backend<'_>,
    status: StatusCode,
    info: &ErrorPageInfo,
    ingress: &str,
    service: &str,
    plan: &Plan<'_>,
) -> Option<Response<ProxyBody>> {
    let mut req = Request::new(super::upload::UploadBody::empty());
    *req.uri_mut() = info
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    let h = req.headers_mut();
    h.insert(X_CODE, HeaderValue::from(status.as_u16()));
    h.insert(
        X_FORMAT,
        info.accept
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static("text/html")),
    );
    if let Ok(v) = HeaderValue::from_str(&info.uri.to_string()) {
        h.insert(X_ORIGINAL_URI, v);
    }
    let (namespace, name) = ingress.split_once('/').unwrap_or(("", ingress));
    let service_name = service.split_once('/').map_or(service, |(_, s)| s);
    let (svc, port) = service_name.rsplit_once(':').unwrap_or((service_name, ""));
    for (header, value) in [
        (X_NAMESPACE, namespace),
        (X_INGRESS_NAME, name),
        (X_SERVICE_NAME, svc),
        (X_SERVICE_PORT, port),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header, v);
        }
    }
    if let Some(id) = &info.request_id {
        h.insert(super::headers::X_REQUEST_ID, id.clone());
    }
    h.insert(
        http::header::HOST,
        HeaderValue::from_static("default-backend"),
    );
    let plan = Plan {
        retry: None,
        pick: Pick::Balanced,
        host: None,
        max_body: None,
        ..*plan
    };
    send(page, req, None, None, &plan)
        .await
        .ok()
        .map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_across_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; b=2"));
        h.append(COOKIE, HeaderValue::from_static("c=\"3\""));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
    }
}
