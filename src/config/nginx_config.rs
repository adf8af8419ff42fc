//! The ingress-nginx ConfigMap (`--configmap ns/name`): global defaults
//! with ingress-nginx's key names, parsed into [`NginxConfig`], the input
//! the rest of the compiler reads (annotation defaults, header rules, the
//! snippet switch, the block list).
//!
//! Invariants:
//! - Pure: the snapshot (which holds the ConfigMap and the header
//!   ConfigMaps it names) in, the parsed settings and problems out. A
//!   changed ConfigMap is a changed snapshot: it applies on the next
//!   compile, without a restart.
//! - Per-Ingress annotations override the ConfigMap, as in ingress-nginx:
//!   the keys that are also annotations become *default annotations*
//!   ([`NginxConfig::defaults`]), which the annotation parser reads under
//!   the Ingress's own (one parser, one meaning per name).
//! - A bad value is reported once, on the ConfigMap, and its default
//!   applies; unknown keys are reported once, in one warning. The keys of
//!   the whole request path (HSTS, forwarding trust, `server-tokens`,
//!   `block-user-agents`, TLS) are [`super::nginx_globals`]'.

use std::collections::BTreeMap;

use http::StatusCode;
use ipnet::IpNet;

use super::annotations::headers::{config_map_headers, HeaderRules};
use super::annotations::{parse_cidrs, parse_size, NGINX};
use super::snapshot::{ObjectKey, Snapshot};

/// Keys that are annotations too: valid values become default annotations.
const ANNOTATION_KEYS: [&str; 7] = [
    "proxy-body-size",
    "proxy-connect-timeout",
    "proxy-read-timeout",
    "proxy-send-timeout",
    "ssl-redirect",
    "force-ssl-redirect",
    "custom-http-errors",
];

/// Keys applied here beyond [`ANNOTATION_KEYS`].
const OWN_KEYS: [&str; 6] = [
    "limit-req-status-code",
    "add-headers",
    "proxy-set-headers",
    "block-cidrs",
    "allow-snippet-annotations",
    "global-allowed-response-headers",
];

/// What the ConfigMap asks for, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxConfig {
    /// Default annotations (full `nginx.ingress.kubernetes.io/` names):
    /// an Ingress's own annotation of the same name wins.
    pub defaults: BTreeMap<String, String>,
    /// `limit-req-status-code`: the status of ingress-nginx's rate limits.
    pub limit_status: Option<StatusCode>,
    /// `block-cidrs`: clients refused (403) on every route.
    pub block_cidrs: Vec<IpNet>,
    /// `allow-snippet-annotations`: `false` drops every snippet.
    pub allow_snippets: bool,
    /// `global-allowed-response-headers` (lowercase): what `custom-headers`
    /// may set.
    pub allowed_response_headers: Vec<String>,
    /// `proxy-set-headers` (request) and `add-headers` (response), from
    /// the ConfigMaps they name.
    pub headers: HeaderRules,
}

impl Default for NginxConfig {
    fn default() -> Self {
        Self {
            defaults: BTreeMap::new(),
            limit_status: None,
            block_cidrs: Vec::new(),
            allow_snippets: true,
            allowed_response_headers: Vec::new(),
            headers: HeaderRules::default(),
        }
    }
}

/// One problem with a key: (key, reason).
pub type KeyProblem = (String, String);

/// `namespace/name`, or a name in `namespace`.
pub fn config_map_ref(value: &str, namespace: &str) -> ObjectKey {
    match value.split_once('/') {
        Some((ns, name)) => ObjectKey::new(ns, name),
        None => ObjectKey::new(namespace, value),
    }
}

/// The data of a ConfigMap of the snapshot.
pub fn config_map_data<'a>(
    snapshot: &'a Snapshot,
    key: &ObjectKey,
) -> Option<&'a BTreeMap<String, String>> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let entry = snapshot.config_maps.get(key)?;
    Some(entry.object.data.as_ref().unwrap_or(&EMPTY))
}

fn valid_default(key: &str, value: &str) -> Result<(), String> {
    let ok = match key {
        "proxy-body-size" => parse_size(value).is_some(),
        "proxy-connect-timeout" | "proxy-read-timeout" | "proxy-send-timeout" => value
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=86_400).contains(s))
            .is_some(),
        "ssl-redirect" | "force-ssl-redirect" => matches!(value, "true" | "false"),
        "custom-http-errors" => value.split(',').all(|c| {
            c.trim()
                .parse::<u16>()
                .is_ok_and(|c| (400..=599).contains(&c))
        }),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}` is not a valid value; the default applies"
        ))
    }
}

/// Parses the ConfigMap's `data`; header ConfigMaps it names are read from
/// `snapshot`, relative to `namespace` (the ConfigMap's own).
pub fn parse(
    data: &BTreeMap<String, String>,
    namespace: &str,
    snapshot: &Snapshot,
) -> (NginxConfig, Vec<KeyProblem>) {
    let mut out = NginxConfig::default();
    let mut problems: Vec<KeyProblem> = Vec::new();
    let mut unknown = Vec::new();
    let mut bad = |key: &str, reason: String| problems.push((key.to_string(), reason));
    if let Some(list) = data.get("global-allowed-response-headers") {
        out.allowed_response_headers = list
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
    }
    for (key, value) in data {
        let value = value.trim();
        if ANNOTATION_KEYS.contains(&key.as_str()) {
            match valid_default(key, value) {
                Ok(()) => {
                    out.defaults
                        .insert(format!("{NGINX}{key}"), value.to_string());
                }
                Err(reason) => bad(key, reason),
            }
            continue;
        }
        match key.as_str() {
            "limit-req-status-code" => match value.parse::<u16>().ok().and_then(|c| {
                StatusCode::from_u16(c)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
            }) {
                Some(status) => out.limit_status = Some(status),
                None => bad(key, format!("`{value}` is not a 4xx or 5xx status")),
            },
            "block-cidrs" => match parse_cidrs(value) {
                Ok(cidrs) => out.block_cidrs = cidrs,
                Err(reason) => bad(key, reason),
            },
            // ingress-nginx's `access_log off;` for every server: the
            // default of each Ingress's `enable-access-log` becomes false.
            "disable-access-log" | "disable-http-access-log" => match value {
                "true" => {
                    out.defaults
                        .insert(format!("{NGINX}enable-access-log"), "false".into());
                }
                "false" => {}
                other => bad(key, format!("`{other}` is not true or false")),
            },
            "disable-stream-access-log" => bad(
                key,
                "no effect: tollgate proxies no TCP/UDP streams (ingress-nginx's stream section)"
                    .into(),
            ),
            "allow-snippet-annotations" => match value {
                "true" => out.allow_snippets = true,
                "false" => out.allow_snippets = false,
                other => bad(key, format!("`{other}` is not true or false")),
            },
            "add-headers" | "proxy-set-headers" => {
                if value.is_empty() {
                    continue;
                }
                let named = config_map_ref(value, namespace);
                let Some(headers) = config_map_data(snapshot, &named) else {
                    bad(key, format!("ConfigMap {named} not found"));
                    continue;
                };
                match config_map_headers(headers, None) {
                    Ok(edits) if key == "add-headers" => out.headers.response.extend(&edits),
                    Ok(edits) => out.headers.request.extend(&edits),
                    Err(reason) => bad(key, format!("ConfigMap {named}: {reason}")),
                }
            }
            k if OWN_KEYS.contains(&k) || super::nginx_globals::KEYS.contains(&k) => {}
            k => unknown.push(k.to_string()),
        }
    }
    if !unknown.is_empty() {
        problems.push((
            "data".into(),
            format!(
                "unknown keys, ignored: {} (see docs/migration.md)",
                unknown.join(", ")
            ),
        ));
    }
    (out, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotation_keys_become_defaults_and_bad_values_are_reported() {
        let (c, problems) = parse(
            &data(&[
                ("proxy-body-size", "8m"),
                ("ssl-redirect", "false"),
                ("proxy-read-timeout", "never"),
                ("limit-req-status-code", "429"),
                ("block-cidrs", "10.0.0.0/8, 192.168.1.1"),
                ("allow-snippet-annotations", "false"),
                ("hsts", "true"),
                ("made-up", "1"),
                ("another", "2"),
            ]),
            "ns",
            &Snapshot::default(),
        );
        assert_eq!(
            c.defaults,
            data(&[
                ("nginx.ingress.kubernetes.io/proxy-body-size", "8m"),
                ("nginx.ingress.kubernetes.io/ssl-redirect", "false"),
            ])
        );
        assert_eq!(c.limit_status, Some(StatusCode::TOO_MANY_REQUESTS));
        assert_eq!(c.block_cidrs.len(), 2);
        assert!(!c.allow_snippets);
        let shown: Vec<String> = problems.iter().map(|(k, r)| format!("{k}: {r}")).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("proxy-read-timeout: `never`"),
            "{shown:?}"
        );
        // `hsts` is applied (by `nginx_globals`), not unknown.
        assert!(!shown[1].contains("hsts"), "{shown:?}");
        assert!(shown[1].contains("another, made-up"), "{shown:?}");
    }

    #[test]
    fn disable_access_log_defaults_every_ingress_to_no_access_log() {
        for key in ["disable-access-log", "disable-http-access-log"] {
            let (c, problems) = parse(&data(&[(key, "true")]), "ns", &Snapshot::default());
            assert_eq!(
                c.defaults,
                data(&[("nginx.ingress.kubernetes.io/enable-access-log", "false")])
            );
            assert!(problems.is_empty(), "{problems:?}");
        }
        let (c, problems) = parse(
            &data(&[
                ("disable-access-log", "yes"),
                ("disable-stream-access-log", "true"),
            ]),
            "ns",
            &Snapshot::default(),
        );
        assert!(c.defaults.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].1.contains("no TCP/UDP streams"), "{problems:?}");
    }

    #[test]
    fn header_config_maps_are_resolved_in_the_namespace() {
        let mut snapshot = Snapshot::default();
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "h", "namespace": "ns"}, "data": {"X-A": "1"}}),
        )
        .unwrap();
        snapshot.insert("t".into(), crate::config::Object::ConfigMap(cm));
        let (c, problems) = parse(
            &data(&[("add-headers", "h"), ("proxy-set-headers", "other/none")]),
            "ns",
            &snapshot,
        );
        assert!(c.headers.response.build().is_some());
        assert!(c.headers.request.is_empty());
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].1.contains("other/none not found"),
            "{problems:?}"
        );
    }
}
