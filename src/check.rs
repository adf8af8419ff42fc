//! `tollgate check`: compile manifests once and explain the result.
//!
//! For migrations: `--manifests -` reads stdin, `--assume-external-refs`
//! assumes the objects the Ingresses name but the manifests lack
//! ([`assume`]), and the report sums up the `nginx.ingress.kubernetes.io/`
//! annotations used by state (supported, no-op, refused, unknown), as
//! [`crate::config::annotations::known`] classifies them.
//!
//! Invariant: uses exactly the provider and compiler that `run` uses, so
//! what `check` accepts is what `run` serves.

mod assume;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::config::gateway::status::ConditionRow;
use crate::config::{self, Diagnostic, LastGood};
use crate::provider::files::FileSource;
use crate::settings::{CheckArgs, OutputFormat};
use crate::table::guard::{Guard, ValueMatch};

#[derive(Serialize)]
struct RouteRow {
    host: String,
    path: String,
    #[serde(rename = "pathType")]
    path_type: String,
    service: String,
    endpoints: Vec<String>,
    /// `namespace/name` of the source object (kept for compatibility).
    ingress: String,
    /// `Ingress ns/name`, `HTTPRoute ns/name`, or the flag that made it.
    source: String,
    /// Extra conditions of a Gateway route (method, headers, query).
    #[serde(skip_serializing_if = "Option::is_none")]
    matches: Option<String>,
    /// What the annotations and TrafficPolicy ask of this route.
    policy: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    routes: Vec<RouteRow>,
    diagnostics: Vec<Diagnostic>,
    /// Every Gateway API condition kube mode would write (GatewayClass,
    /// Gateway and listeners, route parents).
    conditions: Vec<ConditionRow>,
    /// Per Gateway listener: `attachedRoutes` and `supportedKinds`, as
    /// kube mode writes them beside the conditions.
    listeners: Vec<ListenerRow>,
    /// `nginx.ingress.kubernetes.io/` annotations of the Ingresses read,
    /// by state, then name, with the number of Ingresses using each.
    annotations: BTreeMap<&'static str, BTreeMap<String, usize>>,
    /// Objects assumed present (`--assume-external-refs`).
    assumed: Vec<String>,
    rejected: bool,
}

#[derive(Serialize)]
struct ListenerRow {
    namespace: String,
    gateway: String,
    name: String,
    #[serde(rename = "attachedRoutes")]
    attached_routes: u32,
    #[serde(rename = "supportedKinds")]
    supported_kinds: Vec<&'static str>,
}

/// Runs the check; returns the process exit code (0 nothing rejected, 1 otherwise).
pub fn run(args: &CheckArgs) -> anyhow::Result<i32> {
    if args.selection.manifests.is_empty() {
        anyhow::bail!("--manifests is required");
    }
    let stdin = Path::new("-");
    let mut source = FileSource::new(
        args.selection
            .manifests
            .iter()
            .filter(|p| p.as_path() != stdin)
            .cloned()
            .collect(),
        args.selection.watch_namespaces.clone(),
    );
    source.reload();
    let (mut snapshot, mut diagnostics) = source.snapshot();
    if args
        .selection
        .manifests
        .iter()
        .any(|p| p.as_path() == stdin)
    {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        match crate::provider::files::parse_manifests("-", &text) {
            Ok(objects) => {
                for (origin, object) in objects {
                    snapshot.insert(origin, object);
                }
            }
            Err(e) => diagnostics.push(Diagnostic::new(
                crate::config::Severity::Rejected,
                "File",
                &crate::config::ObjectKey::new("", "-"),
                None,
                "content",
                e.to_string(),
            )),
        }
    }
    let assumed = if args.assume_external_refs {
        assume::assume_external_refs(&mut snapshot, args.selection.configmap.as_ref())
    } else {
        Vec::new()
    };
    let annotations = annotation_states(&snapshot);
    let mut opts = args.selection.compile_options();
    opts.now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let compiled = config::compile(&snapshot, &opts, &LastGood::new());
    diagnostics.extend(compiled.diagnostics.iter().cloned());

    let mut routes: Vec<RouteRow> = compiled
        .table
        .routes()
        .iter()
        .map(|r| RouteRow {
            host: if r.host.is_empty() {
                "*".into()
            } else {
                r.host.to_string()
            },
            path: if r.path_type.is_none() {
                "(default backend)".into()
            } else {
                r.path.to_string()
            },
            path_type: r
                .path_type
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| "-".into()),
            service: r.service.to_string(),
            endpoints: compiled
                .upstreams
                .get(r.upstream as usize)
                .map(|u| u.endpoints.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            ingress: if r.ingress.is_empty() {
                "--default-backend-service".into()
            } else {
                r.ingress.to_string()
            },
            source: if r.ingress.is_empty() {
                "--default-backend-service".into()
            } else {
                format!("{} {}", r.kind.as_str(), r.ingress)
            },
            matches: r.guard.as_deref().map(describe_guard),
            policy: {
                let mut p = r.policy.summary();
                if let Some(c) = &r.canary {
                    p.push(format!(
                        "canary {} ({} of {})",
                        c.service, c.weight, c.weight_total
                    ));
                }
                p
            },
        })
        .collect();
    // Gateway routes keep their precedence order within a path (a stable
    // sort).
    routes.sort_by(|a, b| (&a.host, &a.path, &a.path_type).cmp(&(&b.host, &b.path, &b.path_type)));
    let rejected = diagnostics.iter().any(Diagnostic::is_rejection);
    let report = Report {
        routes,
        diagnostics,
        conditions: compiled.gateway_status.rows(),
        listeners: compiled
            .gateway_status
            .gateways
            .iter()
            .flat_map(|(key, g)| {
                g.listeners.iter().map(|l| ListenerRow {
                    namespace: key.namespace.clone(),
                    gateway: key.name.clone(),
                    name: l.name.clone(),
                    attached_routes: l.attached_routes,
                    supported_kinds: l.supported_kinds.iter().map(|k| k.kind).collect(),
                })
            })
            .collect(),
        annotations,
        assumed,
        rejected,
    };

    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print_text(&report),
    }
    Ok(i32::from(rejected))
}

/// The ingress-nginx annotations of every Ingress read, by state.
fn annotation_states(
    snapshot: &crate::config::Snapshot,
) -> BTreeMap<&'static str, BTreeMap<String, usize>> {
    use crate::config::annotations::{support, NGINX};
    let mut out: BTreeMap<&'static str, BTreeMap<String, usize>> = BTreeMap::new();
    for entry in snapshot.ingresses.values() {
        for name in entry
            .object
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, _)| k)
        {
            let Some(suffix) = name.strip_prefix(NGINX) else {
                continue;
            };
            let state = support(suffix).map_or("unknown", |s| s.state());
            *out.entry(state)
                .or_default()
                .entry(suffix.to_string())
                .or_default() += 1;
        }
    }
    out
}

/// A guard as `check` shows it: `GET header:x-v=2 query:q~^a.*$`.
fn describe_guard(g: &Guard) -> String {
    let value = |v: &ValueMatch| match v {
        ValueMatch::Exact(e) => format!("={e}"),
        ValueMatch::Regex(r) => format!("~{}", r.as_str()),
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = &g.method {
        parts.push(m.to_string());
    }
    for h in g.headers.iter() {
        parts.push(format!("header:{}{}", h.name, value(&h.value)));
    }
    for q in g.query.iter() {
        parts.push(format!("query:{}{}", q.name, value(&q.value)));
    }
    parts.join(" ")
}

fn print_text(report: &Report) {
    let headers = [
        "HOST",
        "PATH",
        "TYPE",
        "SERVICE",
        "ENDPOINTS",
        "SOURCE",
        "POLICY",
    ];
    let rows: Vec<[String; 7]> = report
        .routes
        .iter()
        .map(|r| {
            let redirects = r.policy.iter().any(|p| p.starts_with("redirect"));
            let endpoints = if r.endpoints.is_empty() && redirects {
                "(redirect)".to_string()
            } else if r.endpoints.is_empty() {
                "(none: 503)".to_string()
            } else {
                r.endpoints.join(",")
            };
            [
                r.host.clone(),
                r.path.clone(),
                r.path_type.clone(),
                r.service.clone(),
                endpoints,
                r.source.clone(),
                {
                    let mut p = r.policy.clone();
                    if let Some(m) = &r.matches {
                        p.insert(0, format!("match {m}"));
                    }
                    if p.is_empty() {
                        "-".to_string()
                    } else {
                        p.join("; ")
                    }
                },
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut out = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            out.push_str(&format!("{cell:<w$}  "));
        }
        println!("{}", out.trim_end());
    };
    line(headers);
    for row in &rows {
        line([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[6],
        ]);
    }
    if report.routes.is_empty() {
        println!("(no routes)");
    }
    if !report.conditions.is_empty() {
        println!();
        println!("conditions (as kube mode writes them):");
        for c in &report.conditions {
            let scope = if c.scope.is_empty() {
                String::new()
            } else {
                format!(" {}", c.scope)
            };
            let key = if c.namespace.is_empty() {
                c.name.clone()
            } else {
                format!("{}/{}", c.namespace, c.name)
            };
            println!(
                "  {} {key}{scope}: {}={} {}: {}",
                c.kind,
                c.condition.type_,
                c.condition.status,
                c.condition.reason,
                c.condition.message
            );
        }
        for l in &report.listeners {
            println!(
                "  Gateway {}/{} listener {}: attachedRoutes={} supportedKinds={}",
                l.namespace,
                l.gateway,
                l.name,
                l.attached_routes,
                l.supported_kinds.join(",")
            );
        }
    }
    if !report.annotations.is_empty() {
        println!();
        let count = |state: &str| report.annotations.get(state).map_or(0, BTreeMap::len);
        println!(
            "annotations (nginx.ingress.kubernetes.io/): {} supported, {} no-op, {} refused, {} unknown",
            count("supported"),
            count("no-op"),
            count("refused"),
            count("unknown")
        );
        // What needs attention, by name (all of them: `--output json`).
        for (state, names) in report
            .annotations
            .iter()
            .filter(|(s, _)| **s != "supported")
        {
            let list: Vec<String> = names
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            println!("  {state}: {}", list.join(", "));
        }
    }
    if !report.assumed.is_empty() {
        println!();
        println!(
            "assumed present (--assume-external-refs): {}",
            report.assumed.join(", ")
        );
    }
    println!();
    if report.diagnostics.is_empty() {
        println!("no diagnostics");
    } else {
        println!("diagnostics:");
        for d in &report.diagnostics {
            println!("  {d}");
        }
    }
    println!(
        "{}",
        if report.rejected {
            "result: something was rejected"
        } else {
            "result: ok"
        }
    );
}
