//! ingress-nginx's header settings as the table's one typed form of header
//! rules, [`HeaderEdits`] (what TrafficPolicy `headers` and the Gateway API
//! header filters compile into): `custom-headers` (a ConfigMap of response
//! headers, resolved by the compiler), `configuration-snippet` and
//! `server-snippet` made only of header directives ([`super::snippet`]),
//! and the global ConfigMap's `add-headers` / `proxy-set-headers` lists.
//!
//! Invariants:
//! - Pure: strings in, pre-built header names and values out. Values are
//!   literal: nothing is interpolated (`$remote_addr` in a ConfigMap stays
//!   the text `$remote_addr`, as ingress-nginx escapes it).
//! - Hop-by-hop headers, `Host` and `Content-Length` are never edited: a
//!   rule naming one is refused (as TrafficPolicy validation refuses it).
//! - Rules apply in the order given: a later `set` of a name replaces an
//!   earlier one and cancels an earlier `remove`, a later `remove` cancels
//!   earlier `set`s and `add`s of the name, so [`HeaderEdits::apply`]'s
//!   fixed order (set, add, remove) gives the sequential result.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use crate::crd::REFUSED_HEADERS;
use crate::table::policy::HeaderEdits;

/// Edits of one message's headers, in the making.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl Edits {
    pub fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.set.retain(|(n, _)| *n != name);
        self.add.retain(|(n, _)| *n != name);
        self.remove.retain(|n| *n != name);
        self.set.push((name, value));
    }

    pub fn add(&mut self, name: HeaderName, value: HeaderValue) {
        self.remove.retain(|n| *n != name);
        self.add.push((name, value));
    }

    pub fn remove(&mut self, name: HeaderName) {
        self.set.retain(|(n, _)| *n != name);
        self.add.retain(|(n, _)| *n != name);
        if !self.remove.contains(&name) {
            self.remove.push(name);
        }
    }

    /// `other`'s rules after this one's.
    pub fn extend(&mut self, other: &Edits) {
        for (name, value) in &other.set {
            self.set(name.clone(), value.clone());
        }
        for (name, value) in &other.add {
            self.add(name.clone(), value.clone());
        }
        for name in &other.remove {
            self.remove(name.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// The typed rules; `None` when there are none.
    pub fn build(&self) -> Option<Arc<HeaderEdits>> {
        (!self.is_empty()).then(|| {
            Arc::new(HeaderEdits {
                set: self.set.clone().into(),
                add: self.add.clone().into(),
                remove: self.remove.clone().into(),
            })
        })
    }
}

/// Request and response header rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// On the request sent upstream.
    pub request: Edits,
    /// On the response sent to the client.
    pub response: Edits,
}

impl HeaderRules {
    /// `other`'s rules after this one's.
    pub fn extend(&mut self, other: &HeaderRules) {
        self.request.extend(&other.request);
        self.response.extend(&other.response);
    }

    pub fn is_empty(&self) -> bool {
        self.request.is_empty() && self.response.is_empty()
    }
}

/// What the header annotations of one Ingress ask for.
#[derive(Debug, Clone, Default)]
pub struct HeaderAnnotations {
    /// `custom-headers`: the ConfigMap (`namespace/name`, or a name in the
    /// Ingress's namespace) whose entries are set on responses.
    pub custom_headers: Option<String>,
    /// The rules of `server-snippet` then `configuration-snippet`.
    pub snippets: HeaderRules,
    /// The snippet annotations present (full names), for
    /// `allow-snippet-annotations: "false"`.
    pub snippet_names: Vec<String>,
}

/// A header name rules may edit.
pub fn header_name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    if REFUSED_HEADERS.contains(&parsed.as_str()) {
        return Err(format!(
            "`{name}`: hop-by-hop, Host and Content-Length headers cannot be edited"
        ));
    }
    Ok(parsed)
}

/// A literal header value.
pub fn header_value(name: &str, value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value)
        .map_err(|_| format!("the value of `{name}` is not a valid header value"))
}

/// A ConfigMap's entries as headers (`add-headers`, `proxy-set-headers`,
/// `custom-headers`), in key order, each set. `allowed`: when given, the
/// names (lowercase) that may be set (`global-allowed-response-headers`).
pub fn config_map_headers(
    data: &BTreeMap<String, String>,
    allowed: Option<&[String]>,
) -> Result<Edits, String> {
    let mut edits = Edits::default();
    for (name, value) in data {
        let parsed = header_name(name)?;
        if let Some(allowed) = allowed {
            if !allowed.iter().any(|a| a == parsed.as_str()) {
                return Err(format!(
                    "header `{name}` is not allowed: list it in the ConfigMap's `global-allowed-response-headers`"
                ));
            }
        }
        edits.set(parsed, header_value(name, value.trim())?);
    }
    Ok(edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &'static str) -> HeaderName {
        HeaderName::from_static(s)
    }

    fn v(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn later_rules_win_in_order() {
        let mut e = Edits::default();
        e.remove(n("server"));
        e.set(n("server"), v("a"));
        e.add(n("x"), v("1"));
        e.set(n("y"), v("1"));
        e.remove(n("x"));
        e.set(n("y"), v("2"));
        let built = e.build().unwrap();
        assert_eq!(&*built.set, &[(n("server"), v("a")), (n("y"), v("2"))]);
        assert!(built.add.is_empty());
        assert_eq!(&*built.remove, &[n("x")]);
        assert!(Edits::default().build().is_none());
    }

    #[test]
    fn config_map_headers_are_literal_and_checked() {
        let data: BTreeMap<String, String> = [
            ("My-Custom-Header".to_string(), "42".to_string()),
            ("X-Dollar".to_string(), "$remote_addr".to_string()),
        ]
        .into();
        let e = config_map_headers(&data, None).unwrap().build().unwrap();
        assert_eq!(
            &*e.set,
            &[
                (n("my-custom-header"), v("42")),
                (n("x-dollar"), v("$remote_addr"))
            ]
        );
        let allowed = ["my-custom-header".to_string()];
        let err = config_map_headers(&data, Some(&allowed)).unwrap_err();
        assert!(err.contains("X-Dollar"), "{err}");
        let hop: BTreeMap<String, String> = [("Connection".into(), "close".into())].into();
        assert!(config_map_headers(&hop, None).is_err());
    }
}
