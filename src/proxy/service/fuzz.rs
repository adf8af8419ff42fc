//! Fuzz target: the proxy's choice of the routed host
//! ([`super::request_host`]): absolute-form authority over `Host`, one
//! valid `Host`, no CONNECT, no asterisk-form outside `OPTIONS *`, a path
//! starting with `/`, and on HTTP/2 a `Host` equal to `:authority`.
//!
//! Invariants: the result agrees with a reference model of RFC 9112
//! §3.2/§3.2.2 on generated requests (every target form, 0 to 2 `Host`
//! headers, valid, near-valid and arbitrary values, HTTP/1.0, 1.1 and 2);
//! a host that is returned always passes [`crate::table::host::is_valid`]
//! and is never the `Host` header when the target has an authority.

use http::{HeaderValue, Method, Request, Version};
use proptest::prelude::*;

use super::request_host;
use crate::fuzzing::{self, mutate_text, mutations};
use crate::table::host::is_valid;

/// Reference model: the host a request is routed by, or `None` for a 400.
fn model(req: &Request<()>) -> Option<String> {
    let hosts: Vec<&HeaderValue> = req.headers().get_all(http::header::HOST).iter().collect();
    if hosts.len() > 1 || req.method() == Method::CONNECT {
        return None;
    }
    let header = match hosts.first() {
        Some(v) => Some(v.to_str().ok().filter(|h| is_valid(h))?.to_string()),
        None => None,
    };
    let uri = req.uri();
    if uri.path() == "*" || !uri.path().starts_with('/') {
        return None;
    }
    if let Some(authority) = uri.authority() {
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let ok = (scheme == "http" || scheme == "https") && is_valid(authority.as_str());
        // HTTP/2: a Host header must name the same authority (RFC 9113 §8.3.1).
        let same = req.version() != Version::HTTP_2
            || header
                .as_deref()
                .is_none_or(|h| h.eq_ignore_ascii_case(authority.as_str()));
        return (ok && same).then(|| authority.as_str().to_string());
    }
    match header {
        Some(h) => Some(h),
        None if req.version() == Version::HTTP_11 => None,
        None => Some(String::new()),
    }
}

fn hosts() -> impl Strategy<Value = String> {
    let name = "([a-zA-Z0-9-]{1,6}\\.){0,3}[a-zA-Z0-9-]{1,6}\\.?(:[0-9]{0,6})?";
    let v6 = "\\[[0-9a-f:]{2,12}\\](:[0-9]{1,5})?";
    let plain = prop_oneof![4 => name, 1 => v6, 1 => "[a-z0-9@%:\\[\\]. ]{0,10}"];
    prop_oneof![
        3 => plain.clone(),
        1 => (plain, mutations()).prop_map(|(h, m)| mutate_text(&h, &m)),
    ]
}

#[derive(Debug, Clone)]
struct Generated {
    method: String,
    target: String,
    version: Version,
    host_headers: Vec<Vec<u8>>,
}

fn requests() -> impl Strategy<Value = Generated> {
    let method = prop_oneof![
        Just("GET".to_string()),
        Just("POST".to_string()),
        Just("CONNECT".to_string()),
        Just("OPTIONS".to_string()),
        "[A-Z]{1,7}",
    ];
    let path = "(/[a-z0-9.%]{0,5}){0,3}(\\?[a-z=]{0,4})?";
    let scheme = prop_oneof![
        Just("http"),
        Just("https"),
        Just("HTTP"),
        Just("ftp"),
        Just("ws")
    ];
    let target = prop_oneof![
        3 => path.prop_map(|p| if p.is_empty() { "/".to_string() } else { p }),
        3 => (scheme, hosts(), path).prop_map(|(s, h, p)| format!("{s}://{h}{p}")),
        1 => hosts(),
        1 => Just("*".to_string()),
        1 => "[ -~]{0,16}",
    ];
    let version = prop_oneof![
        Just(Version::HTTP_10),
        Just(Version::HTTP_11),
        Just(Version::HTTP_2)
    ];
    let header = prop_oneof![
        4 => hosts().prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ];
    (
        method,
        target,
        version,
        proptest::collection::vec(header, 0..3),
    )
        .prop_map(|(method, target, version, host_headers)| Generated {
            method,
            target,
            version,
            host_headers,
        })
}

fn check(g: Generated) -> Result<(), TestCaseError> {
    let mut builder = Request::builder()
        .method(g.method.as_str())
        .uri(g.target.as_str())
        .version(g.version);
    for value in &g.host_headers {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            builder = builder.header(http::header::HOST, v);
        }
    }
    let Ok(req) = builder.body(()) else {
        return Ok(()); // not a request hyper could have parsed
    };
    let got = request_host(&req).ok().map(str::to_string);
    prop_assert_eq!(&got, &model(&req), "{:?}", req);
    if let Some(host) = got {
        prop_assert!(is_valid(&host), "{host:?}");
        if let Some(authority) = req.uri().authority() {
            prop_assert_eq!(host.as_str(), authority.as_str());
        }
    }
    Ok(())
}

#[test]
fn request_host_agrees_with_the_model() {
    fuzzing::run("proxy::request_host", 1_000, requests(), check);
}
