//! Canary Ingresses (`nginx.ingress.kubernetes.io/canary: "true"`): each
//! of their paths becomes the canary of the route another Ingress serves
//! for the same host, path and pathType.
//!
//! Invariants:
//! - Canaries are added after every other Ingress, so the routes they
//!   attach to exist; a canary without such a route serves nothing (as in
//!   ingress-nginx) and gets a warning.
//! - A canary brings its own upstream (its backend protocol and backend
//!   TLS apply); the route's policy stays the main Ingress's.

use super::backends::port_ref;
use super::builder::Builder;
use super::problem::{Field, PathPart, Problem};
use super::routes::path_type_of;
use super::select::Served;
use crate::table::policy::Canary;

impl Builder<'_> {
    /// Attaches a canary Ingress's paths to the routes they shadow.
    pub(super) fn add_canary(&mut self, ingress: Served<'_>) {
        let Served {
            key,
            origin,
            object,
            annotations: parsed,
            problems,
        } = ingress;
        let Some(spec) = &object.spec else { return };
        for problem in problems.into_iter().filter(|p| !p.reject) {
            self.warn(key, &origin, problem.into());
        }
        let Some(canary) = parsed.canary else { return };
        let lb = self.backend_policy(key, &origin, &object, None, false);
        let ingress_label = crate::intern::intern(&key.to_string());
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = rule.host.as_deref().unwrap_or("");
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let Some((svc, port)) = port_ref(&path.backend) else {
                    continue;
                };
                let path_type = path_type_of(&path.path_type);
                let path_str = path.path.as_deref().unwrap_or("/");
                let main = match self.canary_target(host, path_str, path_type) {
                    Ok(main) => main,
                    Err(reason) => {
                        let field = Field::path(i, j, PathPart::Whole);
                        self.warn(key, &origin, Problem::new(field, reason));
                        continue;
                    }
                };
                let field = Field::path(i, j, PathPart::Backend);
                let upstream = self.upstream(key, &origin, &field, svc, port, &lb);
                let service = self.upstream_label(upstream);
                let canary = Canary {
                    upstream,
                    service,
                    ingress: ingress_label.clone(),
                    header: canary.header.clone(),
                    cookie: canary.cookie.clone(),
                    weight: canary.weight,
                    weight_total: canary.weight_total,
                    sticky: canary.sticky,
                };
                if let Some(route) = self.out.table.route_mut(main) {
                    route.canary = Some(Box::new(canary));
                    route.plain = false;
                }
            }
        }
    }
}
