//! Which GatewayClasses and Gateways are ours, and each Gateway's
//! listeners: protocol, hostname, certificates, allowed routes, conflicts,
//! and their conditions.
//!
//! Invariants:
//! - A GatewayClass is ours when `spec.controllerName` is
//!   `--gateway-controller-name`; a Gateway when its class is ours. Nothing
//!   else is looked at or given a status.
//! - Gateways are taken oldest first (creationTimestamp, then
//!   `namespace/name`): on a conflict (two listeners of one protocol
//!   serving one hostname, which tollgate serves on one address) the older
//!   listener wins and the other is `Conflicted`.
//! - Only HTTP and HTTPS (`mode: Terminate`) listeners are served; any
//!   other listener is reported and skipped without affecting the others.
//! - Routes attach only to listeners that are `Programmed`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::hostname;
use super::refs::{self, From, To};
use super::status::*;
use crate::config::builder::Builder;
use crate::config::snapshot::ObjectKey;
use crate::gateway_api::{
    gateway::Listener, is_core_group, is_gateway_group, Gateway, GATEWAY_KIND, GROUP, ROUTE_KINDS,
};

/// Which namespaces' routes a listener accepts.
#[derive(Debug, Clone)]
pub(super) enum FromNamespaces {
    All,
    Same,
    Selector(LabelSelector),
}

/// A listener as the attachment step sees it.
#[derive(Debug, Clone)]
pub(super) struct ListenerView {
    pub name: String,
    pub hostname: Option<String>,
    /// The port clients see (used by redirects and `parentRef.port`).
    pub port: u16,
    pub https: bool,
    /// Programmed: routes may attach.
    pub usable: bool,
    pub from: FromNamespaces,
    /// Route kinds allowed (`HTTPRoute`, `GRPCRoute`).
    pub kinds: Vec<&'static str>,
}

/// One of our Gateways, with its listeners and its status so far
/// (`attachedRoutes` is counted by the attachment step).
pub(super) struct GatewayView {
    pub key: ObjectKey,
    pub listeners: Vec<ListenerView>,
    pub status: GatewayStatus,
}

/// The oldest-first order of the compiler.
fn age_order<T>(
    a: (
        &ObjectKey,
        &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
        T,
    ),
    b: (
        &ObjectKey,
        &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
        T,
    ),
) -> std::cmp::Ordering {
    let ta = a.1.as_ref().map(|t| &t.0);
    let tb = b.1.as_ref().map(|t| &t.0);
    ta.cmp(&tb).then_with(|| a.0.cmp(b.0))
}

impl Builder<'_> {
    /// Our GatewayClasses (all `Accepted`) and our Gateways with their
    /// listeners, oldest first; registers HTTPS listeners' certificates.
    pub(super) fn gateways(&mut self) -> Vec<GatewayView> {
        let snapshot = self.snapshot;
        let mut classes = Vec::new();
        for (name, entry) in &snapshot.gateway_classes {
            if entry.object.spec.controller_name != self.opts.gateway_controller_name {
                continue;
            }
            classes.push(name.clone());
            let generation = entry.object.metadata.generation;
            self.out.gateway_status.classes.insert(
                name.clone(),
                GatewayClassStatus {
                    conditions: vec![Condition::new(
                        ACCEPTED,
                        true,
                        REASON_ACCEPTED,
                        "handled by tollgate",
                        generation,
                    )],
                },
            );
        }
        let mut ours: Vec<(&ObjectKey, &crate::config::Entry<Gateway>)> = snapshot
            .gateways
            .iter()
            .filter(|(_, e)| classes.contains(&e.object.spec.gateway_class_name))
            .collect();
        ours.sort_by(|a, b| {
            age_order(
                (a.0, &a.1.object.metadata.creation_timestamp, ()),
                (b.0, &b.1.object.metadata.creation_timestamp, ()),
            )
        });
        // (https, hostname) → the Gateway holding it.
        let mut claims: BTreeMap<(bool, String), ObjectKey> = BTreeMap::new();
        let mut views = Vec::with_capacity(ours.len());
        for (key, entry) in ours {
            let view = self.gateway(key, &entry.object, &mut claims);
            views.push(view);
        }
        views
    }

    fn gateway(
        &mut self,
        key: &ObjectKey,
        gateway: &Gateway,
        claims: &mut BTreeMap<(bool, String), ObjectKey>,
    ) -> GatewayView {
        let generation = gateway.metadata.generation;
        let addresses = gateway
            .spec
            .addresses
            .as_ref()
            .is_some_and(|a| a.as_array().is_none_or(|a| !a.is_empty()));
        let mut listeners = Vec::new();
        let mut statuses = Vec::new();
        // Within the Gateway: port → protocol, (port, hostname) seen.
        let mut ports: BTreeMap<i64, &str> = BTreeMap::new();
        for listener in &gateway.spec.listeners {
            let (view, status) =
                self.listener(key, gateway, listener, addresses, &mut ports, claims);
            listeners.push(view);
            statuses.push(status);
        }
        let any_accepted = statuses.iter().any(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == ACCEPTED && c.is_true())
        });
        let any_programmed = listeners.iter().any(|l| l.usable);
        let accepted = if addresses {
            Condition::new(
                ACCEPTED,
                false,
                REASON_UNSUPPORTED_ADDRESS,
                "spec.addresses is not supported: tollgate serves every Gateway on its own listeners",
                generation,
            )
        } else if any_accepted || gateway.spec.listeners.is_empty() {
            Condition::new(
                ACCEPTED,
                true,
                REASON_ACCEPTED,
                "accepted by tollgate",
                generation,
            )
        } else {
            Condition::new(
                ACCEPTED,
                false,
                REASON_LISTENERS_NOT_VALID,
                "no listener is valid",
                generation,
            )
        };
        let programmed = if any_programmed {
            Condition::new(
                PROGRAMMED,
                true,
                REASON_PROGRAMMED,
                "served on --http-addr / --https-addr",
                generation,
            )
        } else {
            Condition::new(
                PROGRAMMED,
                false,
                REASON_INVALID,
                "no listener is programmed",
                generation,
            )
        };
        GatewayView {
            key: key.clone(),
            listeners,
            status: GatewayStatus {
                conditions: vec![accepted, programmed],
                listeners: statuses,
            },
        }
    }

    fn listener<'g>(
        &mut self,
        key: &ObjectKey,
        gateway: &Gateway,
        listener: &'g Listener,
        gateway_refused: bool,
        ports: &mut BTreeMap<i64, &'g str>,
        claims: &mut BTreeMap<(bool, String), ObjectKey>,
    ) -> (ListenerView, ListenerStatus) {
        let generation = gateway.metadata.generation;
        let condition =
            |t, ok, reason, message: String| Condition::new(t, ok, reason, message, generation);
        let hostname = listener.hostname.clone().filter(|h| !h.is_empty());
        let https = listener.protocol == "HTTPS";
        let mut accepted = condition(ACCEPTED, true, REASON_ACCEPTED, "accepted".into());
        let mut resolved = condition(
            RESOLVED_REFS,
            true,
            REASON_RESOLVED_REFS,
            "all references resolved".into(),
        );
        let mut conflicted = condition(
            CONFLICTED,
            false,
            REASON_NO_CONFLICTS,
            "no conflicts".into(),
        );
        let port = u16::try_from(listener.port).ok().filter(|p| *p > 0);
        if !matches!(listener.protocol.as_str(), "HTTP" | "HTTPS") {
            accepted = condition(
                ACCEPTED,
                false,
                REASON_UNSUPPORTED_PROTOCOL,
                format!(
                    "protocol {} is not supported; tollgate serves HTTP and HTTPS listeners",
                    listener.protocol
                ),
            );
        } else if port.is_none() {
            accepted = condition(
                ACCEPTED,
                false,
                REASON_UNSUPPORTED_VALUE,
                format!("port {} is not in 1..65535", listener.port),
            );
        } else if hostname.as_deref().is_some_and(|h| !hostname::is_valid(h)) {
            accepted = condition(
                ACCEPTED,
                false,
                REASON_UNSUPPORTED_VALUE,
                format!(
                    "hostname `{}` is not a valid DNS name (or *.name)",
                    hostname.as_deref().unwrap_or_default()
                ),
            );
        }
        // Kinds.
        let (kinds, invalid_kinds) = match listener
            .allowed_routes
            .as_ref()
            .and_then(|a| a.kinds.as_ref())
        {
            None => (ROUTE_KINDS.to_vec(), Vec::new()),
            Some(asked) => {
                let mut kinds = Vec::new();
                let mut invalid = Vec::new();
                for k in asked {
                    match ROUTE_KINDS.iter().find(|s| **s == k.kind) {
                        Some(s) if is_gateway_group(k.group.as_deref()) => kinds.push(*s),
                        _ => invalid.push(k.kind.clone()),
                    }
                }
                (kinds, invalid)
            }
        };
        if !invalid_kinds.is_empty() {
            resolved = condition(
                RESOLVED_REFS,
                false,
                REASON_INVALID_ROUTE_KINDS,
                format!(
                    "route kinds not supported: {}; supported: HTTPRoute, GRPCRoute",
                    invalid_kinds.join(", ")
                ),
            );
        }
        let from = match listener
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref())
        {
            None => FromNamespaces::Same,
            Some(n) => match (n.from.as_deref(), &n.selector) {
                (Some("All"), _) => FromNamespaces::All,
                (Some("Selector"), Some(selector)) => FromNamespaces::Selector(selector.clone()),
                (Some("Selector"), None) => {
                    accepted = condition(
                        ACCEPTED,
                        false,
                        REASON_UNSUPPORTED_VALUE,
                        "allowedRoutes.namespaces.from is Selector but no selector is given".into(),
                    );
                    FromNamespaces::Same
                }
                (None | Some("Same"), _) => FromNamespaces::Same,
                (Some(other), _) => {
                    accepted = condition(
                        ACCEPTED,
                        false,
                        REASON_UNSUPPORTED_VALUE,
                        format!(
                            "allowedRoutes.namespaces.from `{other}` is not All, Same or Selector"
                        ),
                    );
                    FromNamespaces::Same
                }
            },
        };
        if https && accepted.is_true() {
            if let Err((reason, message)) =
                self.listener_certificate(key, listener, hostname.as_deref())
            {
                if reason == REASON_UNSUPPORTED_VALUE {
                    accepted = condition(ACCEPTED, false, reason, message);
                } else {
                    resolved = condition(RESOLVED_REFS, false, reason, message);
                }
            }
        }
        if accepted.is_true() {
            // One port speaks one protocol within a Gateway.
            match ports.get(&listener.port) {
                Some(p) if *p != listener.protocol.as_str() => {
                    conflicted = condition(
                        CONFLICTED,
                        true,
                        REASON_PROTOCOL_CONFLICT,
                        format!("port {} is also used with protocol {p}", listener.port),
                    );
                }
                _ => {
                    ports.insert(listener.port, listener.protocol.as_str());
                }
            }
            let claim = (https, hostname.clone().unwrap_or_default());
            match claims.get(&claim) {
                Some(holder) if holder != key => {
                    conflicted = condition(
                        CONFLICTED,
                        true,
                        REASON_HOSTNAME_CONFLICT,
                        format!(
                            "Gateway {holder} (older) already has a {} listener for {}; tollgate serves every Gateway on one address",
                            listener.protocol,
                            hostname.as_deref().map_or("every hostname".to_string(), |h| format!("`{h}`"))
                        ),
                    );
                }
                Some(_) => {}
                None if !conflicted.is_true() => {
                    claims.insert(claim, key.clone());
                }
                None => {}
            }
        }
        let programmed_ok =
            !gateway_refused && accepted.is_true() && resolved.is_true() && !conflicted.is_true();
        let programmed = if programmed_ok {
            condition(PROGRAMMED, true, REASON_PROGRAMMED, "programmed".into())
        } else {
            condition(
                PROGRAMMED,
                false,
                REASON_INVALID,
                "not served: see the other conditions".into(),
            )
        };
        let supported_kinds = kinds
            .iter()
            .map(|k| RouteKindRef {
                group: GROUP,
                kind: k,
            })
            .collect();
        let view = ListenerView {
            name: listener.name.clone(),
            hostname,
            port: port.unwrap_or(0),
            https,
            usable: programmed_ok,
            from,
            kinds,
        };
        let status = ListenerStatus {
            name: listener.name.clone(),
            attached_routes: 0,
            supported_kinds,
            conditions: vec![accepted, resolved, conflicted, programmed],
        };
        (view, status)
    }

    /// The certificate of an HTTPS listener, registered for its hostname
    /// (or as the default certificate, for the oldest listener without a
    /// hostname). `Err((reason, message))` says why not.
    fn listener_certificate(
        &mut self,
        gateway: &ObjectKey,
        listener: &Listener,
        hostname: Option<&str>,
    ) -> Result<(), (&'static str, String)> {
        let Some(tls) = &listener.tls else {
            return Err((
                REASON_INVALID_CERTIFICATE_REF,
                "an HTTPS listener needs tls.certificateRefs".into(),
            ));
        };
        if tls.mode.as_deref().is_some_and(|m| m != "Terminate") {
            return Err((
                REASON_UNSUPPORTED_VALUE,
                format!(
                    "tls.mode {} is not supported; use Terminate",
                    tls.mode.as_deref().unwrap_or_default()
                ),
            ));
        }
        let Some(cert_ref) = tls.certificate_refs.first() else {
            return Err((
                REASON_INVALID_CERTIFICATE_REF,
                "an HTTPS listener needs tls.certificateRefs".into(),
            ));
        };
        if !is_core_group(cert_ref.group.as_deref())
            || cert_ref.kind.as_deref().is_some_and(|k| k != "Secret")
        {
            return Err((
                REASON_INVALID_CERTIFICATE_REF,
                format!(
                    "certificateRefs[0] must be a core Secret, not {}",
                    cert_ref.kind.as_deref().unwrap_or("Secret")
                ),
            ));
        }
        let namespace = cert_ref
            .namespace
            .clone()
            .unwrap_or_else(|| gateway.namespace.to_string());
        let from = From {
            group: GROUP,
            kind: GATEWAY_KIND,
            namespace: &gateway.namespace,
        };
        let to = To {
            group: "",
            kind: "Secret",
            namespace: &namespace,
            name: &cert_ref.name,
        };
        if !refs::permitted(self.snapshot, &from, &to) {
            return Err((
                REASON_REF_NOT_PERMITTED,
                format!(
                    "Secret {namespace}/{} is in another namespace and no ReferenceGrant there permits it",
                    cert_ref.name
                ),
            ));
        }
        let secret = ObjectKey::new(namespace, cert_ref.name.clone());
        let origin: Option<Arc<str>> = Some(format!("Gateway {gateway}").into());
        let Some(id) = self.certificate(&secret, &origin) else {
            return Err((
                REASON_INVALID_CERTIFICATE_REF,
                format!("Secret {secret} is missing or holds no usable certificate"),
            ));
        };
        match hostname {
            Some(host) => {
                self.out.tls.insert_host(host, id);
            }
            None => {
                if !self.gateway_default_cert {
                    self.gateway_default_cert = true;
                    self.out.tls.set_default(id);
                }
            }
        }
        Ok(())
    }
}
