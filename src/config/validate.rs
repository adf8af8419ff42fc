//! Validation of Ingress fields the API server would also check, so that
//! standalone manifests get the same errors a cluster would give.
//!
//! Invariant: pure functions over strings; each returns a reason a user can
//! act on, never panics on any input.

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
