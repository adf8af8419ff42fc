//! `mirror-target`, `mirror-host`, `mirror-request-body`: a copy of every
//! request of the Ingress goes to a URL (nginx's `mirror` to a location
//! that does `proxy_pass <target>` with `Host <mirror-host>`).
//!
//! The documented forms are honoured: `http(s)://HOST[:PORT][PATH]`,
//! optionally ending in `$request_uri` (`https://test.env.com$request_uri`,
//! `https://1.2.3.4/$request_uri`, `http://localhost/mirror`). Any other
//! nginx variable would need nginx to expand it: it rejects the Ingress,
//! naming the annotation.
//!
//! Invariant: pure; the host is a validated DNS name or IP address, the
//! path a valid URI path.

use http::HeaderValue;

use super::parser::{Parser, NGINX};

/// A parsed mirror target, for the compiler to give an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSpec {
    pub https: bool,
    /// The target's host (a DNS name or an IP address, no brackets).
    pub host: String,
    pub port: u16,
    /// The path of the target URL, as written (may be empty).
    pub path: String,
    /// The target ends in `$request_uri`: the copy's target is `path`
    /// followed by the request's own target.
    pub request_uri: bool,
    /// The Host header of the copy (`mirror-host`, else the target's host).
    pub host_header: HeaderValue,
    /// `mirror-request-body` is not `off`.
    pub body: bool,
}

impl Parser<'_> {
    pub(super) fn mirror(&mut self) -> Option<MirrorSpec> {
        let name = format!("{NGINX}mirror-target");
        let target = self.get(&name)?;
        if target.is_empty() {
            return None;
        }
        let spec = match parse_target(target) {
            Ok(spec) => spec,
            Err(reason) => {
                self.reject(
                    &name,
                    format!("`{target}`: {reason}; the Ingress is not served as written"),
                );
                return None;
            }
        };
        let (https, host, port, path, request_uri) = spec;
        let host_name = format!("{NGINX}mirror-host");
        let host_header = match self.get(&host_name).filter(|h| !h.is_empty()) {
            None => HeaderValue::from_str(&host).ok()?,
            Some(h) => match HeaderValue::from_str(h) {
                Ok(v) if crate::config::validate::host(h).is_ok() => v,
                _ => {
                    self.warn(
                        &host_name,
                        format!("`{h}` is not a host name; using the target's host"),
                    );
                    HeaderValue::from_str(&host).ok()?
                }
            },
        };
        let body_name = format!("{NGINX}mirror-request-body");
        let body = match self.get(&body_name) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                self.warn(&body_name, format!("`{other}` is not on or off; using on"));
                true
            }
        };
        Some(MirrorSpec {
            https,
            host,
            port,
            path,
            request_uri,
            host_header,
            body,
        })
    }
}

type Target = (bool, String, u16, String, bool);

/// `http(s)://HOST[:PORT][PATH][$request_uri]`.
fn parse_target(target: &str) -> Result<Target, String> {
    let (https, rest) = if let Some(rest) = target.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = target.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err("not an http:// or https:// URL".into());
    };
    let (rest, request_uri) = match rest.strip_suffix("$request_uri") {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    if rest.contains('$') {
        return Err("only `$request_uri` (at the end) is supported of nginx's variables".into());
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let default_port = if https { 443 } else { 80 };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (ip, after) = v6.split_once(']').ok_or("an unclosed IPv6 address")?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("`{p}` is not a port"))?,
                None if after.is_empty() => default_port,
                None => return Err("not a URL".into()),
            };
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
            (ip.to_string(), port)
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("`{p}` is not a port"))?,
            ),
            None => (authority.to_string(), default_port),
        },
    };
    let host = host.to_ascii_lowercase();
    if host.starts_with('*') {
        return Err("a wildcard is not a host".into());
    }
    if host.parse::<std::net::IpAddr>().is_err() {
        crate::config::validate::host(&host).map_err(|e| format!("`{host}`: {e}"))?;
    }
    if port == 0 {
        return Err("port 0".into());
    }
    if !path.is_empty()
        && (!path.starts_with('/') || http::uri::PathAndQuery::try_from(path).is_err())
    {
        return Err(format!("`{path}` is not a URL path"));
    }
    Ok((https, host, port, path.to_string(), request_uri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_targets_parse() {
        assert_eq!(
            parse_target("https://test.env.com$request_uri"),
            Ok((true, "test.env.com".into(), 443, "".into(), true))
        );
        assert_eq!(
            parse_target("https://test.env.com/$request_uri"),
            Ok((true, "test.env.com".into(), 443, "/".into(), true))
        );
        assert_eq!(
            parse_target("http://localhost/mirror"),
            Ok((false, "localhost".into(), 80, "/mirror".into(), false))
        );
        assert_eq!(
            parse_target("http://1.2.3.4:8080$request_uri"),
            Ok((false, "1.2.3.4".into(), 8080, "".into(), true))
        );
        assert_eq!(
            parse_target("http://[::1]:81/m"),
            Ok((false, "::1".into(), 81, "/m".into(), false))
        );
    }

    #[test]
    fn other_targets_are_refused() {
        for t in [
            "ftp://x",
            "http://x/$uri",
            "http://$host/",
            "http://x:port/",
            "http://x:0/",
            "http://bad host/",
            "http://[::1/",
            "http://*.x.example/",
        ] {
            assert!(parse_target(t).is_err(), "{t}");
        }
    }
}
