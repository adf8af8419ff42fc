//! Client-certificate authentication (`auth-tls-*`), per request, as
//! ingress-nginx's server block does it: verify the connection's
//! certificate against the route's CAs (400, or a 302 to
//! `auth-tls-error-page`), match the subject (`auth-tls-match-cn`, 403),
//! then tell the upstream (`ssl-client-verify`, `ssl-client-subject-dn`,
//! `ssl-client-issuer-dn`, and `ssl-client-cert` when asked).
//!
//! Invariants:
//! - Fail closed: no usable CA is 403 for every request; a request on a
//!   connection whose handshake did not request a certificate (another
//!   SNI, plain HTTP) has none, which `on` refuses; the verdict is the
//!   route's CA's, whatever the SNI was.
//! - The client's own `ssl-client-*` headers never reach the upstream:
//!   they are removed before ours are set (nobody forges an identity).
//! - The chain is verified once per connection (see
//!   [`crate::tls::client_auth::PeerCert`]); the headers are pre-built
//!   values, so a request allocates nothing here beyond header entries.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::exchange::{fixed, Cx, Flow, RequestStep};
use crate::proxy::body::ProxyBody;
use crate::proxy::error::ProxyError;
use crate::table::client_cert::{ClientCert, VerifyClient};
use crate::tls::client_auth::Verdict;

const VERIFY: HeaderName = HeaderName::from_static("ssl-client-verify");
const SUBJECT: HeaderName = HeaderName::from_static("ssl-client-subject-dn");
const ISSUER: HeaderName = HeaderName::from_static("ssl-client-issuer-dn");
const CERT: HeaderName = HeaderName::from_static("ssl-client-cert");

/// Why a request was refused before reaching the match.
#[derive(Clone, Copy)]
enum Refusal {
    /// nginx's 496.
    NoCertificate,
    /// nginx's 495.
    BadCertificate,
}

impl RequestStep for ClientCert {
    async fn run<'a>(
        &'a self,
        cx: &mut Cx<'a>,
        req: &mut Request<Incoming>,
    ) -> Result<Flow, ProxyError> {
        let headers = req.headers_mut();
        for name in [&VERIFY, &SUBJECT, &ISSUER, &CERT] {
            headers.remove(name);
        }
        let Some(verifier) = &self.verifier else {
            return Ok(Flow::Answer(text(
                StatusCode::FORBIDDEN,
                "client certificate authentication is not available",
            )));
        };
        let peer = match self.verify {
            VerifyClient::Off => None,
            _ => cx.conn.client_cert.as_deref(),
        };
        let verdict = peer.map(|p| p.verify(verifier, self.depth));
        let refusal = match (self.verify, verdict) {
            (VerifyClient::On, None) => Some(Refusal::NoCertificate),
            (VerifyClient::On | VerifyClient::Optional, Some(Verdict::Failed(_))) => {
                Some(Refusal::BadCertificate)
            }
            _ => None,
        };
        if let Some(refusal) = refusal {
            return Ok(Flow::Answer(self.refuse(refusal)));
        }
        let details = peer.and_then(|p| p.details());
        if let Some(pattern) = &self.match_cn {
            let subject = details.and_then(|d| d.subject.to_str().ok()).unwrap_or("");
            if !pattern.is_match(subject) {
                return Ok(Flow::Answer(text(
                    StatusCode::FORBIDDEN,
                    "client certificate unauthorized",
                )));
            }
        }
        let headers = req.headers_mut();
        headers.insert(
            VERIFY,
            verdict.map_or(HeaderValue::from_static("NONE"), Verdict::header),
        );
        if let Some(details) = details {
            headers.insert(SUBJECT, details.subject.clone());
            headers.insert(ISSUER, details.issuer.clone());
            if self.pass_certificate {
                headers.insert(CERT, details.escaped_pem.clone());
            }
        }
        Ok(Flow::Continue)
    }
}

impl ClientCert {
    /// 400 with nginx's words, or the error page's 302.
    fn refuse(&self, refusal: Refusal) -> Response<ProxyBody> {
        if let Some(page) = &self.error_page {
            return fixed(StatusCode::FOUND, Some(page));
        }
        text(
            StatusCode::BAD_REQUEST,
            match refusal {
                Refusal::NoCertificate => "400 No required SSL certificate was sent\n",
                Refusal::BadCertificate => "400 The SSL certificate error\n",
            },
        )
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::fixed(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
