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

use crate::config::{self, Diagnostic, LastGood};
use crate::inspect::report::Report;
use crate::provider::files::FileSource;
use crate::settings::{CheckArgs, OutputFormat};

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
    let annotations = annotation_states(&snapshot, args.selection.enable_ssl_passthrough);
    let mut opts = args.selection.compile_options();
    opts.now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    let compiled = config::compile(&snapshot, &opts, &LastGood::new());
    diagnostics.extend(compiled.diagnostics.iter().cloned());
    let mut report = Report::new(
        &compiled.table,
        |upstream| {
            compiled
                .upstreams
                .get(upstream)
                .map(|u| u.endpoints.iter().map(ToString::to_string).collect())
                .unwrap_or_default()
        },
        diagnostics,
        &compiled.gateway_status,
    );
    report.annotations = annotations;
    report.assumed = assumed;
    let rejected = report.rejected;

    match args.output {
        OutputFormat::Json => println!("{}", report.to_json()?),
        OutputFormat::Text => {
            print_text(&report);
            // TLS passthrough hosts (`--enable-ssl-passthrough`).
            for (host, id) in compiled.tls.passthrough_hosts() {
                let to = compiled.upstreams.get(id as usize).map(|u| &*u.label);
                println!("TLS passthrough: {host} -> {}", to.unwrap_or("?"));
            }
        }
    }
    Ok(i32::from(rejected))
}

/// The ingress-nginx annotations of every Ingress read, by state.
fn annotation_states(
    snapshot: &crate::config::Snapshot,
    ssl_passthrough: bool,
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
            let state = match support(suffix) {
                // Rejected without its flag (`config::passthrough`).
                Some(_) if suffix == "ssl-passthrough" && !ssl_passthrough => "refused",
                known => known.map_or("unknown", |s| s.state()),
            };
            *out.entry(state)
                .or_default()
                .entry(suffix.to_string())
                .or_default() += 1;
        }
    }
    out
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
