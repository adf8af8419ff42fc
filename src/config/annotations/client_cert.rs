//! Client-certificate annotations (`auth-tls-*`), with ingress-nginx's
//! values and defaults: the Secret (resolved later by the compiler, which
//! has the Secrets), `auth-tls-verify-client` (default `on`),
//! `auth-tls-verify-depth` (default 1), `auth-tls-error-page`,
//! `auth-tls-pass-certificate-to-upstream`, `auth-tls-match-cn`.
//!
//! Invariant: fail closed. Any `auth-tls-*` without `auth-tls-secret`, or a
//! `auth-tls-match-cn` that is not a valid regular expression, rejects the
//! Ingress; an unknown `auth-tls-verify-client` is `on`; an unusable error
//! page is ignored (the failure answers 400 instead).

use std::sync::Arc;

use http::HeaderValue;
use regex::Regex;

use super::parser::{Parser, NGINX};
use crate::table::client_cert::VerifyClient;

/// The annotations asking for client certificates.
const ANNOTATIONS: [&str; 6] = [
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-tls-error-page",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-match-cn",
];

/// Client-certificate authentication as asked: the compiler resolves the
/// Secret into the table's [`crate::table::client_cert::ClientCert`].
#[derive(Debug, Clone)]
pub struct ClientCertSpec {
    /// `auth-tls-secret` as written: `namespace/name` or `name`.
    pub secret: String,
    pub verify: VerifyClient,
    pub depth: u8,
    pub error_page: Option<HeaderValue>,
    pub pass_certificate: bool,
    pub match_cn: Option<Arc<Regex>>,
}

impl Parser<'_> {
    pub(super) fn client_cert(&mut self) -> Option<ClientCertSpec> {
        let secret_name = format!("{NGINX}auth-tls-secret");
        let Some(secret) = self.get(&secret_name).filter(|s| !s.is_empty()) else {
            for suffix in &ANNOTATIONS[1..] {
                let name = format!("{NGINX}{suffix}");
                if self.get(&name).is_some() {
                    self.reject(
                        &name,
                        "needs auth-tls-secret (the CAs client certificates are verified against); the Ingress is not served without its client authentication",
                    );
                }
            }
            return None;
        };
        let verify_name = format!("{NGINX}auth-tls-verify-client");
        let verify = match self.get(&verify_name) {
            None => VerifyClient::On,
            Some(value) => VerifyClient::parse(value).unwrap_or_else(|| {
                self.warn(
                    &verify_name,
                    format!("`{value}` is not on, off, optional or optional_no_ca; using on"),
                );
                VerifyClient::On
            }),
        };
        let depth_name = format!("{NGINX}auth-tls-verify-depth");
        let depth = match self.get(&depth_name) {
            None => 1,
            Some(value) => match value.parse::<u8>() {
                Ok(0) => 1,
                Ok(depth) => depth,
                Err(_) => {
                    self.warn(
                        &depth_name,
                        format!("`{value}` is not a depth from 1 to 255; using 1"),
                    );
                    1
                }
            },
        };
        let page_name = format!("{NGINX}auth-tls-error-page");
        let error_page = self.get(&page_name).and_then(|page| {
            let valid = (page.starts_with("http://") || page.starts_with("https://"))
                && page.parse::<http::Uri>().is_ok();
            match HeaderValue::from_str(page).ok().filter(|_| valid) {
                Some(value) => Some(value),
                None => {
                    self.warn(
                        &page_name,
                        format!("`{page}` is not an http(s) URL; failures answer 400"),
                    );
                    None
                }
            }
        });
        let pass_certificate = self
            .flag("auth-tls-pass-certificate-to-upstream")
            .unwrap_or(false);
        let cn_name = format!("{NGINX}auth-tls-match-cn");
        let match_cn = match self.get(&cn_name).filter(|p| !p.is_empty()) {
            None => None,
            Some(pattern) => {
                if !pattern.starts_with("CN=") {
                    self.reject(&cn_name, format!("`{pattern}` must start with CN="));
                    return None;
                }
                match regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                {
                    Ok(re) => Some(Arc::new(re)),
                    Err(e) => {
                        self.reject(&cn_name, format!("not a valid regular expression: {e}"));
                        return None;
                    }
                }
            }
        };
        Some(ClientCertSpec {
            secret: secret.to_string(),
            verify,
            depth,
            error_page,
            pass_certificate,
            match_cn,
        })
    }
}
