//! Hop-by-hop (connection-specific) headers: which headers belong to one
//! connection and must not be forwarded to the next hop (RFC 9110 §7.6.1).
//!
//! A leaf module of plain functions over `http::HeaderMap`, so every layer
//! that sends or forwards a message (the proxy, the external-auth client)
//! applies the same rules without importing the proxy.
//!
//! Invariants:
//! - After [`strip_hop_by_hop`], none of [`CONNECTION_SPECIFIC`] and no
//!   header named in `Connection` remains, with two exceptions: `TE:
//!   trailers` (the only TE value a proxy may forward), and on an upgrade
//!   `Upgrade` with `Connection: upgrade`. `Expect` is removed too: the
//!   hop that received it answers it (hyper's server sends `100 Continue`
//!   when the body is first read), so a next hop that would ignore or
//!   mishandle it never sees it.
//! - Header values are parsed with fallible code: a non-ASCII `Connection`
//!   or `TE` value is ignored, never a panic.
//! - A message without any of these headers costs one pass over its names
//!   and no allocation.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, EXPECT, TE, TRANSFER_ENCODING, UPGRADE,
};

pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The headers that are always connection-specific, whatever `Connection`
/// names.
pub const CONNECTION_SPECIFIC: [HeaderName; 6] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Whether a request asks for a protocol upgrade (WebSocket...).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Removes hop-by-hop headers; with `upgrade`, keeps `Upgrade` and sets
/// `Connection: upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the names (cheap comparisons of standard headers)
    // instead of a hash probe per hop-by-hop name: most messages have none.
    // The names are those of `CONNECTION_SPECIFIC`, spelled out so the
    // comparisons stay inline.
    let present = headers.keys().any(|name| {
        name == CONNECTION
            || name == TE
            || name == TRANSFER_ENCODING
            || name == UPGRADE
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
            || name == EXPECT
    });
    if !present {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
        headers.remove(CONNECTION);
        for value in &named {
            let Ok(value) = value.to_str() else { continue };
            for token in value.split(',').map(str::trim) {
                if token.is_empty() || (upgrade && token.eq_ignore_ascii_case("upgrade")) {
                    continue;
                }
                // `remove` ignores names that are not valid header names.
                headers.remove(token);
            }
        }
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(PROXY_CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    headers.remove(EXPECT);
    if let Some(te) = headers.get(TE) {
        let trailers = te.to_str().map(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
        if trailers.unwrap_or(false) {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        } else {
            headers.remove(TE);
        }
    }
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("gzip"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(EXPECT, HeaderValue::from_static("100-continue"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn te_trailers_and_upgrade_survive_when_meant() {
        let mut h = HeaderMap::new();
        h.insert(TE, HeaderValue::from_static("trailers, deflate"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(TE).unwrap(), "trailers");
        assert_eq!(h.get(UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(CONNECTION).unwrap(), "upgrade");
    }

    #[test]
    fn every_connection_specific_header_is_removed() {
        let mut h = HeaderMap::new();
        for name in CONNECTION_SPECIFIC {
            h.insert(name, HeaderValue::from_static("x"));
        }
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }
}
