//! Validation of Ingress fields the API server would also check, so that
//! standalone manifests get the same errors a cluster would give, and of
//! the regular-expression paths of `use-regex`.
//!
//! Invariant: pure functions; each problem names the field and a reason a
//! user can act on; never panics on any input.

use crate::config::snapshot::{CompactIngress, IngressBackend};

use super::annotations::parser::annotation;
use super::problem::{Field, PathPart, Problem, Reason};

/// Structural problems that reject an Ingress.
pub fn ingress(ingress: &CompactIngress) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(spec) = &ingress.spec else {
        problems.push(Problem::new(Field::Spec, Reason::Missing));
        return problems;
    };
    if let Some(backend) = &spec.default_backend {
        if let Err(reason) = self::backend(backend) {
            problems.push(Problem::new(Field::DefaultBackend, reason));
        }
    }
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            if let Err(reason) = self::host(host) {
                problems.push(Problem::new(
                    Field::RuleHost { rule: i },
                    Reason::Invalid(reason),
                ));
            }
        }
        let Some(http) = &rule.http else { continue };
        for (j, path) in http.paths.iter().enumerate() {
            let field = |part| Field::path(i, j, part);
            match &*path.path_type {
                "Exact" | "Prefix" | "ImplementationSpecific" => {}
                "" => problems.push(Problem::new(field(PathPart::PathType), Reason::Required)),
                other => problems.push(Problem::new(
                    field(PathPart::PathType),
                    Reason::UnknownPathType(other.to_string()),
                )),
            }
            let p = path.path.as_deref().unwrap_or("/");
            // `use-regex` paths are regular expressions, checked as such.
            let regex_path = &*path.path_type != "Exact" && uses_regex(ingress);
            if !regex_path {
                if let Err(reason) = self::path(p) {
                    problems.push(Problem::new(field(PathPart::Path), Reason::Invalid(reason)));
                }
            } else if !p.starts_with('/') {
                problems.push(Problem::new(
                    field(PathPart::Path),
                    Reason::RegexPathNotAbsolute(p.to_string()),
                ));
            }
            if let Err(reason) = backend(&path.backend) {
                problems.push(Problem::new(field(PathPart::Backend), reason));
            }
        }
    }
    problems
}

/// `use-regex: "true"`, or `rewrite-target` (which implies it, as in
/// ingress-nginx).
fn uses_regex(ingress: &CompactIngress) -> bool {
    annotation(ingress, "nginx.ingress.kubernetes.io/use-regex") == Some("true")
        || annotation(ingress, "nginx.ingress.kubernetes.io/rewrite-target").is_some()
}

/// A backend: exactly one Service with exactly one valid port.
pub fn backend(backend: &IngressBackend) -> Result<(), Reason> {
    match (&backend.service, &backend.resource) {
        (Some(_), Some(_)) => Err(Reason::ServiceAndResource),
        (None, Some(_)) => Err(Reason::ResourceBackend),
        (None, None) => Err(Reason::NoServiceBackend),
        (Some(svc), None) => {
            if svc.name.is_empty() {
                return Err(Reason::NoServiceName);
            }
            let port = svc.port.as_ref();
            match (
                port.and_then(|p| p.number),
                port.and_then(|p| p.name.as_deref()),
            ) {
                (Some(_), Some(_)) => Err(Reason::PortNumberAndName),
                (None, None) => Err(Reason::NoPort),
                (Some(n), None) if !(1..=65535).contains(&n) => Err(Reason::PortOutOfRange(n)),
                _ => Ok(()),
            }
        }
    }
}

/// The regex of a `use-regex` path: case-insensitive, anchored at the start
/// (ingress-nginx's `location ~* "^PATH"`), size-limited.
pub fn path_regex(path: &str) -> Result<regex::Regex, Reason> {
    regex::RegexBuilder::new(&format!("^(?:{path})"))
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Reason::InvalidRegex {
            path: path.to_string(),
            error: e.to_string(),
        })
}

/// A rule host: a DNS-1123 subdomain, optionally with a leading `*.`
/// wildcard label. IP addresses are not allowed (as in the API server).
pub fn host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty() {
        return Err("a wildcard host needs a domain after `*.`".into());
    }
    if host.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    if name.contains('*') {
        return Err(
            "a wildcard `*` is only allowed as the whole first label (`*.example.com`)".into(),
        );
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("must be a DNS name, not an IP address".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "`{host}` is not a valid lowercase DNS-1123 subdomain (label `{label}`)"
            ));
        }
    }
    Ok(())
}

/// A path of type Exact or Prefix (and ImplementationSpecific, which we
/// treat as Prefix): absolute, without dot segments, `//`, or encoded `/`.
pub fn path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "`{path}` must be an absolute path starting with `/`"
        ));
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if path.contains(bad) {
            return Err(format!("`{path}` must not contain `{bad}`"));
        }
    }
    if path.ends_with("/..") || path.ends_with("/.") {
        return Err(format!("`{path}` must not end with a dot segment"));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'?')
    {
        return Err(format!(
            "`{path}` must not contain spaces, `?` or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hosts() {
        assert!(super::host("foo.bar.com").is_ok());
        assert!(super::host("*.foo.com").is_ok());
        assert!(super::host("a-b.c1").is_ok());
        assert!(super::host("Foo.com").is_err());
        assert!(super::host("*.").is_err());
        assert!(super::host("a.*.com").is_err());
        assert!(super::host("10.0.0.1").is_err());
        assert!(super::host("-a.com").is_err());
        assert!(super::host("a..com").is_err());
        assert!(super::host("a_b.com").is_err());
    }

    #[test]
    fn paths() {
        assert!(super::path("/").is_ok());
        assert!(super::path("/foo/bar/").is_ok());
        assert!(super::path("foo").is_err());
        assert!(super::path("/a/../b").is_err());
        assert!(super::path("/a//b").is_err());
        assert!(super::path("/a/.").is_err());
        assert!(super::path("/a%2Fb").is_err());
        assert!(super::path("/a?b").is_err());
    }
}
