//! Gateway API route filters and weighted backends as plain values:
//! header edits, redirects computed from the request, URL rewrites,
//! mirrors and weighted backend choices (re-exported by [`super::policy`],
//! where they are [`super::policy::RoutePolicy`] fields).
//!
//! Invariants:
//! - Built by the compiler with valid parts only (header names and values
//!   already parsed, status codes among 301, 302, 303, 307, 308), never
//!   mutated after; the request path reads them without locks.
//! - Applying one allocates only where the result is new (a rewritten path,
//!   a `Location`); the pure computations live here, beside the types, so
//!   they are tested without sockets.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::ids::UpstreamId;

/// Weighted backends of a rule (Gateway `backendRefs`).
#[derive(Debug, Clone, Default)]
pub struct Backends {
    pub choices: Box<[BackendChoice]>,
    /// The sum of the weights; 0 (or no choices): every request gets a 500.
    pub total: u32,
}

/// One backendRef of a rule.
#[derive(Debug, Clone)]
pub struct BackendChoice {
    /// 0 is allowed: never chosen.
    pub weight: u32,
    /// `None`: an invalid reference (missing Service, not permitted); its
    /// share of requests is answered with 500.
    pub upstream: Option<UpstreamId>,
    /// `namespace/service:port`, for metrics and logs.
    pub service: Arc<str>,
    /// backendRef-level RequestHeaderModifier.
    pub request_headers: Option<Arc<HeaderEdits>>,
    /// backendRef-level ResponseHeaderModifier.
    pub response_headers: Option<Arc<HeaderEdits>>,
}

impl Backends {
    /// The choice for a draw in `0..total`; `None` when `total` is 0.
    pub fn choose(&self, draw: u32) -> Option<&BackendChoice> {
        let mut left = draw;
        for choice in self.choices.iter() {
            if left < choice.weight {
                return Some(choice);
            }
            left -= choice.weight;
        }
        None
    }
}

/// RequestHeaderModifier / ResponseHeaderModifier: `set` replaces every
/// value, `add` appends a value (a second field, not a comma join),
/// `remove` drops the header; applied in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    pub set: Box<[(HeaderName, HeaderValue)]>,
    pub add: Box<[(HeaderName, HeaderValue)]>,
    pub remove: Box<[HeaderName]>,
}

impl HeaderEdits {
    /// Applies the edits to `headers` (clones only the pre-built values).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.set.iter() {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in self.add.iter() {
            headers.append(name.clone(), value.clone());
        }
        for name in self.remove.iter() {
            headers.remove(name);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// How a redirect or rewrite changes the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// ReplaceFullPath: the whole path becomes this.
    Full(Arc<str>),
    /// ReplacePrefixMatch: the matched prefix (the rule's `PathPrefix`
    /// value) is replaced, on segment boundaries.
    Prefix {
        matched: Arc<str>,
        replacement: Arc<str>,
    },
}

impl PathModifier {
    /// The new path for request path `path` (without the query).
    ///
    /// ReplacePrefixMatch follows the specification's slash rules: the
    /// matched prefix (trailing slash ignored) is cut on a segment boundary
    /// and the replacement (trailing slash ignored) joined to the rest with
    /// exactly one `/`; an empty result is `/`. `/prefix/x` with `/prefix`
    /// → `/` gives `/x`, → `/new` gives `/new/x`; `/prefix` → `/new` gives
    /// `/new`.
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathModifier::Full(full) => full.to_string(),
            PathModifier::Prefix {
                matched,
                replacement,
            } => {
                let matched = matched.trim_end_matches('/');
                let rest = path
                    .strip_prefix(matched)
                    .filter(|r| r.is_empty() || r.starts_with('/'))
                    // Not under the prefix (cannot happen for a routed
                    // request): the path is kept as it is.
                    .unwrap_or(path);
                let rest = rest.trim_start_matches('/');
                let base = replacement.trim_end_matches('/');
                let mut out = String::with_capacity(base.len() + rest.len() + 2);
                out.push_str(base);
                if !rest.is_empty() || out.is_empty() || (path.ends_with('/') && rest.is_empty()) {
                    out.push('/');
                }
                out.push_str(rest);
                if !out.starts_with('/') {
                    out.insert(0, '/');
                }
                out
            }
        }
    }
}

/// RequestRedirect: every request answered with a `Location` computed from
/// it ([`RedirectTo::location`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTo {
    /// `http` or `https`; `None`: the request's scheme.
    pub scheme: Option<Arc<str>>,
    /// `None`: the request's host (without its port).
    pub hostname: Option<Arc<str>>,
    pub port: Option<u16>,
    /// `None`: the request's path.
    pub path: Option<PathModifier>,
    /// 301, 302, 303, 307 or 308.
    pub status: StatusCode,
    /// The port of the listener the route is attached to.
    pub listener_port: u16,
}

impl RedirectTo {
    /// The `Location` for a request with `scheme`, `host` (without port),
    /// `path` and `query`: the port is the explicit one, else the scheme's
    /// well-known port when the scheme is set, else the listener's; a
    /// well-known port of the resulting scheme is left out.
    pub fn location(&self, scheme: &str, host: &str, path: &str, query: Option<&str>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(scheme);
        let port = match (self.port, &self.scheme) {
            (Some(port), _) => port,
            (None, Some(_)) => well_known_port(scheme),
            (None, None) => self.listener_port,
        };
        let host = self.hostname.as_deref().unwrap_or(host);
        let path = match &self.path {
            Some(modifier) => std::borrow::Cow::Owned(modifier.apply(path)),
            None => std::borrow::Cow::Borrowed(path),
        };
        let mut out = format!("{scheme}://{host}");
        if port != well_known_port(scheme) {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out.push_str(&path);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

/// 443 for `https`, 80 for anything else.
fn well_known_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

/// URLRewrite: the Host and path sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRewrite {
    pub hostname: Option<HeaderValue>,
    pub path: Option<PathModifier>,
}

/// RequestMirror: a copy of the request sent to another upstream in the
/// background; its response is discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub upstream: UpstreamId,
    /// `namespace/service:port`, for metrics and logs.
    pub service: Arc<str>,
    /// Requests per million that are mirrored (1,000,000: all).
    pub per_million: u32,
    /// ingress-nginx's `mirror-target`: where the copy goes on its
    /// upstream; `None` (Gateway RequestMirror): the request as sent.
    pub target: Option<Arc<MirrorTarget>>,
}

/// The copy's target and Host for ingress-nginx's `mirror-target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorTarget {
    /// The path of the target URL (may be empty).
    pub path: Arc<str>,
    /// The target ended in `$request_uri`: the copy's target is `path`
    /// followed by the request's own (`path` alone otherwise, with the
    /// request's query; the request's own target when `path` is empty).
    pub request_uri: bool,
    /// `mirror-host`, or the target URL's host.
    pub host: http::HeaderValue,
    /// `mirror-request-body`: the copy carries the request's body.
    pub body: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(matched: &str, replacement: &str) -> PathModifier {
        PathModifier::Prefix {
            matched: matched.into(),
            replacement: replacement.into(),
        }
    }

    #[test]
    fn replace_prefix_match_slash_rules() {
        // From the Gateway API specification and conformance tests.
        let cases = [
            ("/prefix", "/", "/prefix/x", "/x"),
            ("/prefix", "/new", "/prefix/x", "/new/x"),
            ("/prefix", "/new", "/prefix", "/new"),
            ("/prefix", "/new", "/prefix/", "/new/"),
            ("/prefix", "/", "/prefix", "/"),
            ("/prefix/", "/new/", "/prefix/x/y", "/new/x/y"),
            ("/foo", "/xyz", "/foo/bar", "/xyz/bar"),
            ("/foo/", "/xyz/", "/foo/bar", "/xyz/bar"),
            ("/foo", "/xyz/", "/foo/bar", "/xyz/bar"),
            ("/foo/", "/xyz", "/foo/bar", "/xyz/bar"),
            ("/foo", "/xyz", "/foo", "/xyz"),
            ("/foo", "", "/foo/bar", "/bar"),
            ("/", "/new", "/x/y", "/new/x/y"),
            ("/", "/", "/x", "/x"),
        ];
        for (matched, replacement, path, want) in cases {
            assert_eq!(
                prefix(matched, replacement).apply(path),
                want,
                "{matched} -> {replacement} on {path}"
            );
        }
        assert_eq!(PathModifier::Full("/full".into()).apply("/a/b"), "/full");
    }

    fn redirect(scheme: Option<&str>, port: Option<u16>, listener_port: u16) -> RedirectTo {
        RedirectTo {
            scheme: scheme.map(Into::into),
            hostname: None,
            port,
            path: None,
            status: StatusCode::FOUND,
            listener_port,
        }
    }

    #[test]
    fn redirect_location_ports() {
        let loc = |r: &RedirectTo, scheme| r.location(scheme, "example.org", "/p", Some("a=1"));
        assert_eq!(
            loc(&redirect(None, None, 80), "http"),
            "http://example.org/p?a=1"
        );
        assert_eq!(
            loc(&redirect(None, None, 8080), "http"),
            "http://example.org:8080/p?a=1"
        );
        assert_eq!(
            loc(&redirect(Some("https"), None, 80), "http"),
            "https://example.org/p?a=1"
        );
        assert_eq!(
            loc(&redirect(Some("https"), None, 8080), "http"),
            "https://example.org/p?a=1"
        );
        assert_eq!(
            loc(&redirect(Some("https"), Some(8443), 80), "http"),
            "https://example.org:8443/p?a=1"
        );
        assert_eq!(
            loc(&redirect(None, Some(443), 80), "https"),
            "https://example.org/p?a=1"
        );
        assert_eq!(
            loc(&redirect(Some("http"), None, 443), "https"),
            "http://example.org/p?a=1"
        );
        assert_eq!(
            loc(&redirect(None, None, 443), "https"),
            "https://example.org/p?a=1"
        );
        let full = RedirectTo {
            hostname: Some("other.example".into()),
            path: Some(prefix("/p", "/q")),
            ..redirect(None, None, 80)
        };
        assert_eq!(
            full.location("http", "example.org", "/p/x", None),
            "http://other.example/q/x"
        );
    }

    #[test]
    fn weighted_choice() {
        let choice = |weight, upstream| BackendChoice {
            weight,
            upstream,
            service: "ns/s:80".into(),
            request_headers: None,
            response_headers: None,
        };
        let b = Backends {
            choices: vec![choice(0, Some(9)), choice(1, Some(1)), choice(3, None)].into(),
            total: 4,
        };
        assert_eq!(b.choose(0).unwrap().upstream, Some(1));
        assert_eq!(b.choose(1).unwrap().upstream, None);
        assert_eq!(b.choose(3).unwrap().upstream, None);
        assert!(b.choose(4).is_none());
    }

    #[test]
    fn header_edits_set_add_remove() {
        let edits = HeaderEdits {
            set: vec![(
                HeaderName::from_static("x-set"),
                HeaderValue::from_static("s"),
            )]
            .into(),
            add: vec![(
                HeaderName::from_static("x-add"),
                HeaderValue::from_static("a2"),
            )]
            .into(),
            remove: vec![HeaderName::from_static("x-gone")].into(),
        };
        let mut h = HeaderMap::new();
        h.append("x-set", HeaderValue::from_static("1"));
        h.append("x-set", HeaderValue::from_static("2"));
        h.insert("x-add", HeaderValue::from_static("a1"));
        h.insert("x-gone", HeaderValue::from_static("g"));
        edits.apply(&mut h);
        assert_eq!(h.get_all("x-set").iter().collect::<Vec<_>>(), ["s"]);
        assert_eq!(h.get_all("x-add").iter().collect::<Vec<_>>(), ["a1", "a2"]);
        assert!(!h.contains_key("x-gone"));
    }
}
