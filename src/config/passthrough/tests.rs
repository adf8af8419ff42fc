//! The passthrough compile step: which hosts pass through to which
//! upstream, and what is rejected or warned about.

use crate::config::{compile, CompileOptions, Compiled, LastGood, Severity, Snapshot};
use crate::provider::files::parse_manifests;

/// An Ingress in `ns` with `annotations` (YAML flow entries) and rules
/// (YAML flow mappings).
fn ingress(name: &str, created: &str, annotations: &str, rules: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n\
         metadata: {{name: {name}, namespace: ns, creationTimestamp: \"{created}\", annotations: {{{annotations}}}}}\n\
         spec: {{ingressClassName: tollgate, rules: [{rules}]}}\n"
    )
}

/// A rule for `host` with (path, service) paths, Prefix, port 443.
fn rule(host: &str, paths: &[(&str, &str)]) -> String {
    let paths: Vec<String> = paths
        .iter()
        .map(|(p, s)| {
            format!("{{path: \"{p}\", pathType: Prefix, backend: {{service: {{name: {s}, port: {{number: 443}}}}}}}}")
        })
        .collect();
    format!(
        "{{host: \"{host}\", http: {{paths: [{}]}}}}",
        paths.join(", ")
    )
}

const ON: &str = "nginx.ingress.kubernetes.io/ssl-passthrough: \"true\"";

fn compile_with(flag: bool, docs: &[String]) -> Compiled {
    let mut snapshot = Snapshot::default();
    let text = docs.join("---\n");
    for (origin, object) in parse_manifests("test.yaml", &text).expect("manifests parse") {
        snapshot.insert(origin, object);
    }
    let opts = CompileOptions {
        ssl_passthrough: flag,
        ..CompileOptions::default()
    };
    compile(&snapshot, &opts, &LastGood::new())
}

/// The upstream label a passthrough host goes to.
fn passed_to(c: &Compiled, host: &str) -> Option<String> {
    let id = c.tls.passthrough(host)?;
    Some(c.upstreams.get(id as usize)?.label.to_string())
}

#[track_caller]
fn has(c: &Compiled, severity: Severity, name: &str, reason: &str) {
    assert!(
        c.diagnostics
            .iter()
            .any(|d| d.severity == severity && d.name == name && d.reason.contains(reason)),
        "no {severity:?} on {name} containing {reason:?}: {:#?}",
        c.diagnostics
    );
}

#[test]
fn a_passthrough_host_goes_to_the_service_of_its_root_path() {
    let docs = [ingress(
        "a",
        "2024-01-01T00:00:00Z",
        ON,
        &rule("pass.example", &[("/api", "api"), ("/", "web")]),
    )];
    let c = compile_with(true, &docs);
    assert_eq!(passed_to(&c, "pass.example").as_deref(), Some("ns/web:443"));
    assert!(!c.rejected(), "{:#?}", c.diagnostics);
    // Plain HTTP keeps every path.
    assert!(c.table.lookup("pass.example", "/api/x").is_some());
    // Nothing else is passed through; no other host is.
    assert!(c.tls.passthrough("other.example").is_none());
}

#[test]
fn without_the_flag_the_ingress_is_rejected_not_terminated() {
    let docs = [ingress(
        "a",
        "2024-01-01T00:00:00Z",
        ON,
        &rule("pass.example", &[("/", "web")]),
    )];
    let c = compile_with(false, &docs);
    assert!(!c.tls.has_passthrough());
    assert!(
        c.table.lookup("pass.example", "/").is_none(),
        "not served terminated"
    );
    has(&c, Severity::Rejected, "a", "--enable-ssl-passthrough");
    let d = c
        .diagnostics
        .iter()
        .find(|d| d.reason.contains("--enable-ssl-passthrough"))
        .expect("the diagnostic");
    assert_eq!(
        d.field,
        "metadata.annotations[nginx.ingress.kubernetes.io/ssl-passthrough]"
    );
    // "false" asks for nothing, flag or not.
    let off = [ingress(
        "a",
        "2024-01-01T00:00:00Z",
        "nginx.ingress.kubernetes.io/ssl-passthrough: \"false\"",
        &rule("pass.example", &[("/", "web")]),
    )];
    let c = compile_with(false, &off);
    assert!(!c.rejected(), "{:#?}", c.diagnostics);
    assert!(c.table.lookup("pass.example", "/").is_some());
}

#[test]
fn rules_that_cannot_be_passed_through_reject_the_ingress() {
    for (rules, reason) in [
        (rule("pass.example", &[("/api", "api")]), "has no `/` path"),
        (rule("*.example", &[("/", "web")]), "not wildcards"),
        (rule("", &[("/", "web")]), "needs a host"),
    ] {
        let c = compile_with(true, &[ingress("a", "2024-01-01T00:00:00Z", ON, &rules)]);
        has(&c, Severity::Rejected, "a", reason);
        assert!(!c.tls.has_passthrough());
    }
    let c = compile_with(
        true,
        &[ingress(
            "a",
            "2024-01-01T00:00:00Z",
            "nginx.ingress.kubernetes.io/ssl-passthrough: \"yes\"",
            &rule("pass.example", &[("/", "web")]),
        )],
    );
    has(&c, Severity::Rejected, "a", "`yes` is not true or false");
}

#[test]
fn http_annotations_and_shadowed_ingresses_are_named() {
    let docs = [
        ingress(
            "a",
            "2024-01-01T00:00:00Z",
            &format!("{ON}, nginx.ingress.kubernetes.io/enable-cors: \"true\""),
            &rule("pass.example", &[("/", "web")]),
        ),
        ingress(
            "b",
            "2024-01-02T00:00:00Z",
            "",
            &rule("pass.example", &[("/other", "other")]),
        ),
    ];
    let c = compile_with(true, &docs);
    has(
        &c,
        Severity::Warning,
        "a",
        "apply to its plain HTTP requests only, never to its TLS connections (spliced untouched): nginx.ingress.kubernetes.io/enable-cors",
    );
    has(&c, Severity::Warning, "b", "passed through by Ingress ns/a");
    assert_eq!(passed_to(&c, "pass.example").as_deref(), Some("ns/web:443"));
}

#[test]
fn the_oldest_ingress_decides_and_the_root_route_winner_serves() {
    let docs = [
        ingress(
            "new",
            "2024-01-02T00:00:00Z",
            ON,
            &rule("pass.example", &[("/", "newer")]),
        ),
        ingress(
            "old",
            "2024-01-01T00:00:00Z",
            ON,
            &rule("pass.example", &[("/", "older")]),
        ),
    ];
    let c = compile_with(true, &docs);
    assert_eq!(
        passed_to(&c, "pass.example").as_deref(),
        Some("ns/older:443")
    );
}

#[test]
fn canaries_are_not_passed_through() {
    let docs = [
        ingress(
            "main",
            "2024-01-01T00:00:00Z",
            ON,
            &rule("pass.example", &[("/", "web")]),
        ),
        ingress(
            "canary",
            "2024-01-02T00:00:00Z",
            &format!("{ON}, nginx.ingress.kubernetes.io/canary: \"true\", nginx.ingress.kubernetes.io/canary-weight: \"50\""),
            &rule("pass.example", &[("/", "web-canary")]),
        ),
    ];
    let c = compile_with(true, &docs);
    has(&c, Severity::Warning, "canary", "never passed through");
    assert_eq!(passed_to(&c, "pass.example").as_deref(), Some("ns/web:443"));
}
