//! Watching the Gateway API kinds (`gateway.networking.k8s.io`): the
//! hand-written types of [`crate::gateway_api`] as kube `Resource`s, and
//! ReferenceGrant's version fallback (`v1`, else `v1beta1`).
//!
//! Invariants:
//! - Objects are parsed as leniently as standalone mode parses them: a
//!   field the types do not know (a newer or experimental CRD's) lands in
//!   the object's `unknown_fields` (the compiler warns), never fails the
//!   list. `apiVersion`, `kind` and `status` are known.
//! - ReferenceGrants come from one stream: `v1` while the server serves it;
//!   when `v1` answers 404 the stream switches to `v1beta1` (no event is
//!   lost, no object is listed twice). Only when neither is served does
//!   the stream yield the 404 (the caller treats it as "CRD not installed")
//!   and tries `v1` again after a pause that doubles from [`VERSION_RETRY`]
//!   up to [`VERSION_RETRY_MAX`] (as the watcher's own backoff would).

use std::borrow::Cow;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::config::Object;
use crate::gateway_api::{self, Gateway, GatewayClass, GrpcRoute, HttpRoute, ReferenceGrant};

/// How long to wait before trying ReferenceGrant `v1` again once neither
/// version was served.
pub const VERSION_RETRY: Duration = Duration::from_secs(5);
/// The longest pause between two such tries.
pub const VERSION_RETRY_MAX: Duration = Duration::from_secs(40);

/// One Gateway API kind at one version, as the watcher needs it.
pub trait Spec: Send + Sync + 'static {
    type Object: DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    type Scope;
    const KIND: &'static str;
    const VERSION: &'static str;
    const PLURAL: &'static str;
    fn meta(o: &Self::Object) -> &ObjectMeta;
    fn meta_mut(o: &mut Self::Object) -> &mut ObjectMeta;
    fn set_unknown(o: &mut Self::Object, fields: Vec<String>);
    fn wrap(o: Self::Object) -> Object;
}

/// An object of kind `S`, parsed leniently.
pub struct Watched<S: Spec>(pub S::Object, PhantomData<fn() -> S>);

impl<S: Spec> Clone for Watched<S> {
    fn clone(&self) -> Self {
        Watched(self.0.clone(), PhantomData)
    }
}

impl<S: Spec> Debug for Watched<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<S: Spec> Resource for Watched<S> {
    type DynamicType = ();
    type Scope = S::Scope;

    fn kind(_: &()) -> Cow<'_, str> {
        S::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        gateway_api::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        S::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        S::PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        S::meta(&self.0)
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        S::meta_mut(&mut self.0)
    }
}

impl<'de, S: Spec> Deserialize<'de> for Watched<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut unknown = Vec::new();
        let mut object = {
            let mut note = |path: serde_ignored::Path<'_>| {
                let field = path.to_string();
                if field != "apiVersion" && field != "kind" {
                    unknown.push(field);
                }
            };
            S::Object::deserialize(serde_ignored::Deserializer::new(deserializer, &mut note))?
        };
        S::set_unknown(&mut object, unknown);
        Ok(Watched(object, PhantomData))
    }
}

macro_rules! spec {
    ($marker:ident, $object:ty, $scope:ty, $kind:expr, $version:expr, $plural:expr, $variant:ident) => {
        #[derive(Debug, Clone)]
        pub struct $marker;
        impl Spec for $marker {
            type Object = $object;
            type Scope = $scope;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = $version;
            const PLURAL: &'static str = $plural;
            fn meta(o: &$object) -> &ObjectMeta {
                &o.metadata
            }
            fn meta_mut(o: &mut $object) -> &mut ObjectMeta {
                &mut o.metadata
            }
            fn set_unknown(o: &mut $object, fields: Vec<String>) {
                o.unknown_fields = fields;
            }
            fn wrap(o: $object) -> Object {
                Object::$variant(o)
            }
        }
    };
}

spec!(
    GatewayClassV1,
    GatewayClass,
    ClusterResourceScope,
    gateway_api::GATEWAY_CLASS_KIND,
    "v1",
    "gatewayclasses",
    GatewayClass
);
spec!(
    GatewayV1,
    Gateway,
    NamespaceResourceScope,
    gateway_api::GATEWAY_KIND,
    "v1",
    "gateways",
    Gateway
);
spec!(
    HttpRouteV1,
    HttpRoute,
    NamespaceResourceScope,
    gateway_api::HTTP_ROUTE_KIND,
    "v1",
    "httproutes",
    HttpRoute
);
spec!(
    GrpcRouteV1,
    GrpcRoute,
    NamespaceResourceScope,
    gateway_api::GRPC_ROUTE_KIND,
    "v1",
    "grpcroutes",
    GrpcRoute
);
spec!(
    ReferenceGrantV1,
    ReferenceGrant,
    NamespaceResourceScope,
    gateway_api::REFERENCE_GRANT_KIND,
    "v1",
    "referencegrants",
    ReferenceGrant
);
spec!(
    ReferenceGrantV1Beta1,
    ReferenceGrant,
    NamespaceResourceScope,
    gateway_api::REFERENCE_GRANT_KIND,
    "v1beta1",
    "referencegrants",
    ReferenceGrant
);

/// The events of one watcher as [`Object`] events.
pub type Events = BoxStream<'static, Result<watcher::Event<Object>, watcher::Error>>;

/// A watcher of kind `S` on `api`.
pub fn events<S: Spec>(api: Api<Watched<S>>, config: watcher::Config) -> Events {
    watcher(api, config)
        .default_backoff()
        .map(|event| {
            event.map(|e| match e {
                watcher::Event::Apply(o) => watcher::Event::Apply(S::wrap(o.0)),
                watcher::Event::Delete(o) => watcher::Event::Delete(S::wrap(o.0)),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitApply(o) => watcher::Event::InitApply(S::wrap(o.0)),
                watcher::Event::InitDone => watcher::Event::InitDone,
            })
        })
        .boxed()
}

/// A 404 from the API server: the resource type is not served.
pub fn is_not_found(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

fn grants_at(client: &Client, namespace: Option<&str>, v1: bool) -> Events {
    let config = watcher::Config::default();
    match (namespace, v1) {
        (Some(ns), true) => events::<ReferenceGrantV1>(Api::namespaced(client.clone(), ns), config),
        (None, true) => events::<ReferenceGrantV1>(Api::all(client.clone()), config),
        (Some(ns), false) => {
            events::<ReferenceGrantV1Beta1>(Api::namespaced(client.clone(), ns), config)
        }
        (None, false) => events::<ReferenceGrantV1Beta1>(Api::all(client.clone()), config),
    }
}

/// ReferenceGrants, `v1` or else `v1beta1` (see the module invariants).
pub fn reference_grants(client: Client, namespace: Option<String>) -> Events {
    struct State {
        client: Client,
        namespace: Option<String>,
        v1: bool,
        inner: Option<Events>,
        /// Neither version was served last time: wait this long before
        /// trying again.
        wait: Option<Duration>,
        /// The next pause (doubles while neither version is served).
        pause: Duration,
    }
    let state = State {
        client,
        namespace,
        v1: true,
        inner: None,
        wait: None,
        pause: VERSION_RETRY,
    };
    stream::unfold(state, |mut s| async move {
        if let Some(wait) = s.wait.take() {
            tokio::time::sleep(wait).await;
        }
        loop {
            let inner = match s.inner.as_mut() {
                Some(inner) => inner,
                None => s
                    .inner
                    .insert(grants_at(&s.client, s.namespace.as_deref(), s.v1)),
            };
            let item = inner.next().await?;
            match item {
                Err(e) if is_not_found(&e) && s.v1 => {
                    tracing::debug!("ReferenceGrant v1 not served; trying v1beta1");
                    s.v1 = false;
                    s.inner = None;
                }
                Err(e) if is_not_found(&e) => {
                    // Neither version: report it, then start over with v1.
                    s.v1 = true;
                    s.inner = None;
                    s.wait = Some(s.pause);
                    s.pause = (s.pause * 2).min(VERSION_RETRY_MAX);
                    return Some((Err(e), s));
                }
                item => {
                    if matches!(item, Ok(watcher::Event::InitDone)) {
                        s.pause = VERSION_RETRY;
                    }
                    return Some((item, s));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_recorded_not_fatal() {
        let text = r#"{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns", "generation": 4},
            "spec": {"parentRefs": [{"name": "gw"}], "future": true},
            "status": {"parents": []}}"#;
        let route: Watched<HttpRouteV1> = serde_json::from_str(text).unwrap();
        assert_eq!(route.0.unknown_fields, vec!["spec.future".to_string()]);
        assert_eq!(route.meta().generation, Some(4));
        assert!(route.0.status.is_some());
        assert_eq!(Watched::<ReferenceGrantV1Beta1>::version(&()), "v1beta1");
        assert_eq!(Watched::<GatewayClassV1>::plural(&()), "gatewayclasses");
    }
}
