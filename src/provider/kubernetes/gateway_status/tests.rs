use super::*;
use crate::config::gateway::status::{
    GatewayClassStatus, ListenerStatus, RouteKindRef, RouteStatus, ACCEPTED, PROGRAMMED,
    REASON_ACCEPTED, REASON_BACKEND_NOT_FOUND, REASON_PROGRAMMED, REASON_RESOLVED_REFS,
    RESOLVED_REFS,
};
use k8s_openapi::api::networking::v1::IngressLoadBalancerIngress;

const OURS: &str = "tollgate.dev/gateway-controller";
const T0: &str = "2024-01-01T00:00:00Z";

fn now() -> Value {
    json!("2026-01-01T00:00:00Z")
}

fn accepted(ok: bool, generation: i64) -> Condition {
    Condition::new(ACCEPTED, ok, REASON_ACCEPTED, "m", Some(generation))
}

fn parent(name: &str, resolved: bool, generation: i64) -> RouteParentStatus {
    RouteParentStatus {
        parent_ref: ParentRef {
            name: name.into(),
            ..Default::default()
        },
        controller_name: OURS.into(),
        conditions: vec![
            accepted(true, generation),
            Condition::new(
                RESOLVED_REFS,
                resolved,
                if resolved {
                    REASON_RESOLVED_REFS
                } else {
                    REASON_BACKEND_NOT_FOUND
                },
                "m",
                Some(generation),
            ),
        ],
    }
}

#[test]
fn transition_times_are_kept_unless_the_status_flips() {
    let existing = [
        json!({"type": "Accepted", "status": "True", "reason": "Old",
        "message": "old", "observedGeneration": 1, "lastTransitionTime": T0}),
    ];
    let same = conditions(&[accepted(true, 2)], &existing, &now());
    assert_eq!(same[0]["lastTransitionTime"], T0);
    assert_eq!(same[0]["observedGeneration"], 2);
    assert_eq!(same[0]["reason"], REASON_ACCEPTED);
    let flipped = conditions(&[accepted(false, 2)], &existing, &now());
    assert_eq!(flipped[0]["lastTransitionTime"], now());
}

#[test]
fn route_parents_keep_other_controllers_and_write_only_differences() {
    let theirs = json!({"parentRef": {"name": "theirs"}, "controllerName": "example.com/x",
        "conditions": [{"type": "Accepted", "status": "False"}]});
    let desired = [parent("gw", true, 1)];
    let existing = json!({"parents": [theirs.clone()]});
    let built = route_parents(&desired, OURS, &existing, &now()).unwrap_or_default();
    assert_eq!(
        built[0], theirs,
        "the other controller's entry first, as it was"
    );
    assert_eq!(built[1]["controllerName"], OURS);
    assert_eq!(built[1]["parentRef"], json!({"name": "gw"}));
    assert_eq!(built[1]["conditions"][1]["type"], RESOLVED_REFS);

    // Already right: nothing to write.
    let written = json!({"parents": built});
    assert_eq!(route_parents(&desired, OURS, &written, &now()), None);

    // A flip of ResolvedRefs: a write, Accepted keeps its time.
    let later = json!("2027-01-01T00:00:00Z");
    let broken =
        route_parents(&[parent("gw", false, 1)], OURS, &written, &later).unwrap_or_default();
    assert_eq!(broken[1]["conditions"][0]["lastTransitionTime"], now());
    assert_eq!(broken[1]["conditions"][1]["lastTransitionTime"], later);

    // No longer ours: our entry goes, theirs stays.
    let detached = route_parents(&[], OURS, &written, &now()).unwrap_or_default();
    assert_eq!(detached, json!([theirs]));
    // Never ours: nothing to write.
    assert_eq!(route_parents(&[], OURS, &existing, &now()), None);
}

fn gateway_desired(attached: u32) -> GatewayStatus {
    GatewayStatus {
        conditions: vec![
            accepted(true, 3),
            Condition::new(PROGRAMMED, true, REASON_PROGRAMMED, "p", Some(3)),
        ],
        listeners: vec![ListenerStatus {
            name: "http".into(),
            attached_routes: attached,
            supported_kinds: vec![RouteKindRef {
                group: "gateway.networking.k8s.io",
                kind: "HTTPRoute",
            }],
            conditions: vec![accepted(true, 3)],
        }],
    }
}

#[test]
fn gateway_status_has_listeners_and_addresses_when_known() {
    let addresses = vec![
        IngressLoadBalancerIngress {
            ip: Some("10.0.0.1".into()),
            ..Default::default()
        },
        IngressLoadBalancerIngress {
            hostname: Some("lb.example".into()),
            ..Default::default()
        },
    ];
    let built = gateway_status(&gateway_desired(2), Some(&addresses), &Value::Null, &now());
    assert_eq!(
        built["addresses"],
        json!([{"type": "IPAddress", "value": "10.0.0.1"},
               {"type": "Hostname", "value": "lb.example"}])
    );
    assert_eq!(built["listeners"][0]["attachedRoutes"], 2);
    assert_eq!(
        built["listeners"][0]["supportedKinds"][0]["kind"],
        "HTTPRoute"
    );
    assert!(up_to_date(&built, &built));

    // Unknown addresses: the field is left alone (not in the patch), and
    // a status with addresses is still up to date.
    let without = gateway_status(&gateway_desired(2), None, &built, &now());
    assert!(without.get("addresses").is_none());
    assert!(up_to_date(&without, &built));

    // One more attached route: a write, with the listener's times kept.
    let later = json!("2027-01-01T00:00:00Z");
    let more = gateway_status(&gateway_desired(3), Some(&addresses), &built, &later);
    assert!(!up_to_date(&more, &built));
    assert_eq!(
        more["listeners"][0]["conditions"][0]["lastTransitionTime"],
        now()
    );
}

#[test]
fn plans_skip_what_is_right_or_already_sent() {
    let mut view = View::default();
    view.gateway.classes.insert(
        "tollgate".into(),
        GatewayClassStatus {
            conditions: vec![accepted(true, 1)],
        },
    );
    view.gateway.http_routes.insert(
        ObjectKey::new("ns", "r"),
        RouteStatus {
            parents: vec![parent("gw", true, 1)],
        },
    );
    let class_key = ObjectKey::new("", "tollgate");
    let other_class = ObjectKey::new("", "other");
    let observed: BTreeMap<_, _> = [
        (class_key.clone(), Reported::default()),
        (other_class, Reported::default()),
    ]
    .into_iter()
    .collect();
    let writes = ClassStatus.plan(&view, &observed, &BTreeMap::new());
    assert_eq!(writes.len(), 1, "only our class");
    assert_eq!(writes[0].key, class_key);
    let features = &writes[0].patch["status"]["supportedFeatures"];
    assert_eq!(
        features.as_array().map(Vec::len),
        Some(SUPPORTED_FEATURES.len())
    );
    let mut sorted = SUPPORTED_FEATURES.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, SUPPORTED_FEATURES, "supportedFeatures sorted");

    // Sent and not yet reported back: not again.
    let sent: BTreeMap<_, _> = writes.into_iter().map(|w| (w.key, w.want)).collect();
    assert!(ClassStatus.plan(&view, &observed, &sent).is_empty());
    // Reported back as written: nothing to do.
    let reported: BTreeMap<_, _> = [(
        class_key,
        Reported {
            status: class_status(&[accepted(true, 1)], &Value::Null, &json!(T0)),
            version: None,
        },
    )]
    .into_iter()
    .collect();
    assert!(ClassStatus
        .plan(&view, &reported, &BTreeMap::new())
        .is_empty());

    let mut routes = RouteParents::<false> {
        controller: OURS.into(),
    };
    let observed: BTreeMap<_, _> = [
        (
            ObjectKey::new("ns", "r"),
            Reported {
                status: Value::Null,
                version: Some("41".into()),
            },
        ),
        (
            ObjectKey::new("ns", "foreign"),
            Reported {
                status: json!({"parents": [
                {"parentRef": {"name": "x"}, "controllerName": "example.com/x", "conditions": []}]}),
                version: Some("42".into()),
            },
        ),
    ]
    .into_iter()
    .collect();
    let writes = routes.plan(&view, &observed, &BTreeMap::new());
    assert_eq!(writes.len(), 1, "no write to a route that is not ours");
    assert_eq!(writes[0].key, ObjectKey::new("ns", "r"));
    // parents[] is an atomic list: the write is conditional on the
    // version it was built from.
    assert_eq!(writes[0].patch["metadata"]["resourceVersion"], "41");
}
