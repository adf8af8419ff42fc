//! Fuzz target: the manifest loader's parse path
//! ([`super::parse_manifests`]) and the file source's per-file last good
//! objects ([`super::FileSource`]).
//!
//! Invariants:
//! - any text (generated multi-document YAML with every kind, `List`s,
//!   comments and empty documents; its byte mutations; arbitrary strings)
//!   gives objects or one error, never a panic, and the same text gives
//!   the same answer;
//! - generated manifests parse to exactly the objects of the kinds
//!   tollgate reads, each with the line its document starts on;
//! - every line an error or an origin names is a line of the text (or the
//!   one after its end);
//! - a file broken by a mutation keeps its last good objects in the
//!   snapshot while another file's change applies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::{parse_manifests, FileError, FileSource};
use crate::config::ObjectKey;
use crate::fuzzing::{self, mutate_text, mutations};

/// One generated document: its YAML lines, and the kind tollgate reads it
/// as (`None`: skipped; a `List` counts its items).
#[derive(Debug, Clone)]
struct Doc {
    lines: Vec<String>,
    objects: usize,
}

fn meta(name: &str, namespace: bool) -> Vec<String> {
    let mut m = vec!["metadata:".to_string(), format!("  name: {name}")];
    if namespace {
        m.push("  namespace: ns".into());
    }
    m
}

fn doc() -> impl Strategy<Value = Doc> {
    let name = "[a-z][a-z0-9-]{0,6}";
    let object = (
        0usize..7,
        name,
        any::<bool>(),
        proptest::collection::btree_map("k[a-z]{0,4}", "[ -!#-\\[\\]-~]{0,8}", 0..3),
    )
        .prop_map(|(kind, name, ns, annotations)| {
            let (head, body, objects): (&[&str], Vec<String>, usize) = match kind {
                0 => (
                    &["apiVersion: networking.k8s.io/v1", "kind: Ingress"],
                    vec![
                        "spec:".into(),
                        "  ingressClassName: tollgate".into(),
                        "  rules:".into(),
                        "  - host: a.example".into(),
                        "    http:".into(),
                        "      paths:".into(),
                        "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}".into(),
                    ],
                    1,
                ),
                1 => (
                    &["apiVersion: v1", "kind: Service"],
                    vec!["spec:".into(), "  ports: [{port: 80, name: http}]".into()],
                    1,
                ),
                2 => (
                    &["apiVersion: v1", "kind: Secret", "type: Opaque"],
                    vec!["stringData: {auth: \"u:{SHA}x\"}".into()],
                    1,
                ),
                3 => (
                    &["apiVersion: v1", "kind: Secret", "type: kubernetes.io/service-account-token"],
                    Vec::new(),
                    0,
                ),
                4 => (&["apiVersion: apps/v1", "kind: Deployment"], vec!["spec: {}".into()], 0),
                5 => (
                    &["apiVersion: networking.k8s.io/v1", "kind: IngressClass"],
                    vec!["spec: {controller: tollgate.dev/ingress-controller}".into()],
                    1,
                ),
                _ => (
                    &["apiVersion: discovery.k8s.io/v1", "kind: EndpointSlice"],
                    vec!["addressType: IPv4".into(), "endpoints: [{addresses: [10.0.0.1]}]".into()],
                    1,
                ),
            };
            let mut lines: Vec<String> = head.iter().map(|s| s.to_string()).collect();
            lines.extend(meta(&name, ns && kind != 5));
            if !annotations.is_empty() {
                lines.push("  annotations:".into());
                lines.extend(annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"")));
            }
            lines.extend(body);
            Doc { lines, objects }
        });
    prop_oneof![
        6 => object.clone(),
        1 => proptest::collection::vec(object, 0..3).prop_map(|items| {
            let mut lines = vec!["apiVersion: v1".to_string(), "kind: List".into(), "items:".into()];
            for item in &items {
                for (i, l) in item.lines.iter().enumerate() {
                    lines.push(format!("{}{l}", if i == 0 { "- " } else { "  " }));
                }
            }
            if items.is_empty() {
                lines.push("  []".into());
            }
            Doc { lines, objects: items.iter().map(|d| d.objects).sum() }
        }),
        1 => Just(Doc { lines: Vec::new(), objects: 0 }),
    ]
}

/// A file: comments before the first document, then documents separated
/// by `---`. Returns the text, the number of objects and each object's
/// expected origin line.
fn manifest() -> impl Strategy<Value = (String, Vec<usize>)> {
    (
        0usize..3,
        any::<bool>(),
        proptest::collection::vec(doc(), 1..5),
    )
        .prop_map(|(comments, leading, docs)| {
            let mut lines: Vec<String> = (0..comments).map(|i| format!("# comment {i}")).collect();
            if leading {
                lines.push("---".into());
            }
            let mut origins = Vec::new();
            for (i, d) in docs.iter().enumerate() {
                if i > 0 {
                    lines.push("---".into());
                }
                origins.extend(std::iter::repeat_n(lines.len() + 1, d.objects));
                lines.extend(d.lines.iter().cloned());
            }
            let mut text = lines.join("\n");
            text.push('\n');
            (text, origins)
        })
}

/// The line an error names.
fn error_line(e: &FileError) -> Option<usize> {
    match e {
        FileError::Syntax { line, .. }
        | FileError::Schema { line, .. }
        | FileError::Document { line, .. } => Some(*line),
        FileError::Read { .. } => None,
    }
}

fn lines_are_in_the_text(text: &str) -> Result<(), TestCaseError> {
    // YAML (1.1, as the parser reads it) also breaks lines at CR, NEL and
    // the Unicode line and paragraph separators; an error may name the
    // line after the last.
    let breaks = text
        .chars()
        .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
        .count();
    let last = breaks + 2;
    let first = parse_manifests("f.yaml", text);
    let again = parse_manifests("f.yaml", text);
    match (&first, &again) {
        (Ok(a), Ok(b)) => {
            let key = |v: &Vec<(std::sync::Arc<str>, crate::config::Object)>| {
                v.iter()
                    .map(|(o, x)| (o.to_string(), x.kind(), x.key()))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(key(a), key(b));
            for (origin, _) in a {
                let line: usize = origin
                    .rsplit(':')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                prop_assert!((1..=last).contains(&line), "origin {origin} of {text:?}");
            }
        }
        (Err(a), Err(b)) => {
            prop_assert_eq!(a.to_string(), b.to_string());
            if let Some(line) = error_line(a) {
                prop_assert!(line <= last, "{a} for {text:?}");
            }
        }
        _ => return Err(TestCaseError::fail(format!("not deterministic: {text:?}"))),
    }
    Ok(())
}

#[test]
fn generated_manifests_parse_with_their_lines() {
    fuzzing::run("files::generated", 150, manifest(), |(text, origins)| {
        let objects = parse_manifests("f.yaml", &text)
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let got: Vec<usize> = objects
            .iter()
            .map(|(o, _)| {
                o.rsplit(':')
                    .next()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0)
            })
            .collect();
        prop_assert_eq!(got, origins, "{}", text);
        lines_are_in_the_text(&text)
    });
}

#[test]
fn any_text_gives_objects_or_one_error() {
    let text = prop_oneof![
        4 => (manifest(), mutations()).prop_map(|((t, _), m)| mutate_text(&t, &m)),
        1 => any::<String>(),
        1 => "([-:\\[\\]{}&*!|>'\"%@` #,?\n]|  |[a-z]{1,4}|---\n){0,30}",
    ];
    fuzzing::run("files::any_text", 300, text, |t| lines_are_in_the_text(&t));
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn a_broken_file_keeps_its_last_good_objects() {
    let edits = (manifest(), mutations(), 1u16..1000);
    fuzzing::run("files::last_good", 20, edits, |((text, _), m, port)| {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-fuzz-files-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let result = (|| {
            let write = |name: &str, content: &str| {
                std::fs::write(dir.join(name), content)
                    .map_err(|e| TestCaseError::fail(e.to_string()))
            };
            let other = |port: u16| {
                format!("apiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: zz}}\nspec: {{ports: [{{port: {port}}}]}}\n")
            };
            write("a.yaml", &text)?;
            write("b.yaml", &other(80))?;
            let mut source = FileSource::new(vec![PathBuf::from(&dir)], Vec::new());
            source.reload();
            let (before, _) = source.snapshot();
            let broken = mutate_text(&text, &m);
            write("a.yaml", &broken)?;
            write("b.yaml", &other(port))?;
            source.reload();
            let (after, diagnostics) = source.snapshot();
            let port_of = |s: &crate::config::Snapshot| {
                s.services
                    .get(&ObjectKey::new("zz", "other"))
                    .and_then(|e| Some(e.object.spec.as_ref()?.ports.as_ref()?.first()?.port))
            };
            prop_assert_eq!(
                port_of(&after),
                Some(i32::from(port)),
                "the other file's change applies"
            );
            if parse_manifests("a", &broken).is_err() {
                prop_assert!(!diagnostics.is_empty());
                prop_assert_eq!(
                    before.ingresses.keys().collect::<Vec<_>>(),
                    after.ingresses.keys().collect::<Vec<_>>()
                );
                prop_assert_eq!(
                    before.secrets.keys().collect::<Vec<_>>(),
                    after.secrets.keys().collect::<Vec<_>>()
                );
                prop_assert_eq!(
                    before.endpoint_slices.keys().collect::<Vec<_>>(),
                    after.endpoint_slices.keys().collect::<Vec<_>>()
                );
            }
            Ok(())
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    });
}
