//! Authentication annotations: `auth-type: basic` with its Secret
//! (resolved later by the compiler, which has the Secrets) and external
//! authentication (`auth-url` and friends), built here into the table's
//! own [`ExternalAuth`].
//!
//! Invariant: fail closed. An authentication setting that cannot be
//! honoured rejects the Ingress; an `auth-url` that does not parse also
//! leaves a policy that refuses every request, should it ever be served.

use std::sync::Arc;

use super::parser::{Parser, NGINX};
use http::HeaderValue;

use crate::auth::external::cache::CacheSpec;
use crate::auth::external::{ExternalAuth, DEFAULT_TIMEOUT};

/// Basic authentication as asked: where the users are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuthSpec {
    /// Secret name, in the Ingress's namespace.
    pub secret: String,
    /// `auth-file` (key `auth` holds an htpasswd file) or `auth-map`.
    pub map: bool,
    pub realm: String,
}

impl Parser<'_> {
    pub(super) fn basic_auth(&mut self) -> Option<BasicAuthSpec> {
        let type_name = format!("{NGINX}auth-type");
        let kind = self.get(&type_name)?;
        if kind != "basic" {
            self.reject(
                &type_name,
                format!("`{kind}`: only basic authentication is supported; the Ingress is not served without its authentication"),
            );
            return None;
        }
        let secret_name = format!("{NGINX}auth-secret");
        let Some(secret) = self.get(&secret_name) else {
            self.reject(&secret_name, "auth-type basic needs auth-secret");
            return None;
        };
        let map = match self.get(&format!("{NGINX}auth-secret-type")) {
            None | Some("auth-file") => false,
            Some("auth-map") => true,
            Some(other) => {
                self.reject(
                    &format!("{NGINX}auth-secret-type"),
                    format!("`{other}` is not auth-file or auth-map"),
                );
                return None;
            }
        };
        let realm = self
            .nginx("auth-realm")
            .unwrap_or("Authentication Required")
            .to_string();
        Some(BasicAuthSpec {
            secret: secret.to_string(),
            map,
            realm,
        })
    }
}

impl Parser<'_> {
    /// External authentication (`auth-url`, `auth-method`,
    /// `auth-response-headers`, `auth-signin`, `auth-signin-redirect-param`,
    /// `auth-request-redirect`, `auth-always-set-cookie`, `auth-cache-key`,
    /// `auth-cache-duration`; `auth-proxy-set-headers` names a ConfigMap
    /// and is resolved by the compiler). `Err` when it is set but does not
    /// parse (the problem is reported).
    pub(super) fn external_auth(&mut self) -> Result<Option<Arc<ExternalAuth>>, ()> {
        let Some(url) = self.nginx("auth-url") else {
            return Ok(None);
        };
        let method = self.nginx("auth-method").unwrap_or("GET");
        let response_headers: Vec<&str> = self
            .nginx("auth-response-headers")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let signin = self.nginx("auth-signin");
        let auth = match ExternalAuth::from_annotations(
            url,
            Some(method),
            Some(response_headers.join(",").as_str()),
            signin,
            DEFAULT_TIMEOUT,
        ) {
            Ok(auth) => auth,
            Err(e) => {
                self.reject(&format!("{NGINX}auth-url"), e.to_string());
                return Err(());
            }
        };
        let mut auth = match self.nginx("auth-signin-redirect-param") {
            None => auth,
            Some(param) => match auth.with_signin_param(param) {
                Some(auth) => auth,
                None => {
                    self.reject(
                        &format!("{NGINX}auth-signin-redirect-param"),
                        format!("`{param}` is not a query argument name"),
                    );
                    return Err(());
                }
            },
        };
        if let Some(redirect) = self.nginx("auth-request-redirect") {
            match HeaderValue::from_str(redirect) {
                Ok(value) if !redirect.is_empty() => auth = auth.with_request_redirect(value),
                _ => {
                    self.reject(
                        &format!("{NGINX}auth-request-redirect"),
                        format!("`{redirect}` is not a valid header value"),
                    );
                    return Err(());
                }
            }
        }
        if let Some(always) = self.flag("auth-always-set-cookie") {
            auth = auth.with_always_set_cookie(always);
        }
        if let Some(key) = self.nginx("auth-cache-key") {
            let durations = self.nginx("auth-cache-duration");
            match CacheSpec::parse(url, key, durations) {
                Ok(spec) => auth = auth.with_cache(spec),
                Err(reason) => {
                    self.reject(&format!("{NGINX}auth-cache-key"), reason);
                    return Err(());
                }
            }
        } else if self.nginx("auth-cache-duration").is_some() {
            self.warn(
                &format!("{NGINX}auth-cache-duration"),
                "without auth-cache-key nothing is cached (as ingress-nginx)",
            );
        }
        Ok(Some(Arc::new(auth)))
    }
}
