//! A canonical text of a routing table: every host, path slot, candidate
//! group and fallback with the route it leads to, in a fixed order (hash
//! maps sorted), routes by content rather than by id, and upstreams by a
//! name the caller gives. Two tables that route every request alike to
//! alike routes give the same text, whatever their maps' seeds and their
//! route and upstream numbering. Tests compare an incrementally built
//! table with a full compile through it.
//!
//! Invariants:
//! - Off the request path (it allocates freely); reads the table, never
//!   changes it.
//! - Everything a lookup can observe is in the text: slots, exact-length
//!   masks, regex order, fallbacks, the default route, and each reachable
//!   route's fields (policies and guards by their `Debug`, with upstream
//!   ids replaced by the caller's names). Unreachable routes (left behind
//!   by a patch) are not.

use std::fmt::Write;

use regex::{Captures, Regex};

use super::{Children, PathTable, PrefixNode, RouteId, RoutingTable, UpstreamId, GROUP};

impl RoutingTable {
    /// The canonical text of this table (see the module doc); `upstream`
    /// names upstream ids.
    pub fn canonical(&self, upstream: &dyn Fn(UpstreamId) -> String) -> String {
        // Upstream ids in a route's `Debug`: its own, a canary's, a
        // policy's fallback, custom errors, weighted backends and mirrors.
        let Ok(ids) = Regex::new(r"\b(upstream: |fallback: Some\(|upstream: Some\()(\d+)") else {
            return "unrenderable".into();
        };
        let route = |id: RouteId| -> String {
            let Some(r) = self.routes.get(id as usize) else {
                return format!("missing route {id}");
            };
            let text = format!("{r:?}");
            ids.replace_all(&text, |c: &Captures<'_>| {
                let id = c[2].parse::<UpstreamId>().unwrap_or(UpstreamId::MAX);
                format!("{}<{}>", &c[1], upstream(id))
            })
            .into_owned()
        };
        let mut out = String::new();
        let mut exact: Vec<_> = self.exact.iter().collect();
        exact.sort_by(|a, b| a.0.cmp(b.0));
        for (host, table) in exact {
            let _ = writeln!(out, "host {host}");
            table.canonical_into(&mut out, &route);
        }
        let mut wildcard: Vec<_> = self.wildcard.iter().collect();
        wildcard.sort_by(|a, b| a.0.cmp(b.0));
        for (suffix, table) in wildcard {
            let _ = writeln!(out, "wildcard {suffix}");
            table.canonical_into(&mut out, &route);
        }
        if let Some(table) = &self.hostless {
            out.push_str("hostless\n");
            table.canonical_into(&mut out, &route);
        }
        let default = self.default_route.map(route);
        let _ = writeln!(
            out,
            "default {default:?} gateway {} pipelines match routes {}",
            self.gateway,
            self.pipelines.len() == self.routes.len()
        );
        out
    }
}

impl PathTable {
    fn canonical_into(&self, out: &mut String, route: &dyn Fn(RouteId) -> String) {
        let slot = |slot: RouteId| -> String {
            if slot & GROUP == 0 {
                return route(slot);
            }
            let members: Vec<String> = self
                .groups
                .get((slot & !GROUP) as usize)
                .into_iter()
                .flatten()
                .map(|&r| route(r))
                .collect();
            format!("group [{}]", members.join(", "))
        };
        if let Some(exact) = &self.exact {
            let mut paths: Vec<_> = exact.iter().collect();
            paths.sort_by(|a, b| a.0.cmp(b.0));
            for (path, s) in paths {
                let _ = writeln!(out, "  exact {path} {}", slot(*s));
            }
        }
        let _ = writeln!(
            out,
            "  lengths {:x} gateway {} fallback {:?}",
            self.exact_lengths,
            self.gateway,
            self.fallback.map(route)
        );
        for r in &self.regex {
            let _ = writeln!(out, "  regex {} {}", r.source, slot(r.route));
        }
        prefix_into(&self.prefix, "", out, &slot);
    }
}

fn prefix_into(node: &PrefixNode, path: &str, out: &mut String, slot: &dyn Fn(RouteId) -> String) {
    if let Some(route) = node.route {
        let _ = writeln!(out, "  prefix {path}/ {}", slot(route));
    }
    let mut children: Vec<(&str, &PrefixNode)> = match &node.children {
        Children::Few(v) => v.iter().map(|(k, n)| (k.as_str(), n)).collect(),
        Children::Many(m) => m.iter().map(|(k, n)| (k.as_str(), n)).collect(),
    };
    children.sort_by(|a, b| a.0.cmp(b.0));
    for (segment, child) in children {
        prefix_into(child, &format!("{path}/{segment}"), out, slot);
    }
}
