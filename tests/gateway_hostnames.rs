//! Gateway API hostnames end to end, standalone mode: wildcards over more
//! than one label. In Gateway API `*.example.com` matches one *or more*
//! labels (`a.b.example.com` too); an Ingress wildcard matches exactly one
//! (Kubernetes Ingress spec), and keeps doing so beside Gateway routes.
//! Expectations of upstream's httproute-hostname-intersection and
//! httproute-listener-hostname-matching (their multi-label hosts
//! included), written anew for these fixtures.

mod common;

use common::gateway::*;
use common::*;
use serde_json::Value;

const V1: Result<&str, u16> = Ok("infra-backend-v1");
const V2: Result<&str, u16> = Ok("infra-backend-v2");
const V3: Result<&str, u16> = Ok("infra-backend-v3");

fn route(name: &str, gateway: &str, hostnames: &str, path: &str, svc: &str) -> Value {
    http_route(
        INFRA,
        name,
        &format!(
            "parentRefs: [{{name: {gateway}}}]\nhostnames: {hostnames}\nrules: [{{matches: [{{path: {{type: PathPrefix, value: {path}}}}}], backendRefs: [{{name: {svc}, port: 8080}}]}}]"
        ),
    )
}

async fn expect_all(t: &Tollgate, cases: &[(&str, &str, Result<&str, u16>)]) {
    let mut f = Failures::default();
    for (host, path, want) in cases {
        let r = t.get(host, path).await;
        let got = match r.service() {
            Some(s) if r.status == 200 => Ok(s),
            _ => Err(r.status),
        };
        let want = want.map(str::to_string);
        f.check(got == want, || {
            format!("GET {host}{path}: want {want:?}, got {}", r.summary())
        });
    }
    f.assert_none();
}

/// httproute-hostname-intersection.
#[tokio::test]
async fn route_and_listener_hostnames_intersect_over_several_labels() {
    let echo = Echo::services(&["infra-backend-v1", "infra-backend-v2", "infra-backend-v3"]).await;
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "httproute-hostname-intersection",
            "[{name: listener-1, port: 80, protocol: HTTP, hostname: very.specific.com},
  {name: listener-2, port: 80, protocol: HTTP, hostname: '*.wildcard.io'},
  {name: listener-3, port: 80, protocol: HTTP, hostname: '*.anotherwildcard.io'}]",
        ),
    ];
    docs.extend(echo.backends(INFRA));
    let gw = "httproute-hostname-intersection";
    docs.extend([
        route(
            "specific-host-matches-listener-specific-host",
            gw,
            "[non.matching.com, '*.nonmatchingwildcard.io', very.specific.com]",
            "/s1",
            "infra-backend-v1",
        ),
        route(
            "specific-host-matches-listener-wildcard-host",
            gw,
            "[non.matching.com, wildcard.io, foo.wildcard.io, bar.wildcard.io, foo.bar.wildcard.io]",
            "/s2",
            "infra-backend-v2",
        ),
        route(
            "wildcard-host-matches-listener-specific-host",
            gw,
            "[non.matching.com, '*.specific.com']",
            "/s3",
            "infra-backend-v3",
        ),
        route(
            "wildcard-host-matches-listener-wildcard-host",
            gw,
            "['*.anotherwildcard.io']",
            "/s4",
            "infra-backend-v1",
        ),
    ]);
    let t = Tollgate::with_docs(&docs).await;
    expect_all(
        &t,
        &[
            ("very.specific.com", "/s1", V1),
            ("non.matching.com", "/s1", Err(404)),
            ("foo.nonmatchingwildcard.io", "/s1", Err(404)),
            ("foo.wildcard.io", "/s2", V2),
            ("bar.wildcard.io", "/s2", V2),
            ("foo.bar.wildcard.io", "/s2", V2),
            ("wildcard.io", "/s2", Err(404)),
            ("non.matching.com", "/s2", Err(404)),
            ("very.specific.com", "/s3", V3),
            ("foo.anotherwildcard.io", "/s4", V1),
            ("bar.anotherwildcard.io", "/s4", V1),
            ("foo.bar.anotherwildcard.io", "/s4", V1),
            ("anotherwildcard.io", "/s4", Err(404)),
            ("nonmatchingwildcard.io", "/s4", Err(404)),
        ],
    )
    .await;
}

/// httproute-listener-hostname-matching, plus: the longest wildcard suffix
/// wins, and an Ingress wildcard beside them still covers one label only.
#[tokio::test]
async fn listener_wildcards_cover_several_labels_and_the_longest_suffix_wins() {
    let echo = Echo::services(&[
        "infra-backend-v1",
        "infra-backend-v2",
        "infra-backend-v3",
        "ingress-backend",
    ])
    .await;
    let mut docs = vec![
        gateway_class(),
        gateway(
            INFRA,
            "httproute-listener-hostname-matching",
            "[{name: listener-1, port: 80, protocol: HTTP, hostname: bar.com},
  {name: listener-2, port: 80, protocol: HTTP, hostname: foo.bar.com},
  {name: listener-3, port: 80, protocol: HTTP, hostname: '*.bar.com'},
  {name: listener-4, port: 80, protocol: HTTP, hostname: '*.foo.com'}]",
        ),
    ];
    docs.extend(echo.backends(INFRA));
    let section = |name: &str, sections: &[&str], hostnames: &str, svc: &str| {
        let refs: Vec<String> = sections
            .iter()
            .map(|s| format!("{{name: httproute-listener-hostname-matching, sectionName: {s}}}"))
            .collect();
        http_route(
            INFRA,
            name,
            &format!(
                "parentRefs: [{}]\nhostnames: {hostnames}\nrules: [{{backendRefs: [{{name: {svc}, port: 8080}}]}}]",
                refs.join(", ")
            ),
        )
    };
    docs.extend([
        section("backend-v1", &["listener-1"], "[]", "infra-backend-v1"),
        section("backend-v2", &["listener-2"], "[]", "infra-backend-v2"),
        section(
            "backend-v3",
            &["listener-3", "listener-4"],
            "[]",
            "infra-backend-v3",
        ),
        // A more specific wildcard under listener-3's: it wins for its
        // names, at any depth.
        section(
            "deeper",
            &["listener-3"],
            "['*.deep.bar.com']",
            "infra-backend-v1",
        ),
    ]);
    // An Ingress wildcard: exactly one label, Gateway routes or not.
    docs.push(ingress(
        INFRA,
        "ingress-wild",
        &simple_spec("*.ingress.example", "ingress-backend"),
    ));
    let t = Tollgate::with_docs(&docs).await;
    expect_all(
        &t,
        &[
            ("bar.com", "/", V1),
            ("foo.bar.com", "/", V2),
            ("baz.bar.com", "/", V3),
            ("boo.bar.com", "/", V3),
            ("multiple.prefixes.bar.com", "/", V3),
            ("multiple.prefixes.foo.com", "/", V3),
            ("foo.com", "/", Err(404)),
            ("no.matching.host", "/", Err(404)),
            ("x.deep.bar.com", "/", V1),
            ("x.y.deep.bar.com", "/", V1),
            ("deep.bar.com", "/", V3),
            ("a.ingress.example", "/", Ok("ingress-backend")),
            ("a.b.ingress.example", "/", Err(404)),
        ],
    )
    .await;
}
