//! Route filters → the route's [`RoutePolicy`]: RequestHeaderModifier,
//! ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror and
//! CORS (into the same CORS phase Ingress annotations use), plus a rule's
//! `timeouts` and `retry`.
//!
//! Invariants:
//! - A value the data plane could not apply (a header name that is not a
//!   token, a status that is not a redirect, an unknown filter type) is a
//!   [`FilterProblem`]: the route is not accepted
//!   (`UnsupportedValue`), never served half-configured.
//! - A mirror whose backend is invalid is left out and reported as a
//!   `ResolvedRefs` problem; it never affects the main request.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use super::backends::RefProblem;
use crate::config::builder::Builder;
use crate::config::snapshot::ObjectKey;
use crate::gateway_api::route::{HeaderModifier, PathModifier as PathSpec, RouteFilter};
use crate::gateway_api::route::{RouteCors, RouteRetry, RouteTimeouts};
use crate::table::policy::{
    Cors, CorsOrigins, HeaderEdits, Mirror, PathModifier, RedirectTo, Retry, RetryPacing,
    RoutePolicy, UrlRewrite,
};
use crate::table::upstream::LbAlgorithm;

/// Why a filter cannot be lowered: `Accepted: False, UnsupportedValue`
/// with this message.
#[derive(Debug)]
pub(super) struct FilterProblem(pub String);

/// What a filter list is lowered with.
pub(super) struct FilterContext<'a> {
    pub route_kind: &'static str,
    pub route: &'a ObjectKey,
    /// The rule match's `PathPrefix` value (for ReplacePrefixMatch).
    pub prefix: Option<&'a str>,
    /// The port of the listener the host is served through.
    pub listener_port: u16,
    pub grpc: bool,
}

fn unsupported(message: String) -> FilterProblem {
    FilterProblem(message)
}

/// RequestHeaderModifier / ResponseHeaderModifier → header edits.
pub(super) fn header_edits(m: &HeaderModifier) -> Result<Arc<HeaderEdits>, FilterProblem> {
    let name = |n: &str| {
        HeaderName::from_bytes(n.as_bytes())
            .map_err(|_| unsupported(format!("`{n}` is not a valid header name")))
    };
    let pair = |h: &crate::gateway_api::route::HeaderValue| {
        let value = HeaderValue::from_str(&h.value)
            .map_err(|_| unsupported(format!("`{}` is not a valid header value", h.value)))?;
        Ok::<_, FilterProblem>((name(&h.name)?, value))
    };
    Ok(Arc::new(HeaderEdits {
        set: m.set.iter().map(pair).collect::<Result<_, _>>()?,
        add: m.add.iter().map(pair).collect::<Result<_, _>>()?,
        remove: m.remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
    }))
}

fn path_modifier(p: &PathSpec, prefix: Option<&str>) -> Result<PathModifier, FilterProblem> {
    match p.type_.as_str() {
        "ReplaceFullPath" => Ok(PathModifier::Full(
            p.replace_full_path.as_deref().unwrap_or("/").into(),
        )),
        "ReplacePrefixMatch" => {
            let Some(matched) = prefix else {
                return Err(unsupported(
                    "ReplacePrefixMatch needs a PathPrefix match on the rule".into(),
                ));
            };
            Ok(PathModifier::Prefix {
                matched: matched.into(),
                replacement: p.replace_prefix_match.as_deref().unwrap_or("/").into(),
            })
        }
        other => Err(unsupported(format!(
            "path modifier type `{other}` is not ReplaceFullPath or ReplacePrefixMatch"
        ))),
    }
}

fn cors(c: &RouteCors) -> Result<Cors, FilterProblem> {
    let list = |items: &[String], default: &'static str| {
        if items.is_empty() {
            Ok(HeaderValue::from_static(default))
        } else {
            HeaderValue::from_str(&items.join(", ")).map_err(|_| {
                unsupported(format!(
                    "`{}` is not a valid header value",
                    items.join(", ")
                ))
            })
        }
    };
    let origins = CorsOrigins::from_list(&c.allow_origins);
    Ok(Cors {
        origins,
        allow_methods: list(&c.allow_methods, "GET, HEAD, POST")?,
        allow_headers: list(&c.allow_headers, "")?,
        expose_headers: if c.expose_headers.is_empty() {
            None
        } else {
            Some(list(&c.expose_headers, "")?)
        },
        allow_credentials: c.allow_credentials.unwrap_or(false),
        max_age: HeaderValue::from(c.max_age.unwrap_or(5).max(0)),
        nginx: false,
    })
}

/// A Gateway API duration (`1h`, `10s`, `500ms`); `0s` disables.
fn duration(field: &str, text: &str) -> Result<Option<Duration>, FilterProblem> {
    let d = crate::crd::parse_duration(text).map_err(|e| unsupported(format!("{field}: {e}")))?;
    Ok((!d.is_zero()).then_some(d))
}

/// `timeouts` → the policy's timeouts.
pub(super) fn timeouts(t: &RouteTimeouts, policy: &mut RoutePolicy) -> Result<(), FilterProblem> {
    if let Some(r) = &t.request {
        policy.timeouts.request = duration("timeouts.request", r)?;
    }
    if let Some(b) = &t.backend_request {
        policy.timeouts.backend_request = duration("timeouts.backendRequest", b)?;
    }
    if let (Some(r), Some(b)) = (policy.timeouts.request, policy.timeouts.backend_request) {
        if b > r {
            return Err(unsupported(
                "timeouts.backendRequest must not be longer than timeouts.request".into(),
            ));
        }
    }
    Ok(())
}

/// `retry` (experimental) → retries on connection errors (resets and
/// refusals), on backend timeouts (`timeouts.backendRequest` or the
/// response timeout) and on the listed statuses; `attempts` retries after
/// the first try (default 1), counted per attempt even on a one-endpoint
/// Service, each after `backoff` (doubling, capped; see
/// [`RetryPacing`]).
pub(super) fn retry(r: &RouteRetry, policy: &mut RoutePolicy) -> Result<(), FilterProblem> {
    let attempts = r.attempts.unwrap_or(1);
    let tries = u8::try_from(attempts.saturating_add(1))
        .map_err(|_| unsupported(format!("retry.attempts {attempts} is out of range")))?;
    let codes = r
        .codes
        .iter()
        .map(|c| {
            u16::try_from(*c)
                .ok()
                .filter(|c| (400..600).contains(c))
                .ok_or_else(|| unsupported(format!("retry code {c} is not in 400..599")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let backoff = match &r.backoff {
        Some(b) => duration("retry.backoff", b)?.unwrap_or_default(),
        None => Duration::ZERO,
    };
    policy.retry = Some(Retry {
        tries: tries.max(1),
        on_error: true,
        on_timeout: true,
        on_status: codes,
        non_idempotent: false,
        budget: None,
        within: None,
        pacing: Some(RetryPacing { backoff }),
    });
    Ok(())
}

impl Builder<'_> {
    /// Lowers a rule's filters into `policy`. Mirror problems are pushed to
    /// `refs` (the mirror is left out); anything unsupported is an error.
    pub(super) fn lower_filters(
        &mut self,
        filters: &[RouteFilter],
        cx: &FilterContext<'_>,
        policy: &mut RoutePolicy,
        refs: &mut Vec<RefProblem>,
    ) -> Result<(), FilterProblem> {
        let mut mirrors = Vec::new();
        for f in filters {
            let missing = || unsupported(format!("filter {}: its settings are missing", f.type_));
            match f.type_.as_str() {
                "RequestHeaderModifier" => {
                    let m = f.request_header_modifier.as_ref().ok_or_else(missing)?;
                    policy.request_headers = Some(header_edits(m)?);
                }
                "ResponseHeaderModifier" => {
                    let m = f.response_header_modifier.as_ref().ok_or_else(missing)?;
                    policy.response_headers = Some(header_edits(m)?);
                }
                "RequestRedirect" if !cx.grpc => {
                    let r = f.request_redirect.as_ref().ok_or_else(missing)?;
                    let scheme = match r.scheme.as_deref() {
                        None => None,
                        Some(s @ ("http" | "https")) => Some(Arc::from(s)),
                        Some(s) => {
                            return Err(unsupported(format!(
                                "redirect scheme `{s}` is not http or https"
                            )))
                        }
                    };
                    let status = match r.status_code.unwrap_or(302) {
                        c @ (301 | 302 | 303 | 307 | 308) => {
                            StatusCode::from_u16(c as u16).unwrap_or(StatusCode::FOUND)
                        }
                        c => {
                            return Err(unsupported(format!(
                                "redirect statusCode {c} is not 301, 302, 303, 307 or 308"
                            )))
                        }
                    };
                    let port = match r.port {
                        None => None,
                        Some(p) => {
                            Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                                unsupported(format!("redirect port {p} is not in 1..65535"))
                            })?)
                        }
                    };
                    policy.redirect_to = Some(Box::new(RedirectTo {
                        scheme,
                        hostname: r.hostname.as_deref().map(Arc::from),
                        port,
                        path: r
                            .path
                            .as_ref()
                            .map(|p| path_modifier(p, cx.prefix))
                            .transpose()?,
                        status,
                        listener_port: cx.listener_port,
                    }));
                }
                "URLRewrite" if !cx.grpc => {
                    let r = f.url_rewrite.as_ref().ok_or_else(missing)?;
                    let hostname = r
                        .hostname
                        .as_deref()
                        .map(|h| {
                            HeaderValue::from_str(h)
                                .map_err(|_| unsupported(format!("`{h}` is not a valid hostname")))
                        })
                        .transpose()?;
                    policy.url_rewrite = Some(Box::new(UrlRewrite {
                        hostname,
                        path: r
                            .path
                            .as_ref()
                            .map(|p| path_modifier(p, cx.prefix))
                            .transpose()?,
                    }));
                }
                "RequestMirror" => {
                    let m = f.request_mirror.as_ref().ok_or_else(missing)?;
                    let per_million = match (&m.fraction, m.percent) {
                        (Some(fr), _) => {
                            let den = fr.denominator.unwrap_or(100);
                            if den <= 0 || fr.numerator < 0 || fr.numerator > den {
                                return Err(unsupported(format!(
                                    "mirror fraction {}/{den} is not between 0 and 1",
                                    fr.numerator
                                )));
                            }
                            u32::try_from(fr.numerator.saturating_mul(1_000_000) / den).unwrap_or(0)
                        }
                        (None, Some(p)) if (0..=100).contains(&p) => {
                            u32::try_from(p * 10_000).unwrap_or(0)
                        }
                        (None, Some(p)) => {
                            return Err(unsupported(format!("mirror percent {p} is not in 0..100")))
                        }
                        (None, None) => 1_000_000,
                    };
                    let (backend, problem) = self.gateway_backend(
                        cx.route_kind,
                        cx.route,
                        &m.backend_ref,
                        cx.grpc,
                        LbAlgorithm::RoundRobin,
                    );
                    refs.extend(problem);
                    if let Some(upstream) = backend.upstream {
                        mirrors.push(Mirror {
                            upstream,
                            service: backend.label,
                            per_million,
                            target: None,
                        });
                    }
                }
                "CORS" if !cx.grpc => {
                    let c = f.cors.as_ref().ok_or_else(missing)?;
                    policy.cors = Some(cors(c)?);
                }
                other => {
                    return Err(unsupported(format!(
                        "filter type `{other}` is not supported{}",
                        if cx.grpc { " on a GRPCRoute" } else { "" }
                    )))
                }
            }
        }
        policy.mirrors = mirrors.into();
        Ok(())
    }
}
