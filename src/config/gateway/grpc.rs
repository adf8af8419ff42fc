//! GRPCRoute rules as HTTPRoute rules: a gRPC call is a POST to
//! `/SERVICE/METHOD`, so a method match is a path match, and the rest
//! (headers, filters, backends) is shared with HTTPRoute lowering.
//!
//! Invariants:
//! - `Exact` service and method → an `Exact` path; service alone → the
//!   `PathPrefix` `/SERVICE`; method alone, or `RegularExpression` → a
//!   whole-path regular expression where a missing part is `[^/]+`; no
//!   method match → every path.
//! - Exact names are escaped before they enter a regular expression.
//! - Pure; never panics.

use crate::gateway_api::route::{
    GrpcMethodMatch, GrpcRouteRule, HttpRouteMatch, HttpRouteRule, PathMatch,
};

fn path(type_: &str, value: String) -> Option<PathMatch> {
    Some(PathMatch {
        type_: Some(type_.into()),
        value: Some(value),
    })
}

/// The path match of a gRPC method match.
pub(super) fn method_path(m: &GrpcMethodMatch) -> Result<Option<PathMatch>, String> {
    let service = m.service.as_deref().filter(|s| !s.is_empty());
    let method = m.method.as_deref().filter(|s| !s.is_empty());
    match m.type_.as_deref().unwrap_or("Exact") {
        "Exact" => {
            for part in [service, method].into_iter().flatten() {
                if part.contains('/') {
                    return Err(format!("gRPC name `{part}` must not contain `/`"));
                }
            }
            Ok(match (service, method) {
                (Some(s), Some(m)) => path("Exact", format!("/{s}/{m}")),
                (Some(s), None) => path("PathPrefix", format!("/{s}")),
                (None, Some(m)) => {
                    path("RegularExpression", format!("/[^/]+/{}", regex::escape(m)))
                }
                (None, None) => None,
            })
        }
        "RegularExpression" => Ok(path(
            "RegularExpression",
            format!(
                "/(?:{})/(?:{})",
                service.unwrap_or("[^/]+"),
                method.unwrap_or("[^/]+")
            ),
        )),
        other => Err(format!("method match type `{other}` is not supported")),
    }
}

/// A GRPCRoute rule as the HTTPRoute rule it routes like.
pub(super) fn as_http_rule(rule: &GrpcRouteRule) -> Result<HttpRouteRule, String> {
    let matches = rule
        .matches
        .iter()
        .map(|m| {
            Ok(HttpRouteMatch {
                path: m.method.as_ref().map(method_path).transpose()?.flatten(),
                headers: m.headers.clone(),
                query_params: Vec::new(),
                method: None,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HttpRouteRule {
        name: rule.name.clone(),
        matches: (!matches.is_empty()).then_some(matches),
        filters: rule.filters.clone(),
        backend_refs: rule.backend_refs.clone(),
        timeouts: None,
        retry: None,
        session_persistence: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(type_: Option<&str>, service: Option<&str>, method: Option<&str>) -> GrpcMethodMatch {
        GrpcMethodMatch {
            type_: type_.map(Into::into),
            service: service.map(Into::into),
            method: method.map(Into::into),
        }
    }

    fn shown(p: Option<PathMatch>) -> Option<(String, String)> {
        p.map(|p| (p.type_.unwrap_or_default(), p.value.unwrap_or_default()))
    }

    #[test]
    fn method_matches_become_paths() {
        let s = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        let cases = [
            (
                m(None, Some("pkg.Svc"), Some("Do")),
                s("Exact", "/pkg.Svc/Do"),
            ),
            (m(None, Some("pkg.Svc"), None), s("PathPrefix", "/pkg.Svc")),
            (
                m(None, None, Some("Do.It")),
                s("RegularExpression", "/[^/]+/Do\\.It"),
            ),
            (
                m(Some("RegularExpression"), Some("pkg\\..*"), None),
                s("RegularExpression", "/(?:pkg\\..*)/(?:[^/]+)"),
            ),
            (m(None, None, None), None),
        ];
        for (input, want) in cases {
            assert_eq!(shown(method_path(&input).unwrap()), want, "{input:?}");
        }
        assert!(method_path(&m(None, Some("a/b"), None)).is_err());
        assert!(method_path(&m(Some("Prefix"), Some("a"), None)).is_err());
    }
}
