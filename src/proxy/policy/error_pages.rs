//! `custom-http-errors`: upstream responses with a listed status replaced by
//! the default backend's page for it, with ingress-nginx's headers.
//!
//! Invariants:
//! - What the page request needs of the original request is kept before
//!   the request is rewritten for its upstream (the client's target).
//! - The page keeps the upstream's status; when the default backend fails,
//!   the upstream's own response is kept.

use http::header::{HeaderName, HeaderValue};
use http::{header, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::exchange::{Cx, ErrorPageInfo, Flow, RequestStep, ResponseStep};
use crate::lb::Endpoint;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::h1;
use crate::proxy::forward::plan::{Backend, Pick, Plan};
use crate::proxy::headers::X_REQUEST_ID;
use crate::proxy::upload::UploadBody;
use crate::table::phases::KeepForErrorPage;
use crate::table::policy::CustomErrors;

const X_CODE: HeaderName = HeaderName::from_static("x-code");
const X_FORMAT: HeaderName = HeaderName::from_static("x-format");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_NAMESPACE: HeaderName = HeaderName::from_static("x-namespace");
const X_INGRESS_NAME: HeaderName = HeaderName::from_static("x-ingress-name");
const X_SERVICE_NAME: HeaderName = HeaderName::from_static("x-service-name");
const X_SERVICE_PORT: HeaderName = HeaderName::from_static("x-service-port");

impl RequestStep for KeepForErrorPage {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        cx.error_page = Some(ErrorPageInfo {
            uri: req.uri().clone(),
            accept: req.headers().get(header::ACCEPT).cloned(),
            request_id: req.headers().get(X_REQUEST_ID).cloned(),
        });
        Ok(Flow::Continue)
    }
}

impl ResponseStep for CustomErrors {
    async fn run(&self, cx: &mut Cx<'_>, response: &mut Response<ProxyBody>, _: &Endpoint) {
        let Some(info) = &cx.error_page else {
            return;
        };
        let status = response.status();
        if !self.codes.contains(&status.as_u16()) {
            return;
        }
        let Some(page) = Backend::of(cx.published, self.upstream) else {
            return;
        };
        let served_by = cx.canary.map_or(&cx.route.service, |c| &c.service);
        let ingress = cx.canary.map_or(&cx.route.ingress, |c| &c.ingress);
        if let Some(mut page) =
            error_page_response(page, status, info, ingress, served_by, &cx.plan).await
        {
            *page.status_mut() = status;
            *response = page;
        }
    }
}

/// ingress-nginx's headers for the default backend (all but
/// X-Request-ID): X-Code, X-Format (the client's `Accept`, else
/// `text/html`), X-Original-URI, X-Namespace, X-Ingress-Name,
/// X-Service-Name, X-Service-Port.
pub(super) fn error_headers(
    h: &mut http::HeaderMap,
    status: StatusCode,
    accept: Option<&HeaderValue>,
    uri: &Uri,
    ingress: &str,
    service: &str,
) {
    h.insert(X_CODE, HeaderValue::from(status.as_u16()));
    h.insert(
        X_FORMAT,
        accept
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("text/html")),
    );
    if let Ok(v) = HeaderValue::from_str(&uri.to_string()) {
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
    let mut req = Request::new(UploadBody::empty());
    *req.uri_mut() = info
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    let h = req.headers_mut();
    error_headers(h, status, info.accept.as_ref(), &info.uri, ingress, service);
    if let Some(id) = &info.request_id {
        h.insert(X_REQUEST_ID, id.clone());
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
        timing: None,
        ..*plan
    };
    h1::send(page, req, None, None, &plan)
        .await
        .ok()
        .map(|(r, _)| r)
}
