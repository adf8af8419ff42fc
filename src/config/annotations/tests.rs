use http::StatusCode;

use super::*;

fn parse_map(pairs: &[(&str, &str)]) -> (Annotations, Vec<Problem>) {
    let map: AnnotationMap = pairs.iter().copied().collect();
    parse(Some(&map), LimitStatuses::default())
}

fn n(suffix: &str) -> String {
    format!("{NGINX}{suffix}")
}

#[test]
fn snippets_and_lua_are_refused() {
    for name in [
        "configuration-snippet",
        "server-snippet",
        "auth-snippet",
        "some-future-snippet",
        "lua-resty-waf-debug",
    ] {
        let (_, problems) = parse_map(&[(&n(name), "more_set_headers x;")]);
        assert!(
            problems.iter().any(|p| p.reject && p.field.contains(name)),
            "{name}: {problems:?}"
        );
    }
}

#[test]
fn unknown_and_ignored_annotations_warn_and_serve() {
    let (_, problems) = parse_map(&[(&n("frobnicate"), "1"), (&n("proxy-buffering"), "on")]);
    assert!(problems.iter().all(|p| !p.reject), "{problems:?}");
    assert!(problems.iter().any(|p| p.reason.contains("frobnicate")));
    assert!(problems
        .iter()
        .any(|p| p.reason.contains("proxy-buffering")));
}

#[test]
fn access_lists_fail_closed() {
    let (a, problems) = parse_map(&[(&n("whitelist-source-range"), "10.0.0.0/8, 127.0.0.1")]);
    assert!(problems.is_empty());
    let access = a.policy.access.unwrap();
    assert_eq!(access.allow.len(), 2);
    for bad in ["10.0.0.0/33", "banana", ""] {
        let (_, problems) = parse_map(&[(&n("whitelist-source-range"), bad)]);
        assert!(problems.iter().any(|p| p.reject), "{bad}: {problems:?}");
    }
    let (_, problems) = parse_map(&[(&n("denylist-source-range"), "1.2.3.4/40")]);
    assert!(problems.iter().any(|p| p.reject));
}

#[test]
fn nginx_limits_use_the_burst_multiplier_and_503() {
    let (a, _) = parse_map(&[(&n("limit-rps"), "10")]);
    let rate = a.policy.rate.unwrap();
    assert_eq!(rate.requests.get(), 10);
    assert_eq!(rate.burst.get(), 51);
    assert_eq!(rate.status, StatusCode::SERVICE_UNAVAILABLE);
    let (a, _) = parse_map(&[(&n("limit-rpm"), "60"), (&n("limit-burst-multiplier"), "2")]);
    let rate = a.policy.rate.unwrap();
    assert_eq!(rate.per, Duration::from_secs(60));
    assert_eq!(rate.burst.get(), 121);
}

#[test]
fn tollgate_limits_are_absolute_and_429() {
    let (a, _) = parse_map(&[
        ("tollgate.dev/limit-rps", "100"),
        ("tollgate.dev/limit-burst", "7"),
        ("tollgate.dev/limit-connections", "2"),
    ]);
    let rate = a.policy.rate.unwrap();
    assert_eq!((rate.requests.get(), rate.burst.get()), (100, 7));
    assert_eq!(rate.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.policy.connections.unwrap().max.get(), 2);
    let (a, problems) = parse_map(&[("tollgate.dev/limit-rps", "0")]);
    assert!(a.policy.rate.is_none());
    assert!(problems.iter().any(|p| !p.reject));
}

/// Found by the fuzz target: with nginx's `limit-rpm` (not `limit-rps`)
/// and a tollgate limit, the warning named `limit-rps`, which is not set.
#[test]
fn the_overridden_nginx_limit_is_the_one_named() {
    let (_, problems) = parse_map(&[(&n("limit-rpm"), "1"), ("tollgate.dev/limit-rps", "1")]);
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [format!("metadata.annotations[{}]", n("limit-rpm"))],
        "{problems:?}"
    );
}

#[test]
fn sizes() {
    assert_eq!(parse_size("8m"), Some(8 << 20));
    assert_eq!(parse_size("512K"), Some(512 << 10));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("1g"), Some(1 << 30));
    assert_eq!(parse_size("1x"), None);
    assert_eq!(parse_size(""), None);
    assert_eq!(parse_size("m"), None);
}

#[test]
fn hash_keys_take_only_whitelisted_variables() {
    let key = parse_hash_key("$request_uri").unwrap();
    assert_eq!(key.parts, vec![HashPart::RequestUri]);
    let key = parse_hash_key("u-$http_x_user-${cookie_sid}").unwrap();
    assert_eq!(key.parts.len(), 4);
    assert!(parse_hash_key("$host").is_err());
    assert!(parse_hash_key("$arg_id").is_err());
    assert!(parse_hash_key("${request_uri").is_err());
}

#[test]
fn retries() {
    let (a, _) = parse_map(&[
        (&n("proxy-next-upstream"), "error timeout http_503"),
        (&n("proxy-next-upstream-tries"), "2"),
    ]);
    let r = a.policy.retry.unwrap();
    assert!(r.on_error && r.on_timeout);
    assert_eq!(r.on_status, vec![503]);
    assert_eq!(r.tries, 2);
    let (a, _) = parse_map(&[(&n("proxy-next-upstream"), "off")]);
    assert_eq!(a.policy.retry.unwrap().tries, 1);
}

#[test]
fn redirects_and_canary() {
    let (a, _) = parse_map(&[
        (&n("permanent-redirect"), "https://new.example/"),
        (&n("permanent-redirect-code"), "308"),
    ]);
    assert_eq!(
        a.policy.redirect.unwrap().status,
        StatusCode::PERMANENT_REDIRECT
    );
    let (a, _) = parse_map(&[(&n("temporal-redirect"), "https://t.example/")]);
    assert_eq!(a.policy.redirect.unwrap().status, StatusCode::FOUND);
    let (a, _) = parse_map(&[
        (&n("canary"), "true"),
        (&n("canary-weight"), "30"),
        (&n("canary-by-header"), "X-Canary"),
    ]);
    let c = a.canary.unwrap();
    assert_eq!((c.weight, c.weight_total), (30, 100));
    assert!(c.header.is_some());
}

#[test]
fn unsupported_auth_fails_closed() {
    let (_, problems) = parse_map(&[(&n("auth-type"), "digest"), (&n("auth-secret"), "s")]);
    assert!(problems.iter().any(|p| p.reject));
    let (_, problems) = parse_map(&[(&n("auth-type"), "basic")]);
    assert!(problems.iter().any(|p| p.reject), "basic without a secret");
    let (_, problems) = parse_map(&[(&n("auth-tls-verify-client"), "on")]);
    assert!(problems.iter().any(|p| p.reject));
}

/// Every annotation ingress-nginx documents
/// (`docs/user-guide/nginx-configuration/annotations.md`).
const NGINX_DOCUMENTED: &[&str] = &[
    "affinity",
    "affinity-canary-behavior",
    "affinity-mode",
    "app-root",
    "auth-always-set-cookie",
    "auth-cache-duration",
    "auth-cache-key",
    "auth-keepalive",
    "auth-keepalive-requests",
    "auth-keepalive-share-vars",
    "auth-keepalive-timeout",
    "auth-method",
    "auth-proxy-set-headers",
    "auth-realm",
    "auth-request-redirect",
    "auth-response-headers",
    "auth-secret",
    "auth-secret-type",
    "auth-signin",
    "auth-signin-redirect-param",
    "auth-snippet",
    "auth-tls-error-page",
    "auth-tls-match-cn",
    "auth-tls-pass-certificate-to-upstream",
    "auth-tls-secret",
    "auth-tls-verify-client",
    "auth-tls-verify-depth",
    "auth-type",
    "auth-url",
    "backend-protocol",
    "canary",
    "canary-by-cookie",
    "canary-by-header",
    "canary-by-header-pattern",
    "canary-by-header-value",
    "canary-weight",
    "canary-weight-total",
    "client-body-buffer-size",
    "configuration-snippet",
    "connection-proxy-header",
    "cors-allow-credentials",
    "cors-allow-headers",
    "cors-allow-methods",
    "cors-allow-origin",
    "cors-expose-headers",
    "cors-max-age",
    "custom-headers",
    "custom-http-errors",
    "default-backend",
    "denylist-source-range",
    "enable-access-log",
    "enable-cors",
    "enable-global-auth",
    "enable-modsecurity",
    "enable-opentelemetry",
    "enable-owasp-core-rules",
    "enable-rewrite-log",
    "force-ssl-redirect",
    "from-to-www-redirect",
    "http2-push-preload",
    "limit-burst-multiplier",
    "limit-connections",
    "limit-rate",
    "limit-rate-after",
    "limit-rpm",
    "limit-rps",
    "limit-whitelist",
    "load-balance",
    "mirror-host",
    "mirror-request-body",
    "mirror-target",
    "modsecurity-snippet",
    "modsecurity-transaction-id",
    "opentelemetry-trust-incoming-span",
    "permanent-redirect",
    "permanent-redirect-code",
    "preserve-trailing-slash",
    "proxy-body-size",
    "proxy-buffer-size",
    "proxy-buffering",
    "proxy-buffers-number",
    "proxy-busy-buffers-size",
    "proxy-connect-timeout",
    "proxy-cookie-domain",
    "proxy-cookie-path",
    "proxy-http-version",
    "proxy-max-temp-file-size",
    "proxy-next-upstream",
    "proxy-next-upstream-timeout",
    "proxy-next-upstream-tries",
    "proxy-read-timeout",
    "proxy-redirect-from",
    "proxy-redirect-to",
    "proxy-request-buffering",
    "proxy-send-timeout",
    "proxy-ssl-ciphers",
    "proxy-ssl-name",
    "proxy-ssl-protocols",
    "proxy-ssl-secret",
    "proxy-ssl-server-name",
    "proxy-ssl-verify",
    "proxy-ssl-verify-depth",
    "rewrite-target",
    "satisfy",
    "server-alias",
    "server-snippet",
    "service-upstream",
    "session-cookie-change-on-failure",
    "session-cookie-conditional-samesite-none",
    "session-cookie-domain",
    "session-cookie-expires",
    "session-cookie-max-age",
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-samesite",
    "session-cookie-secure",
    "ssl-ciphers",
    "ssl-passthrough",
    "ssl-prefer-server-ciphers",
    "ssl-redirect",
    "stream-snippet",
    "temporal-redirect",
    "temporal-redirect-code",
    "upstream-hash-by",
    "upstream-hash-by-subset",
    "upstream-hash-by-subset-size",
    "upstream-vhost",
    "use-regex",
    "whitelist-source-range",
    "x-forwarded-prefix",
];

#[test]
fn every_documented_nginx_annotation_has_a_state() {
    for suffix in NGINX_DOCUMENTED {
        assert!(
            support(suffix).is_some(),
            "`{suffix}` falls into the unknown case"
        );
    }
    assert_eq!(NGINX_DOCUMENTED.len(), 130);
}

#[test]
fn every_known_annotation_is_in_the_docs() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/annotations.md"))
        .expect("docs/annotations.md");
    for (suffix, _) in KNOWN {
        assert!(
            docs.contains(&format!("`{suffix}`")),
            "docs/annotations.md does not mention `{suffix}`"
        );
    }
}

/// Arbitrary values for every annotation never panic the parser (a
/// bounded, seeded fuzz loop; annotations are untrusted input).
#[test]
fn arbitrary_values_never_panic() {
    let alphabet: Vec<char> = "$/{}()[]*?.,:;=-_ \t09azAZ%\"'\\\u{0}\u{7f}é字\n"
        .chars()
        .collect();
    let mut rng = fastrand::Rng::with_seed(0x7011_6a7e);
    let names: Vec<String> = KNOWN
        .iter()
        .map(|(s, _)| n(s))
        .chain(
            ["limit-rps", "limit-rpm", "limit-burst", "limit-connections"]
                .iter()
                .map(|s| format!("{TOLLGATE}{s}")),
        )
        .collect();
    for _ in 0..3_000 {
        let mut map = std::collections::BTreeMap::new();
        for _ in 0..rng.usize(1..6) {
            let name = names[rng.usize(..names.len())].clone();
            let len = rng.usize(0..24);
            let value: String = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            map.insert(name, value);
        }
        let _ = parse(Some(&map.iter().collect()), LimitStatuses::default());
    }
    for _ in 0..3_000 {
        let len = rng.usize(0..32);
        let value: String = (0..len)
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let _ = parse_hash_key(&value);
        let _ = parse_size(&value);
        let _ = parse_cidrs(&value);
    }
}
