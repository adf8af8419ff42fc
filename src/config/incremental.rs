//! Incremental compilation: [`Incremental`] recompiles only what a change
//! touches. When only Ingresses (and EndpointSlices) changed and each
//! changed Ingress is *isolated* — its hosts named by no other object, no
//! TLS, canary, alias, `www` twin, passthrough, mirror, hostless rule,
//! default backend, TrafficPolicy or diagnostic, before and after, and no
//! served Ingress with an alias, `www` twin, passthrough or mirror — the
//! previous output is patched: the old
//! version's host tables are removed, the new version is compiled alone
//! (by the same steps as a full compile) and grafted in, and the upstreams
//! of Services whose EndpointSlices changed are re-resolved. Any other
//! change compiles everything ([`super::compile`]), as does a patch that
//! left too many unreachable routes behind (compaction).
//!
//! Invariants:
//! - A patch serves exactly what a full compile of the same snapshot
//!   serves: the same hosts, paths, routes, upstreams, certificates,
//!   diagnostics, last good versions and statuses ([`Compiled::canonical`]
//!   equal; route and upstream numbering may differ, and unreachable
//!   routes and unused upstreams may remain). `tests/incremental.rs`
//!   checks this on random change sequences.
//! - A patch keeps the previous table's globals, TLS table (certificates,
//!   passthrough hosts) and last good agent block as they are: the
//!   ConfigMap and options did not change, and an isolated Ingress has no
//!   TLS or passthrough.
//! - Anything not shown isolated takes the full compile: correctness over
//!   speed. The per-Ingress memo (parsed annotations) is dropped whenever
//!   the ConfigMaps or the options change.
//! - `last_good` passed in is what the previous compile of this value
//!   produced (the publisher feeds it back), and [`Touched`] lists every
//!   object changed since that compile.
//! - Pure: no IO, no clock, like the rest of the compiler.
//! - With [`Incremental::compile_touched_on`] the caller keeps the
//!   previous output's table and passes it back, so the table is held
//!   once, not twice (the caller's and a copy here): a patch clones the
//!   given table, patches the clone and hands it out without keeping it.
//!   [`Incremental::compile_touched`] keeps its own copy instead; a change
//!   of mode compiles in full.

use std::collections::{BTreeSet, HashMap as StdHashMap};
use std::sync::Arc;

use crate::config::snapshot::CompactIngress;

use super::backends::resolve_upstream;
use super::compiled::{Compiled, HashMap, LastGood, Resolved};
use super::memo::Memo;
use super::nginx_config::NginxConfig;
use super::options::CompileOptions;
use super::snapshot::{Changes, ObjectKey, Snapshot};
use super::{class, ingress_nginx, select, steps};
use crate::table::upstream::UpstreamKey;
use crate::table::{RoutingTable, UpstreamId};

/// Unreachable routes a patch may leave before a full compile: one per
/// this many live routes (and a few more for small tables).
const DEAD_ROUTE_SHARE: usize = 8;
const DEAD_ROUTE_SLACK: usize = 64;

/// What changed since the last compile, noted by the caller for every
/// upsert and delete ([`Touched::note`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Ingresses inserted, changed or deleted.
    pub ingresses: BTreeSet<ObjectKey>,
    /// Services whose EndpointSlices changed.
    pub endpoints: BTreeSet<ObjectKey>,
    /// Any other object that routes depend on changed.
    pub other: bool,
}

impl Touched {
    /// Notes one upsert or delete of an object of `kind` and what
    /// [`Snapshot::upsert`] / [`Snapshot::delete`] said it changed.
    pub fn note(&mut self, kind: &str, key: &ObjectKey, changes: &Changes) {
        self.endpoints.extend(changes.endpoints.iter().cloned());
        if !changes.routes {
            return;
        }
        if kind == "Ingress" {
            self.ingresses.insert(key.clone());
        } else {
            self.other = true;
        }
    }

    /// Everything may have changed (a whole new snapshot).
    pub fn everything() -> Self {
        Self {
            other: true,
            ..Self::default()
        }
    }
}

/// What a recompile reuses from the previous ones (see the module doc).
#[derive(Default)]
pub struct Incremental {
    memo: Memo,
    /// The ingress-nginx ConfigMap, parsed, for the memo's environment.
    nginx: Option<NginxConfig>,
    state: Option<State>,
    patches: u64,
    full: u64,
}

/// The previous output and what deciding a patch needs.
struct State {
    /// The options compiled with, without the clock.
    opts: CompileOptions,
    /// `opts.now` of that compile (certificate expiry).
    now: Option<i64>,
    out: Compiled,
    /// Upstream ids by key (unused ones included).
    upstream_ids: HashMap<UpstreamKey, UpstreamId>,
    /// How many served objects name each host (Ingress rules and TLS
    /// sections, Gateway routes' hostnames, hosts holding Gateway routes).
    hosts: StdHashMap<String, u32, foldhash::fast::RandomState>,
    /// Some served Ingress reaches beyond its hosts (`server-alias`,
    /// `from-to-www-redirect`, passthrough, mirror): no patches.
    reaching: bool,
    /// Routes left unreachable by patches.
    dead: usize,
    /// `out.table` is empty: the caller holds the table of the last output
    /// and passes it back ([`Incremental::compile_touched_on`]).
    table_given: bool,
}

impl Incremental {
    pub fn new() -> Self {
        Self::default()
    }

    /// A full compile that later ones can patch: [`super::compile`], with
    /// per-Ingress work reused from earlier compiles.
    pub fn compile(
        &mut self,
        snapshot: &Snapshot,
        opts: &CompileOptions,
        last_good: &LastGood,
    ) -> Compiled {
        self.compile_full(snapshot, opts, last_good, false)
    }

    fn compile_full(
        &mut self,
        snapshot: &Snapshot,
        opts: &CompileOptions,
        last_good: &LastGood,
        table_given: bool,
    ) -> Compiled {
        if self.memo.prepare(snapshot, opts) {
            self.nginx = None;
        }
        let out = steps::run(snapshot, opts, last_good, &mut self.memo);
        self.memo.retain(snapshot);
        self.full += 1;
        self.state = Some(State::of(snapshot, opts, &out, &self.memo, table_given));
        out
    }

    /// Forgets the previous output (the memo stays): the next compile is
    /// a full one. For a caller that served a table of another origin.
    pub fn forget_output(&mut self) {
        self.state = None;
    }

    /// Compiles `snapshot`, which differs from the previous compile's by
    /// `touched`: a patch when every change is isolated, else in full.
    pub fn compile_touched(
        &mut self,
        snapshot: &Snapshot,
        opts: &CompileOptions,
        last_good: &LastGood,
        touched: &Touched,
    ) -> Compiled {
        if let Some(out) = self.patch(snapshot, opts, last_good, touched, None) {
            self.patches += 1;
            return out;
        }
        self.compile_full(snapshot, opts, last_good, false)
    }

    /// [`Self::compile_touched`] for a caller that keeps every output's
    /// table as it is until the next call and passes it back as
    /// `published` (the publisher: the table it serves); the table is
    /// then not kept here as well. `published` must be the table of this
    /// value's last output (see [`Self::forget_output`]).
    pub fn compile_touched_on(
        &mut self,
        snapshot: &Snapshot,
        opts: &CompileOptions,
        last_good: &LastGood,
        touched: &Touched,
        published: &RoutingTable,
    ) -> Compiled {
        if let Some(out) = self.patch(snapshot, opts, last_good, touched, Some(published)) {
            self.patches += 1;
            return out;
        }
        self.compile_full(snapshot, opts, last_good, true)
    }

    /// Compiles so far: (patches, full compiles).
    pub fn counts(&self) -> (u64, u64) {
        (self.patches, self.full)
    }

    fn patch(
        &mut self,
        snapshot: &Snapshot,
        opts: &CompileOptions,
        last_good: &LastGood,
        touched: &Touched,
        published: Option<&RoutingTable>,
    ) -> Option<Compiled> {
        let state = self.state.as_mut()?;
        let opts_now = CompileOptions {
            now: None,
            ..opts.clone()
        };
        if touched.other
            || state.opts != opts_now
            || state.reaching
            || state.table_given != published.is_some()
        {
            return None;
        }
        // A certificate that expired since: a full compile warns about it.
        let (before, now) = (state.now, opts.now);
        if before != now
            && state.out.last_good.certificates.values().any(|c| {
                let expired = |t: Option<i64>| t.is_some_and(|t| c.not_after < t);
                expired(before) != expired(now)
            })
        {
            return None;
        }
        if self.memo.prepare(snapshot, opts) {
            self.nginx = None;
        }
        let nginx = self
            .nginx
            .get_or_insert_with(|| {
                ingress_nginx::load(snapshot, opts.configmap.as_ref(), last_good).0
            })
            .clone();
        if let Some(table) = published {
            // The working copy this patch changes and hands out.
            state.out.table = table.clone();
        }
        let mut plan = Vec::with_capacity(touched.ingresses.len());
        for key in &touched.ingresses {
            plan.push(state.plan(snapshot, opts, last_good, key, &nginx, &mut self.memo)?);
        }
        // From here the state changes: a step that fails leaves it half
        // patched, and the full compile that follows replaces it.
        for step in plan {
            state.apply(step)?;
        }
        state.refresh_endpoints(snapshot, &touched.endpoints);
        let live = state.out.table.routes().len().saturating_sub(state.dead);
        if state.dead * DEAD_ROUTE_SHARE > live + DEAD_ROUTE_SLACK {
            return None;
        }
        state.now = now;
        let mut out = copy_of(&state.out, !state.table_given);
        if state.table_given {
            out.table = std::mem::take(&mut state.out.table);
        }
        Some(out)
    }
}

/// One changed Ingress, shown isolated: the hosts its old version had and
/// the new version compiled alone.
struct Step {
    key: ObjectKey,
    old_hosts: BTreeSet<String>,
    old_routes: usize,
    new: Option<(Compiled, BTreeSet<String>)>,
}

impl State {
    fn of(
        snapshot: &Snapshot,
        opts: &CompileOptions,
        out: &Compiled,
        memo: &Memo,
        table_given: bool,
    ) -> State {
        let mut hosts: StdHashMap<String, u32, foldhash::fast::RandomState> = Default::default();
        let mut reaching = false;
        let mut add = |names: BTreeSet<String>| {
            for h in names {
                *hosts.entry(h).or_default() += 1;
            }
        };
        for key in &out.served {
            let Some(version) = out.last_good.ingresses.get(key) else {
                continue;
            };
            add(ingress_hosts(version, true));
            reaching |= memo.any_reaches_out(key) || reaches_out(version);
        }
        for entry in snapshot.http_routes.values() {
            add(entry.object.spec.hostnames.iter().cloned().collect());
        }
        for entry in snapshot.grpc_routes.values() {
            add(entry.object.spec.hostnames.iter().cloned().collect());
        }
        add(out.table.gateway_hosts().into_iter().collect());
        let upstream_ids = out
            .upstreams
            .iter()
            .enumerate()
            .filter_map(|(i, u)| Some((u.key.clone(), UpstreamId::try_from(i).ok()?)))
            .collect();
        State {
            opts: CompileOptions {
                now: None,
                ..opts.clone()
            },
            now: opts.now,
            out: copy_of(out, !table_given),
            upstream_ids,
            hosts,
            reaching,
            dead: 0,
            table_given,
        }
    }

    /// Shows the change of Ingress `key` isolated and compiles its new
    /// version alone; `None` when it is not.
    fn plan(
        &self,
        snapshot: &Snapshot,
        opts: &CompileOptions,
        last_good: &LastGood,
        key: &ObjectKey,
        nginx: &NginxConfig,
        memo: &mut Memo,
    ) -> Option<Step> {
        // No TrafficPolicy names it (its status would change).
        if snapshot
            .traffic_policies
            .iter()
            .any(|(k, e)| k.namespace == key.namespace && e.object.spec.targets(&key.name))
        {
            return None;
        }
        // No diagnostic is about it now.
        if self
            .out
            .diagnostics
            .iter()
            .any(|d| d.kind == "Ingress" && *d.namespace == *key.namespace && *d.name == *key.name)
        {
            return None;
        }
        let (old_hosts, old_routes) = match self.out.served.binary_search(key) {
            Ok(_) => {
                let old = self.out.last_good.ingresses.get(key)?;
                let hosts = ingress_hosts(old, true);
                if !self.isolated(old, &hosts)? || memo.reaches_out(key, old) {
                    return None;
                }
                (hosts, path_count(old))
            }
            Err(_) => (BTreeSet::new(), 0),
        };
        let new = match snapshot.ingresses.get(key) {
            Some(entry) if class::is_ours(&entry.object, &snapshot.ingress_classes, opts) => {
                let one = steps::one(snapshot, opts, last_good, key, entry, nginx, memo);
                if !one.diagnostics.is_empty() {
                    return None;
                }
                match one.last_good.ingresses.get(key) {
                    None => None,
                    Some(version) => {
                        if !Arc::ptr_eq(version, &entry.object)
                            || memo.reaches_out(key, version)
                            || !self.isolated(version, &old_hosts)?
                            || one.table.routes().iter().any(|r| {
                                r.policy.global_rate.is_some() && !opts.global_rate_limit_store
                            })
                            || !self.out.table.can_graft(&one.table)
                        {
                            return None;
                        }
                        let hosts = ingress_hosts(version, true);
                        Some((one, hosts))
                    }
                }
            }
            _ => None,
        };
        Some(Step {
            key: key.clone(),
            old_hosts,
            old_routes,
            new,
        })
    }

    /// Whether this version of Ingress `key` touches nothing of another
    /// object's: not a canary, no TLS, no hostless rule or default
    /// backend, and every host named by no one else (`mine`: hosts it
    /// already holds, counted once). `None`: cannot tell.
    fn isolated(&self, ingress: &CompactIngress, mine: &BTreeSet<String>) -> Option<bool> {
        let spec = ingress.spec.as_ref()?;
        if select::is_canary(ingress)
            || reaches_out(ingress)
            || spec.tls.as_ref().is_some_and(|t| !t.is_empty())
            || spec.default_backend.is_some()
        {
            return Some(false);
        }
        let hosts = ingress_hosts(ingress, true);
        Some(hosts.iter().all(|h| {
            let held = u32::from(mine.contains(h));
            !h.is_empty()
                && self.hosts.get(h).copied().unwrap_or(0) == held
                && self.out.tls.lookup(h).is_none()
        }))
    }

    /// Applies one planned step to the output and the indexes.
    fn apply(&mut self, step: Step) -> Option<()> {
        let out = &mut self.out;
        for host in &step.old_hosts {
            out.table.remove_host(host);
            if let Some(n) = self.hosts.get_mut(host) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.hosts.remove(host);
                }
            }
        }
        self.dead += step.old_routes;
        if let Ok(at) = out.served.binary_search(&step.key) {
            out.served.remove(at);
            out.ingresses = out.ingresses.saturating_sub(1);
        }
        out.last_good.ingresses.remove(&step.key);
        let Some((one, hosts)) = step.new else {
            return Some(());
        };
        // The new version's upstreams: existing ones by key, others added.
        // Grown exactly, not doubled: this copy lives until the next
        // compile, and a doubled list would hold its spare half as long.
        out.upstreams.reserve_exact(one.upstreams.len());
        let mut ids = Vec::with_capacity(one.upstreams.len());
        for spec in one.upstreams {
            let id = match self.upstream_ids.get(&spec.key) {
                Some(&id) => {
                    if let Some(existing) = out.upstreams.get_mut(id as usize) {
                        *existing = spec;
                    }
                    id
                }
                None => {
                    let id = UpstreamId::try_from(out.upstreams.len()).ok()?;
                    self.upstream_ids.insert(spec.key.clone(), id);
                    out.upstreams.push(spec);
                    id
                }
            };
            ids.push(id);
        }
        if !out.table.graft(&one.table, &ids) {
            return None;
        }
        for host in hosts {
            *self.hosts.entry(host).or_default() += 1;
        }
        out.last_good.endpoints.extend(one.last_good.endpoints);
        out.last_good.ingresses.extend(one.last_good.ingresses);
        if let Err(at) = out.served.binary_search(&step.key) {
            out.served.reserve_exact(1);
            out.served.insert(at, step.key);
            out.ingresses += 1;
        }
        Some(())
    }

    /// Re-resolves the upstreams of Services whose EndpointSlices changed,
    /// as a full compile resolves them.
    fn refresh_endpoints(&mut self, snapshot: &Snapshot, services: &BTreeSet<ObjectKey>) {
        if services.is_empty() {
            return;
        }
        // Matched by borrowed names: no key is built per upstream.
        let changed: std::collections::HashSet<(&str, &str), foldhash::fast::RandomState> =
            services.iter().map(|s| (&*s.namespace, &*s.name)).collect();
        let out = &mut self.out;
        for spec in &mut out.upstreams {
            if !changed.contains(&(&*spec.key.namespace, &*spec.key.service)) {
                continue;
            }
            match resolved(snapshot, &spec.key) {
                Some(r) => {
                    spec.endpoints = r.endpoints.clone();
                    out.last_good.endpoints.insert(spec.key.clone(), r);
                }
                None => {
                    spec.endpoints = resolve_upstream(snapshot, &spec.key).unwrap_or_default();
                }
            }
        }
    }
}

/// A resolution as [`Builder::resolve`] memoizes it (`None` where it
/// memoizes nothing: no Service, no such port).
fn resolved(snapshot: &Snapshot, key: &UpstreamKey) -> Option<Arc<Resolved>> {
    let svc_key = ObjectKey::new(key.namespace.clone(), key.service.clone());
    let service = snapshot.services.get(&svc_key)?;
    let endpoints = resolve_upstream(snapshot, key).ok()?;
    Some(Arc::new(Resolved {
        service: service.object.clone(),
        slices: snapshot
            .slice_entries_of(&svc_key)
            .map(|e| e.object.clone())
            .collect(),
        endpoints,
    }))
}

/// Whether an Ingress has an annotation whose effect may reach beyond
/// its own hosts' routes (TLS passthrough, `www` twins, mirrors,
/// aliases), by name whatever its value: such an Ingress is never patched
/// in, and while one is served nothing is.
fn reaches_out(ingress: &CompactIngress) -> bool {
    // `auth-tls`: its CA's last good version lives in `LastGood`.
    const NAMES: [&str; 5] = ["passthrough", "www", "mirror", "alias", "auth-tls"];
    ingress.metadata.annotations.iter().flatten().any(|(k, _)| {
        let name = k.rsplit('/').next().unwrap_or(k);
        NAMES.iter().any(|n| name.contains(n))
    })
}

/// The hosts an Ingress names: its rules' (`""` for a rule without one)
/// and, with `tls`, its TLS sections'.
fn ingress_hosts(ingress: &CompactIngress, tls: bool) -> BTreeSet<String> {
    let Some(spec) = &ingress.spec else {
        return BTreeSet::new();
    };
    let rules = spec
        .rules
        .iter()
        .flatten()
        .map(|r| r.host.as_deref().unwrap_or_default().to_string());
    let tls_hosts = spec
        .tls
        .iter()
        .flatten()
        .filter(|_| tls)
        .flat_map(|t| t.hosts.iter().flatten().map(|h| h.to_ascii_lowercase()));
    rules.chain(tls_hosts).collect()
}

/// Routes an Ingress version can have had (one per path, one default).
fn path_count(ingress: &CompactIngress) -> usize {
    let Some(spec) = &ingress.spec else { return 0 };
    1 + spec
        .rules
        .iter()
        .flatten()
        .map(|r| r.http.as_ref().map_or(0, |h| h.paths.len()))
        .sum::<usize>()
}

/// A copy of a compile's output (the publisher takes the original); its
/// table is empty unless `with_table`.
fn copy_of(out: &Compiled, with_table: bool) -> Compiled {
    Compiled {
        table: if with_table {
            out.table.clone()
        } else {
            RoutingTable::default()
        },
        tls: out.tls.clone(),
        upstreams: out.upstreams.clone(),
        diagnostics: out.diagnostics.clone(),
        last_good: out.last_good.clone(),
        ingresses: out.ingresses,
        served: out.served.clone(),
        gateway_targets: out.gateway_targets.clone(),
        policy_status: out.policy_status.clone(),
        gateway_status: out.gateway_status.clone(),
    }
}
