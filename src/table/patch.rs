//! Patching a compiled table in place of recompiling it: one object's host
//! tables removed, another compile's host tables and routes grafted in.
//! The incremental compiler ([`crate::config::Incremental`]) uses it for an
//! Ingress whose hosts no other object uses.
//!
//! Invariants:
//! - Route ids only ever grow: a removed host's routes stay in the route
//!   list, unreachable (the incremental compiler counts them and compiles
//!   afresh once they are many), so every other route keeps its id and
//!   everything indexed by it (metrics, limiters) stays valid.
//! - A graft never touches an existing host: `graft` changes nothing
//!   when one of the grafted hosts exists (or [`RoutingTable::can_graft`]
//!   does not hold).

use super::{Children, PathTable, PrefixNode, RouteId, RoutingTable, UpstreamId, GROUP};

impl RoutingTable {
    /// Removes the table of `host` as written in a rule (`""`: the
    /// hostless rules, `*.suffix`: a wildcard). Returns whether it existed.
    pub fn remove_host(&mut self, host: &str) -> bool {
        if host.is_empty() {
            self.hostless.take().is_some()
        } else if let Some(suffix) = host.strip_prefix("*.") {
            self.wildcard.remove(suffix).is_some()
        } else {
            self.exact.remove(host).is_some()
        }
    }

    /// The hosts (as written: `*.suffix` for wildcards, `""` for the
    /// hostless rules) whose tables hold Gateway routes.
    pub fn gateway_hosts(&self) -> Vec<String> {
        let exact = self
            .exact
            .iter()
            .filter(|(_, t)| t.gateway)
            .map(|(h, _)| h.to_string());
        let wildcard = self
            .wildcard
            .iter()
            .filter(|(_, t)| t.gateway)
            .map(|(h, _)| format!("*.{h}"));
        let hostless = self
            .hostless
            .as_ref()
            .filter(|t| t.gateway)
            .map(|_| String::new());
        exact.chain(wildcard).chain(hostless).collect()
    }

    /// Whether `other` can be grafted once its hosts are free here: it
    /// has no hostless rules, no default route, no Gateway routes, and its
    /// routes' policies name no upstream (only a route's own upstream is
    /// remapped).
    pub fn can_graft(&self, other: &RoutingTable) -> bool {
        other.hostless.is_none()
            && other.default_route.is_none()
            && !other.gateway
            && other.routes.iter().all(|r| {
                r.canary.is_none()
                    && r.guard.is_none()
                    && r.policy.fallback.is_none()
                    && r.policy.custom_errors.is_none()
                    && r.policy.mirrors.is_empty()
                    && r.policy.backends.is_none()
            })
            && other.pipelines.len() == other.routes.len()
            && self.pipelines.len() == self.routes.len()
    }

    /// Appends `other`'s routes (upstream `u` becoming `upstreams[u]`) and
    /// its host tables (route ids shifted past this table's routes).
    /// Returns false, changing nothing, unless [`Self::can_graft`] holds,
    /// none of `other`'s hosts exists here and every upstream is mapped.
    pub fn graft(&mut self, other: &RoutingTable, upstreams: &[UpstreamId]) -> bool {
        if !self.can_graft(other)
            || other.exact.keys().any(|h| self.exact.contains_key(h))
            || other.wildcard.keys().any(|h| self.wildcard.contains_key(h))
            || other
                .routes
                .iter()
                .any(|r| upstreams.get(r.upstream as usize).is_none())
        {
            return false;
        }
        let Ok(offset) = RouteId::try_from(self.routes.len()) else {
            return false;
        };
        // Grown exactly: a patched table is kept until the next compile,
        // and doubling would keep the spare half of every list as long.
        self.routes.reserve_exact(other.routes.len());
        self.pipelines.reserve_exact(other.pipelines.len());
        for route in &other.routes {
            let mut route = route.clone();
            route.upstream = upstreams
                .get(route.upstream as usize)
                .copied()
                .unwrap_or(route.upstream);
            self.routes.push(route);
        }
        self.pipelines.extend(other.pipelines.iter().cloned());
        for (host, table) in &other.exact {
            self.exact.insert(host.clone(), table.shifted(offset));
        }
        for (suffix, table) in &other.wildcard {
            self.wildcard.insert(suffix.clone(), table.shifted(offset));
        }
        true
    }
}

impl PathTable {
    /// A copy with every route id moved up by `offset`.
    fn shifted(&self, offset: RouteId) -> PathTable {
        let shift = |slot: RouteId| {
            if slot & GROUP == 0 {
                slot + offset
            } else {
                slot
            }
        };
        let mut out = self.clone();
        if let Some(exact) = out.exact.as_mut() {
            for slot in exact.values_mut() {
                *slot = shift(*slot);
            }
        }
        shift_node(&mut out.prefix, &shift);
        out.fallback = out.fallback.map(&shift);
        for regex in &mut out.regex {
            regex.route = shift(regex.route);
        }
        for group in &mut out.groups {
            for route in group.iter_mut() {
                *route += offset;
            }
        }
        out
    }
}

fn shift_node(node: &mut PrefixNode, shift: &impl Fn(RouteId) -> RouteId) {
    node.route = node.route.map(shift);
    match &mut node.children {
        Children::Few(v) => v.iter_mut().for_each(|(_, n)| shift_node(n, shift)),
        Children::Many(m) => m.values_mut().for_each(|n| shift_node(n, shift)),
    }
}
