//! Compiler rules, end to end: manifests (YAML, parsed by the file provider)
//! → `Snapshot` → `compile` → lookups in the table, upstream endpoints and
//! diagnostics. Each test pins one rule a user would notice.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use crate::provider::files::parse_manifests;
use crate::table::upstream::PortRef;

// ---------------------------------------------------------------- helpers

/// Builds an Ingress manifest in namespace `ns`, class `tollgate` unless
/// changed. Every backend port is 80.
struct Ing {
    name: String,
    meta: Vec<String>,
    annotations: Vec<String>,
    class: Option<String>,
    default_backend: Option<String>,
    rules: Vec<String>,
}

fn ing(name: &str) -> Ing {
    Ing {
        name: name.into(),
        meta: Vec::new(),
        annotations: Vec::new(),
        class: Some("tollgate".into()),
        default_backend: None,
        rules: Vec::new(),
    }
}

/// A service backend on port 80, as a YAML flow mapping.
fn backend(service: &str) -> String {
    format!("{{service: {{name: {service}, port: {{number: 80}}}}}}")
}

impl Ing {
    fn created(mut self, timestamp: &str) -> Self {
        self.meta
            .push(format!("creationTimestamp: \"{timestamp}\""));
        self
    }
    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push(format!("{key}: \"{value}\""));
        self
    }
    fn class(mut self, class: Option<&str>) -> Self {
        self.class = class.map(Into::into);
        self
    }
    fn default_backend(mut self, service: &str) -> Self {
        self.default_backend = Some(backend(service));
        self
    }
    /// One rule; `paths` are (path, pathType, service). `""` host: hostless.
    fn rule(self, host: &str, paths: &[(&str, &str, &str)]) -> Self {
        let paths: Vec<String> = paths
            .iter()
            .map(|(path, ty, svc)| {
                format!(
                    "{{path: \"{path}\", pathType: {ty}, backend: {}}}",
                    backend(svc)
                )
            })
            .collect();
        self.raw_rule(host, &paths)
    }
    /// One rule whose paths are given as YAML flow mappings.
    fn raw_rule(mut self, host: &str, paths: &[String]) -> Self {
        let host = if host.is_empty() {
            String::new()
        } else {
            format!("host: \"{host}\", ")
        };
        self.rules
            .push(format!("{{{host}http: {{paths: [{}]}}}}", paths.join(", ")));
        self
    }
    fn yaml(&self) -> String {
        let mut meta = vec![format!("name: {}", self.name), "namespace: ns".into()];
        meta.extend(self.meta.iter().cloned());
        if !self.annotations.is_empty() {
            meta.push(format!("annotations: {{{}}}", self.annotations.join(", ")));
        }
        let mut spec = Vec::new();
        if let Some(class) = &self.class {
            spec.push(format!("ingressClassName: {class}"));
        }
        if let Some(b) = &self.default_backend {
            spec.push(format!("defaultBackend: {b}"));
        }
        if !self.rules.is_empty() {
            spec.push(format!("rules: [{}]", self.rules.join(", ")));
        }
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{{}}}\nspec: {{{}}}\n",
            meta.join(", "),
            spec.join(", ")
        )
    }
}

fn ingress_class(name: &str, controller: &str, default: bool) -> String {
    let annotations = if default {
        ", annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}"
    } else {
        ""
    };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: {name}{annotations}}}\nspec: {{controller: {controller}}}\n"
    )
}

/// A Service in `ns`; `ports` is a YAML flow sequence.
fn service(name: &str, ports: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{ports: {ports}}}\n")
}

/// An EndpointSlice of Service `svc` in `ns`; `ports` and `endpoints` are
/// YAML flow sequences.
fn slice(name: &str, svc: &str, address_type: &str, ports: &str, endpoints: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {name}, namespace: ns, labels: {{kubernetes.io/service-name: {svc}}}}}\n\
         addressType: {address_type}\nports: {ports}\nendpoints: {endpoints}\n"
    )
}

fn snapshot(docs: &[String]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    add(&mut snapshot, docs);
    snapshot
}

fn add(snapshot: &mut Snapshot, docs: &[String]) {
    let text = docs.join("---\n");
    for (origin, object) in parse_manifests("test.yaml", &text).expect("test manifests parse") {
        snapshot.insert(origin, object);
    }
}

fn compile_docs(docs: &[String]) -> Compiled {
    compile(
        &snapshot(docs),
        &CompileOptions::default(),
        &LastGood::new(),
    )
}

/// The upstream label (`ns/service:port`) a request goes to; `None` is 404.
fn target(c: &Compiled, host: &str, path: &str) -> Option<String> {
    let id = c.table.lookup(host, path)?;
    Some(
        c.table
            .route(id)
            .expect("lookup returns a valid route id")
            .service
            .to_string(),
    )
}

fn upstream<'a>(
    c: &'a Compiled,
    host: &str,
    path: &str,
) -> &'a crate::table::upstream::UpstreamSpec {
    let id = c.table.lookup(host, path).expect("a route");
    let route = c.table.route(id).expect("valid route id");
    &c.upstreams[route.upstream as usize]
}

fn endpoints(c: &Compiled, host: &str, path: &str) -> Vec<String> {
    upstream(c, host, path)
        .endpoints
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The diagnostic of `severity` on Ingress `ns/name` for `field` whose reason
/// contains `reason`; panics listing all diagnostics when there is none.
#[track_caller]
fn diagnostic<'a>(
    c: &'a Compiled,
    severity: Severity,
    name: &str,
    field: &str,
    reason: &str,
) -> &'a Diagnostic {
    c.diagnostics
        .iter()
        .find(|d| {
            d.severity == severity
                && d.namespace == "ns"
                && d.name == name
                && d.field == field
                && d.reason.contains(reason)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {severity:?} on ns/{name} {field} containing {reason:?} in {:#?}",
                c.diagnostics
            )
        })
}

/// Diagnostics other than "Service not found" warnings: routing tests do not
/// bother defining Services.
fn problems(c: &Compiled) -> Vec<&Diagnostic> {
    c.diagnostics
        .iter()
        .filter(|d| {
            !(d.severity == Severity::Warning
                && d.field.ends_with(".service")
                && d.reason.contains("not found"))
        })
        .collect()
}

#[track_caller]
fn no_diagnostics(c: &Compiled) {
    assert!(
        problems(c).is_empty(),
        "unexpected diagnostics: {:#?}",
        problems(c)
    );
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

const OURS: &str = "tollgate.dev/ingress-controller";

// ---------------------------------------------------------- class selection

fn served(docs: &[String]) -> bool {
    let c = compile_docs(docs);
    let routed = target(&c, "foo.com", "/").is_some();
    assert_eq!(routed, c.ingresses == 1, "route and served count disagree");
    routed
}

fn foo(class: Option<&str>) -> Ing {
    ing("a")
        .class(class)
        .rule("foo.com", &[("/", "Prefix", "web")])
}

#[test]
fn class_naming_our_ingress_class_is_served() {
    assert!(served(&[
        ingress_class("edge", OURS, false),
        foo(Some("edge")).yaml()
    ]));
}

#[test]
fn class_naming_a_foreign_ingress_class_is_ignored() {
    assert!(!served(&[
        ingress_class("nginx", "k8s.io/ingress-nginx", false),
        foo(Some("nginx")).yaml()
    ]));
    // The IngressClass object decides, not its name.
    assert!(!served(&[
        ingress_class("tollgate", "k8s.io/ingress-nginx", false),
        foo(Some("tollgate")).yaml()
    ]));
}

#[test]
fn class_tollgate_without_ingress_class_object_is_served() {
    assert!(served(&[foo(Some("tollgate")).yaml()]));
}

#[test]
fn unknown_class_is_ignored() {
    assert!(!served(&[foo(Some("other")).yaml()]));
}

#[test]
fn no_class_is_served_only_with_our_default_ingress_class() {
    assert!(served(&[
        ingress_class("edge", OURS, true),
        foo(None).yaml()
    ]));
    assert!(!served(&[
        ingress_class("edge", OURS, false),
        foo(None).yaml()
    ]));
    assert!(!served(&[foo(None).yaml()]));
    // Someone else's default class does not make the Ingress ours.
    assert!(!served(&[
        ingress_class("nginx", "k8s.io/ingress-nginx", true),
        foo(None).yaml()
    ]));
}

#[test]
fn deprecated_class_annotation() {
    let annotated = |value: &str, class: Option<&str>| {
        foo(class)
            .annotation("kubernetes.io/ingress.class", value)
            .yaml()
    };
    assert!(served(&[annotated("tollgate", None)]));
    assert!(!served(&[annotated("nginx", None)]));
    // As in ingress-nginx, the annotation, when present, takes precedence
    // over spec.ingressClassName in both directions.
    assert!(!served(&[annotated("nginx", Some("tollgate"))]));
    assert!(served(&[annotated("tollgate", Some("nginx"))]));
}

// ------------------------------------------------------------------- hosts

#[test]
fn exact_host_beats_wildcard() {
    let c = compile_docs(&[
        ing("wild")
            .rule("*.foo.com", &[("/", "Prefix", "wild")])
            .yaml(),
        ing("exact")
            .rule("a.foo.com", &[("/", "Prefix", "exact")])
            .yaml(),
    ]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "a.foo.com", "/x"), some("ns/exact:80"));
    assert_eq!(target(&c, "b.foo.com", "/x"), some("ns/wild:80"));
}

#[test]
fn wildcard_matches_exactly_one_label() {
    let c = compile_docs(&[ing("a")
        .rule("*.foo.com", &[("/", "Prefix", "wild")])
        .yaml()]);
    assert_eq!(target(&c, "bar.foo.com", "/"), some("ns/wild:80"));
    assert_eq!(target(&c, "baz.bar.foo.com", "/"), None);
    assert_eq!(target(&c, "foo.com", "/"), None);
}

#[test]
fn hostless_rules_serve_only_hosts_that_matched_nothing() {
    let c = compile_docs(&[ing("a")
        .rule("", &[("/", "Prefix", "any")])
        .rule("foo.com", &[("/app", "Prefix", "app")])
        .rule("*.wild.com", &[("/app", "Prefix", "wild")])
        .yaml()]);
    assert_eq!(target(&c, "other.com", "/x"), some("ns/any:80"));
    assert_eq!(target(&c, "foo.com", "/app/x"), some("ns/app:80"));
    assert_eq!(
        target(&c, "foo.com", "/x"),
        None,
        "a matched host never falls through to hostless rules"
    );
    assert_eq!(target(&c, "a.wild.com", "/app"), some("ns/wild:80"));
    assert_eq!(
        target(&c, "a.wild.com", "/x"),
        None,
        "nor does a matched wildcard"
    );
}

#[test]
fn matched_host_without_matching_path_uses_its_ingress_default_backend() {
    let without = compile_docs(&[ing("a")
        .rule("foo.com", &[("/app", "Prefix", "app")])
        .yaml()]);
    assert_eq!(target(&without, "foo.com", "/other"), None);

    let with = compile_docs(&[ing("a")
        .default_backend("fallback")
        .rule("foo.com", &[("/app", "Prefix", "app")])
        .yaml()]);
    assert_eq!(target(&with, "foo.com", "/other"), some("ns/fallback:80"));
    assert_eq!(target(&with, "foo.com", "/app"), some("ns/app:80"));
}

#[test]
fn host_with_rule_but_no_paths_still_claims_the_host() {
    let c = compile_docs(&[ing("a")
        .rule("", &[("/", "Prefix", "any")])
        .raw_rule("foo.com", &[])
        .yaml()]);
    assert_eq!(target(&c, "foo.com", "/"), None);
    assert_eq!(target(&c, "bar.com", "/"), some("ns/any:80"));
}

// ------------------------------------------------------------------- paths

fn one_path(path: &str, path_type: &str) -> Compiled {
    let c = compile_docs(&[ing("a").rule("h.com", &[(path, path_type, "web")]).yaml()]);
    no_diagnostics(&c);
    c
}

#[track_caller]
fn check_matches(c: &Compiled, yes: &[&str], no: &[&str]) {
    for p in yes {
        assert_eq!(target(c, "h.com", p), some("ns/web:80"), "{p} should match");
    }
    for p in no {
        assert_eq!(target(c, "h.com", p), None, "{p} should not match");
    }
}

#[test]
fn exact_paths_match_only_themselves() {
    check_matches(
        &one_path("/foo", "Exact"),
        &["/foo"],
        &["/foo/", "/foo/bar", "/fo", "/FOO", "/"],
    );
    check_matches(
        &one_path("/foo/", "Exact"),
        &["/foo/"],
        &["/foo", "/foo/bar"],
    );
}

#[test]
fn prefix_paths_match_whole_segments() {
    // The table of https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
    check_matches(&one_path("/", "Prefix"), &["/", "/anything", "/a/b/"], &[]);
    check_matches(
        &one_path("/foo", "Prefix"),
        &["/foo", "/foo/", "/foo/bar"],
        &["/foobar", "/fo", "/"],
    );
    check_matches(
        &one_path("/foo/", "Prefix"),
        &["/foo", "/foo/", "/foo/bar"],
        &["/foobar"],
    );
    check_matches(
        &one_path("/aaa/bb", "Prefix"),
        &["/aaa/bb/c"],
        &["/aaa/bbb"],
    );
    check_matches(
        &one_path("/aaa/bbb", "Prefix"),
        &["/aaa/bbb", "/aaa/bbb/", "/aaa/bbb/ccc"],
        &["/aaa/bbbxyz", "/aaa"],
    );
}

#[test]
fn implementation_specific_paths_match_as_prefixes() {
    check_matches(
        &one_path("/foo", "ImplementationSpecific"),
        &["/foo", "/foo/", "/foo/bar"],
        &["/foobar", "/"],
    );
}

#[test]
fn longest_prefix_wins() {
    let c = compile_docs(&[ing("a")
        .rule(
            "h.com",
            &[
                ("/", "Prefix", "root"),
                ("/aaa", "Prefix", "aaa"),
                ("/aaa/bbb", "Prefix", "bbb"),
            ],
        )
        .yaml()]);
    assert_eq!(target(&c, "h.com", "/aaa/ccc"), some("ns/aaa:80"));
    assert_eq!(target(&c, "h.com", "/aaa/bbb"), some("ns/bbb:80"));
    assert_eq!(target(&c, "h.com", "/aaa/bbb/x"), some("ns/bbb:80"));
    assert_eq!(target(&c, "h.com", "/ccc"), some("ns/root:80"));
}

#[test]
fn exact_beats_prefix_of_the_same_path() {
    let c = compile_docs(&[ing("a")
        .rule(
            "h.com",
            &[("/foo", "Prefix", "prefix"), ("/foo", "Exact", "exact")],
        )
        .yaml()]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "h.com", "/foo"), some("ns/exact:80"));
    assert_eq!(target(&c, "h.com", "/foo/"), some("ns/prefix:80"));
    assert_eq!(target(&c, "h.com", "/foo/x"), some("ns/prefix:80"));
}

// ---------------------------------------------------------- defaultBackend

#[test]
fn default_backend_serves_unmatched_paths_and_unmatched_hosts() {
    let c = compile_docs(&[ing("a")
        .default_backend("fallback")
        .rule("foo.com", &[("/app", "Exact", "app")])
        .yaml()]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "foo.com", "/app"), some("ns/app:80"));
    assert_eq!(target(&c, "foo.com", "/app/x"), some("ns/fallback:80"));
    assert_eq!(target(&c, "bar.com", "/"), some("ns/fallback:80"));
}

#[test]
fn default_backend_alone_serves_everything() {
    let c = compile_docs(&[ing("a").default_backend("fallback").yaml()]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "any.com", "/x"), some("ns/fallback:80"));
}

#[test]
fn oldest_default_backend_serves_unmatched_hosts() {
    // The older Ingress sorts last by name, so only the timestamp can pick it.
    let c = compile_docs(&[
        ing("newer")
            .created("2024-01-02T00:00:00Z")
            .default_backend("newer-default")
            .rule("n.com", &[("/x", "Exact", "x")])
            .yaml(),
        ing("older")
            .created("2024-01-01T00:00:00Z")
            .default_backend("older-default")
            .rule("o.com", &[("/x", "Exact", "x")])
            .yaml(),
    ]);
    assert_eq!(target(&c, "unknown.com", "/"), some("ns/older-default:80"));
    // Each still serves its own hosts' unmatched paths.
    assert_eq!(target(&c, "n.com", "/y"), some("ns/newer-default:80"));
    assert_eq!(target(&c, "o.com", "/y"), some("ns/older-default:80"));
    diagnostic(
        &c,
        Severity::Warning,
        "newer",
        "spec.defaultBackend",
        "older Ingress already provides",
    );
    assert_eq!(problems(&c).len(), 1, "{:#?}", problems(&c));
}

#[test]
fn default_backend_with_hostless_rules_is_not_a_conflict_with_itself() {
    let c = compile_docs(&[ing("a")
        .default_backend("fallback")
        .rule("", &[("/app", "Exact", "app")])
        .yaml()]);
    assert_eq!(target(&c, "any.com", "/app"), some("ns/app:80"));
    assert_eq!(target(&c, "any.com", "/other"), some("ns/fallback:80"));
    // A single Ingress cannot be "an older Ingress" of itself.
    no_diagnostics(&c);
}

// ------------------------------------------------------- merge and conflicts

#[test]
fn two_ingresses_on_one_host_merge() {
    let c = compile_docs(&[
        ing("a")
            .rule("foo.com", &[("/a", "Prefix", "svc-a")])
            .yaml(),
        ing("b")
            .rule("foo.com", &[("/b", "Prefix", "svc-b")])
            .yaml(),
    ]);
    no_diagnostics(&c);
    assert_eq!(c.ingresses, 2);
    assert_eq!(target(&c, "foo.com", "/a/x"), some("ns/svc-a:80"));
    assert_eq!(target(&c, "foo.com", "/b/x"), some("ns/svc-b:80"));
    assert_eq!(target(&c, "foo.com", "/c"), None);
}

#[test]
fn conflict_goes_to_the_oldest_ingress() {
    let c = compile_docs(&[
        ing("a")
            .created("2024-05-01T00:00:00Z")
            .rule(
                "foo.com",
                &[("/own", "Prefix", "own"), ("/x", "Prefix", "svc-a")],
            )
            .yaml(),
        ing("b")
            .created("2024-01-01T00:00:00Z")
            .rule("foo.com", &[("/x", "Prefix", "svc-b")])
            .yaml(),
    ]);
    assert_eq!(target(&c, "foo.com", "/x"), some("ns/svc-b:80"));
    assert_eq!(
        target(&c, "foo.com", "/own"),
        some("ns/own:80"),
        "the loser's other paths are served"
    );
    let d = diagnostic(
        &c,
        Severity::Rejected,
        "a",
        "spec.rules[0].http.paths[1]",
        "conflict",
    );
    assert!(d.reason.contains("ns/b"), "names the winner: {}", d.reason);
    assert_eq!(problems(&c).len(), 1, "{:#?}", problems(&c));
}

#[test]
fn conflict_with_equal_or_missing_timestamps_goes_by_namespace_and_name() {
    for (ts_a, ts_b) in [
        (Some("2024-01-01T00:00:00Z"), Some("2024-01-01T00:00:00Z")),
        (None, None),
    ] {
        let mut a = ing("a");
        let mut b = ing("b");
        if let (Some(ta), Some(tb)) = (ts_a, ts_b) {
            a = a.created(ta);
            b = b.created(tb);
        }
        // Listed b first: input order must not matter.
        let c = compile_docs(&[
            b.rule("foo.com", &[("/x", "Exact", "svc-b")]).yaml(),
            a.rule("foo.com", &[("/x", "Exact", "svc-a")]).yaml(),
        ]);
        assert_eq!(
            target(&c, "foo.com", "/x"),
            some("ns/svc-a:80"),
            "timestamps {ts_a:?}"
        );
        let d = diagnostic(
            &c,
            Severity::Rejected,
            "b",
            "spec.rules[0].http.paths[0]",
            "conflict",
        );
        assert!(d.reason.contains("ns/a"), "names the winner: {}", d.reason);
    }
}

#[test]
fn missing_timestamp_counts_as_oldest() {
    let c = compile_docs(&[
        ing("a")
            .created("2024-01-01T00:00:00Z")
            .rule("foo.com", &[("/x", "Exact", "svc-a")])
            .yaml(),
        ing("b").rule("foo.com", &[("/x", "Exact", "svc-b")]).yaml(),
    ]);
    assert_eq!(target(&c, "foo.com", "/x"), some("ns/svc-b:80"));
    diagnostic(
        &c,
        Severity::Rejected,
        "a",
        "spec.rules[0].http.paths[0]",
        "ns/b",
    );
}

#[test]
fn same_path_with_different_types_is_no_conflict() {
    let c = compile_docs(&[
        ing("a").rule("foo.com", &[("/x", "Exact", "svc-a")]).yaml(),
        ing("b")
            .rule("foo.com", &[("/x", "Prefix", "svc-b")])
            .yaml(),
    ]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "foo.com", "/x"), some("ns/svc-a:80"));
    assert_eq!(target(&c, "foo.com", "/x/y"), some("ns/svc-b:80"));
}

// -------------------------------------------------------------- validation

/// Compiles `bad` next to a valid Ingress; asserts `bad` is not served at
/// all (not even its valid paths) and a rejection names `field`.
#[track_caller]
fn rejected(bad: Ing, field: &str, reason: &str) {
    let bad = bad.rule("good.com", &[("/", "Prefix", "good")]);
    let other = ing("other").rule("other.com", &[("/", "Prefix", "other")]);
    let c = compile_docs(&[bad.yaml(), other.yaml()]);
    assert_eq!(c.ingresses, 1);
    assert_eq!(
        target(&c, "good.com", "/"),
        None,
        "a rejected Ingress serves nothing"
    );
    assert_eq!(
        target(&c, "other.com", "/"),
        some("ns/other:80"),
        "other Ingresses are unaffected"
    );
    diagnostic(&c, Severity::Rejected, "bad", field, reason);
    diagnostic(&c, Severity::Rejected, "bad", "metadata", "not served");
    assert!(
        problems(&c).iter().all(|d| d.name == "bad"),
        "{:#?}",
        problems(&c)
    );
    assert!(!c
        .last_good
        .ingresses
        .contains_key(&ObjectKey::new("ns", "bad")));
}

fn bad_path(path_yaml: &str) -> Ing {
    ing("bad").raw_rule("h.com", &[path_yaml.to_string()])
}

const B: &str = "backend: {service: {name: web, port: {number: 80}}}";

#[test]
fn missing_path_type_is_rejected() {
    rejected(
        bad_path(&format!("{{path: /x, {B}}}")),
        "spec.rules[0].http.paths[0].pathType",
        "required",
    );
}

#[test]
fn invalid_path_type_is_rejected() {
    rejected(
        bad_path(&format!("{{path: /x, pathType: Regex, {B}}}")),
        "spec.rules[0].http.paths[0].pathType",
        "Regex",
    );
}

#[test]
fn relative_path_is_rejected() {
    rejected(
        bad_path(&format!("{{path: x, pathType: Prefix, {B}}}")),
        "spec.rules[0].http.paths[0].path",
        "absolute",
    );
}

#[test]
fn dot_dot_segment_is_rejected() {
    rejected(
        bad_path(&format!(
            "{{path: /public/../admin, pathType: Prefix, {B}}}"
        )),
        "spec.rules[0].http.paths[0].path",
        "/../",
    );
}

#[test]
fn invalid_hosts_are_rejected() {
    for host in ["Foo.com", "a.*.com", "10.0.0.1"] {
        rejected(
            ing("bad").rule(host, &[("/", "Prefix", "web")]),
            "spec.rules[0].host",
            "",
        );
    }
    // The failing rule's index is named.
    rejected(
        ing("bad")
            .rule("ok.com", &[("/", "Prefix", "web")])
            .rule("Bad.com", &[("/", "Prefix", "web")]),
        "spec.rules[1].host",
        "lowercase",
    );
}

#[test]
fn backend_with_port_number_and_name_is_rejected() {
    rejected(
        bad_path("{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80, name: http}}}}"),
        "spec.rules[0].http.paths[0].backend",
        "not both",
    );
}

#[test]
fn resource_backend_is_rejected() {
    rejected(
        bad_path("{path: /, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: b}}}"),
        "spec.rules[0].http.paths[0].backend",
        "resource backends are not supported",
    );
}

#[test]
fn missing_service_name_is_rejected() {
    rejected(
        bad_path("{path: /, pathType: Prefix, backend: {service: {port: {number: 80}}}}"),
        "spec.rules[0].http.paths[0].backend",
        "service.name",
    );
}

#[test]
fn invalid_default_backend_is_rejected() {
    let bad = ing("bad");
    let bad = Ing {
        default_backend: Some("{service: {name: web}}".into()),
        ..bad
    };
    rejected(bad, "spec.defaultBackend", "port");
}

// --------------------------------------------------------------- last good

#[test]
fn last_good_version_keeps_serving_when_an_ingress_becomes_invalid() {
    let v1 = ing("a").rule("foo.com", &[("/", "Prefix", "v1")]);
    let first = compile_docs(&[v1.yaml()]);
    no_diagnostics(&first);
    assert_eq!(target(&first, "foo.com", "/"), some("ns/v1:80"));

    let v2 = ing("a").rule("foo.com", &[("/", "Prefix", "v2")]).raw_rule(
        "foo.com",
        &[format!("{{path: relative, pathType: Prefix, {B}}}")],
    );
    let second = compile(
        &snapshot(&[v2.yaml()]),
        &CompileOptions::default(),
        &first.last_good,
    );
    assert_eq!(
        target(&second, "foo.com", "/"),
        some("ns/v1:80"),
        "the last good version serves"
    );
    assert_eq!(second.ingresses, 1);
    diagnostic(
        &second,
        Severity::Rejected,
        "a",
        "spec.rules[1].http.paths[0].path",
        "absolute",
    );
    diagnostic(
        &second,
        Severity::Rejected,
        "a",
        "metadata",
        "last good version keeps serving",
    );

    // And keeps serving while the Ingress stays invalid.
    let third = compile(
        &snapshot(&[v2.yaml()]),
        &CompileOptions::default(),
        &second.last_good,
    );
    assert_eq!(target(&third, "foo.com", "/"), some("ns/v1:80"));
}

/// Found by the fuzz target: a rejected edit that also claims an older
/// creationTimestamp moved its last good version ahead of the Ingress
/// that held a path, which then lost it.
#[test]
fn a_rejected_edit_claiming_an_older_timestamp_takes_no_path() {
    let holder = ing("a")
        .created("2024-01-01T00:00:00Z")
        .rule("foo.com", &[("/", "Prefix", "a")]);
    let other = ing("b")
        .created("2024-01-02T00:00:00Z")
        .rule("foo.com", &[("/", "Prefix", "b")]);
    let first = compile_docs(&[holder.yaml(), other.yaml()]);
    assert_eq!(target(&first, "foo.com", "/"), some("ns/a:80"));
    let broken = ing("b")
        .created("2023-01-01T00:00:00Z")
        .annotation("nginx.ingress.kubernetes.io/server-snippet", "return 200;")
        .rule("foo.com", &[("/", "Prefix", "b")]);
    let second = compile(
        &snapshot(&[holder.yaml(), broken.yaml()]),
        &CompileOptions::default(),
        &first.last_good,
    );
    assert_eq!(target(&second, "foo.com", "/"), some("ns/a:80"));
}

#[test]
fn ingress_invalid_from_the_start_is_not_served() {
    let bad = ing("a").rule("Foo.com", &[("/", "Prefix", "web")]);
    let c = compile_docs(&[bad.yaml()]);
    assert_eq!(c.ingresses, 0);
    assert!(c.last_good.ingresses.is_empty());
    assert_eq!(c.table.host_count(), 0);
    diagnostic(&c, Severity::Rejected, "a", "metadata", "not served");
}

// ---------------------------------------------------------------- backends

fn web_ingress(port: &str) -> String {
    ing("a")
        .raw_rule(
            "foo.com",
            &[format!(
                "{{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {port}}}}}}}"
            )],
        )
        .yaml()
}

const WEB_SLICE_PORTS: &str = "[{name: http, port: 9101}]";

#[test]
fn backend_port_by_number_maps_to_the_slice_port_of_the_same_name() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service("web", "[{name: http, port: 80, targetPort: 9101}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.1]}]",
        ),
    ]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "foo.com", "/"), some("ns/web:80"));
    assert_eq!(endpoints(&c, "foo.com", "/"), ["10.0.0.1:9101"]);
}

#[test]
fn backend_port_by_name() {
    let c = compile_docs(&[
        web_ingress("{name: http}"),
        service("web", "[{name: http, port: 80, targetPort: 9101}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.1]}]",
        ),
    ]);
    no_diagnostics(&c);
    assert_eq!(target(&c, "foo.com", "/"), some("ns/web:http"));
    assert_eq!(endpoints(&c, "foo.com", "/"), ["10.0.0.1:9101"]);
}

#[test]
fn multi_port_service_picks_the_slice_port_by_name_not_position() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service(
            "web",
            "[{name: http, port: 80}, {name: metrics, port: 9090}]",
        ),
        slice(
            "web-1",
            "web",
            "IPv4",
            "[{name: metrics, port: 9102}, {name: http, port: 9101}]",
            "[{addresses: [10.0.0.1]}]",
        ),
    ]);
    assert_eq!(endpoints(&c, "foo.com", "/"), ["10.0.0.1:9101"]);
}

#[test]
fn unnamed_single_port() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service("web", "[{port: 80, targetPort: 8080}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            "[{port: 8080}]",
            "[{addresses: [10.0.0.1]}]",
        ),
    ]);
    no_diagnostics(&c);
    assert_eq!(endpoints(&c, "foo.com", "/"), ["10.0.0.1:8080"]);
}

#[test]
fn missing_service_keeps_the_route_without_endpoints() {
    let c = compile_docs(&[web_ingress("{number: 80}")]);
    assert_eq!(c.ingresses, 1);
    assert_eq!(
        target(&c, "foo.com", "/"),
        some("ns/web:80"),
        "the route exists (and answers 503)"
    );
    assert!(endpoints(&c, "foo.com", "/").is_empty());
    diagnostic(
        &c,
        Severity::Warning,
        "a",
        "spec.rules[0].http.paths[0].backend.service",
        "not found",
    );
    assert!(!c.rejected());
}

#[test]
fn missing_service_port_keeps_the_route_without_endpoints() {
    for (port, reason) in [
        ("{number: 81}", "no port 81"),
        ("{name: grpc}", "no port named `grpc`"),
    ] {
        let c = compile_docs(&[
            web_ingress(port),
            service("web", "[{name: http, port: 80}]"),
            slice(
                "web-1",
                "web",
                "IPv4",
                WEB_SLICE_PORTS,
                "[{addresses: [10.0.0.1]}]",
            ),
        ]);
        assert!(target(&c, "foo.com", "/").is_some());
        assert!(endpoints(&c, "foo.com", "/").is_empty());
        diagnostic(
            &c,
            Severity::Warning,
            "a",
            "spec.rules[0].http.paths[0].backend.service",
            reason,
        );
        assert!(!c.rejected());
    }
}

#[test]
fn not_ready_endpoints_are_excluded() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service("web", "[{name: http, port: 80}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.1], conditions: {ready: true}}, \
              {addresses: [10.0.0.2], conditions: {ready: false, serving: true, terminating: true}}, \
              {addresses: [10.0.0.3]}]",
        ),
    ]);
    assert_eq!(
        endpoints(&c, "foo.com", "/"),
        ["10.0.0.1:9101", "10.0.0.3:9101"]
    );
}

#[test]
fn serving_terminating_endpoints_are_used_when_none_is_ready() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service("web", "[{name: http, port: 80}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.1], conditions: {ready: false, serving: true, terminating: true}}, \
              {addresses: [10.0.0.2], conditions: {ready: false, serving: false, terminating: true}}, \
              {addresses: [10.0.0.3], conditions: {ready: false}}]",
        ),
    ]);
    assert_eq!(endpoints(&c, "foo.com", "/"), ["10.0.0.1:9101"]);
}

#[test]
fn ipv6_endpoints() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service("web", "[{name: http, port: 80}]"),
        slice(
            "web-1",
            "web",
            "IPv6",
            WEB_SLICE_PORTS,
            "[{addresses: [\"fd00::1\"]}]",
        ),
    ]);
    let want: SocketAddr = "[fd00::1]:9101".parse().unwrap();
    assert_eq!(
        upstream(&c, "foo.com", "/").endpoints,
        [EndpointAddr::Socket(want)]
    );
}

#[test]
fn external_name_service_resolves_by_dns() {
    let c = compile_docs(&[
        web_ingress("{number: 443}"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: ns}\n\
         spec: {type: ExternalName, externalName: api.example.com.}\n"
            .to_string(),
    ]);
    no_diagnostics(&c);
    assert_eq!(
        upstream(&c, "foo.com", "/").endpoints,
        [EndpointAddr::Dns {
            host: "api.example.com".into(),
            port: 443
        }]
    );
}

#[test]
fn slices_of_one_service_merge_and_other_services_slices_are_ignored() {
    let c = compile_docs(&[
        web_ingress("{number: 80}"),
        service("web", "[{name: http, port: 80}]"),
        service("api", "[{name: http, port: 80}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]",
        ),
        slice(
            "web-2",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.3]}]",
        ),
        slice(
            "api-1",
            "api",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.9]}]",
        ),
    ]);
    assert_eq!(
        endpoints(&c, "foo.com", "/"),
        ["10.0.0.1:9101", "10.0.0.2:9101", "10.0.0.3:9101"]
    );
}

// ----------------------------------------------------------- load balancing

fn lb_of(annotation: Option<(&str, &str)>) -> (LbAlgorithm, Compiled) {
    let mut i = ing("a").rule("foo.com", &[("/", "Prefix", "web")]);
    if let Some((k, v)) = annotation {
        i = i.annotation(k, v);
    }
    let c = compile_docs(&[i.yaml()]);
    (upstream(&c, "foo.com", "/").key.lb, c)
}

#[test]
fn load_balance_annotation_selects_the_algorithm() {
    assert_eq!(lb_of(None).0, LbAlgorithm::RoundRobin);
    assert_eq!(
        lb_of(Some((LOAD_BALANCE_ANNOTATION, "p2c-ewma"))).0,
        LbAlgorithm::P2cEwma
    );
    assert_eq!(
        lb_of(Some((LOAD_BALANCE_ANNOTATION, "round-robin"))).0,
        LbAlgorithm::RoundRobin
    );
    assert_eq!(
        lb_of(Some((NGINX_LOAD_BALANCE_ANNOTATION, "ewma"))).0,
        LbAlgorithm::P2cEwma
    );
}

#[test]
fn bad_load_balance_value_warns_and_uses_round_robin() {
    let (lb, c) = lb_of(Some((LOAD_BALANCE_ANNOTATION, "fastest")));
    assert_eq!(lb, LbAlgorithm::RoundRobin);
    assert_eq!(c.ingresses, 1, "still served");
    diagnostic(
        &c,
        Severity::Warning,
        "a",
        "metadata.annotations[tollgate.dev/load-balance]",
        "fastest",
    );
}

// ---------------------------------------------- --default-backend-service

fn with_default_backend(port: Option<PortRef>, docs: &[String]) -> Compiled {
    let opts = CompileOptions {
        default_backend: Some((ObjectKey::new("ns", "fallback"), port)),
        ..Default::default()
    };
    compile(&snapshot(docs), &opts, &LastGood::new())
}

#[test]
fn default_backend_flag_serves_unmatched_requests() {
    let docs = [
        ing("a")
            .rule("foo.com", &[("/app", "Prefix", "app")])
            .yaml(),
        service("fallback", "[{port: 8080}]"),
        slice(
            "fallback-1",
            "fallback",
            "IPv4",
            "[{port: 8080}]",
            "[{addresses: [10.0.0.5]}]",
        ),
    ];
    let c = with_default_backend(None, &docs);
    assert_eq!(target(&c, "foo.com", "/app"), some("ns/app:80"));
    assert_eq!(
        target(&c, "foo.com", "/other"),
        some("ns/fallback:8080"),
        "unmatched path"
    );
    assert_eq!(
        target(&c, "bar.com", "/"),
        some("ns/fallback:8080"),
        "unmatched host"
    );
    assert_eq!(endpoints(&c, "bar.com", "/"), ["10.0.0.5:8080"]);

    let c = with_default_backend(Some(PortRef::Number(8080)), &docs);
    assert_eq!(endpoints(&c, "bar.com", "/"), ["10.0.0.5:8080"]);
}

#[test]
fn ingress_default_backend_beats_the_flag() {
    let c = with_default_backend(
        None,
        &[
            ing("a").default_backend("mine").yaml(),
            service("fallback", "[{port: 8080}]"),
        ],
    );
    assert_eq!(target(&c, "bar.com", "/"), some("ns/mine:80"));
}

#[test]
fn missing_default_backend_service_warns_and_answers_404() {
    let c = with_default_backend(None, &[]);
    assert_eq!(target(&c, "bar.com", "/"), None);
    let d = c.diagnostics.first().expect("a diagnostic");
    assert_eq!(
        (d.severity, d.kind, d.name.as_str()),
        (Severity::Warning, "Service", "fallback")
    );
}

// ---------------------------------------------------------- changes_from

fn base_docs() -> Vec<String> {
    vec![
        ing("a").rule("foo.com", &[("/", "Prefix", "web")]).yaml(),
        service("web", "[{name: http, port: 80}]"),
        slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.1]}]",
        ),
        slice(
            "api-1",
            "api",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.9]}]",
        ),
    ]
}

#[test]
fn endpoint_slice_change_touches_only_its_service() {
    let old = snapshot(&base_docs());
    let mut new = old.clone();
    add(
        &mut new,
        &[slice(
            "web-1",
            "web",
            "IPv4",
            WEB_SLICE_PORTS,
            "[{addresses: [10.0.0.2]}]",
        )],
    );
    let changes = new.changes_from(&old);
    assert!(!changes.routes);
    assert_eq!(
        changes.endpoints,
        BTreeSet::from([ObjectKey::new("ns", "web")])
    );

    // A removed slice counts too.
    let mut removed = old.clone();
    assert!(removed.remove("EndpointSlice", &ObjectKey::new("ns", "api-1")));
    assert_eq!(
        removed.changes_from(&old),
        Changes {
            routes: false,
            endpoints: BTreeSet::from([ObjectKey::new("ns", "api")])
        }
    );
}

#[test]
fn reinserting_equal_objects_is_no_change() {
    let old = snapshot(&base_docs());
    let mut new = old.clone();
    add(&mut new, &base_docs());
    assert!(new.changes_from(&old).is_empty());
}

#[test]
fn ingress_or_service_change_recompiles_routes() {
    let old = snapshot(&base_docs());
    let mut new = old.clone();
    add(
        &mut new,
        &[ing("a").rule("foo.com", &[("/v2", "Prefix", "web")]).yaml()],
    );
    let changes = new.changes_from(&old);
    assert!(changes.routes);
    assert!(changes.endpoints.is_empty());

    let mut new = old.clone();
    add(&mut new, &[service("web", "[{name: http, port: 8080}]")]);
    assert!(new.changes_from(&old).routes);
}

/// Parses one manifest into its object (for the incremental API).
fn object(doc: &str) -> Object {
    parse_manifests("test.yaml", doc)
        .expect("test manifest parses")
        .pop()
        .expect("one object")
        .1
}

#[test]
fn incremental_upsert_reports_what_changed() {
    let origin: Arc<str> = "kubernetes".into();
    let mut s = Snapshot::default();
    let svc = object(&service("web", "[{port: 80}]"));
    let ep = |ip: &str| {
        object(&slice(
            "web-1",
            "web",
            "IPv4",
            "[{port: 8080}]",
            &format!("[{{addresses: [{ip}]}}]"),
        ))
    };
    let ingress = object(&ing("a").rule("a.example", &[("/", "Prefix", "web")]).yaml());

    let c = s.upsert(origin.clone(), svc.clone());
    assert!(c.routes, "a new Service can change routes");
    assert!(
        !s.upsert(origin.clone(), svc).routes,
        "an equal Service changes nothing"
    );
    assert!(s.upsert(origin.clone(), ingress.clone()).routes);
    assert!(
        s.upsert(origin.clone(), ingress).is_empty(),
        "a resync changes nothing"
    );

    // EndpointSlices only ever touch their Service's endpoints.
    let c = s.upsert(origin.clone(), ep("10.0.0.1"));
    assert!(!c.routes);
    assert_eq!(
        c.endpoints.into_iter().collect::<Vec<_>>(),
        vec![ObjectKey::new("ns", "web")]
    );
    assert!(s.upsert(origin.clone(), ep("10.0.0.1")).is_empty());
    assert_eq!(s.upsert(origin.clone(), ep("10.0.0.2")).endpoints.len(), 1);
    assert_eq!(s.slices_of(&ObjectKey::new("ns", "web")).count(), 1);

    let c = s.delete("EndpointSlice", &ObjectKey::new("ns", "web-1"));
    assert!(!c.routes && c.endpoints.len() == 1);
    assert_eq!(s.slices_of(&ObjectKey::new("ns", "web")).count(), 0);
    assert!(s
        .delete("EndpointSlice", &ObjectKey::new("ns", "web-1"))
        .is_empty());
    assert!(s.delete("Ingress", &ObjectKey::new("ns", "a")).routes);
    assert!(s.delete("Ingress", &ObjectKey::new("ns", "a")).is_empty());
    assert_eq!(s.keys_of("Service"), vec![ObjectKey::new("ns", "web")]);
}

#[test]
fn served_lists_ingresses_served_including_last_good() {
    let good = ing("a").rule("a.example", &[("/", "Prefix", "web")]).yaml();
    let bad = ing("a").rule("a.example", &[("/", "Bogus", "web")]).yaml();
    let never = ing("b").rule("b.example", &[("/", "Bogus", "web")]).yaml();
    let foreign = ing("c")
        .class(Some("other"))
        .rule("c.example", &[("/", "Prefix", "web")])
        .yaml();
    let first = compile(
        &snapshot(&[good, never.clone(), foreign.clone()]),
        &CompileOptions::default(),
        &LastGood::new(),
    );
    assert_eq!(first.served, vec![ObjectKey::new("ns", "a")]);
    // A broken update keeps serving the last good version: still served.
    let second = compile(
        &snapshot(&[bad, never, foreign]),
        &CompileOptions::default(),
        &first.last_good,
    );
    assert_eq!(second.served, vec![ObjectKey::new("ns", "a")]);
}

// ------------------------------------------------------- backend-protocol

#[test]
fn auto_http_adds_an_https_twin_of_each_backend() {
    use crate::table::upstream::BackendProtocol;
    let c = compile_docs(&[ing("a")
        .annotation("nginx.ingress.kubernetes.io/backend-protocol", "auto_http")
        .default_backend("fallback")
        .rule("foo.com", &[("/", "Prefix", "web")])
        .yaml()]);
    no_diagnostics(&c);
    for (host, service) in [("foo.com", "web"), ("other.com", "fallback")] {
        let id = c.table.lookup(host, "/").expect("a route");
        let route = c.table.route(id).expect("valid route id");
        let plain = &c.upstreams[route.upstream as usize];
        let twin = route.policy.tls_upstream.expect("an HTTPS twin");
        let twin = &c.upstreams[twin as usize];
        assert_eq!(plain.key.protocol, BackendProtocol::Http, "{host}");
        assert_eq!(twin.key.protocol, BackendProtocol::Https, "{host}");
        assert_eq!(&*plain.key.service, service);
        assert_eq!(
            (&twin.key.service, &twin.key.port),
            (&plain.key.service, &plain.key.port)
        );
    }
    // Each missing Service is reported once, not once per twin.
    assert_eq!(c.diagnostics.len(), 2, "{:#?}", c.diagnostics);
}

#[test]
fn fcgi_rejects_the_ingress() {
    let c = compile_docs(&[ing("a")
        .annotation("nginx.ingress.kubernetes.io/backend-protocol", "FCGI")
        .rule("foo.com", &[("/", "Prefix", "web")])
        .yaml()]);
    diagnostic(
        &c,
        Severity::Rejected,
        "a",
        "metadata.annotations[nginx.ingress.kubernetes.io/backend-protocol]",
        "FastCGI",
    );
    assert_eq!(target(&c, "foo.com", "/"), None);
}

// ---------------------------------------------------------------- interning

#[test]
fn recompiles_share_the_label_and_key_strings_of_unchanged_routes() {
    let docs = [
        ing("shared")
            .rule("shared.example", &[("/", "Prefix", "web")])
            .yaml(),
        service("web", "[{name: http, port: 80}]"),
    ];
    let snap = snapshot(&docs);
    let first = compile(&snap, &CompileOptions::default(), &LastGood::new());
    // Parsed again: every string of the second snapshot is a new one.
    let second = compile_docs(&docs);
    let route = |c: &Compiled| -> crate::table::Route {
        let id = c.table.lookup("shared.example", "/").expect("a route");
        c.table.route(id).expect("valid route id").clone()
    };
    let (a, b) = (route(&first), route(&second));
    assert_eq!(&*a.ingress, "ns/shared");
    assert!(Arc::ptr_eq(&a.ingress, &b.ingress));
    assert!(Arc::ptr_eq(&a.service, &b.service));
    assert!(Arc::ptr_eq(&a.host, &b.host));
    assert!(Arc::ptr_eq(&a.path, &b.path));
    let (ua, ub) = (
        &first.upstreams[a.upstream as usize],
        &second.upstreams[b.upstream as usize],
    );
    assert!(Arc::ptr_eq(&ua.label, &a.service));
    assert!(Arc::ptr_eq(&ua.key.service, &ub.key.service));
    // The upstream names its Service with the snapshot's key strings.
    let (service_key, _) = snap.services.iter().next().expect("the Service");
    assert!(Arc::ptr_eq(&ua.key.namespace, &service_key.namespace));
    assert!(Arc::ptr_eq(&ua.key.service, &service_key.name));
}
