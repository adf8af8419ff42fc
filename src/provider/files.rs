//! Standalone mode: objects from manifest files, watched for changes.
//!
//! Invariants:
//! - Paths are files or directories (recursive); `*.yaml`, `*.yml` and
//!   `*.json` (read as JSON, one document); multi-document YAML and
//!   `kind: List` are accepted. Kinds tollgate does not read
//!   (Deployments, cert-manager's...) are skipped, and
//!   so are Secrets of types other than `kubernetes.io/tls` and `Opaque`
//!   (a Secret without a type is `Opaque`, as the API server defaults it).
//! - Gateway API kinds (GatewayClass, Gateway, HTTPRoute, GRPCRoute,
//!   ReferenceGrant `v1`/`v1beta1`) and Namespaces are read too. A Gateway
//!   API field tollgate does not know is kept in the object's
//!   `unknown_fields` and reported by the compiler as a warning (a valid
//!   manifest may use experimental fields); a wrong type is a schema error.
//! - TrafficPolicies are read strictly: an unknown field is a schema error
//!   (as `kubectl apply` with strict field validation would refuse it);
//!   values the CRD schema refuses are reported by the compiler.
//! - A file is the unit of failure: a file that no longer parses (syntax or
//!   schema) keeps its last good objects and yields a diagnostic naming the
//!   file, line and field, while changes to other files apply.
//! - Runs on the control-plane thread; parsing never blocks the data plane.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Deserialize;

use crate::config::snapshot::OPAQUE_SECRET_TYPE;
use crate::config::tls::TLS_SECRET_TYPE;
use crate::config::{Diagnostic, Object, ObjectKey, Severity, Snapshot};
use crate::crd;
use crate::gateway_api;

/// Why a manifest file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: YAML syntax: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: {object}: field `{field}`: {message}")]
    Schema {
        path: String,
        line: usize,
        /// `Kind name`.
        object: String,
        field: String,
        message: String,
    },
    #[error("{path}:{line}: {message}")]
    Document {
        path: String,
        line: usize,
        message: String,
    },
}

/// The parsed state of one file: its objects, or the error that kept its
/// previous objects.
#[derive(Debug, Default)]
struct FileState {
    /// The bytes last read (`None` when the last read failed).
    content: Option<Vec<u8>>,
    objects: Vec<(Arc<str>, Object)>,
    error: Option<String>,
}

/// Reads manifests from a set of paths and remembers each file's last good
/// objects.
#[derive(Debug, Default)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    namespaces: Vec<String>,
    files: BTreeMap<PathBuf, FileState>,
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue; // editor swap files, hidden directories
            }
            if entry.is_dir() {
                collect_files(&entry, out)?;
            } else if is_manifest(&entry) {
                out.push(entry);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// 1-based line of each document's start in a multi-document YAML text: the
/// first content line, or the line after a `---` separator. A leading `---`
/// preceded only by comments and blank lines starts the first document.
fn document_lines(text: &str) -> Vec<usize> {
    let mut starts: Vec<usize> = Vec::new();
    let mut first_content = None;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            if starts.is_empty() {
                if let Some(first) = first_content {
                    starts.push(first);
                }
            }
            starts.push(i + 2);
        } else if starts.is_empty() && first_content.is_none() {
            let trimmed = line.trim_start();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                first_content = Some(i + 1);
            }
        }
    }
    if starts.is_empty() {
        starts.push(first_content.unwrap_or(1));
    }
    starts
}

/// Parses one manifest file into objects (pure; used by tests and `check`).
pub fn parse_manifests(path: &str, text: &str) -> Result<Vec<(Arc<str>, Object)>, FileError> {
    let starts = document_lines(text);
    if path.ends_with(".json") {
        return parse_json(path, text, starts.first().copied().unwrap_or(1));
    }
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| FileError::Syntax {
            path: path.to_string(),
            line: e.location().map(|l| l.line()).unwrap_or(0),
            message: e.to_string(),
        })?;
        // The YAML parser does not report where a document starts; count
        // `---` separators, which is exact for the usual layouts.
        let line = starts.get(index).copied().unwrap_or(1);
        collect_objects(path, line, value, &mut out)?;
    }
    Ok(out)
}

/// A `.json` manifest, read as JSON: a YAML parser refuses characters that
/// JSON strings may hold (DEL, C1 controls), so a manifest `kubectl`
/// accepts would not load.
fn parse_json(path: &str, text: &str, line: usize) -> Result<Vec<(Arc<str>, Object)>, FileError> {
    let mut out = Vec::new();
    if text.trim().is_empty() {
        return Ok(out);
    }
    let value: serde_yaml::Value = serde_json::from_str(text).map_err(|e| FileError::Syntax {
        path: path.to_string(),
        line: e.line(),
        message: e.to_string(),
    })?;
    collect_objects(path, line, value, &mut out)?;
    Ok(out)
}

fn collect_objects(
    path: &str,
    line: usize,
    value: serde_yaml::Value,
    out: &mut Vec<(Arc<str>, Object)>,
) -> Result<(), FileError> {
    if value.is_null() {
        return Ok(());
    }
    let get = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let (kind, api_version) = (get("kind"), get("apiVersion"));
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("")
        .to_string();
    let origin: Arc<str> = format!("{path}:{line}").into();
    let doc_error = |message: String| FileError::Document {
        path: path.to_string(),
        line,
        message,
    };
    if kind.is_empty() {
        return Err(doc_error("document has no `kind`".into()));
    }
    if kind == "List" || kind.ends_with("List") && value.get("items").is_some() {
        let items = match value.get("items") {
            Some(serde_yaml::Value::Sequence(items)) => items.clone(),
            Some(serde_yaml::Value::Null) | None => Vec::new(),
            Some(_) => return Err(doc_error(format!("{kind}: `items` must be a list"))),
        };
        for item in items {
            collect_objects(path, line, item, out)?;
        }
        return Ok(());
    }
    let expected = match kind.as_str() {
        "Ingress" | "IngressClass" => "networking.k8s.io/v1",
        "Service" => "v1",
        "EndpointSlice" => "discovery.k8s.io/v1",
        // Only TLS and Opaque Secrets are read; no other Secret is held.
        "Secret"
            if matches!(
                value.get("type").map(|t| t.as_str()),
                None | Some(Some(TLS_SECRET_TYPE | OPAQUE_SECRET_TYPE))
            ) =>
        {
            "v1"
        }
        crd::KIND => crd::API_VERSION,
        "Namespace" | "ConfigMap" => "v1",
        gateway_api::GATEWAY_CLASS_KIND
        | gateway_api::GATEWAY_KIND
        | gateway_api::HTTP_ROUTE_KIND
        | gateway_api::GRPC_ROUTE_KIND => gateway_api::API_VERSION,
        // Served as v1 and v1beta1: either is read.
        gateway_api::REFERENCE_GRANT_KIND
            if gateway_api::REFERENCE_GRANT_VERSIONS.contains(&api_version.as_str()) =>
        {
            api_version.as_str()
        }
        gateway_api::REFERENCE_GRANT_KIND => gateway_api::REFERENCE_GRANT_VERSIONS[0],
        _ => return Ok(()), // not a kind tollgate reads
    };
    if api_version != expected {
        return Err(doc_error(format!(
            "{kind} {name}: apiVersion `{api_version}` is not supported; use `{expected}`"
        )));
    }
    if name.is_empty() {
        return Err(doc_error(format!("{kind}: metadata.name is required")));
    }
    let schema = |e: serde_path_to_error::Error<serde_yaml::Error>| FileError::Schema {
        path: path.to_string(),
        line,
        object: format!("{kind} {name}"),
        field: e.path().to_string(),
        message: e.inner().to_string(),
    };
    let object = match kind.as_str() {
        "Ingress" => Object::Ingress(serde_path_to_error::deserialize(value).map_err(schema)?),
        "IngressClass" => {
            Object::IngressClass(serde_path_to_error::deserialize(value).map_err(schema)?)
        }
        "Service" => Object::Service(serde_path_to_error::deserialize(value).map_err(schema)?),
        "Secret" => {
            let mut secret: k8s_openapi::api::core::v1::Secret =
                serde_path_to_error::deserialize(value).map_err(schema)?;
            secret
                .type_
                .get_or_insert_with(|| OPAQUE_SECRET_TYPE.to_string());
            Object::Secret(secret)
        }
        crd::KIND => {
            // Unknown fields are collected on the way (apiVersion and kind
            // are not fields of the Rust type, but known).
            let mut unknown = Vec::new();
            let mut note = |field: serde_ignored::Path<'_>| {
                let field = field_path(&field);
                if field != "apiVersion" && field != "kind" {
                    unknown.push(field);
                }
            };
            let policy = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
                value, &mut note,
            ))
            .map_err(schema)?;
            if let Some(field) = unknown.into_iter().next() {
                return Err(FileError::Schema {
                    path: path.to_string(),
                    line,
                    object: format!("{kind} {name}"),
                    field,
                    message: "unknown field".into(),
                });
            }
            Object::TrafficPolicy(policy)
        }
        "Namespace" => Object::Namespace(serde_path_to_error::deserialize(value).map_err(schema)?),
        "ConfigMap" => Object::ConfigMap(serde_path_to_error::deserialize(value).map_err(schema)?),
        gateway_api::GATEWAY_CLASS_KIND => {
            let (mut o, unknown) = lenient::<gateway_api::GatewayClass>(value).map_err(schema)?;
            o.unknown_fields = unknown;
            Object::GatewayClass(o)
        }
        gateway_api::GATEWAY_KIND => {
            let (mut o, unknown) = lenient::<gateway_api::Gateway>(value).map_err(schema)?;
            o.unknown_fields = unknown;
            Object::Gateway(o)
        }
        gateway_api::HTTP_ROUTE_KIND => {
            let (mut o, unknown) = lenient::<gateway_api::HttpRoute>(value).map_err(schema)?;
            o.unknown_fields = unknown;
            Object::HttpRoute(o)
        }
        gateway_api::GRPC_ROUTE_KIND => {
            let (mut o, unknown) = lenient::<gateway_api::GrpcRoute>(value).map_err(schema)?;
            o.unknown_fields = unknown;
            Object::GrpcRoute(o)
        }
        gateway_api::REFERENCE_GRANT_KIND => {
            let (mut o, unknown) = lenient::<gateway_api::ReferenceGrant>(value).map_err(schema)?;
            o.unknown_fields = unknown;
            Object::ReferenceGrant(o)
        }
        _ => Object::EndpointSlice(serde_path_to_error::deserialize(value).map_err(schema)?),
    };
    out.push((origin, object));
    Ok(())
}

/// Deserializes a Gateway API object, collecting the fields its type does
/// not know (`apiVersion` and `kind` are known): the compiler reports them
/// as warnings, since a valid manifest may use fields tollgate does not
/// read yet (an experimental field, a newer version's).
fn lenient<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
) -> Result<(T, Vec<String>), serde_path_to_error::Error<serde_yaml::Error>> {
    let mut unknown = Vec::new();
    let mut note = |field: serde_ignored::Path<'_>| {
        let field = field_path(&field);
        if field != "apiVersion" && field != "kind" {
            unknown.push(field);
        }
    };
    let object =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut note))?;
    Ok((object, unknown))
}

/// A field path as the schema errors write it (`spec.ipAllow[2]`).
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

impl FileSource {
    pub fn new(paths: Vec<PathBuf>, namespaces: Vec<String>) -> Self {
        Self {
            paths,
            namespaces,
            files: BTreeMap::new(),
        }
    }

    /// Re-reads every file whose content changed. Returns whether anything
    /// changed (objects or errors).
    pub fn reload(&mut self) -> bool {
        let mut seen = Vec::new();
        let mut changed = false;
        let mut missing_roots = Vec::new();
        for root in &self.paths {
            if let Err(e) = collect_files(root, &mut seen) {
                missing_roots.push(
                    FileError::Read {
                        path: root.display().to_string(),
                        source: e,
                    }
                    .to_string(),
                );
            }
        }
        // Files that disappeared take their objects with them.
        let before = self.files.len();
        self.files.retain(|p, _| seen.contains(p));
        changed |= before != self.files.len();
        for path in seen {
            let state = self.files.entry(path.clone()).or_default();
            let display = path.display().to_string();
            match std::fs::read(&path) {
                Err(e) => {
                    let msg = FileError::Read {
                        path: display,
                        source: e,
                    }
                    .to_string();
                    changed |= state.error.as_ref() != Some(&msg);
                    state.error = Some(msg);
                    state.content = None;
                }
                // Same bytes, same outcome (objects or parse error).
                Ok(content) if state.content.as_ref() == Some(&content) => {}
                Ok(content) => {
                    changed = true;
                    let parsed = std::str::from_utf8(&content)
                        .map_err(|_| FileError::Document {
                            path: display.clone(),
                            line: 1,
                            message: "not UTF-8".into(),
                        })
                        .and_then(|text| parse_manifests(&display, text));
                    state.content = Some(content);
                    match parsed {
                        Ok(objects) => {
                            state.objects = objects;
                            state.error = None;
                        }
                        Err(e) => state.error = Some(e.to_string()),
                    }
                }
            }
        }
        for error in missing_roots {
            tracing::error!(error = %error, "manifest path unreadable");
        }
        changed
    }

    /// The current snapshot and the diagnostics of files that failed to
    /// parse (their last good objects are in the snapshot) and duplicates.
    pub fn snapshot(&self) -> (Snapshot, Vec<Diagnostic>) {
        let mut snapshot = Snapshot::default();
        let mut diagnostics = Vec::new();
        for (path, state) in &self.files {
            if let Some(error) = &state.error {
                let reason = if state.objects.is_empty() {
                    format!("{error}; the file contributes no objects")
                } else {
                    format!("{error}; the file's last good objects keep serving")
                };
                diagnostics.push(Diagnostic::new(
                    Severity::Rejected,
                    "File",
                    &ObjectKey::new("", path.display().to_string()),
                    None,
                    "content",
                    reason,
                ));
            }
            for (origin, object) in &state.objects {
                let key = object.key();
                if !self.namespaces.is_empty()
                    && !key.namespace.is_empty()
                    && !self.namespaces.iter().any(|n| **n == *key.namespace)
                {
                    continue;
                }
                let kind = object.kind();
                if let Some(previous) = snapshot.insert(origin.clone(), object.clone()) {
                    diagnostics.push(Diagnostic::new(
                        Severity::Warning,
                        kind,
                        &key,
                        Some(origin.clone()),
                        "metadata.name",
                        format!("also defined at {previous}; the later definition is used"),
                    ));
                }
            }
        }
        (snapshot, diagnostics)
    }

    /// Watches the paths and calls `apply` with a new snapshot after every
    /// change (debounced), until `stop` returns true. Blocks: run it on the
    /// control-plane thread.
    pub fn watch(
        mut self,
        debounce: Duration,
        mut apply: impl FnMut(Snapshot, Vec<Diagnostic>),
        stop: impl Fn() -> bool,
    ) {
        let (tx, rx) = mpsc::channel::<()>();
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.send(());
            }
        };
        let mut watcher: Box<dyn Watcher> = match notify::recommended_watcher(handler.clone()) {
            Ok(w) => Box::new(w),
            Err(e) => {
                tracing::warn!(error = %e, "file notifications unavailable; polling every second");
                match notify::PollWatcher::new(
                    handler,
                    notify::Config::default().with_poll_interval(Duration::from_secs(1)),
                ) {
                    Ok(w) => Box::new(w),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot watch manifests; changes will not apply");
                        return;
                    }
                }
            }
        };
        for path in &self.paths {
            // Watch a file's directory too, so editors' rename-on-save and
            // recreated files are seen.
            let target = if path.is_dir() {
                path.clone()
            } else {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            let target = if target.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                target
            };
            if let Err(e) = watcher.watch(&target, RecursiveMode::Recursive) {
                tracing::error!(path = %target.display(), error = %e, "cannot watch manifest path");
            }
        }
        self.reload();
        let (snapshot, diagnostics) = self.snapshot();
        apply(snapshot, diagnostics);
        while !stop() {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(()) => {
                    // Coalesce a burst of events into one reload.
                    std::thread::sleep(debounce);
                    while rx.try_recv().is_ok() {}
                    if self.reload() {
                        let (snapshot, diagnostics) = self.snapshot();
                        apply(snapshot, diagnostics);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
