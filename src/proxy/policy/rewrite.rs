//! The path sent upstream: `rewrite-target` and the Gateway URLRewrite
//! (which also sets the Host), rewritten after external authentication so
//! it, error pages and hashing see the request URI as the client sent it
//! (`$request_uri`).
//!
//! Invariants:
//! - The query string is kept; a result that is not a valid request target
//!   is a 400, never forwarded.
//! - Matching and prefix replacement use the normalized path, like routing.

use http::header::HOST;
use http::{Request, Uri};

use super::exchange::{Cx, Flow, UpstreamStep};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::prepare::Prepared;
use crate::table::path;
use crate::table::policy::{Rewrite, UrlRewrite};

impl UpstreamStep for Rewrite {
    async fn run(&self, cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        // A `mirror-target` with `$request_uri` needs the target as sent.
        if cx.route.policy.mirrors.iter().any(|m| m.target.is_some()) {
            cx.request_uri = Some(prepared.req.uri().clone());
        }
        rewrite_path(&mut prepared.req, &self.pattern, &self.target)?;
        Ok(Flow::Continue)
    }
}

impl UpstreamStep for UrlRewrite {
    async fn run(&self, _cx: &mut Cx<'_>, prepared: &mut Prepared) -> Result<Flow, ProxyError> {
        let req = &mut prepared.req;
        if let Some(modifier) = &self.path {
            let mut out = modifier.apply(&path::normalize(req.uri().path()));
            if let Some(query) = req.uri().query() {
                out.push('?');
                out.push_str(query);
            }
            let uri: Uri = out.parse().map_err(|_| {
                ProxyError::BadRequest("rewritten path is not a valid request target")
            })?;
            *req.uri_mut() = uri;
        }
        if let Some(host) = &self.hostname {
            req.headers_mut().insert(HOST, host.clone());
        }
        Ok(Flow::Continue)
    }
}

/// nginx `rewrite PATTERN TARGET break`: the whole path becomes the target
/// with `$N` replaced by capture N; the query string is kept.
fn rewrite_path<B>(
    req: &mut Request<B>,
    pattern: &regex::Regex,
    target: &str,
) -> Result<(), ProxyError> {
    let normalized = path::normalize(req.uri().path());
    let Some(caps) = pattern.captures(&normalized) else {
        return Ok(());
    };
    let mut out = String::with_capacity(target.len() + normalized.len());
    let mut chars = target.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' {
            let braced = chars.peek().is_some_and(|(_, c)| *c == '{');
            if braced {
                chars.next();
            }
            let mut n = String::new();
            while let Some((_, d)) = chars.peek().filter(|(_, d)| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            if braced && chars.peek().is_some_and(|(_, c)| *c == '}') {
                chars.next();
            }
            match n.parse::<usize>() {
                Ok(i) => out.push_str(caps.get(i).map_or("", |m| m.as_str())),
                Err(_) => out.push('$'),
            }
        } else {
            out.push(c);
        }
    }
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    if let Some(query) = req.uri().query() {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(query);
    }
    let uri: Uri = out
        .parse()
        .map_err(|_| ProxyError::BadRequest("rewritten path is not a valid request target"))?;
    *req.uri_mut() = uri;
    Ok(())
}
