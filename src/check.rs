//! `tollgate check`: compile manifests once and explain the result.
//!
//! Invariant: uses exactly the provider and compiler that `run` uses, so
//! what `check` accepts is what `run` serves.

use serde::Serialize;

use crate::config::{self, Diagnostic, LastGood};
use crate::provider::files::FileSource;
use crate::settings::{CheckArgs, OutputFormat};

#[derive(Serialize)]
struct RouteRow {
    host: String,
    path: String,
    #[serde(rename = "pathType")]
    path_type: String,
    service: String,
    endpoints: Vec<String>,
    ingress: String,
    /// What the annotations and TrafficPolicy ask of this route.
    policy: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    routes: Vec<RouteRow>,
    diagnostics: Vec<Diagnostic>,
    rejected: bool,
}

/// Runs the check; returns the process exit code (0 nothing rejected, 1 otherwise).
pub fn run(args: &CheckArgs) -> anyhow::Result<i32> {
    if args.selection.manifests.is_empty() {
        anyhow::bail!("--manifests is required");
    }
    let mut source = FileSource::new(
        args.selection.manifests.clone(),
        args.selection.watch_namespaces.clone(),
    );
    source.reload();
    let (snapshot, mut diagnostics) = source.snapshot();
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
    routes.sort_by(|a, b| (&a.host, &a.path, &a.path_type).cmp(&(&b.host, &b.path, &b.path_type)));
    let rejected = diagnostics.iter().any(Diagnostic::is_rejection);
    let report = Report {
        routes,
        diagnostics,
        rejected,
    };

    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print_text(&report),
    }
    Ok(i32::from(rejected))
}

fn print_text(report: &Report) {
    let headers = [
        "HOST",
        "PATH",
        "TYPE",
        "SERVICE",
        "ENDPOINTS",
        "INGRESS",
        "POLICY",
    ];
    let rows: Vec<[String; 7]> = report
        .routes
        .iter()
        .map(|r| {
            let endpoints = if r.endpoints.is_empty() {
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
                r.ingress.clone(),
                if r.policy.is_empty() {
                    "-".to_string()
                } else {
                    r.policy.join("; ")
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
