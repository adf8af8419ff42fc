//! Gateway API candidates in the routing table: inserting guarded routes
//! at a path, and resolving a request with its head in the specification's
//! precedence (see the invariants of [`super`]). An `impl` of the table's
//! types, kept apart so the Ingress-only table code stays small.
//!
//! Invariants:
//! - Candidates at one slot are tried in insertion order; a slot with more
//!   than one holds [`GROUP`] and an index into the path table's groups.
//! - A table without Gateway routes resolves with its head exactly as
//!   [`RoutingTable::lookup`], after one branch; nothing here allocates.

use std::sync::Arc;

use super::{
    guard, path, PathTable, PathType, PrefixNode, RegexPath, RouteId, RouteKind, RoutingTable,
    GROUP,
};

impl PathTable {
    /// Adds a guarded (or unguarded) candidate at (path, type); candidates
    /// at one path are tried in insertion order (the compiler inserts them
    /// in Gateway API precedence order). Never "Taken".
    pub fn insert_candidate(&mut self, path: &str, path_type: PathType, route: RouteId) {
        self.gateway = true;
        let path = &*path::normalize(path);
        let held = match path_type {
            PathType::Exact => {
                self.exact_lengths |= 1u64 << (path.len() % 64);
                self.exact
                    .get_or_insert_with(Box::default)
                    .get(path)
                    .copied()
            }
            PathType::Prefix | PathType::ImplementationSpecific => self.prefix_node(path).route,
        };
        let slot = self.join(held, route);
        match path_type {
            PathType::Exact => {
                self.exact
                    .get_or_insert_with(Box::default)
                    .insert(path.into(), slot);
            }
            PathType::Prefix | PathType::ImplementationSpecific => {
                self.prefix_node(path).route = Some(slot);
            }
        }
    }

    /// Same for a regular-expression path (Gateway `RegularExpression`):
    /// `pattern` must match the whole path (the compiler anchors it, see
    /// [`guard::anchored`]). Candidates of one pattern are tried in order;
    /// patterns in the order first inserted.
    pub fn insert_regex_candidate(
        &mut self,
        source: &str,
        pattern: Arc<regex::Regex>,
        route: RouteId,
    ) {
        self.gateway = true;
        match self.regex.iter().position(|r| r.source == source) {
            Some(at) => {
                let held = self.regex.get(at).map(|r| r.route);
                let slot = self.join(held, route);
                if let Some(r) = self.regex.get_mut(at) {
                    r.route = slot;
                }
            }
            None => self.regex.push(RegexPath {
                pattern,
                source: source.into(),
                route,
            }),
        }
    }

    /// The trie node of a prefix path, created on first use.
    fn prefix_node(&mut self, path: &str) -> &mut PrefixNode {
        let mut node = &mut self.prefix;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            node = node.children.get_or_insert(segment);
        }
        node
    }

    /// The slot holding `held` (if any) followed by `route`.
    fn join(&mut self, held: Option<RouteId>, route: RouteId) -> RouteId {
        match held {
            None => route,
            Some(slot) if slot & GROUP != 0 => {
                if let Some(group) = self.groups.get_mut((slot & !GROUP) as usize) {
                    group.push(route);
                }
                slot
            }
            Some(single) => {
                self.groups.push(vec![single, route]);
                // Groups are bounded by routes, far below the tag bit.
                GROUP | u32::try_from(self.groups.len() - 1).unwrap_or(0)
            }
        }
    }

    /// The first route of a slot that `accept` takes.
    #[inline]
    fn pick(&self, slot: RouteId, accept: &impl Fn(RouteId) -> bool) -> Option<RouteId> {
        if slot & GROUP == 0 {
            return accept(slot).then_some(slot);
        }
        self.groups
            .get((slot & !GROUP) as usize)?
            .iter()
            .copied()
            .find(|&id| accept(id))
    }

    /// Whether Gateway candidates were inserted here.
    pub fn has_candidates(&self) -> bool {
        self.gateway
    }

    /// The route for a normalized path among those `accept` takes, in
    /// Gateway precedence: the exact path, the regular expressions in
    /// order, the deepest prefix then shorter ones, the host's fallback;
    /// at each, the slot's candidates in order.
    pub fn lookup_with(&self, path: &str, accept: &impl Fn(RouteId) -> bool) -> Option<RouteId> {
        if self.exact_lengths & (1u64 << (path.len() % 64)) != 0 {
            if let Some(&slot) = self.exact.as_ref().and_then(|m| m.get(path)) {
                if let Some(route) = self.pick(slot, accept) {
                    return Some(route);
                }
            }
        }
        for r in &self.regex {
            if r.pattern.is_match(path) {
                if let Some(route) = self.pick(r.route, accept) {
                    return Some(route);
                }
            }
        }
        self.prefix_with(&self.prefix, path, accept)
            .or_else(|| self.fallback.filter(|&id| accept(id)))
    }

    /// The deepest accepted prefix route under `node` for the rest `path`
    /// (recursion depth bounded by the trie's, which the compiler built).
    fn prefix_with(
        &self,
        node: &PrefixNode,
        path: &str,
        accept: &impl Fn(RouteId) -> bool,
    ) -> Option<RouteId> {
        let rest = path.trim_start_matches('/');
        if !rest.is_empty() {
            let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
            if let Some(child) = node.children.get(segment) {
                if let Some(route) = self.prefix_with(child, tail, accept) {
                    return Some(route);
                }
            }
        }
        node.route.and_then(|slot| self.pick(slot, accept))
    }
}

impl RoutingTable {
    /// The route for a request: host and normalized path as
    /// [`RoutingTable::lookup`], then the first candidate whose guard holds,
    /// in Gateway precedence (see the module invariants). `None`: no route
    /// (404).
    pub fn lookup_request(
        &self,
        host: &str,
        path: &str,
        parts: &http::request::Parts,
    ) -> Option<RouteId> {
        self.lookup_head(host, path, &guard::RequestHead::from(parts))
    }

    /// [`RoutingTable::lookup_request`] on a borrowed request head (the
    /// proxy's entry: no need to take the request apart). A table without
    /// Gateway routes costs one branch over [`RoutingTable::lookup`].
    #[inline]
    pub fn lookup_head(
        &self,
        host: &str,
        path: &str,
        head: &guard::RequestHead<'_>,
    ) -> Option<RouteId> {
        if !self.gateway {
            return self.lookup(host, path);
        }
        self.lookup_guarded(host, path, head)
    }

    fn lookup_guarded(
        &self,
        host: &str,
        path: &str,
        head: &guard::RequestHead<'_>,
    ) -> Option<RouteId> {
        let route = |id: RouteId| self.routes.get(id as usize);
        let accept = |id: RouteId| {
            route(id).is_some_and(|r| r.guard.as_ref().is_none_or(|g| g.matches_head(head)))
        };
        // Wildcards over more than one label are the Gateway API's only.
        let accept_deep =
            |id: RouteId| route(id).is_some_and(|r| r.kind != RouteKind::Ingress) && accept(id);
        if let Some(table) = self.exact.get(host) {
            let found = table.lookup_with(path, &accept);
            if found.is_some() || !table.gateway {
                return found.or(self.default_route);
            }
        }
        let mut rest = host;
        let mut first = true;
        while let Some((_, suffix)) = rest.split_once('.') {
            if let Some(table) = self.wildcard.get(suffix) {
                let found = if first {
                    table.lookup_with(path, &accept)
                } else {
                    table.lookup_with(path, &accept_deep)
                };
                if found.is_some() || (first && !table.gateway) {
                    return found.or(self.default_route);
                }
            }
            first = false;
            rest = suffix;
        }
        self.hostless
            .as_ref()
            .and_then(|table| table.lookup_with(path, &accept))
            .or(self.default_route)
    }
}
