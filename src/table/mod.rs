//! The immutable routing table: hosts → paths → routes.
//!
//! Invariants:
//! - Built once by the compiler ([`crate::config`]) and never mutated after:
//!   the proxy only reads it, without locks, and a lookup never allocates.
//! - Host lookup is one hash probe for exact hosts, one for the wildcard
//!   table (`*.example.com` is keyed by `example.com` and matches exactly one
//!   extra label), then the hostless rules. An exact host beats a wildcard,
//!   and a host that matched never falls through to the hostless rules.
//! - Path lookup per host: an exact-path map, then a segment trie for
//!   prefixes; the longest match wins and an `Exact` match (which is as long
//!   as the request path) beats any prefix.
//! - Lookups take *normalized* inputs (see [`host`] and [`path`]).
//! - Gateway API routes are *candidates*: several may share a (path, type),
//!   each with a [`guard::Guard`], tried in insertion order (the compiler
//!   inserts them in the specification's precedence order). A slot holding
//!   more than one candidate points into the path table's candidate groups
//!   (a tag bit on the id), so the trie's layout is unchanged.
//! - [`RoutingTable::lookup_head`] resolves with the request head: the first
//!   candidate whose guard holds, falling back from an exact path to the
//!   regular expressions to ever shorter prefixes, and from a host table
//!   holding Gateway candidates to less specific ones (wildcards over any
//!   number of labels for Gateway routes, then the hostless rules). A table
//!   without Gateway routes resolves exactly as [`RoutingTable::lookup`],
//!   after one branch.

mod candidates;
mod canonical;
pub mod client_cert;
pub mod filters;
pub mod global_limit;
pub mod globals;
pub mod guard;
pub mod host;
pub mod ids;
mod patch;
pub mod path;
pub mod phases;
pub mod policy;
pub mod tls;
pub mod upstream;

use std::sync::Arc;

use smol_str::SmolStr;

pub use ids::{RouteId, UpstreamId};

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How a path of an Ingress rule matches (networking.k8s.io/v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathType {
    Exact,
    Prefix,
    ImplementationSpecific,
}

impl PathType {
    pub fn as_str(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// Which API a route came from (for `tollgate check`, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RouteKind {
    #[default]
    Ingress,
    HttpRoute,
    GrpcRoute,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Ingress => "Ingress",
            RouteKind::HttpRoute => "HTTPRoute",
            RouteKind::GrpcRoute => "GRPCRoute",
        }
    }
}

/// One routable destination: where a matched request goes, and the labels
/// it is accounted under.
#[derive(Debug, Clone)]
pub struct Route {
    /// `namespace/name` of the object this route came from (the Ingress,
    /// or the HTTPRoute/GRPCRoute: see `kind`).
    pub ingress: Arc<str>,
    /// Which API the route came from.
    pub kind: RouteKind,
    /// Conditions beyond host and path; `None`: every request at this host
    /// and path matches (all Ingress routes).
    pub guard: Option<Box<guard::Guard>>,
    /// The rule's host (`""` for hostless rules and default backends).
    pub host: Arc<str>,
    /// The rule's path as written (`""` for default backends).
    pub path: Arc<str>,
    pub path_type: Option<PathType>,
    /// `namespace/service:port`, the label used in metrics and logs.
    pub service: Arc<str>,
    pub upstream: UpstreamId,
    /// Plain-HTTP requests get a 308 to HTTPS instead of being proxied.
    pub redirect_https: bool,
    /// What the Ingress's annotations and TrafficPolicy ask (shared by the
    /// routes of one Ingress).
    pub policy: Arc<policy::RoutePolicy>,
    /// A canary Ingress's backend for the same host and path.
    pub canary: Option<Box<policy::Canary>>,
    /// No policy and no canary: the request path's fast path.
    pub plain: bool,
}

/// The routes of one host (or of the hostless rules).
///
/// Laid out for few cache misses per lookup, since a table of 10,000 hosts
/// does not stay in cache: keys are inline strings (no pointer to chase),
/// a node's children are a small inline-keyed vector until there are many,
/// and a bit mask of exact-path lengths skips the exact probe for most
/// requests.
#[derive(Debug, Default, Clone)]
pub struct PathTable {
    /// Boxed: most hosts have no exact paths, and a lean `PathTable` keeps
    /// the host map's entries small. Values are slots (see [`GROUP`]), as
    /// are the trie's and the regexes' routes.
    exact: Option<Box<Map<SmolStr, RouteId>>>,
    /// Bit `len % 64` is set for every exact path length.
    exact_lengths: u64,
    prefix: PrefixNode,
    /// The Ingress `defaultBackend` for this host: serves unmatched paths.
    fallback: Option<RouteId>,
    /// Regular-expression paths (`use-regex`), longest pattern first; the
    /// first match wins, after exact paths and before a prefix match
    /// written shorter than the pattern (as nginx, which tries every
    /// location of a host with regex locations longest first).
    regex: Vec<RegexPath>,
    /// Candidate groups: a slot with the [`GROUP`] bit set indexes here;
    /// each group holds two or more routes, tried in order.
    groups: Vec<Vec<RouteId>>,
    /// Whether Gateway candidates were inserted: an unmatched request then
    /// falls through to less specific host tables.
    gateway: bool,
}

/// The tag bit of a slot that indexes a candidate group rather than naming
/// a route (route ids stay far below it).
const GROUP: u32 = 1 << 31;

/// A `use-regex` path: matched case-insensitively from the path's start.
#[derive(Debug, Clone)]
struct RegexPath {
    pattern: Arc<regex::Regex>,
    /// The pattern as written (for ordering and duplicate checks).
    source: SmolStr,
    route: RouteId,
}

#[derive(Debug, Default, Clone)]
struct PrefixNode {
    route: Option<RouteId>,
    children: Children,
}

/// Children of a trie node: a vector scanned in place while small.
#[derive(Debug, Clone)]
enum Children {
    Few(Vec<(SmolStr, PrefixNode)>),
    Many(Box<Map<SmolStr, PrefixNode>>),
}

/// Children kept in a vector up to this many.
const FEW_CHILDREN: usize = 8;

impl Default for Children {
    fn default() -> Self {
        Children::Few(Vec::new())
    }
}

impl Children {
    #[inline]
    fn get(&self, segment: &str) -> Option<&PrefixNode> {
        match self {
            Children::Few(v) => v.iter().find(|(k, _)| k == segment).map(|(_, n)| n),
            Children::Many(m) => m.get(segment),
        }
    }

    fn get_or_insert(&mut self, segment: &str) -> &mut PrefixNode {
        if let Children::Few(v) = self {
            if v.len() >= FEW_CHILDREN && !v.iter().any(|(k, _)| k == segment) {
                let many: Map<SmolStr, PrefixNode> = std::mem::take(v).into_iter().collect();
                *self = Children::Many(Box::new(many));
            }
        }
        match self {
            Children::Few(v) => {
                let at = match v.iter().position(|(k, _)| k == segment) {
                    Some(at) => at,
                    None => {
                        v.push((segment.into(), PrefixNode::default()));
                        v.len() - 1
                    }
                };
                // `at` is a valid index: found or just pushed.
                &mut v[at].1
            }
            Children::Many(m) => m.entry(segment.into()).or_default(),
        }
    }

    fn nodes(&self) -> Box<dyn Iterator<Item = &PrefixNode> + '_> {
        match self {
            Children::Few(v) => Box::new(v.iter().map(|(_, n)| n)),
            Children::Many(m) => Box::new(m.values()),
        }
    }
}

/// The compiled routing table.
#[derive(Debug, Default, Clone)]
pub struct RoutingTable {
    exact: Map<SmolStr, PathTable>,
    wildcard: Map<SmolStr, PathTable>,
    hostless: Option<PathTable>,
    /// Served when nothing else matched (`--default-backend-service`); when
    /// `None` the proxy answers 404 itself.
    default_route: Option<RouteId>,
    routes: Vec<Route>,
    /// Indexed by `RouteId`: each route's policy as phases, built by
    /// [`RoutingTable::compacted`] (empty until then).
    pipelines: Vec<phases::Pipeline>,
    /// Whether any route is a Gateway route or guarded: requests are then
    /// resolved with their head ([`RoutingTable::lookup_head`]).
    gateway: bool,
    /// The ConfigMap's settings of the whole request path.
    globals: Arc<globals::Globals>,
}

/// Outcome of inserting a path: the route that already held it, if any.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    Added,
    Taken(RouteId),
}

impl PathTable {
    /// Adds `path` (validated: absolute, no dot segments) for `route`.
    /// The first route inserted for a (path, type) keeps it.
    pub fn insert(&mut self, path: &str, path_type: PathType, route: RouteId) -> Insert {
        // Rule paths get the same normalization as request paths (e.g. an
        // escaped unreserved character), so that equal paths compare equal.
        let path = &*path::normalize(path);
        match path_type {
            PathType::Exact => match self.exact.get_or_insert_with(Box::default).get(path) {
                Some(&held) => Insert::Taken(self.first(held)),
                None => {
                    self.exact
                        .get_or_insert_with(Box::default)
                        .insert(path.into(), route);
                    self.exact_lengths |= 1u64 << (path.len() % 64);
                    Insert::Added
                }
            },
            PathType::Prefix | PathType::ImplementationSpecific => {
                let mut node = &mut self.prefix;
                for segment in path.split('/').filter(|s| !s.is_empty()) {
                    node = node.children.get_or_insert(segment);
                }
                match node.route {
                    Some(held) => Insert::Taken(self.first(held)),
                    None => {
                        node.route = Some(route);
                        Insert::Added
                    }
                }
            }
        }
    }

    /// The first route of a slot (a group's first candidate).
    #[inline]
    fn first(&self, slot: RouteId) -> RouteId {
        if slot & GROUP == 0 {
            return slot;
        }
        self.groups
            .get((slot & !GROUP) as usize)
            .and_then(|g| g.first().copied())
            .unwrap_or(slot)
    }

    /// Adds a regular-expression path (already compiled, anchored at the
    /// start). Longer patterns are tried first; an equal pattern is taken.
    pub fn insert_regex(
        &mut self,
        source: &str,
        pattern: Arc<regex::Regex>,
        route: RouteId,
    ) -> Insert {
        if let Some(held) = self.regex.iter().find(|r| r.source == source) {
            return Insert::Taken(self.first(held.route));
        }
        let at = self
            .regex
            .iter()
            .position(|r| r.source.len() < source.len())
            .unwrap_or(self.regex.len());
        self.regex.insert(
            at,
            RegexPath {
                pattern,
                source: source.into(),
                route,
            },
        );
        Insert::Added
    }

    /// Sets the fallback unless one is set; returns false when it was taken.
    pub fn set_fallback(&mut self, route: RouteId) -> bool {
        if self.fallback.is_some() {
            return false;
        }
        self.fallback = Some(route);
        true
    }

    /// Longest match for a normalized path; `Exact` first, then the deepest
    /// prefix, then the host's fallback.
    #[inline]
    pub fn lookup(&self, path: &str) -> Option<RouteId> {
        if self.exact_lengths & (1u64 << (path.len() % 64)) != 0 {
            if let Some(&route) = self.exact.as_ref().and_then(|m| m.get(path)) {
                return Some(self.first(route));
            }
        }
        let regex = self.regex.iter().find(|r| r.pattern.is_match(path));
        let mut node = &self.prefix;
        let mut best = node.route;
        // Length of the path `best` was written as (`/` counts 1).
        let mut best_len = 1;
        let mut end = 0;
        for segment in path.split('/') {
            end += segment.len() + 1;
            if segment.is_empty() {
                continue;
            }
            match node.children.get(segment) {
                Some(child) => {
                    node = child;
                    if child.route.is_some() {
                        best = child.route;
                        best_len = end - 1;
                    }
                }
                None => break,
            }
        }
        // As nginx once a host has regex locations (all its locations are
        // then tried longest first): a regex wins unless the matching
        // prefix was written longer.
        if let Some(r) = regex {
            if best.is_none() || r.source.len() >= best_len {
                return Some(self.first(r.route));
            }
        }
        best.map(|slot| self.first(slot)).or(self.fallback)
    }

    /// Number of distinct paths (for the check output and metrics).
    pub fn len(&self) -> usize {
        fn count(node: &PrefixNode) -> usize {
            usize::from(node.route.is_some()) + node.children.nodes().map(count).sum::<usize>()
        }
        self.exact.as_ref().map_or(0, |m| m.len()) + count(&self.prefix) + self.regex.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.fallback.is_none()
    }
}

impl RoutingTable {
    /// The path table for a host as written in an Ingress rule (`""` for
    /// hostless rules, `*.suffix` for wildcards), created on first use.
    pub fn host_mut(&mut self, host: &str) -> &mut PathTable {
        if host.is_empty() {
            self.hostless.get_or_insert_with(PathTable::default)
        } else if let Some(suffix) = host.strip_prefix("*.") {
            self.wildcard.entry(suffix.into()).or_default()
        } else {
            self.exact.entry(host.into()).or_default()
        }
    }

    /// ingress-nginx's `server-alias`: `alias` serves every path of `host`
    /// (a copy of its table, routes shared), unless `alias` already has a
    /// table of its own (a host with its own Ingress is never taken over).
    /// Returns whether the alias was added.
    pub fn add_alias(&mut self, alias: &str, host: &str) -> bool {
        if alias.is_empty() || alias.starts_with("*.") || self.exact.contains_key(alias) {
            return false;
        }
        let Some(table) = self.exact.get(host).cloned() else {
            return false;
        };
        self.exact.insert(alias.into(), table);
        true
    }

    /// Whether `host` (exact, as written in a rule) has a path table.
    pub fn has_host(&self, host: &str) -> bool {
        self.exact.contains_key(host)
    }

    pub fn push_route(&mut self, route: Route) -> RouteId {
        self.gateway |= route.kind != RouteKind::Ingress || route.guard.is_some();
        self.routes.push(route);
        // The compiler bounds the number of routes far below u32::MAX.
        u32::try_from(self.routes.len() - 1).unwrap_or(u32::MAX)
    }

    /// Removes the route pushed last (one that lost a conflict and is
    /// referenced from nowhere).
    pub fn pop_route(&mut self) {
        self.routes.pop();
    }

    pub fn set_default_route(&mut self, route: RouteId) {
        self.default_route = Some(route);
    }

    pub fn route_mut(&mut self, id: RouteId) -> Option<&mut Route> {
        self.routes.get_mut(id as usize)
    }

    /// Whether any route is a Gateway API route or has a guard (then a
    /// lookup needs the request head: [`Self::lookup_head`]).
    pub fn has_gateway_routes(&self) -> bool {
        self.gateway
    }

    /// The route of `--default-backend-service`, if any.
    pub fn default_route(&self) -> Option<RouteId> {
        self.default_route
    }

    pub fn route(&self, id: RouteId) -> Option<&Route> {
        self.routes.get(id as usize)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The phases of route `id`; `None` for a table not yet compacted.
    #[inline]
    pub fn pipeline(&self, id: RouteId) -> Option<&phases::Pipeline> {
        self.pipelines.get(id as usize)
    }

    /// Routes a request by normalized host and path. `None` means no route:
    /// the proxy answers 404.
    #[inline]
    pub fn lookup(&self, host: &str, path: &str) -> Option<RouteId> {
        if let Some(table) = self.exact.get(host) {
            return table.lookup(path).or(self.default_route);
        }
        if let Some((_, suffix)) = host.split_once('.') {
            if let Some(table) = self.wildcard.get(suffix) {
                return table.lookup(path).or(self.default_route);
            }
        }
        self.hostless
            .as_ref()
            .and_then(|table| table.lookup(path))
            .or(self.default_route)
    }

    /// Hosts in a stable order with their tables, for `tollgate check`.
    pub fn hosts(&self) -> Vec<(String, &PathTable)> {
        let mut out: Vec<(String, &PathTable)> = self
            .exact
            .iter()
            .map(|(h, t)| (h.to_string(), t))
            .chain(self.wildcard.iter().map(|(h, t)| (format!("*.{h}"), t)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(t) = &self.hostless {
            out.push(("*".to_string(), t));
        }
        out
    }

    /// A copy laid out for lookups: each host's trie nodes are allocated
    /// together, depth first, with no spare capacity, instead of wherever
    /// incremental building left them. Fewer cache lines per lookup when
    /// the table is too big for the cache (measured: `cargo bench --bench
    /// lookup`). The last step of building a table: it also compiles each
    /// route's policy into its phases ([`phases::Pipeline::of`]), so the
    /// policies must not change after.
    pub fn compacted(&self) -> RoutingTable {
        let mut routes = self.routes.clone();
        routes.shrink_to_fit();
        let pipelines = routes
            .iter()
            .map(|r| phases::Pipeline::of(&r.policy, r.canary.as_deref()))
            .collect();
        RoutingTable {
            exact: self.exact.clone(),
            wildcard: self.wildcard.clone(),
            hostless: self.hostless.clone(),
            default_route: self.default_route,
            gateway: routes
                .iter()
                .any(|r| r.kind != RouteKind::Ingress || r.guard.is_some()),
            routes,
            pipelines,
            globals: self.globals.clone(),
        }
    }

    /// The ConfigMap's settings of the whole request path.
    pub fn globals(&self) -> &globals::Globals {
        &self.globals
    }

    /// Sets them (the compiler, once per compile).
    pub fn set_globals(&mut self, globals: globals::Globals) {
        self.globals = Arc::new(globals);
    }

    pub fn host_count(&self) -> usize {
        self.exact.len() + self.wildcard.len() + usize::from(self.hostless.is_some())
    }
}

#[cfg(test)]
mod tests;
