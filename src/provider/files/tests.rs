//! Manifest parsing and the file source's per-file last-good behaviour.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: ns\nspec:\n  ports: [{port: 80}]\n";
const INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: ns\nspec:\n  ingressClassName: tollgate\n";

/// (kind, key, origin) of each parsed object.
fn parsed(text: &str) -> Vec<(&'static str, String, String)> {
    parse_manifests("f.yaml", text)
        .unwrap_or_else(|e| panic!("parse failed: {e}"))
        .into_iter()
        .map(|(origin, o)| (o.kind(), o.key().to_string(), origin.to_string()))
        .collect()
}

fn parse_error(text: &str) -> FileError {
    match parse_manifests("f.yaml", text) {
        Ok(objects) => panic!("expected an error, got {objects:?}"),
        Err(e) => e,
    }
}

fn owned(v: &[(&'static str, &str, &str)]) -> Vec<(&'static str, String, String)> {
    v.iter()
        .map(|(k, n, o)| (*k, n.to_string(), o.to_string()))
        .collect()
}

// ------------------------------------------------------------ parse_manifests

#[test]
fn multi_document_yaml_with_origins() {
    // Leading and trailing separators and an empty document are fine.
    let text = format!("---\n{SERVICE}---\n---\n{INGRESS}---\n");
    assert_eq!(
        parsed(&text),
        owned(&[
            ("Service", "ns/web", "f.yaml:2"),
            ("Ingress", "ns/web", "f.yaml:11")
        ])
    );
}

#[test]
fn origin_line_skips_a_comment_header() {
    // Many generators start a file with a comment before the first `---`.
    // Lines: 1 comment, 2 `---`, 3..9 Service, 10 `---`, 11.. Ingress.
    let text = format!("# generated\n---\n{SERVICE}---\n{INGRESS}");
    assert_eq!(
        parsed(&text),
        owned(&[
            ("Service", "ns/web", "f.yaml:3"),
            ("Ingress", "ns/web", "f.yaml:11")
        ])
    );
}

#[test]
fn list_kind_is_unpacked() {
    let text = "apiVersion: v1\nkind: List\nitems:\n\
                - {apiVersion: v1, kind: Service, metadata: {name: a, namespace: ns}}\n\
                - {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}\n\
                - {apiVersion: networking.k8s.io/v1, kind: Ingress, metadata: {name: b}}\n";
    assert_eq!(
        parsed(text),
        owned(&[
            ("Service", "ns/a", "f.yaml:1"),
            ("Ingress", "default/b", "f.yaml:1")
        ])
    );
    // Typed lists (`kubectl get services -o yaml`) too.
    let typed = "apiVersion: v1\nkind: ServiceList\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}}\n";
    assert_eq!(
        parsed(typed),
        owned(&[("Service", "default/a", "f.yaml:1")])
    );
}

#[test]
fn json_manifest() {
    let text = r#"{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 8080}]}"#;
    let objects = parse_manifests("f.json", text).expect("valid JSON");
    let [(origin, Object::EndpointSlice(slice))] = objects.as_slice() else {
        panic!("{objects:?}")
    };
    assert_eq!(&**origin, "f.json:1");
    assert_eq!(slice.endpoints[0].addresses, ["10.0.0.1"]);
}

/// Found by the fuzz target: a JSON manifest whose strings hold characters
/// JSON allows and YAML does not (DEL, C1 controls) did not load.
#[test]
fn json_manifests_are_read_as_json() {
    let text = "{\"apiVersion\": \"v1\", \"kind\": \"Service\",\n \"metadata\": {\"name\": \"web\", \"namespace\": \"ns\", \"annotations\": {\"a\": \"\u{7f}x\u{85}\"}}}";
    let objects = parse_manifests("f.json", text).expect("valid JSON");
    let [(origin, Object::Service(service))] = objects.as_slice() else {
        panic!("{objects:?}")
    };
    assert_eq!(&**origin, "f.json:1");
    let annotations = service.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(annotations["a"], "\u{7f}x\u{85}");
    assert!(parse_manifests("f.json", "").expect("empty").is_empty());
    let FileError::Syntax { line, .. } = parse_manifests("f.json", "{\n\n,").unwrap_err() else {
        panic!("a syntax error")
    };
    assert_eq!(line, 3);
}

#[test]
fn unknown_kinds_are_skipped() {
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec: {{replicas: 1}}\n---\n\
         apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {{name: c}}\nspec: {{acme: {{}}}}\n---\n{SERVICE}"
    );
    assert_eq!(parsed(&text), owned(&[("Service", "ns/web", "f.yaml:11")]));
}

#[test]
fn config_maps_are_read() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: ns}}\ndata: {{a: b}}\n---\n{SERVICE}"
    );
    assert_eq!(
        parsed(&text),
        owned(&[
            ("ConfigMap", "ns/c", "f.yaml:1"),
            ("Service", "ns/web", "f.yaml:6")
        ])
    );
}

#[test]
fn unsupported_api_version_names_file_and_line() {
    let old = "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old}\n";
    let e = parse_error(&format!("{SERVICE}---\n{old}"));
    let msg = e.to_string();
    assert!(matches!(e, FileError::Document { line: 9, .. }), "{e:?}");
    assert!(msg.starts_with("f.yaml:9:"), "{msg}");
    assert!(
        msg.contains("extensions/v1beta1") && msg.contains("networking.k8s.io/v1"),
        "{msg}"
    );
}

#[test]
fn syntax_error_names_its_line() {
    // Line 12 has a second `:` in a block mapping value.
    let text =
        format!("{SERVICE}---\napiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec: a: b\n");
    let e = parse_error(&text);
    assert!(matches!(e, FileError::Syntax { line: 12, .. }), "{e:?}");
    assert!(e.to_string().starts_with("f.yaml:12: YAML syntax"), "{e}");
}

#[test]
fn schema_error_names_the_field_path() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec: {rules: 5}\n";
    let e = parse_error(text);
    let FileError::Schema {
        line,
        object,
        field,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*line, object.as_str(), field.as_str()),
        (1, "Ingress web", "spec.rules")
    );
    assert!(e.to_string().contains("field `spec.rules`"), "{e}");

    let nested =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: eighty}]}\n";
    let FileError::Schema { field, .. } = parse_error(nested) else {
        panic!()
    };
    assert_eq!(field, "spec.ports[0].port");
}

#[test]
fn documents_need_kind_and_name() {
    assert!(matches!(
        parse_error("apiVersion: v1\nmetadata: {name: x}\n"),
        FileError::Document { .. }
    ));
    let e = parse_error("apiVersion: v1\nkind: Service\nmetadata: {namespace: ns}\n");
    assert!(e.to_string().contains("metadata.name is required"), "{e}");
}

#[test]
fn missing_namespace_defaults_to_default() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\n\
                apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: tollgate}\n\
                spec: {controller: tollgate.dev/ingress-controller}\n";
    let keys: Vec<ObjectKey> = parse_manifests("f.yaml", text)
        .unwrap()
        .iter()
        .map(|(_, o)| o.key())
        .collect();
    // IngressClasses are cluster-scoped: no namespace.
    assert_eq!(
        keys,
        [
            ObjectKey::new("default", "web"),
            ObjectKey::new("", "tollgate")
        ]
    );
}

// ---------------------------------------------------------------- FileSource

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tollgate-files-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, content: &str) {
        std::fs::write(self.0.join(name), content).expect("write manifest");
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.0.join(name)).expect("remove manifest");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn service(name: &str, port: u16) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec: {{ports: [{{port: {port}}}]}}\n")
}

fn port_of(snapshot: &Snapshot, name: &str) -> Option<i32> {
    let svc = snapshot.services.get(&ObjectKey::new("ns", name))?;
    Some(svc.object.spec.as_ref()?.ports.as_ref()?.first()?.port)
}

#[test]
fn broken_file_keeps_its_last_good_objects_while_other_files_apply() {
    let dir = TempDir::new();
    dir.write("a.yaml", &service("a", 80));
    dir.write("b.yaml", &service("b", 80));
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], Vec::new());
    assert!(source.reload());
    let (snapshot, diagnostics) = source.snapshot();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(
        (port_of(&snapshot, "a"), port_of(&snapshot, "b")),
        (Some(80), Some(80))
    );

    dir.write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: ns}\nspec: {ports: [{port: 81}\n");
    dir.write("b.yaml", &service("b", 82));
    assert!(source.reload());
    let (snapshot, diagnostics) = source.snapshot();
    assert_eq!(
        port_of(&snapshot, "a"),
        Some(80),
        "a.yaml's last good objects keep serving"
    );
    assert_eq!(port_of(&snapshot, "b"), Some(82), "b.yaml's change applies");
    let [d] = diagnostics.as_slice() else {
        panic!("{diagnostics:#?}")
    };
    let a_path = dir.path().join("a.yaml").display().to_string();
    assert_eq!(
        (d.severity, d.kind, d.name.as_str()),
        (Severity::Rejected, "File", a_path.as_str())
    );
    assert!(
        d.reason.contains(&format!("{a_path}:")),
        "names file:line: {}",
        d.reason
    );
    assert!(
        d.reason.contains("last good objects keep serving"),
        "{}",
        d.reason
    );

    // Fixing the file clears the error.
    dir.write("a.yaml", &service("a", 83));
    assert!(source.reload());
    let (snapshot, diagnostics) = source.snapshot();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert_eq!(port_of(&snapshot, "a"), Some(83));
}

#[test]
fn file_broken_from_the_start_contributes_nothing() {
    let dir = TempDir::new();
    dir.write(
        "a.yaml",
        "kind: Service\napiVersion: v1\nmetadata: {name: a, namespace: ns}\nspec: {rules: [\n",
    );
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], Vec::new());
    source.reload();
    let (snapshot, diagnostics) = source.snapshot();
    assert!(snapshot.services.is_empty());
    assert!(
        diagnostics[0].reason.contains("contributes no objects"),
        "{diagnostics:?}"
    );
}

#[test]
fn deleted_file_removes_its_objects() {
    let dir = TempDir::new();
    dir.write("a.yaml", &service("a", 80));
    dir.write("b.yml", &service("b", 80));
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], Vec::new());
    source.reload();
    dir.remove("b.yml");
    assert!(source.reload());
    let (snapshot, _) = source.snapshot();
    assert_eq!(
        (port_of(&snapshot, "a"), port_of(&snapshot, "b")),
        (Some(80), None)
    );
}

#[test]
fn reload_reports_no_change_when_nothing_changed() {
    let dir = TempDir::new();
    dir.write("a.yaml", &service("a", 80));
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], Vec::new());
    assert!(source.reload());
    assert!(!source.reload());
    // Non-manifest and hidden files are not read.
    dir.write("notes.txt", "not yaml: [");
    dir.write(".a.yaml.swp", "not yaml: [");
    assert!(!source.reload());
}

#[test]
fn unchanged_broken_file_is_no_change() {
    let dir = TempDir::new();
    dir.write("a.yaml", "kind: [\n");
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], Vec::new());
    assert!(source.reload());
    // The watcher recompiles and re-reports on every `true`; an untouched
    // broken file must not trigger that on each unrelated file event.
    assert!(!source.reload(), "nothing changed since the last reload");
}

#[test]
fn duplicate_objects_across_files_warn_and_the_later_file_wins() {
    let dir = TempDir::new();
    dir.write("a.yaml", &service("web", 80));
    dir.write("b.yaml", &service("web", 81));
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], Vec::new());
    source.reload();
    let (snapshot, diagnostics) = source.snapshot();
    assert_eq!(port_of(&snapshot, "web"), Some(81));
    let [d] = diagnostics.as_slice() else {
        panic!("{diagnostics:#?}")
    };
    assert_eq!(d.severity, Severity::Warning);
    assert!(d.reason.contains("a.yaml:1"), "{}", d.reason);
}

#[test]
fn namespace_filter_keeps_cluster_scoped_objects() {
    let dir = TempDir::new();
    let class =
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: tollgate}\n\
                 spec: {controller: tollgate.dev/ingress-controller}\n";
    dir.write("a.yaml", &format!("{}---\n{class}", service("a", 80)));
    let mut source = FileSource::new(vec![dir.path().to_path_buf()], vec!["other".into()]);
    source.reload();
    let (snapshot, _) = source.snapshot();
    assert!(snapshot.services.is_empty());
    assert!(snapshot.ingress_classes.contains_key("tollgate"));
}

// ------------------------------------------------------------ TrafficPolicy

const POLICY: &str = "apiVersion: tollgate.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: limits, namespace: ns}\n\
                      spec:\n  targetRefs: [{group: networking.k8s.io, kind: Ingress, name: web}]\n  rateLimit: {requestsPerSecond: 5}\n";

#[test]
fn traffic_policies_are_read() {
    let objects = parse_manifests("f.yaml", POLICY).expect("valid policy");
    let [(_, Object::TrafficPolicy(p))] = objects.as_slice() else {
        panic!("{objects:?}")
    };
    assert_eq!(p.metadata.name.as_deref(), Some("limits"));
    assert_eq!(
        p.spec.rate_limit.as_ref().and_then(|r| r.rate()),
        Some(crate::crd::Rate::PerSecond(5))
    );
}

#[test]
fn unknown_traffic_policy_fields_name_their_path() {
    let typo = POLICY.replace("requestsPerSecond", "requestPerSecond");
    let FileError::Schema { field, message, .. } = parse_error(&typo) else {
        panic!("expected a schema error")
    };
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("spec.rateLimit.requestPerSecond", "unknown field")
    );
    let in_list = POLICY.replace("name: web}", "name: web, namespace: other}");
    let FileError::Schema { field, .. } = parse_error(&in_list) else {
        panic!("expected a schema error")
    };
    assert_eq!(field, "spec.targetRefs[0].namespace");
    let old = POLICY.replace("tollgate.dev/v1alpha1", "tollgate.dev/v1");
    assert!(parse_error(&old)
        .to_string()
        .contains("tollgate.dev/v1alpha1"));
    // A value of the wrong type is a schema error too, at its path.
    let FileError::Schema { field, .. } = parse_error(&POLICY.replace("5}", "fast}")) else {
        panic!("expected a schema error")
    };
    assert_eq!(field, "spec.rateLimit.requestsPerSecond");
}

#[test]
fn tls_and_opaque_secrets_are_held_and_other_types_skipped() {
    let secret = |name: &str, ty: Option<&str>| {
        let ty = ty.map(|t| format!("type: {t}\n")).unwrap_or_default();
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: ns}}\n{ty}data: {{auth: Zm9v}}\n")
    };
    let text = [
        secret("tls", Some("kubernetes.io/tls")),
        secret("opaque", Some("Opaque")),
        secret("untyped", None),
        secret("token", Some("kubernetes.io/service-account-token")),
        secret("docker", Some("kubernetes.io/dockerconfigjson")),
    ]
    .join("---\n");
    let types: Vec<(String, Option<String>)> = parse_manifests("f.yaml", &text)
        .expect("valid")
        .into_iter()
        .map(|(_, o)| match o {
            Object::Secret(s) => (s.metadata.name.unwrap_or_default(), s.type_),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        types,
        [
            ("tls".to_string(), Some("kubernetes.io/tls".to_string())),
            ("opaque".to_string(), Some("Opaque".to_string())),
            ("untyped".to_string(), Some("Opaque".to_string())),
        ]
    );
}
