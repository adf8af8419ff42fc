//! Ported from ingress-nginx `test/e2e/annotations/limitconnections.go`.
//! The echo backend's `?delay=MS` stands in for the slow echo's
//! `/sleep/10`.

use crate::common::*;
use crate::{single, Site};

/// Go: "should limit-connections". 20 concurrent requests from one client
/// with `limit-connections: 8`: 8 are served, 12 get 503 (ingress-nginx's
/// `limit_conn` status), none anything else. The Go case adds the
/// annotation to a served Ingress; here the Ingress has it from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_limit_connections() {
    let host = "limit-connections";
    let site = Site::start(vec![single(host, "/", host, &[("limit-connections", "8")])]).await;
    let addr = site.tg.http_addr();
    let workers: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(async move {
                send(
                    addr,
                    req("GET", host, "/?delay=2000")
                        .body(http_body_util::Full::default())
                        .unwrap(),
                )
                .await
                .map(|r| r.status)
            })
        })
        .collect();
    let (mut ok, mut failed, mut errors) = (0, 0, 0);
    for w in workers {
        match w.await.unwrap() {
            Ok(200) => ok += 1,
            Ok(503) => failed += 1,
            _ => errors += 1,
        }
    }
    assert_eq!((ok, failed, errors), (8, 12, 0));
}
