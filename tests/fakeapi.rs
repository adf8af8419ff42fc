//! Self-test of the fake Kubernetes API server (`tests/common/fakeapi.rs`):
//! the real kube-rs client, watcher and event recorder talk to it over
//! HTTP. Every wait is bounded.

#[path = "common/fakeapi.rs"]
mod fakeapi;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fakeapi::FakeApi;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};

/// Upper bound for one expected watcher event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tollgate-fakeapi-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(EVENT_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A kube client configured from the kubeconfig the fake writes.
async fn client(fake: &FakeApi) -> Client {
    let dir = TempDir::new();
    let path = fake.write_kubeconfig(dir.path());
    let kubeconfig = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    assert_eq!(config.default_namespace, "default");
    Client::try_from(config).expect("kube client")
}

fn ingress(ns: &str, name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "ingressClassName": "tollgate",
            "rules": [{"host": host}],
        },
    })
}

fn secret(name: &str, type_: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": type_,
        "data": {"k": "dg=="},
    })
}

type Watch<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;

/// The next watcher event as text (`Init`, `InitApply(name)`, `InitDone`,
/// `Apply(name)`, `Delete(name)`); errors are collected in `errors`.
async fn next<K: ResourceExt>(w: &mut Watch<K>, errors: &mut Vec<String>) -> (String, Option<K>) {
    loop {
        let item = bounded("watcher event", w.next())
            .await
            .expect("watcher stream ended");
        match item {
            Ok(event) => {
                let text = event.to_string();
                let obj = match event {
                    Event::Apply(o) | Event::Delete(o) | Event::InitApply(o) => Some(o),
                    Event::Init | Event::InitDone => None,
                };
                return (text, obj);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
}

/// Expects `Init`, then `InitApply` for exactly `names` (any order), then
/// `InitDone`.
async fn expect_init<K: ResourceExt>(w: &mut Watch<K>, names: &[&str], errors: &mut Vec<String>) {
    assert_eq!(next(w, errors).await.0, "Init", "errors: {errors:?}");
    let mut seen = Vec::new();
    loop {
        let (text, obj) = next(w, errors).await;
        if text == "InitDone" {
            break;
        }
        assert!(text.starts_with("InitApply("), "unexpected {text}");
        seen.push(obj.expect("object").name_any());
    }
    seen.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn list_get_selectors_and_pages() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "a", "a.example.com"));
    fake.apply(ingress("default", "b", "b.example.com"));
    fake.apply(ingress("other", "c", "c.example.com"));
    let client = client(&fake).await;

    let all: Api<Ingress> = Api::all(client.clone());
    let list = all.list(&ListParams::default()).await.unwrap();
    let names: Vec<String> = list.items.iter().map(|i| i.name_any()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(fake.resource_version().to_string().as_str())
    );
    let first = &list.items[0];
    assert_eq!(first.metadata.generation, Some(1));
    assert!(first.metadata.uid.is_some());
    assert!(first.metadata.creation_timestamp.is_some());

    let default: Api<Ingress> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        default
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let b = default.get("b").await.unwrap();
    assert_eq!(
        b.spec.unwrap().rules.unwrap()[0].host.as_deref(),
        Some("b.example.com")
    );
    assert_eq!(
        api_error(default.get("missing").await),
        (404, "NotFound".into())
    );
    assert!(default.get_opt("missing").await.unwrap().is_none());

    let selected = |lp: ListParams| {
        let all = all.clone();
        async move {
            let list = all.list(&lp).await.unwrap();
            list.items.iter().map(|i| i.name_any()).collect::<Vec<_>>()
        }
    };
    assert_eq!(selected(ListParams::default().labels("app=b")).await, ["b"]);
    assert_eq!(
        selected(ListParams::default().labels("app!=b")).await,
        ["a", "c"]
    );
    assert_eq!(
        selected(ListParams::default().labels("app in (a,c)")).await,
        ["a", "c"]
    );
    assert_eq!(
        selected(ListParams::default().labels("app,!nope")).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        selected(ListParams::default().fields("metadata.name=c")).await,
        ["c"]
    );
    assert_eq!(
        selected(ListParams::default().fields("metadata.namespace!=other")).await,
        ["a", "b"]
    );

    // Pagination: two pages, the continue token carries the snapshot.
    let page1 = all.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page1.items.len(), 2);
    let token = page1.metadata.continue_.clone().expect("continue token");
    let page2 = all
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        page2.items.iter().map(|i| i.name_any()).collect::<Vec<_>>(),
        ["c"]
    );
    assert!(page2.metadata.continue_.is_none());
    assert_eq!(
        page2.metadata.resource_version,
        page1.metadata.resource_version
    );
    fake.compact();
    let expired = all
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await;
    assert_eq!(api_error(expired), (410, "Expired".into()));

    // A malformed selector is a 400, not a crash.
    assert_eq!(
        api_error(all.list(&ListParams::default().labels("a in (b")).await).0,
        400
    );
}

#[tokio::test]
async fn watcher_sees_init_apply_and_delete() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "a", "a.example.com"));
    fake.apply(ingress("other", "b", "b.example.com"));
    let client = client(&fake).await;
    let mut errors = Vec::new();
    let mut w: Watch<Ingress> = watcher(Api::all(client), watcher::Config::default()).boxed();
    expect_init(&mut w, &["a", "b"], &mut errors).await;

    fake.apply(ingress("default", "a", "a2.example.com"));
    let (text, obj) = next(&mut w, &mut errors).await;
    assert_eq!(text, "Apply(a)");
    let obj = obj.unwrap();
    assert_eq!(
        obj.spec.unwrap().rules.unwrap()[0].host.as_deref(),
        Some("a2.example.com")
    );
    assert_eq!(obj.metadata.generation, Some(2));

    fake.apply(ingress("default", "c", "c.example.com"));
    assert_eq!(next(&mut w, &mut errors).await.0, "Apply(c)");
    assert!(fake.delete("networking.k8s.io/v1", "Ingress", "other", "b"));
    assert!(!fake.delete("networking.k8s.io/v1", "Ingress", "other", "b"));
    assert_eq!(next(&mut w, &mut errors).await.0, "Delete(b)");
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn other_watcher_modes() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "a", "a.example.com"));
    fake.apply(ingress("default", "b", "b.example.com"));
    let client = client(&fake).await;
    let mut errors = Vec::new();

    // Streaming lists (sendInitialEvents + the initial-events-end bookmark).
    let config = watcher::Config::default().streaming_lists();
    let mut streaming: Watch<Ingress> = watcher(Api::all(client.clone()), config).boxed();
    expect_init(&mut streaming, &["a", "b"], &mut errors).await;
    // Metadata only, with the "any" list semantic (resourceVersion=0) and
    // small pages.
    let config = watcher::Config::default().any_semantic().page_size(1);
    let mut meta: Watch<PartialObjectMeta<Ingress>> =
        watcher(Api::all(client.clone()), config).boxed();
    expect_init(&mut meta, &["a", "b"], &mut errors).await;
    // A label selector: objects moving out of / into the selection are
    // seen as deleted / added, like on a real watch cache.
    let config = watcher::Config::default().labels("app=a");
    let mut selected: Watch<Ingress> = watcher(Api::all(client.clone()), config).boxed();
    expect_init(&mut selected, &["a"], &mut errors).await;

    let mut relabeled = ingress("default", "a", "a.example.com");
    relabeled["metadata"]["labels"]["app"] = "x".into();
    fake.apply(relabeled);
    assert_eq!(next(&mut streaming, &mut errors).await.0, "Apply(a)");
    let (text, obj) = next(&mut meta, &mut errors).await;
    assert_eq!(text, "Apply(a)");
    let obj = obj.unwrap();
    assert_eq!(obj.labels()["app"], "x");
    assert_eq!(obj.types.unwrap().kind, "PartialObjectMetadata");
    let (text, obj) = next(&mut selected, &mut errors).await;
    assert_eq!(text, "Delete(a)");
    assert_eq!(
        obj.unwrap().resource_version(),
        Some(fake.resource_version().to_string())
    );
    fake.apply(ingress("default", "a", "a.example.com"));
    assert_eq!(next(&mut selected, &mut errors).await.0, "Apply(a)");
    assert!(errors.is_empty(), "{errors:?}");

    // Raw watch: synthetic ADDED from "0", bookmarks, timeoutSeconds.
    let api: Api<Ingress> = Api::all(client);
    let started = Instant::now();
    let events: Vec<_> = bounded(
        "raw watch",
        api.watch(&WatchParams::default().timeout(2), "0")
            .await
            .unwrap()
            .collect(),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e.as_ref().unwrap() {
            WatchEvent::Added(i) => format!("ADDED {}", i.name_any()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata.resource_version,
                    fake.resource_version().to_string()
                );
                "BOOKMARK".into()
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds[..2], ["ADDED a", "ADDED b"]);
    assert!(
        kinds[2..].iter().all(|k| k == "BOOKMARK") && kinds.len() >= 3,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn compaction_forces_a_relist() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "a", "a.example.com"));
    let client = client(&fake).await;
    let mut errors = Vec::new();
    let mut w: Watch<Ingress> = watcher(Api::all(client), watcher::Config::default()).boxed();
    expect_init(&mut w, &["a"], &mut errors).await;
    fake.apply(ingress("default", "b", "b.example.com"));
    assert_eq!(next(&mut w, &mut errors).await.0, "Apply(b)");

    fake.compact();
    expect_init(&mut w, &["a", "b"], &mut errors).await;
    assert!(
        errors
            .iter()
            .any(|e| e.contains("too old resource version")),
        "expected a 410 watch error, got {errors:?}"
    );
    fake.apply(ingress("default", "c", "c.example.com"));
    assert_eq!(next(&mut w, &mut errors).await.0, "Apply(c)");
}

#[tokio::test]
async fn watcher_reconnects_after_an_outage() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "a", "a.example.com"));
    let client = client(&fake).await;
    let mut errors = Vec::new();
    let mut w: Watch<Ingress> = watcher(Api::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .boxed();
    expect_init(&mut w, &["a"], &mut errors).await;

    fake.pause();
    assert!(std::net::TcpStream::connect(fake.addr()).is_err());
    let api: Api<Ingress> = Api::all(client);
    assert!(api.list(&ListParams::default()).await.is_err());
    fake.apply(ingress("default", "a", "a2.example.com"));
    fake.apply(ingress("default", "b", "b.example.com"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    fake.resume();

    // Resumes from its resourceVersion: the changes made during the outage
    // arrive as plain events, no re-list.
    let (text, obj) = next(&mut w, &mut errors).await;
    assert_eq!(text, "Apply(a)");
    assert_eq!(
        obj.unwrap().spec.unwrap().rules.unwrap()[0].host.as_deref(),
        Some("a2.example.com")
    );
    assert_eq!(next(&mut w, &mut errors).await.0, "Apply(b)");
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
}

#[tokio::test]
async fn secret_watch_honours_the_type_field_selector() {
    let fake = FakeApi::start();
    fake.apply(secret("opaque-1", "Opaque"));
    fake.apply(secret("tls-1", "kubernetes.io/tls"));
    let client = client(&fake).await;
    let mut errors = Vec::new();
    let config = watcher::Config::default().fields("type=kubernetes.io/tls");
    let mut w: Watch<Secret> = watcher(Api::all(client), config).boxed();
    expect_init(&mut w, &["tls-1"], &mut errors).await;

    fake.apply(secret("opaque-2", "Opaque"));
    fake.apply(secret("tls-2", "kubernetes.io/tls"));
    assert_eq!(next(&mut w, &mut errors).await.0, "Apply(tls-2)");
    fake.delete("v1", "Secret", "default", "opaque-1");
    fake.delete("v1", "Secret", "default", "tls-1");
    assert_eq!(next(&mut w, &mut errors).await.0, "Delete(tls-1)");

    let secret_gets: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "GET" && p.ends_with("/secrets"))
        .collect();
    assert!(secret_gets.len() >= 2, "{secret_gets:?}");
    assert!(
        secret_gets
            .iter()
            .all(|(_, _, q)| q.contains("fieldSelector=type%3Dkubernetes.io%2Ftls")),
        "{secret_gets:?}"
    );
}

#[tokio::test]
async fn lease_conflicts_and_status_patches() {
    let fake = FakeApi::start();
    let client = client(&fake).await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "tollgate-leader"},
        "spec": {"holderIdentity": "pod-a", "leaseDurationSeconds": 15},
    }))
    .unwrap();
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        api_error(leases.create(&PostParams::default(), &lease).await),
        (409, "AlreadyExists".into())
    );
    let mut mine = created.clone();
    mine.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let replaced = leases
        .replace("tollgate-leader", &PostParams::default(), &mine)
        .await
        .unwrap();
    assert_ne!(replaced.resource_version(), created.resource_version());
    // `created` carries the old resourceVersion: optimistic concurrency.
    assert_eq!(
        api_error(
            leases
                .replace("tollgate-leader", &PostParams::default(), &created)
                .await
        ),
        (409, "Conflict".into())
    );
    let stored = fake
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "default",
            "tollgate-leader",
        )
        .unwrap();
    assert_eq!(stored["spec"]["holderIdentity"], "pod-b");

    fake.apply(ingress("default", "web", "web.example.com"));
    let ingresses: Api<Ingress> = Api::namespaced(client, "default");
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    let patched = ingresses
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let ip = |i: &Ingress| {
        i.status
            .as_ref()
            .unwrap()
            .load_balancer
            .as_ref()
            .unwrap()
            .ingress
            .as_ref()
            .unwrap()[0]
            .ip
            .clone()
    };
    assert_eq!(ip(&patched).as_deref(), Some("10.0.0.1"));
    let got = ingresses.get("web").await.unwrap();
    assert_eq!(ip(&got).as_deref(), Some("10.0.0.1"));
    assert_eq!(
        got.metadata.generation,
        Some(1),
        "status does not bump generation"
    );

    // The same patch again is a no-op: no new resourceVersion.
    let again = ingresses
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), got.resource_version());
    let status_patches = fake
        .requests()
        .iter()
        .filter(|(m, p, _)| m == "PATCH" && p.ends_with("/ingresses/web/status"))
        .count();
    assert_eq!(status_patches, 2);

    // A stale resourceVersion in a merge patch is a conflict too.
    let stale = json!({"metadata": {"resourceVersion": created.resource_version()}, "spec": {}});
    assert_eq!(
        api_error(
            ingresses
                .patch("web", &PatchParams::default(), &Patch::Merge(&stale))
                .await
        ),
        (409, "Conflict".into())
    );
}

#[tokio::test]
async fn status_writes_are_recorded_and_lists_can_be_slow() {
    let fake = FakeApi::start();
    let client = client(&fake).await;
    fake.apply(ingress("default", "web", "web.example"));
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), "default");
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}});
    ingresses
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // A write to the main resource is not a status write.
    ingresses
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    let writes = fake.status_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].0, "PATCH");
    assert_eq!(
        writes[0].1,
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses/web/status"
    );
    assert_eq!(writes[0].2, patch);

    fake.delay_lists("ingresses", Some(Duration::from_millis(300)));
    let t = Instant::now();
    bounded("slow list", ingresses.list(&ListParams::default()))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // Other resources and single objects are not delayed.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let t = Instant::now();
    services.list(&ListParams::default()).await.unwrap();
    ingresses.get("web").await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    fake.delay_lists("ingresses", None);
    let t = Instant::now();
    ingresses.list(&ListParams::default()).await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn recorder_publishes_events() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "web", "web.example.com"));
    let client = client(&fake).await;
    let web = Api::<Ingress>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "tollgate".into(),
            instance: Some("tollgate-0".into()),
        },
    );
    let event = KubeEvent {
        type_: EventType::Warning,
        reason: "BackendNotFound".into(),
        note: Some("service default/missing not found".into()),
        action: "Sync".into(),
        secondary: None,
    };
    let reference = web.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    let events = fake.list("events.k8s.io/v1", "Event");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "BackendNotFound");
    assert_eq!(events[0]["regarding"]["name"], "web");
    assert_eq!(events[0]["metadata"]["namespace"], "default");

    // The second identical event is a merge patch adding a series.
    recorder.publish(&event, &reference).await.unwrap();
    let events = fake.list("events.k8s.io/v1", "Event");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["series"]["count"], 2);
    assert!(fake.list("v1", "Event").is_empty());
}

#[tokio::test]
async fn raw_patches_discovery_and_failures() {
    let fake = FakeApi::start();
    fake.apply(ingress("default", "a", "a.example.com"));
    let client = client(&fake).await;
    let base = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";

    let raw = |method: &str, uri: String, content_type: &str, body: Value| {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap()
    };

    // RFC 6902 JSON patch.
    let ops = json!([
        {"op": "test", "path": "/spec/ingressClassName", "value": "tollgate"},
        {"op": "replace", "path": "/spec/ingressClassName", "value": "other"},
        {"op": "add", "path": "/metadata/labels/tier", "value": "edge"},
        {"op": "add", "path": "/spec/rules/-", "value": {"host": "x.example.com"}},
        {"op": "remove", "path": "/spec/rules/0"},
    ]);
    let patched: Value = client
        .request(raw(
            "PATCH",
            format!("{base}/a"),
            "application/json-patch+json",
            ops,
        ))
        .await
        .unwrap();
    assert_eq!(patched["spec"]["ingressClassName"], "other");
    assert_eq!(patched["metadata"]["labels"]["tier"], "edge");
    assert_eq!(patched["spec"]["rules"], json!([{"host": "x.example.com"}]));
    assert_eq!(patched["metadata"]["generation"], 2);
    let failed_test = json!([{"op": "test", "path": "/spec/ingressClassName", "value": "nope"}]);
    let err = client
        .request::<Value>(raw(
            "PATCH",
            format!("{base}/a"),
            "application/json-patch+json",
            failed_test,
        ))
        .await;
    assert_eq!(api_error(err).0, 422);

    // Server-side apply creates, needs a field manager.
    let applied = ingress("default", "ssa", "ssa.example.com");
    let err = client
        .request::<Value>(raw(
            "PATCH",
            format!("{base}/ssa"),
            "application/apply-patch+yaml",
            applied.clone(),
        ))
        .await;
    assert_eq!(api_error(err).0, 400);
    let api: Api<Ingress> = Api::namespaced(client.clone(), "default");
    let created = api
        .patch(
            "ssa",
            &PatchParams::apply("tollgate").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(fake
        .get("networking.k8s.io/v1", "Ingress", "default", "ssa")
        .is_some());

    // Errors come back as Status objects.
    let err = client
        .request::<Value>(raw(
            "PATCH",
            format!("{base}/a"),
            "application/json-patch+json",
            json!({}),
        ))
        .await;
    assert_eq!(api_error(err).0, 400);
    let bad_json = http::Request::post(base)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    assert_eq!(api_error(client.request::<Value>(bad_json).await).0, 400);
    let unknown = http::Request::get("/apis/example.com/v1/widgets")
        .body(vec![])
        .unwrap();
    assert_eq!(api_error(client.request::<Value>(unknown).await).0, 404);

    // generateName.
    let generated: Value = client
        .request(raw(
            "POST",
            "/api/v1/namespaces/default/services".into(),
            "application/json",
            json!({"metadata": {"generateName": "svc-"}, "spec": {"ports": [{"port": 80}]}}),
        ))
        .await
        .unwrap();
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("svc-") && name.len() == 9, "{name}");
    assert!(fake.get("v1", "Service", "default", name).is_some());

    // Discovery.
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "networking.k8s.io"));
    let gvk = kube::api::GroupVersionKind::gvk("tollgate.dev", "v1alpha1", "TrafficPolicy");
    let (resource, caps) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    assert_eq!(resource.plural, "trafficpolicies");
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "trafficpolicies/status" || r.plural == "status"),
        "{caps:?}"
    );
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    assert!(discovery.has_group("coordination.k8s.io"));
    let missing = kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget");
    assert!(kube::discovery::pinned_kind(&client, &missing)
        .await
        .is_err());

    // Injected failures.
    fake.fail_resource(Some("ingresses"));
    assert_eq!(api_error(api.list(&ListParams::default()).await).0, 500);
    let services: Api<Service> = Api::all(client.clone());
    assert!(services.list(&ListParams::default()).await.is_ok());
    fake.fail_resource(None);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    // A CRD that is not installed: 404 for its resource, gone from
    // discovery; installing it again brings its objects back.
    fake.apply(
        json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "TrafficPolicy",
        "metadata": {"name": "p", "namespace": "default"}, "spec": {"targetRefs": []}}),
    );
    let policies: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(&gvk, "trafficpolicies"),
    );
    fake.set_installed("trafficpolicies", false);
    assert_eq!(
        api_error(policies.list(&ListParams::default()).await).0,
        404
    );
    assert!(kube::discovery::pinned_kind(&client, &gvk).await.is_err());
    assert!(
        api.list(&ListParams::default()).await.is_ok(),
        "others unaffected"
    );
    fake.set_installed("trafficpolicies", true);
    assert_eq!(
        policies
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn bulk_load_is_fast() {
    let fake = FakeApi::start();
    let started = Instant::now();
    let mut objects = Vec::with_capacity(50_000);
    for i in 0..10_000 {
        let ns = format!("ns-{}", i % 50);
        objects.push(ingress(
            &ns,
            &format!("ing-{i}"),
            &format!("host-{i}.example.com"),
        ));
    }
    for i in 0..20_000 {
        let ns = format!("ns-{}", i % 50);
        objects.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("svc-{i}"), "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }));
        objects.push(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("svc-{i}-a"), "namespace": ns,
                "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [format!("10.{}.{}.1", i / 250, i % 250)]}],
        }));
    }
    fake.apply_many(objects);
    let loaded = started.elapsed();

    let client = client(&fake).await;
    let started = Instant::now();
    let mut errors = Vec::new();
    let mut w: Watch<Service> =
        watcher(Api::all(client.clone()), watcher::Config::default()).boxed();
    let mut count = 0;
    assert_eq!(next(&mut w, &mut errors).await.0, "Init");
    while next(&mut w, &mut errors).await.0 != "InitDone" {
        count += 1;
    }
    assert_eq!(count, 20_000);
    let listed = started.elapsed();

    // Live events flow with low latency.
    let started = Instant::now();
    for i in 0..100 {
        fake.apply(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc-0", "namespace": "ns-0"},
            "spec": {"ports": [{"name": "http", "port": 1000 + i}]},
        }));
        assert_eq!(next(&mut w, &mut errors).await.0, "Apply(svc-0)");
    }
    let streamed = started.elapsed();
    eprintln!(
        "bulk load {loaded:?}, 20k-service watcher init {listed:?}, 100 round trips {streamed:?}"
    );
    assert!(loaded < Duration::from_secs(10), "{loaded:?}");
    assert!(listed < Duration::from_secs(10), "{listed:?}");
    assert!(streamed < Duration::from_secs(5), "{streamed:?}");
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn works_without_an_async_runtime() {
    fn shareable<T: Send + Sync>() {}
    shareable::<FakeApi>();
    use std::io::{Read, Write};
    let fake = FakeApi::start();
    let class = |controller: &str| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "tollgate", "namespace": "ignored"},
            "spec": {"controller": controller},
        })
    };
    let first = fake.apply(class("example.com/other"));
    let second = fake.apply(class("tollgate.dev/ingress-controller"));
    assert_eq!(first["metadata"]["uid"], second["metadata"]["uid"]);
    assert_eq!(first["metadata"]["generation"], 1);
    assert_eq!(second["metadata"]["generation"], 2);
    assert_eq!(fake.list("networking.k8s.io/v1", "IngressClass").len(), 1);
    let mut conn = std::net::TcpStream::connect(fake.addr()).unwrap();
    conn.set_read_timeout(Some(EVENT_TIMEOUT)).unwrap();
    conn.write_all(
        b"GET /apis/networking.k8s.io/v1/ingressclasses/tollgate HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(
        body["spec"]["controller"],
        "tollgate.dev/ingress-controller"
    );
    assert!(body["metadata"].get("namespace").is_none());
    assert_eq!(
        fake.requests(),
        [(
            "GET".to_string(),
            "/apis/networking.k8s.io/v1/ingressclasses/tollgate".to_string(),
            String::new()
        )]
    );
}
