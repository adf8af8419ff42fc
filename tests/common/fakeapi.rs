//! A fake Kubernetes API server for tests and benchmarks.
//!
//! [`FakeApi`] serves plain HTTP/1.1 on `127.0.0.1` from its own thread and
//! tokio runtime, so it works from async tests, sync tests and benches alike.
//! Point the real kube-rs client (or the `tollgate` binary, through
//! `KUBECONFIG`) at it with [`FakeApi::write_kubeconfig`].
//!
//! # What is emulated
//!
//! - The resources of [`RESOURCES`] (core, `discovery.k8s.io`,
//!   `networking.k8s.io`, `coordination.k8s.io`, `events.k8s.io` and
//!   `tollgate.dev/v1alpha1` TrafficPolicy), under the real URL layout:
//!   `/api/v1/...` for the core group, `/apis/{group}/{version}/...`
//!   otherwise, all-namespaces and namespaced collections, single objects and
//!   the `status` subresource.
//! - LIST with `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`,
//!   `k in (a,b)`, `k notin (a,b)`), `fieldSelector` (`=`, `==`, `!=` on any
//!   dotted path such as `metadata.name` or `type`), `limit` + `continue`
//!   (opaque token; later pages report the first page's resourceVersion like
//!   the real consistent snapshot, they are read from the current state) and
//!   the metadata-only form (`Accept: ...;as=PartialObjectMetadataList`).
//! - WATCH (`watch=true`): newline-delimited JSON events; resume from a
//!   resourceVersion out of a bounded event log ([`EVENT_LOG_CAPACITY`]),
//!   `410 Expired` ERROR event when the version is older than the log (or
//!   than the last [`FakeApi::compact`]), synthetic ADDED events for
//!   `resourceVersion` `""`/`"0"`, `sendInitialEvents=true` (streaming lists,
//!   ends the initial events with the `k8s.io/initial-events-end` bookmark),
//!   BOOKMARK every [`BOOKMARK_INTERVAL`] with `allowWatchBookmarks=true`,
//!   `timeoutSeconds`, and the watch-cache selector transitions (an object
//!   that stops matching is sent as DELETED, one that starts as ADDED).
//! - GET, POST (incl. `generateName`), PUT (optimistic concurrency on
//!   `metadata.resourceVersion`), PATCH (merge, strategic treated as merge,
//!   server-side apply treated as merge that may create, JSON patch), DELETE
//!   (with `preconditions`) and DELETE of a collection; `dryRun=All`.
//!   Errors are `Status` objects with the real reasons (`NotFound`,
//!   `AlreadyExists`, `Conflict`, `Expired`, `BadRequest`, `Invalid`, ...).
//! - Server-maintained metadata: a global resourceVersion counter, `uid`,
//!   `creationTimestamp`, `generation` (1 on create, +1 when anything but
//!   `metadata`/`status` changes). Writes through HTTP that change nothing
//!   are no-ops (no new resourceVersion, no event) like on a real apiserver.
//!   For kinds with a status subresource, writes to the main resource keep
//!   the stored `status` (and a create drops it), while writes to `/status`
//!   change only `status`.
//! - Discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/{g}[/{v}]`,
//!   legacy non-aggregated format) and `/healthz`, `/livez`, `/readyz`.
//! - A custom resource whose CRD is not installed
//!   ([`FakeApi::set_installed`]): every request for it answers `404` with
//!   the apiserver's "could not find the requested resource" Status, and it
//!   leaves discovery; its stored objects stay, hidden, until installed again.
//! - Test hooks: every write to a `status` subresource is recorded with its
//!   body ([`FakeApi::status_writes`]), so a test sees each status a
//!   controller wrote, blanks included; LIST answers of a resource can be
//!   delayed ([`FakeApi::delay_lists`]) to make an initial sync slow; a
//!   change can be slipped in just before the next status write to an
//!   object ([`FakeApi::before_next_status_write`]), as another writer
//!   racing the controller would.
//!
//! # Limits
//!
//! No authentication or authorization (any token is accepted), no
//! validation or defaulting of object bodies, no admission, no
//! finalizers/`deletionTimestamp` (deletes are immediate), no garbage
//! collection, no `managedFields` (server-side apply does not remove fields a
//! manager stopped sending; strategic merge does not merge lists by key),
//! namespaces need not exist, `v1` and `events.k8s.io/v1` Events are two
//! separate stores, list `resourceVersion`/`resourceVersionMatch` are
//! ignored (always the latest state), field selectors accept any path, and
//! HTTP/2, protobuf, YAML bodies and aggregated discovery are not spoken.
//! [`FakeApi::apply`] (the test-side write) always creates a new
//! resourceVersion and event, even when nothing changed.
#![allow(dead_code)]
// Test scaffolding: the store is guarded by a plain mutex.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Interval between BOOKMARK events on watches that asked for them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);
/// Number of change events kept for watches that resume from a
/// resourceVersion; older versions get `410 Expired`.
pub const EVENT_LOG_CAPACITY: usize = 100_000;
/// Watch duration when the client sends no `timeoutSeconds`.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// Upper bound for binding, stopping and restarting the listener.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// One servable resource type.
#[derive(Debug)]
pub struct ResourceType {
    /// API group, `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    /// `version` for the core group, `group/version` otherwise.
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Whether the kind has a `status` subresource (main-resource writes then
    /// keep the stored status).
    pub has_status: bool,
}

const fn rt(
    group: &'static str,
    version: &'static str,
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    has_status: bool,
) -> ResourceType {
    ResourceType {
        group,
        version,
        api_version,
        kind,
        plural,
        namespaced,
        has_status,
    }
}

/// The resource types the fake serves.
#[rustfmt::skip]
pub const RESOURCES: &[ResourceType] = &[
    rt("", "v1", "v1", "Service", "services", true, true),
    rt("", "v1", "v1", "Secret", "secrets", true, false),
    rt("", "v1", "v1", "ConfigMap", "configmaps", true, false),
    rt("", "v1", "v1", "Event", "events", true, false),
    rt("discovery.k8s.io", "v1", "discovery.k8s.io/v1", "EndpointSlice", "endpointslices", true, false),
    rt("networking.k8s.io", "v1", "networking.k8s.io/v1", "Ingress", "ingresses", true, true),
    rt("networking.k8s.io", "v1", "networking.k8s.io/v1", "IngressClass", "ingressclasses", false, false),
    rt("coordination.k8s.io", "v1", "coordination.k8s.io/v1", "Lease", "leases", true, false),
    rt("events.k8s.io", "v1", "events.k8s.io/v1", "Event", "events", true, false),
    rt("tollgate.dev", "v1alpha1", "tollgate.dev/v1alpha1", "TrafficPolicy", "trafficpolicies", true, true),
    rt("", "v1", "v1", "Namespace", "namespaces", false, true),
    rt("gateway.networking.k8s.io", "v1", "gateway.networking.k8s.io/v1", "GatewayClass", "gatewayclasses", false, true),
    rt("gateway.networking.k8s.io", "v1", "gateway.networking.k8s.io/v1", "Gateway", "gateways", true, true),
    rt("gateway.networking.k8s.io", "v1", "gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", true, true),
    rt("gateway.networking.k8s.io", "v1", "gateway.networking.k8s.io/v1", "GRPCRoute", "grpcroutes", true, true),
    rt("gateway.networking.k8s.io", "v1", "gateway.networking.k8s.io/v1", "ReferenceGrant", "referencegrants", true, false),
    rt("gateway.networking.k8s.io", "v1beta1", "gateway.networking.k8s.io/v1beta1", "ReferenceGrant", "referencegrants", true, false),
];

/// Whether `absent` (plurals, or `plural.version` for one version only)
/// uninstalls a resource type.
fn is_absent(absent: &[String], rt: &ResourceType) -> bool {
    absent
        .iter()
        .any(|p| *p == rt.plural || *p == format!("{}.{}", rt.plural, rt.version))
}

fn res_by_kind(api_version: &str, kind: &str) -> usize {
    RESOURCES
        .iter()
        .position(|r| r.api_version == api_version && r.kind == kind)
        .unwrap_or_else(|| panic!("fakeapi: unsupported resource {api_version} {kind}"))
}

fn res_by_path(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// `plural` or `plural.group`, as in apiserver messages.
fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.to_string()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

// ---------------------------------------------------------------------------
// Store

/// A stored object with its serialization (made once per write).
struct Obj {
    value: Value,
    json: Bytes,
}

impl Obj {
    fn new(value: Value) -> Arc<Obj> {
        let json = Bytes::from(serde_json::to_vec(&value).expect("serialize object"));
        Arc::new(Obj { value, json })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

struct Event {
    rv: u64,
    res: usize,
    kind: EventType,
    /// New state; for DELETED the last state with the deletion's version.
    obj: Arc<Obj>,
    /// Previous state (MODIFIED and DELETED).
    prev: Option<Arc<Obj>>,
}

/// (namespace, name); namespace is `""` for cluster-scoped kinds.
type Key = (String, String);

struct State {
    /// Last resourceVersion handed out.
    rv: u64,
    /// One map per entry of [`RESOURCES`].
    objects: Vec<BTreeMap<Key, Arc<Obj>>>,
    log: VecDeque<Arc<Event>>,
    /// Watches (and continue tokens) from a version below this are too old.
    floor: u64,
    /// Bumped by compact(): open watches end.
    epoch: u64,
    uids: u64,
}

impl State {
    fn new() -> State {
        State {
            rv: 0,
            objects: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
            log: VecDeque::new(),
            floor: 0,
            epoch: 0,
            uids: 0,
        }
    }

    fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!("fa4e0000-0000-4000-8000-{:012x}", self.uids)
    }

    fn push_event(&mut self, event: Event) {
        self.log.push_back(Arc::new(event));
        while self.log.len() > EVENT_LOG_CAPACITY {
            if let Some(old) = self.log.pop_front() {
                self.floor = self.floor.max(old.rv);
            }
        }
    }

    /// Stores a prepared object under a new resourceVersion and logs
    /// ADDED or MODIFIED.
    fn store(&mut self, res: usize, mut value: Value) -> Arc<Obj> {
        self.rv += 1;
        let rv = self.rv;
        value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let key = key_of(&value);
        let obj = Obj::new(value);
        let prev = self.objects[res].insert(key, obj.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.push_event(Event {
            rv,
            res,
            kind,
            obj: obj.clone(),
            prev,
        });
        obj
    }

    /// Removes an object and logs DELETED; returns its last state with the
    /// deletion's resourceVersion.
    fn remove(&mut self, res: usize, key: &Key) -> Option<Arc<Obj>> {
        let prev = self.objects[res].remove(key)?;
        self.rv += 1;
        let rv = self.rv;
        let mut value = prev.value.clone();
        value["metadata"]["resourceVersion"] = Value::String(rv.to_string());
        let obj = Obj::new(value);
        self.push_event(Event {
            rv,
            res,
            kind: EventType::Deleted,
            obj: obj.clone(),
            prev: Some(prev),
        });
        Some(obj)
    }

    /// Fills the server-maintained fields of `value` (all but
    /// resourceVersion, which [`State::store`] assigns).
    fn prepare(&mut self, res: usize, value: &mut Value, prev: Option<&Value>, from_test: bool) {
        let rt = &RESOURCES[res];
        let Value::Object(map) = value else {
            panic!("fakeapi: object must be a JSON object");
        };
        map.insert("apiVersion".into(), rt.api_version.into());
        map.insert("kind".into(), rt.kind.into());
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        let meta = meta.as_object_mut().expect("metadata object");
        if !rt.namespaced {
            meta.remove("namespace");
        }
        meta.remove("resourceVersion");
        let prev_meta = prev.and_then(|p| p.get("metadata"));
        let prev_str = |field: &str| {
            prev_meta
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let uid = match prev_str("uid") {
            Some(uid) => uid,
            None => match meta.get("uid").and_then(Value::as_str) {
                Some(uid) if from_test && !uid.is_empty() => uid.to_string(),
                _ => self.new_uid(),
            },
        };
        meta.insert("uid".into(), uid.into());
        let given_ts = meta
            .get("creationTimestamp")
            .and_then(Value::as_str)
            .filter(|_| from_test)
            .map(str::to_string);
        let ts = given_ts
            .or_else(|| prev_str("creationTimestamp"))
            .unwrap_or_else(now_rfc3339);
        meta.insert("creationTimestamp".into(), ts.into());
        let generation = match prev {
            None => 1,
            Some(prev) => {
                let old = prev_meta
                    .and_then(|m| m.get("generation"))
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                if spec_equal(map, prev) {
                    old
                } else {
                    old + 1
                }
            }
        };
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            meta.insert("generation".into(), generation.into());
        }
    }

    /// Events after `after` for one resource type (cheap: no selector
    /// evaluation under the lock).
    fn events_after(&self, after: u64, res: usize) -> Vec<Arc<Event>> {
        let start = self.log.partition_point(|e| e.rv <= after);
        self.log
            .range(start..)
            .filter(|e| e.res == res)
            .cloned()
            .collect()
    }
}

fn key_of(value: &Value) -> Key {
    let meta = &value["metadata"];
    (
        meta["namespace"].as_str().unwrap_or("").to_string(),
        meta["name"].as_str().unwrap_or("").to_string(),
    )
}

/// Equality of everything but `metadata` and `status` (what bumps
/// `metadata.generation`).
fn spec_equal(new: &Map<String, Value>, old: &Value) -> bool {
    let Some(old) = old.as_object() else {
        return false;
    };
    let skip = |k: &String| k != "metadata" && k != "status";
    let a = new.iter().filter(|(k, _)| skip(k));
    let b = old.iter().filter(|(k, _)| skip(k));
    a.count() == b.count()
        && new
            .iter()
            .filter(|(k, _)| skip(k))
            .all(|(k, v)| old.get(k) == Some(v))
}

fn rv_of(value: &Value) -> Option<&str> {
    value["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------
// Shared state and the public handle

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change; watchers wait on it.
    changes: tokio::sync::watch::Sender<u64>,
    requests: Mutex<Vec<(String, String, String)>>,
    fail: Mutex<Option<String>>,
    /// Plurals of resources that are "not installed" (404).
    absent: Mutex<Vec<String>>,
    /// Delay before answering each LIST (one page) of a resource, by plural.
    list_delays: Mutex<Vec<(String, Duration)>>,
    /// Every write to a `status` subresource: (method, path, body).
    status_writes: Mutex<Vec<(String, String, Value)>>,
    /// Changes made to an object (plural, name) just before the next
    /// status PATCH to it is processed: [`FakeApi::before_next_status_write`].
    interleaved: Mutex<Vec<Interleaved>>,
    names: AtomicU64,
}

/// One [`FakeApi::before_next_status_write`] change.
type Interleaved = (String, String, Box<dyn FnOnce(&mut Value) + Send>);

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

struct Listening {
    task: tokio::task::JoinHandle<()>,
    /// Disconnects once the accept loop and every connection task are gone.
    alive: mpsc::Receiver<()>,
}

/// A fake Kubernetes API server; see the module documentation.
/// Dropping it stops the server thread.
pub struct FakeApi {
    shared: Arc<Shared>,
    addr: SocketAddr,
    rt: tokio::runtime::Handle,
    listening: Mutex<Option<Listening>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeApi {
    /// Starts the server on `127.0.0.1:0` in its own thread and runtime.
    pub fn start() -> FakeApi {
        let (handle_tx, handle_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fakeapi".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("fakeapi-worker")
                    .enable_all()
                    .build()
                    .expect("fakeapi runtime");
                handle_tx
                    .send(runtime.handle().clone())
                    .expect("send handle");
                runtime.block_on(async {
                    let _ = stop_rx.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn fakeapi thread");
        let rt = handle_rx.recv().expect("fakeapi runtime handle");
        let (changes, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            changes,
            requests: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
            absent: Mutex::new(Vec::new()),
            list_delays: Mutex::new(Vec::new()),
            status_writes: Mutex::new(Vec::new()),
            interleaved: Mutex::new(Vec::new()),
            names: AtomicU64::new(0),
        });
        let mut fake = FakeApi {
            shared,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            rt,
            listening: Mutex::new(None),
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        let (listening, addr) = fake.listen(fake.addr);
        fake.addr = addr;
        *fake.listening.lock().unwrap() = Some(listening);
        fake
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig (server = [`FakeApi::url`], a dummy token,
    /// context namespace `default`) into `dir`; returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("fakeapi.kubeconfig");
        let text = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: fakeapi\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: fakeapi\n  user:\n    token: fakeapi-token\n\
             contexts:\n\
             - name: fakeapi\n  context:\n    cluster: fakeapi\n    user: fakeapi\n    namespace: default\n\
             current-context: fakeapi\n",
            url = self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Create-or-replace by apiVersion/kind/namespace/name (namespace
    /// defaults to `default` for namespaced kinds). Assigns
    /// `resourceVersion`, `uid`, `creationTimestamp` (a given one is kept)
    /// and `generation`; the given `status` is stored as is. Always emits
    /// ADDED or MODIFIED. Returns the stored object.
    pub fn apply(&self, object: Value) -> Value {
        let obj = {
            let mut state = self.shared.state();
            apply_locked(&mut state, object)
        };
        self.shared.notify();
        obj.value.clone()
    }

    /// [`FakeApi::apply`] for many objects under one lock.
    pub fn apply_many(&self, objects: Vec<Value>) {
        {
            let mut state = self.shared.state();
            for object in objects {
                apply_locked(&mut state, object);
            }
        }
        self.shared.notify();
    }

    /// Deletes an object (namespace ignored for cluster-scoped kinds);
    /// emits DELETED. Returns whether it existed.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
        let res = res_by_kind(api_version, kind);
        let key = (ns_key(res, namespace), name.to_string());
        let removed = self.shared.state().remove(res, &key).is_some();
        if removed {
            self.shared.notify();
        }
        removed
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = res_by_kind(api_version, kind);
        let key = (ns_key(res, namespace), name.to_string());
        self.shared.state().objects[res]
            .get(&key)
            .map(|o| o.value.clone())
    }

    /// All objects of a kind, ordered by namespace and name.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let res = res_by_kind(api_version, kind);
        self.shared.state().objects[res]
            .values()
            .map(|o| o.value.clone())
            .collect()
    }

    /// The current (last handed out) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state().rv
    }

    /// Every request received so far: (method, path, raw query).
    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every write (PATCH, PUT) to a `status` subresource received so far,
    /// answered or not: (method, path, JSON body; `null` when not JSON).
    pub fn status_writes(&self) -> Vec<(String, String, Value)> {
        self.shared
            .status_writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Slips a change in before the next status PATCH to object `name` of
    /// resource `plural` (any namespace): `change` edits the stored
    /// object, which is stored under a new resourceVersion (with its watch
    /// event) before the PATCH is processed, as if another writer had
    /// come first. A PATCH that names the older resourceVersion then gets
    /// `409 Conflict`.
    pub fn before_next_status_write(
        &self,
        plural: &str,
        name: &str,
        change: impl FnOnce(&mut Value) + Send + 'static,
    ) {
        self.shared
            .interleaved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((plural.to_string(), name.to_string(), Box::new(change)));
    }

    /// Delays the answer to every LIST request (each page) of one resource
    /// (plural, e.g. `"endpointslices"`) by `delay` (`None` clears): a slow
    /// initial sync of a large cluster. Watches are not delayed.
    pub fn delay_lists(&self, plural: &str, delay: Option<Duration>) {
        let mut delays = self
            .shared
            .list_delays
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        delays.retain(|(p, _)| p != plural);
        if let Some(delay) = delay {
            delays.push((plural.to_string(), delay));
        }
    }

    /// Forgets the watch history: watches, and continue tokens, from any
    /// version handed out so far get `410 Expired`; open watch streams end.
    /// (The resourceVersion counter moves on by one so that a fresh list
    /// returns a version that can be watched.)
    pub fn compact(&self) {
        {
            let mut state = self.shared.state();
            state.rv += 1;
            state.floor = state.rv;
            state.log.clear();
            state.epoch += 1;
        }
        self.shared.notify();
    }

    /// Simulates an outage: closes the listener and every open connection
    /// (watch streams included). Connections are refused until
    /// [`FakeApi::resume`]. The stored state is kept.
    pub fn pause(&self) {
        assert!(
            self.stop_listening(),
            "fakeapi: connections did not close within {CONTROL_TIMEOUT:?}"
        );
    }

    /// Closes the listener and all connections; false if they did not
    /// close in time.
    fn stop_listening(&self) -> bool {
        let listening = self
            .listening
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(listening) = listening else {
            return true;
        };
        listening.task.abort();
        !matches!(
            listening.alive.recv_timeout(CONTROL_TIMEOUT),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    }

    /// Listens again on the same port, with the same state.
    pub fn resume(&self) {
        let mut guard = self.listening.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let (listening, _) = self.listen(self.addr);
            *guard = Some(listening);
        }
    }

    /// Makes every request for one resource (plural, e.g. `"ingresses"`)
    /// fail with `500 InternalError` until cleared with `None`.
    pub fn fail_resource(&self, plural: Option<&str>) {
        *self.shared.fail.lock().unwrap_or_else(|e| e.into_inner()) = plural.map(str::to_string);
    }

    /// Installs or uninstalls a resource (plural, e.g. `"trafficpolicies"`,
    /// or `plural.version` for one version, e.g. `"referencegrants.v1"`),
    /// as installing or deleting its CRD would: while uninstalled, every
    /// request for it gets `404 NotFound` and discovery leaves it out.
    pub fn set_installed(&self, plural: &str, installed: bool) {
        let mut absent = self.shared.absent.lock().unwrap_or_else(|e| e.into_inner());
        absent.retain(|p| p != plural);
        if !installed {
            absent.push(plural.to_string());
        }
    }

    fn listen(&self, addr: SocketAddr) -> (Listening, SocketAddr) {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (alive_tx, alive_rx) = mpsc::channel::<()>();
        let shared = self.shared.clone();
        let task = self.rt.spawn(async move {
            let alive = alive_tx;
            match bind(addr).await {
                Ok(listener) => {
                    let _ = ready_tx.send(listener.local_addr());
                    accept_loop(listener, shared, alive).await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        let bound = ready_rx
            .recv_timeout(CONTROL_TIMEOUT)
            .expect("fakeapi: listener task did not report")
            .unwrap_or_else(|e| panic!("fakeapi: cannot listen on {addr}: {e}"));
        (
            Listening {
                task,
                alive: alive_rx,
            },
            bound,
        )
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop_listening();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn ns_key(res: usize, namespace: &str) -> String {
    if RESOURCES[res].namespaced {
        namespace.to_string()
    } else {
        String::new()
    }
}

fn apply_locked(state: &mut State, mut object: Value) -> Arc<Obj> {
    let api_version = object["apiVersion"]
        .as_str()
        .expect("fakeapi: apply needs apiVersion")
        .to_string();
    let kind = object["kind"]
        .as_str()
        .expect("fakeapi: apply needs kind")
        .to_string();
    let res = res_by_kind(&api_version, &kind);
    assert!(
        object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()),
        "fakeapi: apply needs metadata.name"
    );
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    if RESOURCES[res].namespaced && namespace.is_empty() {
        object["metadata"]["namespace"] = "default".into();
    }
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("");
    let key = (ns_key(res, namespace), name);
    let prev = state.objects[res].get(&key).cloned();
    state.prepare(res, &mut object, prev.as_ref().map(|p| &p.value), true);
    state.store(res, object)
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + CONTROL_TIMEOUT;
    loop {
        let attempt = (|| {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        })();
        match attempt {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// Accepts connections until aborted; aborting drops the listener and the
/// JoinSet, which aborts every connection task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, alive: mpsc::Sender<()>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    let alive = alive.clone();
                    conns.spawn(async move {
                        let _alive = alive;
                        serve_connection(stream, shared).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

// ---------------------------------------------------------------------------
// HTTP plumbing

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn json_response(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("response")
}

fn value_response(code: StatusCode, value: &Value) -> Response<Body> {
    json_response(code, serde_json::to_vec(value).expect("serialize"))
}

/// A failure answered with a `Status` object.
#[derive(Debug)]
struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(422, "Invalid", message)
    }

    fn with_details(mut self, rt: &ResourceType, name: &str) -> ApiError {
        self.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
        self
    }

    fn not_found(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(rt)),
        )
        .with_details(rt, name)
    }

    fn already_exists(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(rt)),
        )
        .with_details(rt, name)
    }

    fn conflict(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                qualified(rt)
            ),
        )
        .with_details(rt, name)
    }

    fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    fn to_value(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    fn into_response(self) -> Response<Body> {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        value_response(code, &self.to_value())
    }
}

type ApiResult = Result<Response<Body>, ApiError>;

/// Decodes `%XX` (and `+` as a space in query strings).
fn pct_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let bad = || ApiError::bad_request(format!("malformed query parameter {part:?}"));
            pairs.push((
                pct_decode(k, true).ok_or_else(bad)?,
                pct_decode(v, true).ok_or_else(bad)?,
            ));
        }
        Ok(Query(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.get("dryRun").is_some_and(|v| !v.is_empty())
    }
}

enum Route {
    Version,
    Health,
    ApiVersions,
    GroupList,
    Group(String),
    ResourceList(String, String),
    Collection {
        res: usize,
        ns: Option<String>,
    },
    Object {
        res: usize,
        ns: Option<String>,
        name: String,
        status: bool,
    },
}

fn route(path: &str) -> Option<Route> {
    let segs = path
        .trim_matches('/')
        .split('/')
        .map(|s| pct_decode(s, false))
        .collect::<Option<Vec<String>>>()?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["version"] => Some(Route::Version),
        ["healthz" | "livez" | "readyz", ..] => Some(Route::Health),
        ["api"] => Some(Route::ApiVersions),
        ["apis"] => Some(Route::GroupList),
        ["api", version, rest @ ..] => resource_route("", version, rest),
        ["apis", group] => RESOURCES
            .iter()
            .any(|r| r.group == *group)
            .then(|| Route::Group(group.to_string())),
        ["apis", "", ..] => None,
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest),
        _ => None,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    if !RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
    {
        return None;
    }
    let (ns, plural, tail) = match rest {
        [] => return Some(Route::ResourceList(group.into(), version.into())),
        ["namespaces", ns, plural, tail @ ..] if !ns.is_empty() => (Some(*ns), *plural, tail),
        [plural, tail @ ..] => (None, *plural, tail),
    };
    let res = res_by_path(group, version, plural)?;
    let rt = &RESOURCES[res];
    if ns.is_some() && !rt.namespaced {
        return None;
    }
    let ns = ns.map(str::to_string);
    match tail {
        [] => Some(Route::Collection { res, ns }),
        [name] | [name, "status"]
            if !name.is_empty()
                && (ns.is_some() || !rt.namespaced)
                && (tail.len() == 1 || rt.has_status) =>
        {
            Some(Route::Object {
                res,
                ns,
                name: name.to_string(),
                status: tail.len() == 2,
            })
        }
        _ => None,
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((method.to_string(), path.clone(), query.clone()));
    match dispatch(&shared, req, &method, &path, &query).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
    query: &str,
) -> ApiResult {
    let q = Query::parse(query)?;
    let Some(route) = route(path) else {
        return Err(ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({method} {path})"),
        ));
    };
    let res = match &route {
        Route::Collection { res, .. } | Route::Object { res, .. } => Some(*res),
        _ => None,
    };
    let absent = shared
        .absent
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if res.is_some_and(|res| is_absent(&absent, &RESOURCES[res])) {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if let Some(res) = res {
        let failing = shared
            .fail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if failing.as_deref() == Some(RESOURCES[res].plural) {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!(
                    "Internal error occurred: fakeapi: {} made to fail",
                    RESOURCES[res].plural
                ),
            ));
        }
    }
    let meta_only = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))?
        .to_bytes();
    if let Route::Object { status: true, .. } = &route {
        if method == Method::PATCH || method == Method::PUT {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            shared
                .status_writes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((method.to_string(), path.to_string(), value));
        }
    }
    if let (Route::Collection { res, .. }, &Method::GET) = (&route, method) {
        let delay = shared
            .list_delays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| p == RESOURCES[*res].plural)
            .map(|(_, d)| *d);
        if let Some(delay) = delay.filter(|_| !q.flag("watch")) {
            tokio::time::sleep(delay).await;
        }
    }
    let ctx = Ctx {
        shared,
        q: &q,
        meta_only,
    };
    match (route, method) {
        (Route::Version, &Method::GET) => Ok(value_response(StatusCode::OK, &version_info())),
        (Route::Health, &Method::GET) => Ok(Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(full("ok"))
            .expect("response")),
        (Route::ApiVersions, &Method::GET) => Ok(value_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]}),
        )),
        (Route::GroupList, &Method::GET) => {
            Ok(value_response(StatusCode::OK, &group_list(&absent)))
        }
        (Route::Group(g), &Method::GET) => Ok(value_response(StatusCode::OK, &api_group(&g))),
        (Route::ResourceList(g, v), &Method::GET) => Ok(value_response(
            StatusCode::OK,
            &resource_list(&g, &v, &absent),
        )),
        (Route::Collection { res, ns }, &Method::GET) => {
            if q.flag("watch") {
                ctx.watch(res, ns)
            } else {
                ctx.list(res, ns)
            }
        }
        (Route::Collection { res, ns }, &Method::POST) => ctx.create(res, ns, &body),
        (Route::Collection { res, ns }, &Method::DELETE) => ctx.delete_collection(res, ns),
        (Route::Object { res, ns, name, .. }, &Method::GET) => ctx.get(res, ns, &name),
        (
            Route::Object {
                res,
                ns,
                name,
                status,
            },
            &Method::PUT,
        ) => ctx.replace(res, ns, &name, status, &body),
        (
            Route::Object {
                res,
                ns,
                name,
                status,
            },
            &Method::PATCH,
        ) => ctx.patch(res, ns, &name, status, &content_type, &body),
        (
            Route::Object {
                res,
                ns,
                name,
                status: false,
            },
            &Method::DELETE,
        ) => ctx.delete(res, ns, &name, &body),
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
        )),
    }
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-fakeapi",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn api_group(group: &str) -> Value {
    let mut versions: Vec<&str> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(|r| r.version)
        .collect();
    versions.dedup();
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    })
}

fn group_list(absent: &[String]) -> Value {
    let mut groups: Vec<&str> = RESOURCES
        .iter()
        .filter(|r| !is_absent(absent, r))
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let mut g = api_group(g);
            if let Value::Object(m) = &mut g {
                m.remove("kind");
                m.remove("apiVersion");
            }
            g
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(group: &str, version: &str, absent: &[String]) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .filter(|r| !is_absent(absent, r))
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.kind.to_ascii_lowercase(),
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }));
        if r.has_status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

// ---------------------------------------------------------------------------
// Selectors

#[derive(Debug)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug)]
struct FieldReq {
    path: Vec<String>,
    value: String,
    negate: bool,
}

/// Namespace and selectors of one list or watch.
#[derive(Debug)]
struct Filter {
    res: usize,
    ns: Option<String>,
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
    meta_only: bool,
}

/// Splits on commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn parse_labels(s: &str) -> Result<Vec<LabelReq>, ApiError> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(reqs);
    }
    for term in split_terms(s) {
        let term = term.trim();
        let bad = || ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
        let req = if let Some(key) = term.strip_prefix('!') {
            LabelReq::NotExists(key.trim().to_string())
        } else if let Some(open) = term.find('(') {
            let values = term[open + 1..].strip_suffix(')').ok_or_else(bad)?;
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
            let mut head = term[..open].split_whitespace();
            let (Some(key), Some(op), None) = (head.next(), head.next(), head.next()) else {
                return Err(bad());
            };
            match op {
                "in" => LabelReq::In(key.to_string(), values),
                "notin" => LabelReq::NotIn(key.to_string(), values),
                _ => return Err(bad()),
            }
        } else if let Some((k, v)) = term.split_once("!=") {
            LabelReq::Ne(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
        } else {
            LabelReq::Exists(term.to_string())
        };
        let key = match &req {
            LabelReq::Eq(k, _)
            | LabelReq::Ne(k, _)
            | LabelReq::In(k, _)
            | LabelReq::NotIn(k, _)
            | LabelReq::Exists(k)
            | LabelReq::NotExists(k) => k,
        };
        if !valid_key(key) {
            return Err(bad());
        }
        reqs.push(req);
    }
    Ok(reqs)
}

fn parse_fields(s: &str) -> Result<Vec<FieldReq>, ApiError> {
    let mut reqs = Vec::new();
    if s.trim().is_empty() {
        return Ok(reqs);
    }
    for term in s.split(',') {
        let term = term.trim();
        let (path, value, negate) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (k, v, false)
        } else {
            return Err(ApiError::bad_request(format!(
                "invalid field selector: {term:?}"
            )));
        };
        let path = path.trim();
        if !valid_key(path) {
            return Err(ApiError::bad_request(format!(
                "invalid field selector: {term:?}"
            )));
        }
        reqs.push(FieldReq {
            path: path.split('.').map(str::to_string).collect(),
            value: value.trim().to_string(),
            negate,
        });
    }
    Ok(reqs)
}

impl Filter {
    fn new(res: usize, ns: Option<String>, q: &Query, meta_only: bool) -> Result<Filter, ApiError> {
        Ok(Filter {
            res,
            ns,
            labels: parse_labels(q.get("labelSelector").unwrap_or(""))?,
            fields: parse_fields(q.get("fieldSelector").unwrap_or(""))?,
            meta_only,
        })
    }

    fn matches(&self, value: &Value) -> bool {
        let meta = &value["metadata"];
        if let Some(ns) = &self.ns {
            if meta["namespace"].as_str() != Some(ns.as_str()) {
                return false;
            }
        }
        let labels = meta["labels"].as_object();
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|req| match req {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|req| {
                let mut v = value;
                for seg in &req.path {
                    v = &v[seg.as_str()];
                }
                let actual = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (actual == req.value) != req.negate
            })
    }

    /// The JSON of an object as this request wants it.
    fn render(&self, obj: &Obj) -> Bytes {
        if self.meta_only {
            Bytes::from(serde_json::to_vec(&partial(&obj.value)).expect("serialize"))
        } else {
            obj.json.clone()
        }
    }

    fn render_value(&self, value: &Value) -> Vec<u8> {
        if self.meta_only {
            serde_json::to_vec(&partial(value)).expect("serialize")
        } else {
            serde_json::to_vec(value).expect("serialize")
        }
    }

    /// Appends the watch line for `event` if this watch sees it (with the
    /// watch cache's transitions when the selectors stop or start matching).
    fn write_event(&self, event: &Event, out: &mut Vec<u8>) {
        if event.res != self.res {
            return;
        }
        let cur = event.kind != EventType::Deleted && self.matches(&event.obj.value);
        let old = event.prev.as_ref().is_some_and(|p| self.matches(&p.value));
        let (kind, json) = match (cur, old) {
            (false, false) => return,
            (true, false) => ("ADDED", self.render(&event.obj)),
            (true, true) => ("MODIFIED", self.render(&event.obj)),
            (false, true) if event.kind == EventType::Deleted => {
                ("DELETED", self.render(&event.obj))
            }
            (false, true) => {
                let prev = event.prev.as_ref().expect("prev");
                let mut value = prev.value.clone();
                value["metadata"]["resourceVersion"] = Value::String(event.rv.to_string());
                ("DELETED", Bytes::from(self.render_value(&value)))
            }
        };
        write_line(out, kind, &json);
    }
}

fn write_line(out: &mut Vec<u8>, kind: &str, object: &[u8]) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
}

fn partial(value: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": value["metadata"],
    })
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn encode_continue(rv: u64, key: &Key) -> String {
    format!("{rv}-{}-{}", hex(&key.0), hex(&key.1))
}

fn decode_continue(token: &str) -> Option<(u64, Key)> {
    let mut parts = token.split('-');
    let rv = parts.next()?.parse().ok()?;
    let ns = unhex(parts.next()?)?;
    let name = unhex(parts.next()?)?;
    parts.next().is_none().then_some((rv, (ns, name)))
}

// ---------------------------------------------------------------------------
// Request handlers

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    q: &'a Query,
    meta_only: bool,
}

fn parse_object(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("request body must be a JSON object"));
    }
    Ok(value)
}

/// Checks apiVersion/kind (when given) and name/namespace of a body
/// against the URL; fills in the namespace.
fn check_identity(
    res: usize,
    ns: &Option<String>,
    name: Option<&str>,
    value: &mut Value,
) -> Result<(), ApiError> {
    let rt = &RESOURCES[res];
    if let Some(av) = value["apiVersion"].as_str() {
        if av != rt.api_version {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version
            )));
        }
    }
    if let Some(kind) = value["kind"].as_str() {
        if kind != rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            )));
        }
    }
    if !value["metadata"].is_object() {
        value["metadata"] = json!({});
    }
    if let Some(name) = name {
        match value["metadata"]["name"].as_str() {
            None | Some("") => value["metadata"]["name"] = name.into(),
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
        }
    }
    if let Some(ns) = ns {
        match value["metadata"]["namespace"].as_str() {
            None | Some("") => value["metadata"]["namespace"] = ns.as_str().into(),
            Some(n) if n == ns => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ))
            }
        }
    }
    Ok(())
}

fn set_status(target: &mut Value, status: Option<&Value>) {
    if let Value::Object(map) = target {
        match status {
            Some(s) => {
                map.insert("status".into(), s.clone());
            }
            None => {
                map.remove("status");
            }
        }
    }
}

impl Ctx<'_> {
    fn object_key(&self, res: usize, ns: &Option<String>, name: &str) -> Key {
        (ns_key(res, ns.as_deref().unwrap_or("")), name.to_string())
    }

    fn respond(&self, code: StatusCode, obj: &Value) -> Response<Body> {
        if self.meta_only {
            value_response(code, &partial(obj))
        } else {
            value_response(code, obj)
        }
    }

    fn list(&self, res: usize, ns: Option<String>) -> ApiResult {
        let rt = &RESOURCES[res];
        let filter = Filter::new(res, ns, self.q, self.meta_only)?;
        let limit = match self.q.get("limit") {
            None | Some("") => 0,
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        };
        let cont = match self.q.get("continue") {
            None | Some("") => None,
            Some(c) => Some(
                decode_continue(c)
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?,
            ),
        };
        let (items, rv, next) = {
            let state = self.shared.state();
            let rv = match &cont {
                Some((rv, _)) if *rv < state.floor => {
                    return Err(ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. \
                         You can start a new list without the continue parameter.",
                    ))
                }
                Some((rv, _)) => *rv,
                None => state.rv,
            };
            let lower = match (&cont, &filter.ns) {
                (Some((_, key)), _) => Bound::Excluded(key.clone()),
                (None, Some(ns)) => Bound::Included((ns.clone(), String::new())),
                (None, None) => Bound::Unbounded,
            };
            let mut items = Vec::new();
            let mut next = None;
            for (key, obj) in state.objects[res].range((lower, Bound::Unbounded)) {
                if filter.ns.as_ref().is_some_and(|ns| *ns != key.0) {
                    break;
                }
                if !filter.matches(&obj.value) {
                    continue;
                }
                if limit > 0 && items.len() == limit {
                    let last = items.last().map(|o: &Arc<Obj>| key_of(&o.value));
                    next = last.map(|k| encode_continue(rv, &k));
                    break;
                }
                items.push(obj.clone());
            }
            (items, rv, next)
        };
        let (api_version, kind) = if self.meta_only {
            (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadataList".to_string(),
            )
        } else {
            (rt.api_version.to_string(), format!("{}List", rt.kind))
        };
        let size: usize = items.iter().map(|o| o.json.len() + 1).sum();
        let mut out = Vec::with_capacity(size + 256);
        let cont = next
            .map(|c| format!(",\"continue\":\"{c}\""))
            .unwrap_or_default();
        write!(
            out,
            "{{\"apiVersion\":\"{api_version}\",\"kind\":\"{kind}\",\"metadata\":{{\"resourceVersion\":\"{rv}\"{cont}}},\"items\":["
        )
        .expect("write");
        for (i, obj) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&filter.render(obj));
        }
        out.extend_from_slice(b"]}");
        Ok(json_response(StatusCode::OK, out))
    }

    fn watch(&self, res: usize, ns: Option<String>) -> ApiResult {
        let rt = &RESOURCES[res];
        let filter = Filter::new(res, ns, self.q, self.meta_only)?;
        let bookmarks = self.q.flag("allowWatchBookmarks");
        let initial_events = self.q.flag("sendInitialEvents");
        let timeout = match self.q.get("timeoutSeconds") {
            None | Some("") | Some("0") => DEFAULT_WATCH_TIMEOUT,
            Some(t) => Duration::from_secs(
                t.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
            ),
        };
        let from = match self.q.get("resourceVersion") {
            None | Some("") | Some("0") => None,
            Some(_) if initial_events => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {v:?}")))?,
            ),
        };
        // Subscribing marks the current change count as seen: whatever
        // happens after the snapshot below wakes the stream.
        let changes = self.shared.changes.subscribe();
        let mut out = Vec::new();
        let (last_rv, epoch) = {
            let state = self.shared.state();
            match from {
                Some(v) if v < state.floor => {
                    let floor = state.floor;
                    drop(state);
                    let err = ApiError::expired(format!("too old resource version: {v} ({floor})"));
                    write_line(
                        &mut out,
                        "ERROR",
                        &serde_json::to_vec(&err.to_value()).expect("json"),
                    );
                    return Ok(watch_response(futures_util::stream::once(async move {
                        Ok(Frame::data(Bytes::from(out)))
                    })));
                }
                Some(v) => {
                    let events = state.events_after(v, res);
                    // A version from the future: wait for it.
                    let (rv, epoch) = (state.rv.max(v), state.epoch);
                    drop(state);
                    for e in &events {
                        filter.write_event(e, &mut out);
                    }
                    (rv, epoch)
                }
                None => {
                    let objs: Vec<Arc<Obj>> = state.objects[res].values().cloned().collect();
                    let (rv, epoch) = (state.rv, state.epoch);
                    drop(state);
                    for obj in objs.iter().filter(|o| filter.matches(&o.value)) {
                        write_line(&mut out, "ADDED", &filter.render(obj));
                    }
                    if initial_events && bookmarks {
                        write_bookmark(&mut out, rt, rv, true);
                    }
                    (rv, epoch)
                }
            }
        };
        let now = tokio::time::Instant::now();
        let watch = Watch {
            shared: self.shared.clone(),
            filter,
            last_rv,
            epoch,
            changes,
            deadline: now + timeout,
            bookmarks,
            next_bookmark: now + BOOKMARK_INTERVAL,
            pending: (!out.is_empty()).then(|| Bytes::from(out)),
            done: false,
        };
        let stream = futures_util::stream::unfold(watch, |mut w| async move {
            let chunk = w.next_chunk().await?;
            Some((Ok::<_, Infallible>(Frame::data(chunk)), w))
        });
        Ok(watch_response(stream))
    }

    fn get(&self, res: usize, ns: Option<String>, name: &str) -> ApiResult {
        let key = self.object_key(res, &ns, name);
        let obj = self.shared.state().objects[res].get(&key).cloned();
        match obj {
            Some(obj) if self.meta_only => Ok(self.respond(StatusCode::OK, &obj.value)),
            Some(obj) => Ok(json_response(StatusCode::OK, obj.json.clone())),
            None => Err(ApiError::not_found(&RESOURCES[res], name)),
        }
    }

    fn create(&self, res: usize, ns: Option<String>, body: &[u8]) -> ApiResult {
        let rt = &RESOURCES[res];
        if rt.namespaced && ns.is_none() {
            return Err(ApiError::bad_request(
                "a namespace is required to create a namespaced object",
            ));
        }
        let mut value = parse_object(body)?;
        check_identity(res, &ns, None, &mut value)?;
        let given = value["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        let generate = value["metadata"]["generateName"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if given.is_none() && generate.is_none() {
            return Err(ApiError::invalid(format!(
                "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                rt.kind
            )));
        }
        if rt.has_status {
            set_status(&mut value, None);
        }
        let obj = {
            let mut state = self.shared.state();
            let name = match given {
                Some(name) => name,
                None => loop {
                    let n = self.shared.names.fetch_add(1, Ordering::Relaxed);
                    let name = format!("{}{}", generate.as_deref().unwrap_or(""), suffix(n));
                    let key = (ns.clone().unwrap_or_default(), name.clone());
                    if !state.objects[res].contains_key(&key) {
                        break name;
                    }
                },
            };
            value["metadata"]["name"] = name.as_str().into();
            let key = self.object_key(res, &ns, &name);
            if state.objects[res].contains_key(&key) {
                return Err(ApiError::already_exists(rt, &name));
            }
            state.prepare(res, &mut value, None, false);
            if self.q.dry_run() {
                return Ok(self.respond(StatusCode::CREATED, &value));
            }
            state.store(res, value)
        };
        self.shared.notify();
        Ok(self.respond(StatusCode::CREATED, &obj.value))
    }

    /// Commits `new` as the next state of `prev` unless nothing changed.
    fn update(
        &self,
        state: &mut State,
        res: usize,
        mut new: Value,
        prev: &Arc<Obj>,
    ) -> (Value, bool) {
        state.prepare(res, &mut new, Some(&prev.value), false);
        new["metadata"]["resourceVersion"] = prev.value["metadata"]["resourceVersion"].clone();
        if new == prev.value {
            return (new, false);
        }
        if self.q.dry_run() {
            return (new, false);
        }
        (state.store(res, new).value.clone(), true)
    }

    fn replace(
        &self,
        res: usize,
        ns: Option<String>,
        name: &str,
        status: bool,
        body: &[u8],
    ) -> ApiResult {
        let rt = &RESOURCES[res];
        let mut value = parse_object(body)?;
        check_identity(res, &ns, Some(name), &mut value)?;
        let key = self.object_key(res, &ns, name);
        let (obj, changed) = {
            let mut state = self.shared.state();
            let Some(prev) = state.objects[res].get(&key).cloned() else {
                return Err(ApiError::not_found(rt, name));
            };
            if let Some(rv) = rv_of(&value) {
                if Some(rv) != rv_of(&prev.value) {
                    return Err(ApiError::conflict(rt, name));
                }
            }
            let new = if status {
                let mut new = prev.value.clone();
                set_status(&mut new, value.get("status"));
                new
            } else {
                if rt.has_status {
                    set_status(&mut value, prev.value.get("status"));
                }
                value
            };
            self.update(&mut state, res, new, &prev)
        };
        if changed {
            self.shared.notify();
        }
        Ok(self.respond(StatusCode::OK, &obj))
    }

    fn patch(
        &self,
        res: usize,
        ns: Option<String>,
        name: &str,
        status: bool,
        content_type: &str,
        body: &[u8],
    ) -> ApiResult {
        let rt = &RESOURCES[res];
        let is_apply = content_type == "application/apply-patch+yaml";
        let patch: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "patch body is not valid JSON (YAML is not supported by fakeapi): {e}"
            ))
        })?;
        if is_apply && self.q.get("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ));
        }
        let key = self.object_key(res, &ns, name);
        let interleaved = if status {
            let mut all = self
                .shared
                .interleaved
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            all.iter()
                .position(|(p, n, _)| p == rt.plural && n == name)
                .map(|i| all.remove(i).2)
        } else {
            None
        };
        let (obj, changed) = {
            let mut state = self.shared.state();
            if let Some(change) = interleaved {
                if let Some(prev) = state.objects[res].get(&key).cloned() {
                    let mut other = prev.value.clone();
                    change(&mut other);
                    self.update(&mut state, res, other, &prev);
                    self.shared.notify();
                }
            }
            let prev = state.objects[res].get(&key).cloned();
            let base = match &prev {
                Some(p) => p.value.clone(),
                None if is_apply && !status => json!({}),
                None => return Err(ApiError::not_found(rt, name)),
            };
            let mut patched = apply_patch(base, &patch, content_type)?;
            if !patched.is_object() {
                return Err(ApiError::invalid("patch result is not an object"));
            }
            if let (Some(rv), Some(prev)) = (rv_of(&patched), &prev) {
                if Some(rv) != rv_of(&prev.value) {
                    return Err(ApiError::conflict(rt, name));
                }
            }
            let Some(prev) = prev else {
                // Server-side apply creating the object.
                check_identity(res, &ns, Some(name), &mut patched)?;
                if rt.has_status {
                    set_status(&mut patched, None);
                }
                state.prepare(res, &mut patched, None, false);
                if self.q.dry_run() {
                    return Ok(self.respond(StatusCode::CREATED, &patched));
                }
                let obj = state.store(res, patched);
                drop(state);
                self.shared.notify();
                return Ok(self.respond(StatusCode::CREATED, &obj.value));
            };
            if key_of(&patched).1 != name
                || (rt.namespaced && key_of(&patched).0 != key.0)
                || patched["apiVersion"] != rt.api_version
                || patched["kind"] != rt.kind
            {
                return Err(ApiError::invalid(
                    "a patch must not change apiVersion, kind, metadata.name or metadata.namespace",
                ));
            }
            let new = if status {
                let mut new = prev.value.clone();
                set_status(&mut new, patched.get("status"));
                new
            } else {
                if rt.has_status {
                    set_status(&mut patched, prev.value.get("status"));
                }
                patched
            };
            self.update(&mut state, res, new, &prev)
        };
        if changed {
            self.shared.notify();
        }
        Ok(self.respond(StatusCode::OK, &obj))
    }

    fn delete(&self, res: usize, ns: Option<String>, name: &str, body: &[u8]) -> ApiResult {
        let rt = &RESOURCES[res];
        let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("DeleteOptions is not valid JSON: {e}"))
            })?
        };
        let key = self.object_key(res, &ns, name);
        let obj = {
            let mut state = self.shared.state();
            let Some(prev) = state.objects[res].get(&key).cloned() else {
                return Err(ApiError::not_found(rt, name));
            };
            let pre = &options["preconditions"];
            if let Some(rv) = pre["resourceVersion"].as_str() {
                if Some(rv) != rv_of(&prev.value) {
                    return Err(ApiError::conflict(rt, name));
                }
            }
            if let Some(uid) = pre["uid"].as_str() {
                if Some(uid) != prev.value["metadata"]["uid"].as_str() {
                    return Err(ApiError::conflict(rt, name));
                }
            }
            if self.q.dry_run() {
                return Ok(self.respond(StatusCode::OK, &prev.value));
            }
            state.remove(res, &key).expect("present")
        };
        self.shared.notify();
        Ok(self.respond(StatusCode::OK, &obj.value))
    }

    fn delete_collection(&self, res: usize, ns: Option<String>) -> ApiResult {
        let rt = &RESOURCES[res];
        let filter = Filter::new(res, ns, self.q, self.meta_only)?;
        let deleted: Vec<Value> = {
            let mut state = self.shared.state();
            let keys: Vec<Key> = state.objects[res]
                .iter()
                .filter(|(_, o)| filter.matches(&o.value))
                .map(|(k, _)| k.clone())
                .collect();
            if self.q.dry_run() {
                keys.iter()
                    .filter_map(|k| state.objects[res].get(k).map(|o| o.value.clone()))
                    .collect()
            } else {
                keys.iter()
                    .filter_map(|k| state.remove(res, k).map(|o| o.value.clone()))
                    .collect()
            }
        };
        self.shared.notify();
        let rv = self.shared.state().rv;
        Ok(value_response(
            StatusCode::OK,
            &json!({
                "apiVersion": rt.api_version,
                "kind": format!("{}List", rt.kind),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": deleted,
            }),
        ))
    }
}

/// The 5-character random-looking suffix of generateName.
fn suffix(n: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0x0005_DEEC_E66D;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn write_bookmark(out: &mut Vec<u8>, rt: &ResourceType, rv: u64, initial_end: bool) {
    let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta});
    write_line(out, "BOOKMARK", &serde_json::to_vec(&object).expect("json"));
}

fn watch_response<S>(stream: S) -> Response<Body>
where
    S: futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + 'static,
{
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("response")
}

/// The state of one open watch stream.
struct Watch {
    shared: Arc<Shared>,
    filter: Filter,
    /// Events up to this version have been considered.
    last_rv: u64,
    epoch: u64,
    changes: tokio::sync::watch::Receiver<u64>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    next_bookmark: tokio::time::Instant,
    pending: Option<Bytes>,
    done: bool,
}

impl Watch {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(chunk) = self.pending.take() {
            return Some(chunk);
        }
        loop {
            let bookmark_due = tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return None,
                changed = self.changes.changed() => {
                    changed.ok()?;
                    false
                }
                _ = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => true,
            };
            if bookmark_due {
                self.next_bookmark = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
            }
            let (out, end) = self.drain(bookmark_due);
            if end {
                self.done = true;
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
            if end {
                return None;
            }
        }
    }

    /// New events (and a bookmark) since the last call; `true` when the
    /// stream must end.
    fn drain(&mut self, bookmark: bool) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let state = self.shared.state();
        if state.epoch != self.epoch {
            return (out, true);
        }
        if self.last_rv < state.floor {
            let err = ApiError::expired(format!(
                "too old resource version: {} ({})",
                self.last_rv, state.floor
            ));
            drop(state);
            write_line(
                &mut out,
                "ERROR",
                &serde_json::to_vec(&err.to_value()).expect("json"),
            );
            return (out, true);
        }
        let events = state.events_after(self.last_rv, self.filter.res);
        self.last_rv = self.last_rv.max(state.rv);
        drop(state);
        for event in &events {
            self.filter.write_event(event, &mut out);
        }
        if bookmark {
            write_bookmark(&mut out, &RESOURCES[self.filter.res], self.last_rv, false);
        }
        (out, false)
    }
}

// ---------------------------------------------------------------------------
// Patches

fn apply_patch(mut target: Value, patch: &Value, content_type: &str) -> Result<Value, ApiError> {
    match content_type {
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/apply-patch+yaml" => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("patch body must be a JSON object"));
            }
            merge_patch(&mut target, patch);
            Ok(target)
        }
        "application/json-patch+json" => {
            let Some(ops) = patch.as_array() else {
                return Err(ApiError::bad_request("JSON patch must be an array"));
            };
            for op in ops {
                json_patch_op(&mut target, op)?;
            }
            Ok(target)
        }
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"),
        )),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        unreachable!()
    };
    for (k, v) in patch {
        if v.is_null() {
            map.remove(k);
        } else {
            merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn pointer(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ApiError::invalid(format!("invalid JSON pointer {path:?}")));
    };
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn patch_err(msg: String) -> ApiError {
    ApiError::invalid(format!(
        "the server rejected our request due to an error in our request: {msg}"
    ))
}

fn walk_mut<'a>(root: &'a mut Value, segs: &[String]) -> Result<&'a mut Value, ApiError> {
    let mut cur = root;
    for seg in segs {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| patch_err(format!("path element {seg:?} not found")))?;
    }
    Ok(cur)
}

fn patch_add(root: &mut Value, segs: &[String], value: Value) -> Result<(), ApiError> {
    let Some((last, parent)) = segs.split_last() else {
        *root = value;
        return Ok(());
    };
    match walk_mut(root, parent)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) if last == "-" => {
            a.push(value);
            Ok(())
        }
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i <= a.len() => {
                a.insert(i, value);
                Ok(())
            }
            _ => Err(patch_err(format!("array index {last:?} out of range"))),
        },
        _ => Err(patch_err(format!("cannot add {last:?} to a scalar"))),
    }
}

fn patch_remove(root: &mut Value, segs: &[String]) -> Result<Value, ApiError> {
    let Some((last, parent)) = segs.split_last() else {
        return Err(patch_err("cannot remove the root".into()));
    };
    match walk_mut(root, parent)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| patch_err(format!("{last:?} not found"))),
        Value::Array(a) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(patch_err(format!("array index {last:?} out of range"))),
        },
        _ => Err(patch_err(format!("{last:?} not found"))),
    }
}

/// One RFC 6902 operation.
fn json_patch_op(target: &mut Value, op: &Value) -> Result<(), ApiError> {
    let name = op["op"].as_str().unwrap_or("");
    let path = pointer(
        op["path"]
            .as_str()
            .ok_or_else(|| ApiError::bad_request("JSON patch operation without path"))?,
    )?;
    let value = || {
        op.get("value")
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("JSON patch {name:?} without value")))
    };
    let from =
        || {
            pointer(op["from"].as_str().ok_or_else(|| {
                ApiError::bad_request(format!("JSON patch {name:?} without from"))
            })?)
        };
    match name {
        "add" => patch_add(target, &path, value()?),
        "remove" => patch_remove(target, &path).map(|_| ()),
        "replace" => {
            let v = value()?;
            *walk_mut(target, &path)? = v;
            Ok(())
        }
        "move" => {
            let from = from()?;
            let v = patch_remove(target, &from)?;
            patch_add(target, &path, v)
        }
        "copy" => {
            let from = from()?;
            let v = walk_mut(target, &from)?.clone();
            patch_add(target, &path, v)
        }
        "test" => {
            let expected = value()?;
            if *walk_mut(target, &path)? == expected {
                Ok(())
            } else {
                Err(patch_err(format!(
                    "test operation failed at {:?}",
                    op["path"]
                )))
            }
        }
        other => Err(ApiError::bad_request(format!(
            "unknown JSON patch operation {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------
// Time

/// The current UTC time as RFC 3339 with second precision.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
