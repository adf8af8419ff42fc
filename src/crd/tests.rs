//! The CRD types: validation (field paths and reasons), the parsers, the
//! accessors, and agreement between the generated schema and [`validate`].

use super::*;
use kube::CustomResourceExt;

fn spec(yaml: &str) -> TrafficPolicySpec {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

const FULL: &str = r#"
targetRefs: [{group: networking.k8s.io, kind: Ingress, name: web}]
rateLimit: {requestsPerSecond: 10, burst: 20, connections: 5}
loadBalancer: {algorithm: consistent-hash, hashBy: {header: X-User}}
sessionAffinity: {maxAge: 1h30m, path: /app, mode: persistent}
timeouts: {connect: 1.5s, responseHeaders: 250ms, idle: 2m}
retries: {attempts: 3, retryOn: [connect-failure, 5xx], budget: 20}
cors: {allowOrigins: ["https://*.example.com", "http://[::1]:8080"], allowMethods: [GET, POST],
       allowHeaders: [Authorization], exposeHeaders: [X-Trace], allowCredentials: true, maxAge: 600}
ipAllow: [10.0.0.0/8, "2001:db8::/32", 192.168.1.7]
ipDeny: [10.1.2.3/8]
maxRequestBodyBytes: 1048576
"#;

/// The field paths `validate` reports for a spec.
fn fields(yaml: &str) -> Vec<String> {
    validate(&spec(yaml)).into_iter().map(|(f, _)| f).collect()
}

fn with(extra: &str) -> String {
    format!("targetRefs: [{{group: networking.k8s.io, kind: Ingress, name: web}}]\n{extra}\n")
}

#[test]
fn every_pattern_compiles() {
    for (name, p) in [
        ("duration", &DURATION_RE),
        ("token", &TOKEN_RE),
        ("name", &NAME_RE),
        ("cookie path", &COOKIE_PATH_RE),
        ("origin", &ORIGIN_RE),
        ("cidr", &CIDR_RE),
    ] {
        assert!(p.is_some(), "the {name} pattern does not compile");
    }
}

#[test]
fn a_full_valid_policy_has_no_problems_and_parses() {
    let s = spec(FULL);
    assert_eq!(validate(&s), Vec::<(String, String)>::new());
    let rl = s.rate_limit.as_ref().unwrap();
    assert_eq!(rl.rate(), Some(Rate::PerSecond(10)));
    assert_eq!((rl.burst(), rl.connections()), (Some(20), Some(5)));
    let lb = s.load_balancer.as_ref().unwrap();
    assert_eq!(lb.algorithm(), Some(Algorithm::ConsistentHash));
    assert_eq!(lb.hash_key(), Some(HashKey::Header("x-user".into())));
    let sa = s.session_affinity.as_ref().unwrap();
    assert_eq!(sa.cookie_name, DEFAULT_COOKIE_NAME, "defaulted");
    assert_eq!(sa.max_age(), Some(Duration::from_secs(5400)));
    assert_eq!(sa.mode(), Some(AffinityMode::Persistent));
    let t = s.timeouts.as_ref().unwrap();
    assert_eq!(t.connect(), Some(Duration::from_millis(1500)));
    assert_eq!(t.response_headers(), Some(Duration::from_millis(250)));
    assert_eq!(t.idle(), Some(Duration::from_secs(120)));
    let r = s.retries.as_ref().unwrap();
    assert_eq!(r.attempts(), Some(3));
    assert_eq!(
        r.conditions(),
        vec![RetryOn::ConnectFailure, RetryOn::Status5xx]
    );
    assert_eq!(r.budget(), Some(20));
    let allow: Vec<String> = s.ip_allow().iter().map(ToString::to_string).collect();
    assert_eq!(allow, ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7/32"]);
    assert_eq!(
        s.ip_deny()[0].to_string(),
        "10.0.0.0/8",
        "host bits cleared"
    );
    assert_eq!(s.max_request_body_bytes(), Some(1_048_576));
    assert!(s.targets("web") && !s.targets("api"));
}

#[test]
fn each_bad_value_is_reported_at_its_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "rateLimit: {requestsPerSecond: 0}",
            &["spec.rateLimit.requestsPerSecond"],
        ),
        (
            "rateLimit: {requestsPerSecond: 1, requestsPerMinute: 60}",
            &["spec.rateLimit"],
        ),
        (
            "rateLimit: {requestsPerSecond: 1, scope: Fleet}",
            &["spec.rateLimit.scope"],
        ),
        (
            "rateLimit: {connections: 5, scope: Global}",
            &["spec.rateLimit.scope"],
        ),
        (
            "rateLimit: {burst: 5}",
            &["spec.rateLimit.burst", "spec.rateLimit"],
        ),
        (
            "rateLimit: {connections: 4294967296}",
            &["spec.rateLimit.connections"],
        ),
        (
            "loadBalancer: {algorithm: least-conn}",
            &["spec.loadBalancer.algorithm"],
        ),
        (
            "loadBalancer: {algorithm: consistent-hash}",
            &["spec.loadBalancer.hashBy"],
        ),
        (
            "loadBalancer: {algorithm: round-robin, hashBy: {clientIP: true}}",
            &["spec.loadBalancer.hashBy"],
        ),
        (
            "loadBalancer: {algorithm: consistent-hash, hashBy: {header: a, cookie: b}}",
            &["spec.loadBalancer.hashBy"],
        ),
        (
            "loadBalancer: {algorithm: consistent-hash, hashBy: {clientIP: false}}",
            &["spec.loadBalancer.hashBy"],
        ),
        (
            "loadBalancer: {algorithm: consistent-hash, hashBy: {header: 'bad header'}}",
            &["spec.loadBalancer.hashBy.header"],
        ),
        (
            "sessionAffinity: {cookieName: 'a;b'}",
            &["spec.sessionAffinity.cookieName"],
        ),
        (
            "sessionAffinity: {mode: sticky}",
            &["spec.sessionAffinity.mode"],
        ),
        (
            "sessionAffinity: {path: app}",
            &["spec.sessionAffinity.path"],
        ),
        (
            "sessionAffinity: {maxAge: 0s}",
            &["spec.sessionAffinity.maxAge"],
        ),
        ("timeouts: {connect: 5 seconds}", &["spec.timeouts.connect"]),
        ("timeouts: {idle: 10}", &["spec.timeouts.idle"]),
        (
            "timeouts: {responseHeaders: 1d}",
            &["spec.timeouts.responseHeaders"],
        ),
        ("timeouts: {connect: 3000000h}", &["spec.timeouts.connect"]),
        ("retries: {attempts: 11}", &["spec.retries.attempts"]),
        ("retries: {budget: 101}", &["spec.retries.budget"]),
        (
            "retries: {retryOn: [5xx, reset]}",
            &["spec.retries.retryOn[1]"],
        ),
        (
            "retries: {retryOn: [5xx, 5xx]}",
            &["spec.retries.retryOn[1]"],
        ),
        (
            "cors: {allowOrigins: ['example.com']}",
            &["spec.cors.allowOrigins[0]"],
        ),
        (
            "cors: {allowMethods: ['GET POST']}",
            &["spec.cors.allowMethods[0]"],
        ),
        ("cors: {maxAge: -1}", &["spec.cors.maxAge"]),
        (
            "ipAllow: [10.0.0.0/8, 10.0.0.0/33, '::1']",
            &["spec.ipAllow[1]"],
        ),
        ("ipDeny: [300.1.1.1]", &["spec.ipDeny[0]"]),
        ("ipDeny: ['fe80::1%eth0']", &["spec.ipDeny[0]"]),
        ("maxRequestBodyBytes: -1", &["spec.maxRequestBodyBytes"]),
    ];
    for (extra, want) in cases {
        assert_eq!(&fields(&with(extra)), want, "for `{extra}`");
    }
}

#[test]
fn target_refs_are_checked() {
    assert_eq!(fields("targetRefs: []"), ["spec.targetRefs"]);
    assert_eq!(
        fields("targetRefs: [{group: apps, kind: Deployment, name: Web}]"),
        [
            "spec.targetRefs[0].group",
            "spec.targetRefs[0].kind",
            "spec.targetRefs[0].name"
        ]
    );
    // Gateway API targets are in their own group, and only there.
    assert!(fields(
        "targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: web},\
         {group: gateway.networking.k8s.io, kind: Gateway, name: web}]"
    )
    .is_empty());
    assert_eq!(
        fields(
            "targetRefs: [{group: gateway.networking.k8s.io, kind: Ingress, name: web},\
             {group: networking.k8s.io, kind: HTTPRoute, name: web}]"
        ),
        ["spec.targetRefs[0].group", "spec.targetRefs[1].group"]
    );
    let twice = "targetRefs: [{group: networking.k8s.io, kind: Ingress, name: a},\
                 {group: networking.k8s.io, kind: Ingress, name: a}]";
    assert_eq!(fields(twice), ["spec.targetRefs[1]"]);
    let many: Vec<String> = (0..17)
        .map(|i| format!("{{group: networking.k8s.io, kind: Ingress, name: i{i}}}"))
        .collect();
    assert_eq!(
        fields(&format!("targetRefs: [{}]", many.join(","))),
        ["spec.targetRefs"]
    );
}

#[test]
fn reasons_say_what_is_wrong() {
    let problems = validate(&spec(&with(
        "loadBalancer: {algorithm: least-conn}\nipAllow: [10.0.0.0/33]",
    )));
    let reasons: Vec<&str> = problems.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons[0].contains("least-conn") && reasons[0].contains("consistent-hash"));
    assert!(reasons[1].contains("10.0.0.0/33") && reasons[1].contains("CIDR"));
}

#[test]
fn durations_parse_like_go_for_the_pattern_subset() {
    let ok = [
        ("1h30m", 5_400_000),
        ("1.5s", 1500),
        ("250ms", 250),
        ("2m", 120_000),
        ("1h1m1s1ms", 3_661_001),
        ("0.001s", 1),
        ("007s", 7000),
    ];
    for (text, millis) in ok {
        assert_eq!(
            parse_duration(text),
            Ok(Duration::from_millis(millis)),
            "{text}"
        );
    }
    assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    for bad in [
        "", "5", "s", "1.s", ".5s", "1d", "5 s", "-1s", "1us", "1H", "1s ", "1e3s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
    }
    // Go's limit: 2562047h47m16.854775807s.
    assert!(parse_duration("2562047h").is_ok());
    assert!(parse_duration("2562048h").is_err());
    assert!(parse_duration("99999999999999999999999999999999h").is_err());
}

#[test]
fn cidr_pattern_accepts_exactly_the_addresses_and_cidrs_rust_parses() {
    // (text, valid): the pattern decides (it is what the API server
    // enforces); whatever it accepts must also parse, so the accessors
    // never drop an accepted entry.
    let corpus = [
        ("0.0.0.0/0", true),
        ("10.0.0.0/8", true),
        ("255.255.255.255", true),
        ("1.2.3.4/32", true),
        ("1.2.3.4/33", false),
        ("256.1.1.1", false),
        ("01.2.3.4", false),
        ("1.2.3", false),
        ("1.2.3.4/", false),
        ("1.2.3.4/08", false), // ipnet would take it; the schema does not
        ("::", true),
        ("::1", true),
        ("::/0", true),
        ("2001:db8::/32", true),
        ("2001:DB8::1/128", true),
        ("2001:db8::1/129", false),
        ("1:2:3:4:5:6:7:8", true),
        ("1:2:3:4:5:6:7:8:9", false),
        ("1::2::3", false),
        ("fe80::1%eth0", false),
        ("::ffff:1.2.3.4", true),
        ("::ffff:1.2.3.4/120", true),
        ("1:2:3:4:5:6:1.2.3.4", true),
        ("1::1.2.3.4", true),
        ("1:2::3:1.2.3.4", true),
        ("12345::", false),
        (":1", false),
        ("1:", false),
        ("g::1", false),
        ("", false),
        (" 10.0.0.1", false),
        ("10.0.0.1\n", false),
    ];
    for (text, valid) in corpus {
        assert_eq!(matches(&CIDR_RE, text), valid, "pattern on {text:?}");
        assert_eq!(parse_cidr(text).is_ok(), valid, "parse_cidr on {text:?}");
        let parses = text.parse::<IpNet>().is_ok() || text.parse::<IpAddr>().is_ok();
        assert!(!valid || parses, "{text:?} is accepted but does not parse");
    }
}

/// Every pattern, bound and enum in the generated schema is one that
/// `validate` enforces: the schema's values are the module's constants.
#[test]
fn schema_uses_the_validated_constants() {
    let crd = serde_json::to_value(TrafficPolicy::crd()).unwrap();
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let spec = &root["properties"]["spec"]["properties"];
    let text = serde_json::to_string(root).unwrap();
    for pattern in [
        DURATION_PATTERN,
        TOKEN_PATTERN,
        NAME_PATTERN,
        COOKIE_PATH_PATTERN,
        ORIGIN_PATTERN,
        CIDR_PATTERN.as_str(),
    ] {
        assert!(
            text.contains(&serde_json::to_string(pattern).unwrap()),
            "pattern {pattern} not in the schema"
        );
    }
    assert_eq!(
        spec["loadBalancer"]["properties"]["algorithm"]["enum"],
        serde_json::json!(ALGORITHMS)
    );
    assert_eq!(
        spec["retries"]["properties"]["retryOn"]["items"]["enum"],
        serde_json::json!(RETRY_ON)
    );
    assert_eq!(
        spec["retries"]["properties"]["attempts"]["maximum"],
        serde_json::json!(MAX_RETRY_ATTEMPTS as f64)
    );
    assert_eq!(
        spec["rateLimit"]["properties"]["requestsPerSecond"]["minimum"],
        serde_json::json!(1.0)
    );
    assert_eq!(spec["targetRefs"]["minItems"], serde_json::json!(1));
    let target = &spec["targetRefs"]["items"];
    assert_eq!(
        target["properties"]["group"]["enum"],
        serde_json::json!(TARGET_GROUPS)
    );
    assert_eq!(
        target["properties"]["kind"]["enum"],
        serde_json::json!(TARGET_KINDS)
    );
    assert_eq!(
        target["x-kubernetes-validations"][0]["rule"],
        serde_json::json!(TARGET_GROUP_RULE)
    );
    assert_eq!(
        spec["sessionAffinity"]["properties"]["cookieName"]["default"],
        serde_json::json!(DEFAULT_COOKIE_NAME)
    );
    let rules = serde_json::to_string(&spec["rateLimit"]["x-kubernetes-validations"]).unwrap();
    assert!(rules.contains("has(self.requestsPerSecond) && has(self.requestsPerMinute)"));
    assert_eq!(crd["spec"]["group"], "tollgate.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
}

#[test]
fn lenient_types_hold_values_the_schema_refuses() {
    // A policy from an old or hand-written CRD still deserializes; only
    // `validate` says it is wrong (a watch or file never fails on it).
    let s = spec(&with(
        "loadBalancer: {algorithm: magic}\ntimeouts: {connect: soon}\nipAllow: [nowhere]",
    ));
    assert_eq!(s.load_balancer.as_ref().unwrap().algorithm(), None);
    assert_eq!(s.timeouts.as_ref().unwrap().connect(), None);
    assert!(s.ip_allow().is_empty());
    assert_eq!(validate(&s).len(), 3);
}

#[test]
fn header_edits_are_checked_at_their_fields() {
    let ok = with(
        "headers: {request: {set: [{name: X-Env, value: prod}], add: [{name: X-Tag, value: \"a b\"}], \
         remove: [X-Debug]}, response: {set: [{name: Cache-Control, value: no-store}]}}",
    );
    assert_eq!(validate(&spec(&ok)), Vec::<(String, String)>::new());
    let cases: &[(&str, &[&str])] = &[
        (
            "headers: {request: {set: [{name: 'X Bad', value: v}]}}",
            &["spec.headers.request.set[0].name"],
        ),
        (
            "headers: {response: {add: [{name: X-Ok, value: \"line\\nbreak\"}]}}",
            &["spec.headers.response.add[0].value"],
        ),
        (
            "headers: {request: {set: [{name: Host, value: evil}], remove: [Transfer-Encoding, x-a, x-a]}}",
            &[
                "spec.headers.request.set[0].name",
                "spec.headers.request.remove[0]",
                "spec.headers.request.remove[2]",
            ],
        ),
        (
            "headers: {response: {set: [{name: content-length, value: '1'}, {name: X-A, value: a}, {name: X-A, value: b}]}}",
            &[
                "spec.headers.response.set[0].name",
                "spec.headers.response.set[2]",
            ],
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(fields(&with(extra)), *want, "{extra}");
    }
    let refused = validate(&spec(&with(
        "headers: {request: {set: [{name: Connection, value: close}]}}",
    )));
    assert!(refused[0].1.contains("cannot be edited"), "{refused:?}");
}

#[test]
fn refused_headers_cover_every_connection_specific_one_and_are_in_the_schema() {
    for h in crate::hop_by_hop::CONNECTION_SPECIFIC {
        assert!(REFUSED_HEADERS.contains(&h.as_str()), "{h}");
    }
    let crd = serde_json::to_string(&TrafficPolicy::crd()).unwrap();
    for h in REFUSED_HEADERS {
        assert!(crd.contains(&format!("'{h}'")), "{h} not in the CEL rules");
    }
    assert!(crd.contains(&serde_json::to_string(HEADER_VALUE_PATTERN).unwrap()));
}
