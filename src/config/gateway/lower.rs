//! Lowering attached HTTPRoutes into the table: every (host, rule, match)
//! becomes a candidate route with its guard (method, headers, query
//! parameters), weighted backends and filters, inserted in the Gateway API
//! precedence order.
//!
//! Invariants:
//! - Candidates are inserted after every Ingress route and sorted first:
//!   exact hosts before wildcard hosts before every-host; then a method
//!   match, more header matches, more query matches, the older route, the
//!   route's `namespace/name`, the rule's and the match's order. The table
//!   orders paths itself (Exact, regular expressions, longest prefix) and
//!   tries the candidates of one path in insertion order.
//! - Hostnames take precedence over paths, as the spec says: the table
//!   tries the candidates of the exact host, then of the wildcards from the
//!   longest suffix (a Gateway wildcard covers one or more labels), then of
//!   every host, and moves to a less specific host only when no candidate
//!   of the more specific one matches ([`crate::table::RoutingTable::lookup_head`]).
//! - A rule whose backends are all invalid (or that has none) answers 500,
//!   a partly invalid rule sends the invalid share to 500; a rule with a
//!   RequestRedirect needs no backend.

use std::cmp::Reverse;
use std::sync::Arc;

use http::{HeaderName, Method};

use super::attach::HostBinding;
use super::backends::RefProblem;
use super::filters::{self, FilterContext, FilterProblem};
use crate::config::builder::Builder;
use crate::config::diagnostic::Severity;
use crate::config::overlay;
use crate::config::problem::{Field, Problem, Reason, Subject};
use crate::config::snapshot::ObjectKey;
use crate::crd::TrafficPolicy;
use crate::gateway_api::route::{
    BackendRef, HttpRouteMatch, HttpRouteRule, ValueMatch as MatchSpec,
};
use crate::intern::intern;
use crate::table::guard::{anchored, Guard, HeaderCond, QueryCond, ValueMatch};
use crate::table::policy::{BackendChoice, Backends, RoutePolicy};
use crate::table::upstream::LbAlgorithm;
use crate::table::{PathType, Route, RouteId, RouteKind};

/// A rule's path match, lowered.
#[derive(Debug, Clone)]
pub(super) enum PathSpec {
    Exact(String),
    Prefix(String),
    Regex(String, Arc<regex::Regex>),
}

impl PathSpec {
    fn written(&self) -> &str {
        match self {
            PathSpec::Exact(p) | PathSpec::Prefix(p) | PathSpec::Regex(p, _) => p,
        }
    }

    fn path_type(&self) -> PathType {
        match self {
            PathSpec::Exact(_) => PathType::Exact,
            PathSpec::Prefix(_) => PathType::Prefix,
            PathSpec::Regex(..) => PathType::ImplementationSpecific,
        }
    }
}

/// One route pushed to the table, waiting for its place.
pub(super) struct Candidate {
    /// 0 exact host, 1 wildcard, 2 every host (hosts do not compete: this
    /// only makes the order stable).
    host_class: u8,
    sort: (bool, Reverse<usize>, Reverse<usize>),
    /// Index of the route in age order.
    route_order: usize,
    route_key: ObjectKey,
    /// `HTTPRoute` or `GRPCRoute`.
    kind: &'static str,
    rule: usize,
    match_index: usize,
    host: String,
    path: PathSpec,
    id: RouteId,
}

/// A route's match or filter that cannot be served.
pub(super) type Unsupported = String;

/// What lowering one route gave.
#[derive(Default)]
pub(super) struct Lowered {
    pub candidates: Vec<Candidate>,
    /// `ResolvedRefs` problems (the route is still served).
    pub refs: Vec<RefProblem>,
}

/// A rule's match → path and guard.
pub(super) fn lower_match(
    m: &HttpRouteMatch,
) -> Result<(PathSpec, Option<Box<Guard>>), Unsupported> {
    let value = m
        .path
        .as_ref()
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".into());
    let kind = m
        .path
        .as_ref()
        .and_then(|p| p.type_.as_deref())
        .unwrap_or("PathPrefix");
    let path = match kind {
        "Exact" | "PathPrefix" if !value.starts_with('/') => {
            return Err(format!("path `{value}` must start with `/`"))
        }
        "Exact" => PathSpec::Exact(value),
        "PathPrefix" => PathSpec::Prefix(value),
        "RegularExpression" => {
            let re = anchored(&value)
                .map_err(|e| format!("path `{value}` is not a valid regular expression: {e}"))?;
            PathSpec::Regex(value, re)
        }
        other => return Err(format!("path match type `{other}` is not supported")),
    };
    let method = m
        .method
        .as_deref()
        .map(|s| Method::from_bytes(s.as_bytes()).map_err(|_| format!("method `{s}` is not valid")))
        .transpose()?;
    let headers = m
        .headers
        .iter()
        .map(|h| {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("`{}` is not a valid header name", h.name))?;
            Ok(HeaderCond {
                name,
                value: value_match(h)?,
            })
        })
        .collect::<Result<Box<[_]>, Unsupported>>()?;
    let query = m
        .query_params
        .iter()
        .map(|q| {
            Ok(QueryCond {
                name: q.name.as_str().into(),
                value: value_match(q)?,
            })
        })
        .collect::<Result<Box<[_]>, Unsupported>>()?;
    let guard = (method.is_some() || !headers.is_empty() || !query.is_empty()).then(|| {
        Box::new(Guard {
            method,
            headers,
            query,
        })
    });
    Ok((path, guard))
}

pub(super) fn value_match(m: &MatchSpec) -> Result<ValueMatch, Unsupported> {
    match m.type_.as_deref().unwrap_or("Exact") {
        "Exact" => Ok(ValueMatch::Exact(m.value.as_str().into())),
        "RegularExpression" => anchored(&m.value)
            .map(ValueMatch::Regex)
            .map_err(|e| format!("`{}` is not a valid regular expression: {e}", m.value)),
        other => Err(format!("match type `{other}` is not supported")),
    }
}

fn host_class(host: &str) -> u8 {
    if host.is_empty() {
        2
    } else if host.starts_with("*.") {
        1
    } else {
        0
    }
}

/// The route being lowered.
pub(super) struct RouteInput<'a> {
    /// `HTTPRoute` or `GRPCRoute` (a GRPCRoute's rules arrive converted).
    pub kind: &'static str,
    pub key: &'a ObjectKey,
    pub order: usize,
    pub hosts: &'a [HostBinding],
    pub rules: &'a [HttpRouteRule],
    /// The TrafficPolicies reaching the route, least specific first (its
    /// Gateway's, then its own): each laid over the one before, section
    /// by section, before the rule's own filters.
    pub policies: &'a [Arc<TrafficPolicy>],
}

impl RouteInput<'_> {
    fn grpc(&self) -> bool {
        self.kind == crate::gateway_api::GRPC_ROUTE_KIND
    }
}

impl Builder<'_> {
    /// Pushes the routes of one HTTPRoute (or converted GRPCRoute) (not yet inserted in host tables:
    /// see [`Builder::insert_candidates`]). `Err`: a value that cannot be
    /// served; nothing of the route is in the table then.
    pub(super) fn lower_http_route(
        &mut self,
        input: &RouteInput<'_>,
    ) -> Result<Lowered, Unsupported> {
        let mut out = Lowered::default();
        let label = intern(&input.key.to_string());
        let first_route = self.out.table.routes().len();
        let result = self.lower_rules(input, &label, &mut out);
        if result.is_err() {
            // Nothing of a route that is not accepted stays in the table.
            while self.out.table.routes().len() > first_route {
                self.out.table.pop_route();
            }
            out.candidates.clear();
        }
        result.map(|()| out)
    }

    fn lower_rules(
        &mut self,
        input: &RouteInput<'_>,
        label: &Arc<str>,
        out: &mut Lowered,
    ) -> Result<(), Unsupported> {
        let default_match = [HttpRouteMatch::default()];
        // What the policies set; a rule's filters then set their own
        // sections over it (the route's own settings win).
        let mut base = RoutePolicy::default();
        // The algorithm of the route's backends: the most specific policy
        // that sets one.
        let mut lb = LbAlgorithm::RoundRobin;
        for p in input.policies {
            let laid = overlay::apply(&mut base, &p.spec, self.opts.limit_statuses, false);
            lb = laid.lb.unwrap_or(lb);
        }
        for (r, rule) in input.rules.iter().enumerate() {
            let matches: &[HttpRouteMatch] = match &rule.matches {
                Some(m) if !m.is_empty() => m,
                _ => &default_match,
            };
            let at = |what: &str| format!("spec.rules[{r}]{what}");
            let (backends, first) =
                self.rule_backends(input, &rule.backend_refs, lb, &mut out.refs)?;
            for (mi, m) in matches.iter().enumerate() {
                let (path, guard) = lower_match(m)
                    .map_err(|e| format!("{}: {e}", at(&format!(".matches[{mi}]"))))?;
                let prefix = match &path {
                    PathSpec::Prefix(p) => Some(p.as_str()),
                    _ => None,
                };
                for binding in input.hosts {
                    let mut policy = base.clone();
                    let cx = FilterContext {
                        route_kind: input.kind,
                        route: input.key,
                        prefix,
                        listener_port: binding.http_port.or(binding.https_port).unwrap_or(80),
                        grpc: input.grpc(),
                    };
                    self.lower_filters(&rule.filters, &cx, &mut policy, &mut out.refs)
                        .map_err(|FilterProblem(m)| format!("{}: {m}", at(".filters")))?;
                    if let Some(t) = &rule.timeouts {
                        filters::timeouts(t, &mut policy)
                            .map_err(|FilterProblem(m)| format!("{}: {m}", at(".timeouts")))?;
                    }
                    if let Some(t) = &rule.retry {
                        filters::retry(t, &mut policy)
                            .map_err(|FilterProblem(m)| format!("{}: {m}", at(".retry")))?;
                    }
                    let (upstream, service) = match first {
                        Some((id, ref service)) => (id, service.clone()),
                        None => (self.placeholder_upstream(), intern("")),
                    };
                    if policy.redirect_to.is_none() {
                        policy.backends = backends.clone();
                    }
                    let plain = policy.is_plain();
                    let id = self.out.table.push_route(Route {
                        ingress: label.clone(),
                        host: intern(&binding.host),
                        path: intern(path.written()),
                        path_type: Some(path.path_type()),
                        service,
                        upstream,
                        redirect_https: binding.http_port.is_none(),
                        policy: Arc::new(policy),
                        canary: None,
                        plain,
                        kind: if input.grpc() {
                            RouteKind::GrpcRoute
                        } else {
                            RouteKind::HttpRoute
                        },
                        guard: guard.clone(),
                    });
                    out.candidates.push(Candidate {
                        host_class: host_class(&binding.host),
                        sort: (
                            guard.as_ref().is_none_or(|g| g.method.is_none()),
                            Reverse(guard.as_ref().map_or(0, |g| g.headers.len())),
                            Reverse(guard.as_ref().map_or(0, |g| g.query.len())),
                        ),
                        route_order: input.order,
                        route_key: input.key.clone(),
                        kind: input.kind,
                        rule: r,
                        match_index: mi,
                        host: binding.host.clone(),
                        path: path.clone(),
                        id,
                    });
                }
            }
        }
        Ok(())
    }

    /// A rule's backends: `None` when exactly one valid backend with no
    /// filters takes every request (the route's own upstream then), else
    /// the weighted choices; and the first valid upstream with its label.
    #[allow(clippy::type_complexity)]
    fn rule_backends(
        &mut self,
        input: &RouteInput<'_>,
        refs: &[BackendRef],
        lb: LbAlgorithm,
        problems: &mut Vec<RefProblem>,
    ) -> Result<
        (
            Option<Box<Backends>>,
            Option<(crate::table::UpstreamId, Arc<str>)>,
        ),
        Unsupported,
    > {
        let mut choices = Vec::with_capacity(refs.len());
        let mut first = None;
        for b in refs {
            let weight = u32::try_from(b.weight.unwrap_or(1))
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| {
                    format!(
                        "backendRef {} weight {:?} is not in 0..1000000",
                        b.name, b.weight
                    )
                })?;
            let (backend, problem) =
                self.gateway_backend(input.kind, input.key, b, input.grpc(), lb);
            problems.extend(problem);
            let mut request_headers = None;
            let mut response_headers = None;
            for f in &b.filters {
                match f.type_.as_str() {
                    "RequestHeaderModifier" => {
                        if let Some(m) = &f.request_header_modifier {
                            request_headers = Some(filters::header_edits(m).map_err(filter_text)?);
                        }
                    }
                    "ResponseHeaderModifier" => {
                        if let Some(m) = &f.response_header_modifier {
                            response_headers = Some(filters::header_edits(m).map_err(filter_text)?);
                        }
                    }
                    other => {
                        return Err(format!(
                            "backendRef {}: filter type `{other}` is not supported on a backend",
                            b.name
                        ))
                    }
                }
            }
            if let (Some(id), None) = (backend.upstream, &first) {
                if weight > 0 {
                    first = Some((id, backend.label.clone()));
                }
            }
            choices.push(BackendChoice {
                weight,
                upstream: backend.upstream,
                service: backend.label,
                request_headers,
                response_headers,
            });
        }
        let single = choices.len() == 1
            && choices.iter().all(|c| {
                c.upstream.is_some()
                    && c.weight > 0
                    && c.request_headers.is_none()
                    && c.response_headers.is_none()
            });
        if single {
            return Ok((None, first));
        }
        let total = choices
            .iter()
            .map(|c| c.weight)
            .fold(0u32, u32::saturating_add);
        Ok((
            Some(Box::new(Backends {
                choices: choices.into(),
                total,
            })),
            first,
        ))
    }

    /// Inserts every candidate in precedence order (see the module
    /// invariants), and warns about candidates an Ingress path shadows.
    pub(super) fn insert_candidates(&mut self, mut candidates: Vec<Candidate>) {
        candidates.sort_by(|a, b| {
            (
                a.host_class,
                a.sort,
                a.route_order,
                &a.route_key,
                a.rule,
                a.match_index,
            )
                .cmp(&(
                    b.host_class,
                    b.sort,
                    b.route_order,
                    &b.route_key,
                    b.rule,
                    b.match_index,
                ))
        });
        let mut shadowed: Vec<(&'static str, ObjectKey, String, Arc<str>)> = Vec::new();
        for c in &candidates {
            let written = (
                c.host.clone(),
                c.path.written().to_string(),
                c.path.path_type(),
            );
            if let Some(&holder) = self.paths.get(&written) {
                let ingress = self
                    .out
                    .table
                    .route(holder)
                    .map(|r| r.ingress.clone())
                    .unwrap_or_else(|| "".into());
                shadowed.push((c.kind, c.route_key.clone(), c.host.clone(), ingress));
            }
            let table = self.out.table.host_mut(&c.host);
            match &c.path {
                PathSpec::Regex(source, re) => {
                    table.insert_regex_candidate(source, re.clone(), c.id)
                }
                other => table.insert_candidate(other.written(), other.path_type(), c.id),
            }
        }
        for (kind, key, host, ingress) in shadowed {
            let origin = match kind {
                crate::gateway_api::GRPC_ROUTE_KIND => self
                    .snapshot
                    .grpc_routes
                    .get(&key)
                    .map(|e| e.origin.clone()),
                _ => self
                    .snapshot
                    .http_routes
                    .get(&key)
                    .map(|e| e.origin.clone()),
            };
            self.report(
                Severity::Warning,
                Subject {
                    kind,
                    key: &key,
                    origin: &origin,
                },
                Problem::new(
                    Field::Reported("spec.rules".into()),
                    Reason::GatewayApi(format!(
                        "host `{}`: Ingress {ingress} serves the same path and pathType, and an Ingress route answers first; this match never does",
                        if host.is_empty() { "*" } else { &host }
                    )),
                ),
            );
        }
    }
}

fn filter_text(FilterProblem(m): FilterProblem) -> Unsupported {
    m
}
