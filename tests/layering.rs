//! The crate's shape, checked: imports go one way (no cycles among the
//! files of `src/`, no import from a lower layer into a higher one) and no
//! non-test source file grows past 700 lines.
//!
//! The import graph is read from the source text: every `crate::…`,
//! `super::…` and child-module path outside comments and `#[cfg(test)]`
//! items, resolved to the file that defines the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test source file, in lines.
const MAX_LINES: usize = 700;

/// `(from, to)`: top-level modules that must never import each other in
/// that direction. The request path never reaches the control plane's
/// publisher or providers; the pure layers (compiler, table, auth specs,
/// endpoint pickers) never reach the proxy.
const FORBIDDEN: &[(&[&str], &[&str])] = &[
    (
        &[
            "proxy",
            "admin",
            "lb",
            "state",
            "tls",
            "table",
            "config",
            "crd",
            "gateway_api",
            "auth",
            "ratelimit",
            "metrics",
            "inspect",
        ],
        &["publisher", "runtime", "provider", "check", "settings"],
    ),
    (
        &[
            "lb",
            "auth",
            "config",
            "table",
            "crd",
            "gateway_api",
            "ratelimit",
            "state",
            "metrics",
            "tls",
            "hop_by_hop",
        ],
        &["proxy"],
    ),
    (
        &[
            "table",
            "crd",
            "gateway_api",
            "auth",
            "ratelimit",
            "lb",
            "state",
        ],
        &["config"],
    ),
    (
        &["table", "crd", "gateway_api", "auth", "config"],
        &["lb", "state", "tls"],
    ),
    (&["lb"], &["tls"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Test code: files named `tests.rs`, the fuzz targets (`fuzz.rs`, each
/// declared `#[cfg(test)] mod fuzz;`) and their runner (`fuzzing.rs`), or
/// files under a `tests/` folder.
fn is_test_file(rel: &Path) -> bool {
    rel.file_name()
        .is_some_and(|n| n == "tests.rs" || n == "fuzz.rs" || n == "fuzzing.rs")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// The module path of a file: `proxy/mod.rs` → `[proxy]`,
/// `proxy/pool.rs` → `[proxy, pool]`; `lib.rs`/`main.rs` → `[]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// Source text without comments and without `#[cfg(test)]` items.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            // Skip the next item: one line ending in `;`, or a braced block.
            let mut depth = 0i32;
            let mut opened = false;
            for item in lines.by_ref() {
                let code = item.split("//").next().unwrap_or("");
                depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
                opened |= code.contains('{');
                if (opened && depth <= 0) || (!opened && code.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut ident = c.to_string();
            while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                ident.push(n);
                chars.next();
            }
            out.push(ident);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            out.push("::".into());
        } else if matches!(c, '{' | '}' | ',' | '*' | ';') {
            out.push(c.to_string());
        } else if !c.is_whitespace() {
            out.push(" ".into());
        }
    }
    out
}

/// Parses a path or use-tree starting at `tokens[i]` (an identifier) under
/// `prefix`; pushes every full path it names. Returns the index after it.
fn parse_tree(t: &[String], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match t.get(i).map(String::as_str) {
            Some("{") => {
                i += 1;
                while let Some(tok) = t.get(i) {
                    match tok.as_str() {
                        "}" => return i + 1,
                        "," => i += 1,
                        "self" => {
                            out.push(path.clone());
                            i += 1;
                        }
                        "*" => {
                            out.push(path.clone());
                            i += 1;
                        }
                        tok if is_ident(tok) => i = parse_tree(t, i, &path, out),
                        _ => i += 1,
                    }
                }
                return i;
            }
            Some("*") => {
                out.push(path);
                return i + 1;
            }
            Some(tok) if is_ident(tok) => {
                path.push(tok.to_string());
                i += 1;
                if t.get(i).map(String::as_str) == Some("::") {
                    i += 1;
                } else {
                    out.push(path);
                    return i;
                }
            }
            _ => {
                out.push(path);
                return i;
            }
        }
    }
}

fn is_ident(tok: &str) -> bool {
    tok.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Every module path `code` (of the module `module`) refers to.
fn referenced_paths(
    code: &str,
    module: &[String],
    children: &BTreeSet<String>,
) -> Vec<Vec<String>> {
    let t = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let after_sep = i > 0 && t[i - 1] == "::";
        match t[i].as_str() {
            "crate" if !after_sep && t.get(i + 1).map(String::as_str) == Some("::") => {
                i = parse_tree(&t, i + 2, &[], &mut out);
            }
            "super" if !after_sep && t.get(i + 1).map(String::as_str) == Some("::") => {
                let mut base = module.to_vec();
                while t.get(i).map(String::as_str) == Some("super")
                    && t.get(i + 1).map(String::as_str) == Some("::")
                {
                    base.pop();
                    i += 2;
                }
                i = parse_tree(&t, i, &base, &mut out);
            }
            // `child::…` (in a `use` or inline) names a submodule declared
            // in this file.
            tok if !after_sep
                && children.contains(tok)
                && t.get(i + 1).map(String::as_str) == Some("::") =>
            {
                i = parse_tree(&t, i, module, &mut out);
            }
            _ => i += 1,
        }
    }
    out
}

/// The file defining the longest prefix of `path` that is a module.
fn resolve(path: &[String], files: &BTreeMap<Vec<String>, PathBuf>) -> Option<PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n]).cloned())
}

struct Crate {
    /// Module path → file (relative to `src/`), non-test files only.
    files: BTreeMap<Vec<String>, PathBuf>,
    /// File → files it imports.
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

fn read_crate() -> Crate {
    let root = src();
    let mut all = Vec::new();
    rust_files(&root, &mut all);
    let mut files = BTreeMap::new();
    for path in &all {
        let rel = path.strip_prefix(&root).expect("under src").to_path_buf();
        if is_test_file(&rel) || rel == Path::new("main.rs") {
            continue;
        }
        files.insert(module_of(&rel), rel);
    }
    let mut edges = BTreeMap::new();
    for (module, rel) in &files {
        let text = std::fs::read_to_string(root.join(rel)).expect("read source");
        let code = code_of(&text);
        let children: BTreeSet<String> = files
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .filter_map(|m| m.last().cloned())
            .collect();
        let targets: BTreeSet<PathBuf> = referenced_paths(&code, module, &children)
            .iter()
            .filter_map(|p| resolve(p, &files))
            .filter(|target| target != rel)
            .collect();
        edges.insert(rel.clone(), targets);
    }
    Crate { files, edges }
}

fn top(rel: &Path) -> String {
    module_of(rel).first().cloned().unwrap_or_default()
}

#[test]
fn no_import_runs_from_a_lower_layer_to_a_higher_one() {
    let krate = read_crate();
    let mut wrong = Vec::new();
    for (from, targets) in &krate.edges {
        for to in targets {
            let (a, b) = (top(from), top(to));
            if FORBIDDEN
                .iter()
                .any(|(froms, tos)| froms.contains(&a.as_str()) && tos.contains(&b.as_str()))
            {
                wrong.push(format!("{} → {}", from.display(), to.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
    assert!(krate.files.len() > 20, "the source tree was not read");
}

/// The strongly connected components of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a PathBuf) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            let edges = self.edges;
            for next in edges.get(node).into_iter().flatten() {
                let Some((next, _)) = edges.get_key_value(next) else {
                    continue;
                };
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.clone());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.out
}

#[test]
fn no_import_cycle_among_source_files() {
    let krate = read_crate();
    let found: Vec<String> = cycles(&krate.edges)
        .iter()
        .map(|c| {
            let names: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
            names.join(", ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "files that import each other (directly or around a loop):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_loops_and_only_loops() {
    let p = |s: &str| PathBuf::from(s);
    let mut edges = BTreeMap::new();
    edges.insert(p("a.rs"), BTreeSet::from([p("b.rs")]));
    edges.insert(p("b.rs"), BTreeSet::from([p("c.rs")]));
    edges.insert(p("c.rs"), BTreeSet::from([p("a.rs"), p("d.rs")]));
    edges.insert(p("d.rs"), BTreeSet::new());
    assert_eq!(cycles(&edges), vec![vec![p("a.rs"), p("b.rs"), p("c.rs")]]);
    edges.insert(p("c.rs"), BTreeSet::from([p("d.rs")]));
    assert!(cycles(&edges).is_empty());
}

#[test]
fn no_source_file_is_over_700_lines() {
    let root = src();
    let mut all = Vec::new();
    rust_files(&root, &mut all);
    let long: Vec<String> = all
        .iter()
        .filter(|p| !is_test_file(p.strip_prefix(&root).expect("under src")))
        .filter_map(|p| {
            let lines = std::fs::read_to_string(p)
                .expect("read source")
                .lines()
                .count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", p.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_reader_sees_imports_in_every_form() {
    let code = code_of(
        "use crate::{config::{self, Changes}, lb::Upstream};\n\
         use super::super::x::Y; // crate::ignored::path\n\
         use child::Thing;\n\
         fn f() { crate::table::host::normalize(); other::child::g(); }\n\
         fn g() { child::h(); }\n\
         #[cfg(test)]\nmod tests {\n    use crate::provider::files;\n}\n",
    );
    let module = vec!["proxy".to_string(), "policy".to_string()];
    let children = BTreeSet::from(["child".to_string()]);
    let paths = referenced_paths(&code, &module, &children);
    let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"config".to_string()), "{joined:?}");
    assert!(
        joined.contains(&"config::Changes".to_string()),
        "{joined:?}"
    );
    assert!(joined.contains(&"lb::Upstream".to_string()), "{joined:?}");
    assert!(joined.contains(&"x::Y".to_string()), "{joined:?}");
    assert!(
        joined.contains(&"proxy::policy::child::Thing".to_string()),
        "{joined:?}"
    );
    assert!(
        joined.contains(&"table::host::normalize".to_string()),
        "{joined:?}"
    );
    assert!(
        !joined
            .iter()
            .any(|p| p.contains("ignored") || p.contains("provider")),
        "{joined:?}"
    );
}
