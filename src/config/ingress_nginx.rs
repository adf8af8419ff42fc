//! The ingress-nginx ConfigMap under an Ingress's annotations: the parsed
//! [`NginxConfig`] ([`super::nginx_config`]) becomes default annotations,
//! the rate-limit status, the block list, and header rules, merged with
//! the Ingress's own `custom-headers` and header snippets into the route
//! policy's typed header rules (the TrafficPolicy `headers` section is laid
//! over them later, and replaces them where it is set).
//!
//! Invariants:
//! - Pure (reads the snapshot only). The Ingress's own annotations win
//!   over the ConfigMap's defaults, name by name.
//! - Header rules apply in ingress-nginx's order of scope: the ConfigMap's
//!   `proxy-set-headers` / `add-headers`, then `custom-headers`, then
//!   `server-snippet`, then `configuration-snippet`; later rules win.
//! - `custom-headers` fails closed: a missing ConfigMap, or a header the
//!   ConfigMap's `global-allowed-response-headers` does not list, rejects
//!   the Ingress (ingress-nginx answers 503 for its locations).
//! - `allow-snippet-annotations: "false"` drops every snippet (the Ingress
//!   is served without it, with a warning), as ingress-nginx does.

use crate::config::snapshot::{AnnotationMap, CompactIngress};

use super::annotations::headers::{config_map_headers, header_name, header_value};
use super::annotations::{self, Annotations, NGINX};
use super::builder::Builder;
use super::compiled::LastGood;
use super::diagnostic::{Diagnostic, Severity};
use super::nginx_config::{self, config_map_data, config_map_ref, NginxConfig};
use super::nginx_globals;
use super::snapshot::{ObjectKey, Snapshot};
use crate::table::globals::Globals;
use crate::table::policy::AccessList;

/// The ConfigMap `key` of the snapshot, parsed: the Ingress defaults and
/// the request path's [`Globals`]; its problems as diagnostics on the
/// ConfigMap (each reported once per compile). A missing ConfigMap is a
/// warning and every default applies (and every flag).
pub fn load(
    snapshot: &Snapshot,
    key: Option<&ObjectKey>,
    last_good: &LastGood,
) -> (NginxConfig, Globals, Vec<Diagnostic>) {
    let Some(key) = key else {
        return (NginxConfig::default(), Globals::default(), Vec::new());
    };
    let origin = snapshot.config_maps.get(key).map(|e| e.origin.clone());
    let Some(data) = config_map_data(snapshot, key) else {
        let d = Diagnostic::new(
            Severity::Warning,
            "ConfigMap",
            key,
            Some("--configmap".into()),
            "metadata.name",
            "not found; ingress-nginx's defaults apply",
        );
        return (NginxConfig::default(), Globals::default(), vec![d]);
    };
    let (config, mut problems) = nginx_config::parse(data, &key.namespace, snapshot);
    let globals = nginx_globals::parse(data, last_good, &mut problems);
    let diagnostics = problems
        .into_iter()
        .map(|(field, reason)| {
            let field = if field == "data" {
                field
            } else {
                format!("data[{field}]")
            };
            Diagnostic::new(
                Severity::Warning,
                "ConfigMap",
                key,
                origin.clone(),
                field,
                reason,
            )
        })
        .collect();
    (config, globals, diagnostics)
}

impl Builder<'_> {
    /// Parses an Ingress's annotations over the ConfigMap's defaults and
    /// completes them with the ConfigMap's rules.
    pub(super) fn parse_annotations(
        &self,
        ingress: &CompactIngress,
    ) -> (Annotations, Vec<annotations::Problem>) {
        let nginx = &self.nginx;
        let own = ingress.metadata.annotations.as_ref();
        let merged: AnnotationMap;
        let map = if nginx.defaults.is_empty() {
            own
        } else {
            // The Ingress's own value of a name wins: of a name given
            // twice, the map keeps the last.
            merged = nginx
                .defaults
                .iter()
                .map(|(k, v)| (&**k, &**v))
                .chain(own.into_iter().flatten())
                .collect();
            Some(&merged)
        };
        let mut statuses = self.opts.limit_statuses;
        if let Some(status) = nginx.limit_status {
            statuses.nginx = status;
        }
        let (mut parsed, mut problems) = annotations::parse(map, statuses);
        let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
        self.header_rules(namespace, &mut parsed, &mut problems);
        let auth_headers = map.and_then(|m| m.get(&format!("{NGINX}auth-proxy-set-headers")));
        if let Some(value) = auth_headers.map(|v| v.trim()).filter(|v| !v.is_empty()) {
            self.auth_proxy_headers(value, namespace, &mut parsed, &mut problems);
        }
        if !nginx.block_cidrs.is_empty() {
            let access = parsed.policy.access.get_or_insert_with(|| AccessList {
                allow: Vec::new(),
                deny: Vec::new(),
            });
            access.deny.extend(nginx.block_cidrs.iter().copied());
        }
        (parsed, problems)
    }

    /// `auth-proxy-set-headers`: the named ConfigMap's headers on the
    /// auth request. Fails closed: a missing ConfigMap or an unusable
    /// header rejects the Ingress (ingress-nginx denies its locations).
    fn auth_proxy_headers(
        &self,
        value: &str,
        namespace: &str,
        parsed: &mut Annotations,
        problems: &mut Vec<annotations::Problem>,
    ) {
        let field = format!("metadata.annotations[{NGINX}auth-proxy-set-headers]");
        let Some(auth) = parsed.policy.external_auth.as_mut() else {
            problems.push(annotations::Problem {
                field,
                reason: "has no effect without auth-url".into(),
                reject: false,
            });
            return;
        };
        let key = config_map_ref(value, namespace);
        let resolved = match config_map_data(self.snapshot, &key) {
            None => Err(format!("ConfigMap {key} not found")),
            Some(data) => data
                .iter()
                .map(|(name, value)| Ok((header_name(name)?, header_value(name, value.trim())?)))
                .collect::<Result<Vec<_>, String>>()
                .map_err(|e| format!("ConfigMap {key}: {e}")),
        };
        match resolved {
            Ok(headers) => {
                let with = (**auth).clone().with_proxy_headers(headers);
                *auth = std::sync::Arc::new(with);
            }
            Err(reason) => problems.push(annotations::Problem {
                field,
                reason,
                reject: true,
            }),
        }
    }

    fn header_rules(
        &self,
        namespace: &str,
        parsed: &mut Annotations,
        problems: &mut Vec<annotations::Problem>,
    ) {
        let nginx = &self.nginx;
        let headers = &mut parsed.headers;
        if !nginx.allow_snippets && !headers.snippet_names.is_empty() {
            let names = std::mem::take(&mut headers.snippet_names);
            problems.retain(|p| !names.iter().any(|n| p.field.contains(n.as_str())));
            for name in names {
                problems.push(annotations::Problem {
                    field: format!("metadata.annotations[{name}]"),
                    reason: "dropped: the ConfigMap sets allow-snippet-annotations to false".into(),
                    reject: false,
                });
            }
            headers.snippets = Default::default();
        }
        let mut rules = nginx.headers.clone();
        if let Some(value) = &headers.custom_headers {
            let name = format!("{NGINX}custom-headers");
            let key = config_map_ref(value, namespace);
            let resolved = match config_map_data(self.snapshot, &key) {
                None => Err(format!("ConfigMap {key} not found")),
                Some(data) => config_map_headers(data, Some(&nginx.allowed_response_headers))
                    .map_err(|e| format!("ConfigMap {key}: {e}")),
            };
            match resolved {
                Ok(edits) => rules.response.extend(&edits),
                Err(reason) => problems.push(annotations::Problem {
                    field: format!("metadata.annotations[{name}]"),
                    reason,
                    reject: true,
                }),
            }
        }
        rules.extend(&headers.snippets);
        parsed.policy.request_headers = rules.request.build();
        parsed.policy.response_headers = rules.response.build();
    }
}
