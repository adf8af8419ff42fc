//! The publisher: turns compiled output into the published state
//! ([`crate::state::Published`]), and applies endpoint-only changes without
//! recompiling.
//!
//! Invariants:
//! - The only writer of the published state: everything a request needs
//!   (table, certificates, upstreams, per-route metrics and limiters) is
//!   published together with one `ArcSwap::store`; requests `load` it once.
//! - Upstreams keep their identity across recompiles (keyed by
//!   [`UpstreamKey`]), so pools and health state survive a reload; so do
//!   limiters whose (Ingress, limit) is unchanged, and metric handles.
//! - An EndpointSlice-only change swaps the endpoint sets of the affected
//!   upstreams and nothing else: no compile, no new table.
//! - Runs on the control-plane thread, never on the data plane's workers;
//!   the data plane never imports this module.
//! - After a patch, nothing the control loop does before taking the next
//!   change is proportional to the whole configuration: the snapshot is
//!   shared with the debug endpoints and the webhook (persistent maps), the
//!   upstream-by-Service index gains only the new upstreams, and the
//!   replaced state is freed on the dropper thread (`dropper`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::config::gateway::status::GatewayApiStatus;
use crate::config::traffic_policy::PolicyStatus;
use crate::config::{
    self, Changes, CompileOptions, Compiled, Diagnostic, LastGood, Object, ObjectKey, Snapshot,
};
use crate::inspect::{diagnostic_key, DiagnosticKey, Inspect, Tracked};
use crate::intern::intern;
use crate::lb::Upstream;
use crate::metrics::{Metrics, RouteMetrics, RouteSeries, SeriesLabels};
use crate::ratelimit::global::{GlobalLimiter, GlobalStore};
use crate::ratelimit::{ConnLimiter, RateSpec, RequestLimiter};
use crate::state::{Health, Published, RouteLimits};
use crate::table::policy::GlobalRateLimit;
use crate::table::policy::{ConnLimit, RateLimit};
use crate::table::upstream::{UpstreamKey, UpstreamSpec};
use crate::table::RoutingTable;
use crate::tls::client::UpstreamTls;

mod dropper;
mod observe;
mod reuse;
mod timing;

pub use timing::InstallTimings;

/// Control-plane maps: foldhash (randomly seeded), as the data plane's
/// tables; SipHash was a tenth of a 10,000-Ingress recompile.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// What one `apply` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Nothing,
    Endpoints { services: usize },
    Recompiled { generation: u64 },
}

/// The control plane's end of the published state: owns the snapshot of
/// objects, compiles it and publishes the result.
pub struct Publisher {
    opts: CompileOptions,
    published: Arc<ArcSwap<Published>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    snapshot: Snapshot,
    /// Shared with [`Inspect`] (the webhook compiles against it).
    last_good: Arc<LastGood>,
    /// What a recompile reuses from the previous ones.
    incremental: config::Incremental,
    /// What changed since the last compile (what `incremental` may patch).
    touched: config::Touched,
    /// From the start of the last recompile to its table's publish.
    last_publish: std::time::Duration,
    /// The phases of the last recompile.
    timings: InstallTimings,
    /// Live upstreams with their connection security, by identity.
    upstreams: HashMap<UpstreamKey, (Arc<Upstream>, UpstreamTls)>,
    /// Upstreams by Service, for the endpoint fast path.
    by_service: HashMap<ObjectKey, Vec<Arc<Upstream>>>,
    /// Metric series by label set of the published routes.
    route_metric_handles: HashMap<SeriesLabels, Arc<RouteSeries>>,
    /// Live limiters by (ingress, limit), kept while the limit stays.
    rate_limiters: HashMap<(Arc<str>, RateLimit), Arc<RequestLimiter>>,
    conn_limiters: HashMap<(Arc<str>, ConnLimit), Arc<ConnLimiter>>,
    /// Live global limiters by (route object, limit), and their store.
    global_limiters: HashMap<(Arc<str>, GlobalRateLimit), Arc<GlobalLimiter>>,
    global_store: Option<Arc<GlobalStore>>,
    generation: u64,
    /// Diagnostics of the last compile, so only new ones are logged.
    diagnostics: BTreeSet<String>,
    /// The diagnostics of the last compile, as values (for Kubernetes Events).
    last_diagnostics: Vec<Diagnostic>,
    /// The Ingresses served at the last compile (their status is ours);
    /// shared with the status writers' view.
    served: Arc<[ObjectKey]>,
    /// The TrafficPolicy conditions of the last compile.
    policy_status: BTreeMap<ObjectKey, PolicyStatus>,
    /// The Gateway API statuses of the last compile.
    gateway_status: GatewayApiStatus,
    /// Incremental changes (`upsert`/`delete`) not yet committed.
    pending: Changes,
    /// What the debug endpoints and the admission webhook read; stored
    /// whole after each recompile.
    inspect: Arc<ArcSwap<Inspect>>,
    /// When each current diagnostic was first seen (kept across
    /// recompiles while it stands).
    first_seen: BTreeMap<DiagnosticKey, SystemTime>,
}

impl Publisher {
    pub fn new(opts: CompileOptions, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        Self {
            opts,
            published: Arc::new(ArcSwap::from_pointee(Published::default())),
            metrics,
            health,
            snapshot: Snapshot::default(),
            last_good: Arc::new(LastGood::new()),
            incremental: config::Incremental::new(),
            touched: config::Touched::default(),
            last_publish: std::time::Duration::ZERO,
            timings: InstallTimings::default(),
            upstreams: HashMap::default(),
            by_service: HashMap::default(),
            route_metric_handles: HashMap::default(),
            rate_limiters: HashMap::default(),
            conn_limiters: HashMap::default(),
            global_limiters: HashMap::default(),
            global_store: None,
            generation: 0,
            diagnostics: BTreeSet::new(),
            last_diagnostics: Vec::new(),
            served: Arc::from([]),
            policy_status: BTreeMap::new(),
            gateway_status: GatewayApiStatus::default(),
            pending: Changes::default(),
            inspect: Arc::new(ArcSwap::from_pointee(Inspect::default())),
            first_seen: BTreeMap::new(),
        }
    }

    /// The shared store global rate limits count in (`--global-rate-limit-store`);
    /// without one they are local. Set before the first publish.
    pub fn set_global_store(&mut self, store: Arc<GlobalStore>) {
        self.global_store = Some(store);
    }

    /// Incremental input (Kubernetes mode): inserts or replaces one object.
    /// Nothing is published until [`Self::commit`].
    pub fn upsert(&mut self, origin: Arc<str>, object: Object) {
        let (kind, key) = (object.kind(), object.key());
        let changes = self.snapshot.upsert(origin, object);
        self.touched.note(kind, &key, &changes);
        self.pending.merge(changes);
    }

    /// Incremental input: removes one object (see [`Self::upsert`]).
    pub fn delete(&mut self, kind: &str, key: &ObjectKey) {
        let changes = self.snapshot.delete(kind, key);
        self.touched.note(kind, key, &changes);
        self.pending.merge(changes);
    }

    /// What `upsert`/`delete` changed since the last commit.
    pub fn pending(&self) -> &Changes {
        &self.pending
    }

    /// The objects as they stand (including uncommitted changes).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Publishes the pending incremental changes: a recompile when routes
    /// may have changed (or nothing was published yet), else the endpoint
    /// fast path for the Services whose EndpointSlices changed.
    pub fn commit(&mut self, source_diagnostics: &[Diagnostic]) -> Applied {
        let changes = std::mem::take(&mut self.pending);
        if self.generation == 0 || changes.routes {
            let generation = self.recompile(source_diagnostics);
            Applied::Recompiled { generation }
        } else if !changes.endpoints.is_empty() {
            self.update_endpoints(&changes.endpoints);
            Applied::Endpoints {
                services: changes.endpoints.len(),
            }
        } else {
            Applied::Nothing
        }
    }

    /// The Gateway API statuses of the last compile.
    pub fn gateway_status(&self) -> &GatewayApiStatus {
        &self.gateway_status
    }

    /// The compile options (controller names among them).
    pub fn options(&self) -> &CompileOptions {
        &self.opts
    }

    /// The Ingresses served at the last compile, sorted.
    pub fn served(&self) -> &[ObjectKey] {
        &self.served
    }

    /// The same, shared (the status writers' view holds it).
    pub fn served_shared(&self) -> Arc<[ObjectKey]> {
        self.served.clone()
    }

    /// The TrafficPolicy conditions of the last compile.
    pub fn policy_status(&self) -> &BTreeMap<ObjectKey, PolicyStatus> {
        &self.policy_status
    }

    /// The diagnostics of the last compile (compiler and source).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.last_diagnostics
    }

    /// How long the last recompile took until its table was published
    /// (what a request waits for; the bookkeeping after is not counted).
    pub fn last_publish_latency(&self) -> std::time::Duration {
        self.last_publish
    }

    /// Where the last recompile's time went, phase by phase.
    pub fn last_timings(&self) -> InstallTimings {
        self.timings
    }

    /// Recompiles so far: (patched, compiled in full).
    pub fn compile_counts(&self) -> (u64, u64) {
        self.incremental.counts()
    }

    /// The handle the proxy reads from.
    pub fn published(&self) -> Arc<ArcSwap<Published>> {
        self.published.clone()
    }

    /// The handle the debug endpoints and the admission webhook read from.
    pub fn inspect(&self) -> Arc<ArcSwap<Inspect>> {
        self.inspect.clone()
    }

    /// Applies a whole new snapshot (standalone mode): its difference from
    /// the current one is committed like incremental changes.
    pub fn apply(&mut self, snapshot: Snapshot, source_diagnostics: &[Diagnostic]) -> Applied {
        self.pending = snapshot.changes_from(&self.snapshot);
        self.touched = config::Touched::everything();
        self.snapshot = snapshot;
        self.commit(source_diagnostics)
    }

    fn recompile(&mut self, source_diagnostics: &[Diagnostic]) -> u64 {
        let started = Instant::now();
        let mut opts = self.opts.clone();
        opts.now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        let touched = std::mem::take(&mut self.touched);
        // The table served is the last compile's (`publish` makes the
        // compiler forget it otherwise): the compiler keeps no copy of it.
        let served = self.published.load_full();
        let compiled = self.incremental.compile_touched_on(
            &self.snapshot,
            &opts,
            &self.last_good,
            &touched,
            &served.table,
        );
        drop(served);
        let compile = started.elapsed();
        self.metrics.compile_seconds.observe(compile);
        let generation = self.install(compiled, source_diagnostics, started);
        self.timings.compile = compile;
        generation
    }

    /// Publishes a table and upstreams built without the compiler (tests
    /// that serve a hand-built table); upstreams, metrics and limiters are
    /// resolved exactly as for a compiled one.
    pub fn publish(&mut self, compiled: Compiled) -> u64 {
        // Not the compiler's output: its next compile must not patch this.
        self.incremental.forget_output();
        self.install(compiled, &[], Instant::now())
    }

    fn install(
        &mut self,
        mut compiled: Compiled,
        source_diagnostics: &[Diagnostic],
        started: Instant,
    ) -> u64 {
        let mut timings = InstallTimings::default();
        let mut laps = timing::Laps::start();
        // A patched table only adds to the previous one: take over its
        // upstreams, metric handles and limiters instead of resolving
        // every one again (see `reuse`).
        let prev = self.published.load_full();
        let specs = std::mem::take(&mut compiled.upstreams);
        // Where the upstream-by-Service index needs new entries from: the
        // first upstream past the previous ones, or `None` to rebuild it.
        let (live, upstream_tls, previous, index_from) = if reuse::upstreams_extend(&prev, &specs) {
            let (live, tls) =
                reuse::extend_upstreams(&prev, specs, &self.metrics, &mut self.upstreams);
            (live, tls, HashMap::default(), Some(prev.upstreams.len()))
        } else {
            let (live, tls, previous) = self.rebuild_upstreams(specs);
            (live, tls, previous, None)
        };
        timings.upstreams = laps.lap();
        let (route_metrics, route_limits, stale_metric_handles) =
            if reuse::routes_extend(&prev, &compiled.table) {
                let metrics = reuse::extend_route_metrics(
                    &prev,
                    &compiled.table,
                    &self.metrics,
                    &mut self.route_metric_handles,
                );
                let limiters = reuse::Limiters {
                    rate: &mut self.rate_limiters,
                    conn: &mut self.conn_limiters,
                    global: &mut self.global_limiters,
                    store: &self.global_store,
                    metrics: &self.metrics,
                };
                let limits = reuse::extend_route_limits(&prev, &compiled.table, limiters);
                (metrics, limits, HashMap::default())
            } else {
                self.route_state(&compiled.table)
            };
        drop(prev);
        timings.routes = laps.lap();
        let rejected =
            compiled.rejected() || source_diagnostics.iter().any(Diagnostic::is_rejection);
        // Publish first; everything below is bookkeeping that requests do
        // not wait for (dropping the previous state included).
        self.generation += 1;
        let expiries = observe::certificate_expiries(&compiled.tls, &compiled.last_good);
        let hosts = compiled.table.host_count();
        let routes = compiled.table.routes().len();
        let published = Arc::new(Published {
            generation: self.generation,
            table: compiled.table,
            tls: compiled.tls,
            upstreams: live,
            upstream_tls,
            route_metrics,
            route_limits,
        });
        let replaced = self.published.swap(published.clone());
        self.last_publish = started.elapsed();
        timings.published = self.last_publish;
        laps.lap();
        self.metrics.reloads.inc();
        self.metrics
            .table_generation
            .set(i64::try_from(self.generation).unwrap_or(i64::MAX));

        let stale_index = self.index_by_service(&published, index_from);
        timings.index = laps.lap();
        if rejected {
            self.metrics.compile_failures.inc();
        }
        observe::apply(
            &self.metrics,
            &self.last_diagnostics,
            rejected,
            source_diagnostics.iter().chain(compiled.diagnostics.iter()),
        );
        let mut seen = BTreeSet::new();
        for d in source_diagnostics.iter().chain(compiled.diagnostics.iter()) {
            let line = d.to_string();
            if !self.diagnostics.contains(&line) {
                match d.severity {
                    config::Severity::Rejected => {
                        tracing::error!(diagnostic = %line, "configuration rejected")
                    }
                    config::Severity::Warning => {
                        tracing::warn!(diagnostic = %line, "configuration warning")
                    }
                }
            }
            seen.insert(line);
        }
        self.diagnostics = seen;
        self.last_diagnostics = source_diagnostics
            .iter()
            .chain(compiled.diagnostics.iter())
            .cloned()
            .collect();
        let stale_served = std::mem::replace(&mut self.served, compiled.served.into());
        self.policy_status = compiled.policy_status;
        self.gateway_status = compiled.gateway_status;
        self.metrics.certificate_expiry.clear();
        for (labels, not_after) in expiries {
            self.metrics
                .certificate_expiry
                .get_or_create(&labels)
                .set(not_after);
        }
        let stale_last_good = std::mem::replace(&mut self.last_good, Arc::new(compiled.last_good));
        timings.diagnostics = laps.lap();
        let stale_inspect = self.publish_inspect(published);
        // Ready once the debug endpoints and the webhook see this table too.
        self.health.table_installed.store(true, Ordering::Release);
        timings.inspect = laps.lap();
        // Freeing the previous state is proportional to the whole
        // configuration: off the control loop, so the next change need not
        // wait for it.
        dropper::release((
            replaced,
            previous,
            stale_metric_handles,
            stale_index,
            stale_served,
            stale_last_good,
            stale_inspect,
        ));
        timings.drop = laps.lap();
        timings.total = started.elapsed();
        self.timings = timings;
        tracing::info!(
            generation = self.generation,
            ingresses = compiled.ingresses,
            hosts,
            routes,
            publish_ms = timing::ms(timings.published),
            upstreams_ms = timing::ms(timings.upstreams),
            routes_ms = timing::ms(timings.routes),
            index_ms = timing::ms(timings.index),
            diagnostics_ms = timing::ms(timings.diagnostics),
            inspect_ms = timing::ms(timings.inspect),
            drop_ms = timing::ms(timings.drop),
            compile_ms = timing::ms(timings.total),
            "routing table installed"
        );
        self.generation
    }

    /// Live upstreams for `specs`, keeping those whose key and trust are
    /// unchanged (pools and health survive); returns the ones left over.
    #[allow(clippy::type_complexity)]
    fn rebuild_upstreams(
        &mut self,
        specs: Vec<UpstreamSpec>,
    ) -> (
        Vec<Arc<Upstream>>,
        Vec<UpstreamTls>,
        HashMap<UpstreamKey, (Arc<Upstream>, UpstreamTls)>,
    ) {
        let mut previous = std::mem::take(&mut self.upstreams);
        let mut upstreams = HashMap::with_capacity_and_hasher(specs.len(), Default::default());
        let (live, upstream_tls): (Vec<Arc<Upstream>>, Vec<UpstreamTls>) = specs
            .into_iter()
            .map(|spec| {
                // New trust anchors make a new upstream (new endpoint
                // ids): no pooled connection outlives its trust.
                let live = match previous
                    .remove(&spec.key)
                    .filter(|(_, tls)| *tls.trust() == spec.trust)
                {
                    Some(existing) => {
                        existing.0.set_endpoints(&spec.endpoints);
                        existing
                    }
                    None => (
                        Arc::new(Upstream::new(
                            &spec,
                            self.metrics.connect_error(&spec.label),
                        )),
                        UpstreamTls::new(&spec),
                    ),
                };
                upstreams.insert(spec.key, live.clone());
                live
            })
            .unzip();
        self.upstreams = upstreams;
        (live, upstream_tls, previous)
    }

    /// Route metrics and limits of every route, reusing the handles and
    /// limiters whose labels and limits are unchanged.
    #[allow(clippy::type_complexity)]
    fn route_state(
        &mut self,
        table: &RoutingTable,
    ) -> (
        Vec<RouteMetrics>,
        Vec<RouteLimits>,
        HashMap<SeriesLabels, Arc<RouteSeries>>,
    ) {
        // Metric handles of routes that stay are reused: resolving them
        // takes the registry's locks and allocates the label strings.
        let mut metric_handles =
            HashMap::with_capacity_and_hasher(table.routes().len(), Default::default());
        let per_host = self.metrics.observe.per_host;
        let mut series = |labels: SeriesLabels| -> Arc<RouteSeries> {
            if let Some(existing) = metric_handles.get(&labels) {
                return Arc::clone(existing);
            }
            let handle = self
                .route_metric_handles
                .remove(&labels)
                .unwrap_or_else(|| Arc::new(RouteSeries::new(labels.clone())));
            metric_handles.insert(labels, handle.clone());
            handle
        };
        let route_metrics: Vec<RouteMetrics> = table
            .routes()
            .iter()
            .map(|r| {
                let labels = observe::labels_of(r, per_host);
                RouteMetrics {
                    canary: r
                        .canary
                        .as_ref()
                        .map(|c| series(observe::canary_labels(r, c, per_host))),
                    main: series(labels),
                }
            })
            .collect();
        let stale_metric_handles =
            std::mem::replace(&mut self.route_metric_handles, metric_handles);
        self.metrics.observe.series.publish(
            std::iter::once(self.metrics.unrouted.clone())
                .chain(self.route_metric_handles.values().cloned())
                .collect(),
        );
        let route_limits = self.route_limits(table);
        (route_metrics, route_limits, stale_metric_handles)
    }

    /// Brings the upstream-by-Service index (the endpoint fast path's) up
    /// to date with `published`: adds the upstreams from `from` on when the
    /// previous ones were all kept, else rebuilds it and returns the old one.
    fn index_by_service(
        &mut self,
        published: &Published,
        from: Option<usize>,
    ) -> HashMap<ObjectKey, Vec<Arc<Upstream>>> {
        let add = |index: &mut HashMap<ObjectKey, Vec<Arc<Upstream>>>, upstream: &Arc<Upstream>| {
            let service =
                ObjectKey::new(upstream.key.namespace.clone(), upstream.key.service.clone());
            index.entry(service).or_default().push(upstream.clone());
        };
        if let Some(from) = from {
            for upstream in published.upstreams.iter().skip(from) {
                add(&mut self.by_service, upstream);
            }
            return HashMap::default();
        }
        let mut index =
            HashMap::with_capacity_and_hasher(self.by_service.len(), Default::default());
        for (upstream, _) in self.upstreams.values() {
            add(&mut index, upstream);
        }
        std::mem::replace(&mut self.by_service, index)
    }

    /// Stores what the debug endpoints and the webhook read, keeping the
    /// first-seen time of every diagnostic that still stands; returns the
    /// state it replaced. The snapshot is shared, not copied (its maps are
    /// persistent).
    fn publish_inspect(&mut self, published: Arc<Published>) -> Arc<Inspect> {
        let now = SystemTime::now();
        let mut first_seen = BTreeMap::new();
        let diagnostics = self
            .last_diagnostics
            .iter()
            .map(|d| {
                let key = diagnostic_key(d);
                let since = self.first_seen.get(&key).copied().unwrap_or(now);
                first_seen.insert(key, since);
                Tracked::new(d.clone(), since)
            })
            .collect();
        self.first_seen = first_seen;
        self.inspect.swap(Arc::new(Inspect {
            generation: self.generation,
            snapshot: self.snapshot.clone(),
            last_good: self.last_good.clone(),
            options: Some(self.opts.clone()),
            published,
            diagnostics,
            gateway_status: self.gateway_status.clone(),
        }))
    }

    /// The limiters of every route, reusing those whose (Ingress, limit)
    /// is unchanged; empty when no route has limits.
    fn route_limits(&mut self, table: &RoutingTable) -> Vec<RouteLimits> {
        let mut rate = HashMap::default();
        let mut conns = HashMap::default();
        let mut globals = HashMap::default();
        let mut out = Vec::new();
        for (i, route) in table.routes().iter().enumerate() {
            let policy = &route.policy;
            if policy.rate.is_none() && policy.connections.is_none() && policy.global_rate.is_none()
            {
                continue;
            }
            if out.is_empty() {
                out = vec![RouteLimits::default(); table.routes().len()];
            }
            let limits = RouteLimits {
                rate: policy.rate.map(|spec| {
                    let key = (route.ingress.clone(), spec);
                    let limiter = rate
                        .get(&key)
                        .cloned()
                        .or_else(|| self.rate_limiters.remove(&key))
                        .unwrap_or_else(|| {
                            Arc::new(RequestLimiter::new(RateSpec {
                                requests: spec.requests,
                                per: spec.per,
                                burst: spec.burst,
                            }))
                        });
                    rate.insert(key, limiter.clone());
                    limiter
                }),
                global: policy.global_rate.as_ref().map(|limit| {
                    let object = intern(&format!("{}/{}", route.kind.as_str(), route.ingress));
                    let key = (object, GlobalRateLimit::clone(limit));
                    let limiter = globals
                        .get(&key)
                        .cloned()
                        .or_else(|| self.global_limiters.remove(&key))
                        .unwrap_or_else(|| {
                            Arc::new(GlobalLimiter::new(
                                &key.0,
                                limit,
                                self.global_store.clone(),
                                self.metrics.global_rate_limit.decisions(&key.0),
                            ))
                        });
                    globals.insert(key, limiter.clone());
                    limiter
                }),
                connections: policy.connections.map(|spec| {
                    let key = (route.ingress.clone(), spec);
                    let limiter = conns
                        .get(&key)
                        .cloned()
                        .or_else(|| self.conn_limiters.remove(&key))
                        .unwrap_or_else(|| Arc::new(ConnLimiter::new(spec.max)));
                    conns.insert(key, limiter.clone());
                    limiter
                }),
            };
            if let Some(slot) = out.get_mut(i) {
                *slot = limits;
            }
        }
        self.rate_limiters = rate;
        self.conn_limiters = conns;
        self.global_limiters = globals;
        out
    }

    /// The fast path: O(endpoints of the changed Services).
    fn update_endpoints(&mut self, services: &BTreeSet<ObjectKey>) {
        for upstream in services
            .iter()
            .filter_map(|s| self.by_service.get(s))
            .flatten()
        {
            let endpoints =
                config::resolve_upstream(&self.snapshot, &upstream.key).unwrap_or_default();
            if upstream.set_endpoints(&endpoints) {
                tracing::debug!(upstream = %upstream.label, endpoints = endpoints.len(), "endpoints updated");
            }
        }
        self.metrics.endpoint_updates.inc();
    }
}

#[cfg(test)]
mod tests;
