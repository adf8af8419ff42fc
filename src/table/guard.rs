//! Conditions a request must meet beyond host and path: the method, header
//! and query-parameter matches of Gateway API routes (HTTPRoute, GRPCRoute).
//!
//! Invariants:
//! - Built by the compiler, immutable; [`Guard::matches`] reads the request
//!   head without allocating (except to percent-decode a query value that
//!   is encoded, which is rare) and never fails: a header value that is not
//!   UTF-8 simply does not match a regular expression.
//! - All conditions of a guard must hold. Header names compare
//!   case-insensitively (they are [`HeaderName`]s), query names exactly.
//! - A [`ValueMatch::Regex`] must match the whole value: the compiler builds
//!   it anchored at both ends ([`anchored`]).
//! - A request with several values of one header matches when any value
//!   does; with several values of one query parameter, the first one counts
//!   (as the Gateway API specification says for query parameters).

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, Request, Uri};
use regex::Regex;

/// Conditions a request must meet beyond host and path. All must hold.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub method: Option<Method>,
    pub headers: Box<[HeaderCond]>,
    pub query: Box<[QueryCond]>,
}

/// A request header that must be present with a matching value.
#[derive(Debug, Clone)]
pub struct HeaderCond {
    pub name: HeaderName,
    pub value: ValueMatch,
}

/// A query parameter that must be present with a matching value.
#[derive(Debug, Clone)]
pub struct QueryCond {
    /// Compared exactly (case-sensitive), undecoded.
    pub name: Box<str>,
    pub value: ValueMatch,
}

/// How a header or query value is compared.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Byte for byte.
    Exact(Box<str>),
    /// The whole value must match (the pattern is anchored, see [`anchored`]).
    Regex(Arc<Regex>),
}

/// The parts of a request head a guard reads, borrowed (from [`Parts`] or
/// from a whole [`Request`], which need not be taken apart).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

impl<'a> From<&'a Parts> for RequestHead<'a> {
    fn from(parts: &'a Parts) -> Self {
        RequestHead {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
        }
    }
}

impl<'a> RequestHead<'a> {
    pub fn of<B>(req: &'a Request<B>) -> Self {
        RequestHead {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
        }
    }
}

/// Compiles `source` so that it must match a whole value (`^(?:source)$`).
pub fn anchored(source: &str) -> Result<Arc<Regex>, regex::Error> {
    Regex::new(&format!("^(?:{source})$")).map(Arc::new)
}

impl ValueMatch {
    #[inline]
    fn matches(&self, value: &[u8]) -> bool {
        match self {
            ValueMatch::Exact(wanted) => wanted.as_bytes() == value,
            ValueMatch::Regex(pattern) => {
                std::str::from_utf8(value).is_ok_and(|v| pattern.is_match(v))
            }
        }
    }
}

impl Guard {
    /// Whether the request meets every condition.
    pub fn matches(&self, parts: &Parts) -> bool {
        self.matches_head(&RequestHead::from(parts))
    }

    /// [`Guard::matches`] on a borrowed request head.
    pub fn matches_head(&self, head: &RequestHead<'_>) -> bool {
        if self.method.as_ref().is_some_and(|m| m != head.method) {
            return false;
        }
        let headers_hold = self.headers.iter().all(|cond| {
            head.headers
                .get_all(&cond.name)
                .iter()
                .any(|v| cond.value.matches(v.as_bytes()))
        });
        if !headers_hold {
            return false;
        }
        if self.query.is_empty() {
            return true;
        }
        let query = head.uri.query().unwrap_or("");
        self.query
            .iter()
            .all(|cond| query_value(query, &cond.name).is_some_and(|v| cond.value.matches(&v)))
    }

    /// Whether the guard asks for nothing (matches every request).
    pub fn is_empty(&self) -> bool {
        self.method.is_none() && self.headers.is_empty() && self.query.is_empty()
    }
}

/// The first value of parameter `name` in a query string, percent-decoded
/// (`+` as a space) only when it holds an escape.
fn query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, [u8]>> {
    let raw = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })?;
    if !raw.contains(['%', '+']) {
        return Some(Cow::Borrowed(raw.as_bytes()));
    }
    let spaced = raw.replace('+', " ");
    Some(Cow::Owned(
        percent_encoding::percent_decode_str(&spaced).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn exact(v: &str) -> ValueMatch {
        ValueMatch::Exact(v.into())
    }

    #[test]
    fn method_headers_and_query_must_all_hold() {
        let guard = Guard {
            method: Some(Method::POST),
            headers: vec![HeaderCond {
                name: HeaderName::from_static("version"),
                value: exact("two"),
            }]
            .into(),
            query: vec![QueryCond {
                name: "animal".into(),
                value: exact("whale"),
            }]
            .into(),
        };
        let ok = parts(Method::POST, "/?animal=whale", &[("Version", "two")]);
        assert!(guard.matches(&ok));
        assert!(!guard.matches(&parts(Method::GET, "/?animal=whale", &[("version", "two")])));
        assert!(!guard.matches(&parts(
            Method::POST,
            "/?animal=dolphin",
            &[("version", "two")]
        )));
        assert!(!guard.matches(&parts(Method::POST, "/?animal=whale", &[])));
        assert!(!guard.matches(&parts(
            Method::POST,
            "/?Animal=whale",
            &[("version", "two")]
        )));
        assert!(!guard.matches(&parts(
            Method::POST,
            "/?animal=whale",
            &[("version", "Two")]
        )));
        assert!(Guard::default().matches(&ok));
        assert!(Guard::default().is_empty());
    }

    #[test]
    fn regex_values_match_whole_values() {
        let guard = Guard {
            headers: vec![HeaderCond {
                name: HeaderName::from_static("x-v"),
                value: ValueMatch::Regex(anchored("v[0-9]+").unwrap()),
            }]
            .into(),
            query: vec![QueryCond {
                name: "q".into(),
                value: ValueMatch::Regex(anchored("a.c").unwrap()),
            }]
            .into(),
            ..Default::default()
        };
        assert!(guard.matches(&parts(Method::GET, "/?q=abc", &[("x-v", "v12")])));
        assert!(!guard.matches(&parts(Method::GET, "/?q=abc", &[("x-v", "xv12")])));
        assert!(!guard.matches(&parts(Method::GET, "/?q=abcd", &[("x-v", "v1")])));
        // Several header values: any; several query values: the first.
        let two = http::Request::builder()
            .uri("/?q=abc&q=zzz")
            .header("x-v", "nope")
            .header("x-v", "v2")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert!(guard.matches(&two));
        assert!(!guard.matches(&parts(Method::GET, "/?q=zzz&q=abc", &[("x-v", "v1")])));
    }

    #[test]
    fn query_values_are_decoded_when_escaped() {
        assert_eq!(query_value("a=1&b=x%20y", "b").unwrap().as_ref(), b"x y");
        assert_eq!(query_value("a=1&b=x+y", "b").unwrap().as_ref(), b"x y");
        assert_eq!(query_value("flag&b=2", "flag").unwrap().as_ref(), b"");
        assert!(query_value("a=1", "b").is_none());
        assert!(matches!(query_value("a=1", "a"), Some(Cow::Borrowed(_))));
    }
}
