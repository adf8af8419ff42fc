//! The RBAC rules Kubernetes mode needs, as one table ([`PERMISSIONS`]):
//! what `tollgate rbac` prints, what the Helm chart grants and what the
//! integration tests check every request against.
//!
//! Invariants:
//! - Exactly what is called: every watch (list, watch), every status
//!   patch, Event creation, the leader Lease; no wildcard, no Secret write.
//! - The Gateway API rules (and Namespaces, read for their labels) are
//!   used only with `--gateway-api` and printed only with it.

/// Where a permission applies: cluster-wide (ClusterRole) or in the
/// controller's own namespace (Role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    OwnNamespace,
}

/// One RBAC rule the controller needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
}

/// Every API call Kubernetes mode makes, as RBAC rules: the watches
/// (list, watch; Namespaces for their labels only), the status writers
/// (Ingress, TrafficPolicy, Gateway API), the Event recorder and the leader
/// election. Nothing else is called (the integration tests check every
/// request against this table), and no Secret is ever written.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        group: "networking.k8s.io",
        resource: "ingressclasses",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "networking.k8s.io",
        resource: "ingresses",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "networking.k8s.io",
        resource: "ingresses/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "",
        resource: "services",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "",
        resource: "secrets",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "tollgate.dev",
        resource: "trafficpolicies",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "tollgate.dev",
        resource: "trafficpolicies/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "",
        resource: "namespaces",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "gatewayclasses",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "gateways",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "grpcroutes",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "referencegrants",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "gatewayclasses/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "gateways/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "httproutes/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "gateway.networking.k8s.io",
        resource: "grpcroutes/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create"],
        scope: Scope::Cluster,
    },
    // `--configmap`: the ConfigMaps of its namespace (the controller's).
    Permission {
        group: "",
        resource: "configmaps",
        verbs: &["list", "watch"],
        scope: Scope::OwnNamespace,
    },
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        scope: Scope::OwnNamespace,
    },
];

impl Permission {
    /// Whether the rule is used only with `--gateway-api` (the Gateway API
    /// kinds, and Namespaces for their labels).
    pub fn for_gateway_api(&self) -> bool {
        self.group == crate::gateway_api::GROUP || self.resource == "namespaces"
    }
}

/// [`PERMISSIONS`] as a ClusterRole and a Role (for `tollgate rbac`, the
/// Helm chart and the docs), named `name`, the Role in `namespace`;
/// without the Gateway API rules unless `gateway_api`.
pub fn rbac_manifests(name: &str, namespace: &str, gateway_api: bool) -> String {
    let rules = |scope: Scope| -> Vec<serde_json::Value> {
        PERMISSIONS
            .iter()
            .filter(|p| p.scope == scope && (gateway_api || !p.for_gateway_api()))
            .map(|p| {
                serde_json::json!({
                    "apiGroups": [p.group],
                    "resources": [p.resource],
                    "verbs": p.verbs,
                })
            })
            .collect()
    };
    let cluster_role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules(Scope::Cluster),
    });
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules(Scope::OwnNamespace),
    });
    [cluster_role, role]
        .iter()
        .filter_map(|doc| serde_yaml::to_string(doc).ok())
        .collect::<Vec<_>>()
        .join("---\n")
}
