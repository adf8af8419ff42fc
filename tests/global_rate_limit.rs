//! Global rate limits end to end: real `redis-server` processes (started
//! here on 127.0.0.1 with a free port and a temp dir, stopped by PID),
//! several real `tollgate run` replicas sharing one Redis, real echo
//! backends, clients on distinct 127.0.0.x source addresses.

mod common;

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::metric;
use common::*;
use http_body_util::Full;
use serde_json::{json, Value};

const NS: &str = "default";
const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A `redis-server` of our own; killed (by PID) on drop.
struct Redis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Redis {
    async fn start() -> Redis {
        let mut redis = Redis {
            port: free_port(),
            dir: TempDir::new("redis"),
            child: None,
        };
        redis.restart().await;
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port.
    async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning redis-server (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cmd(&["PING"]).as_deref() != Some("PONG") {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (by its PID) and waits for it.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// One command over a raw RESP connection; the reply's first line.
    fn cmd(&self, args: &[&str]) -> Option<String> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        Some(line.trim_end()[1..].to_string())
    }

    /// Calls of a command so far (INFO commandstats).
    fn calls(&self, command: &str) -> u64 {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = s.write_all(b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n");
        let mut buf = vec![0u8; 16384];
        let mut text = String::new();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if text.ends_with("\r\n\r\n") || text.matches("\r\n").count() > 2 && n < buf.len() {
                break;
            }
        }
        let needle = format!("cmdstat_{command}:calls=");
        text.find(&needle)
            .and_then(|at| {
                text[at + needle.len()..]
                    .split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ingress(name: &str, host: &str, annotations: &[(&str, &str)]) -> Value {
    common::annotated_ingress(NS, name, host, ("/", "Prefix"), "app", annotations)
}

/// `tollgate.dev/limit-rps: 5`, burst 10, counted globally.
fn global_5_per_second(name: &str, host: &str) -> Value {
    ingress(
        name,
        host,
        &[
            ("tollgate.dev/limit-rps", "5"),
            ("tollgate.dev/limit-burst", "10"),
            ("tollgate.dev/limit-scope", "global"),
        ],
    )
}

/// `n` replicas serving the same manifests.
async fn replicas(n: usize, docs: &[Value], args: &[&str]) -> Vec<Tollgate> {
    let manifests = yaml_docs(docs);
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            Tollgate::builder()
                .file("manifests.yaml", &manifests)
                .args(args)
                .start()
                .await,
        );
    }
    out
}

/// Waits (bounded) until every replica reports the store up (or down).
async fn wait_store_up(tgs: &[Tollgate], up: bool, within: Duration) {
    let want = if up { 1.0 } else { 0.0 };
    let deadline = Instant::now() + within;
    for tg in tgs {
        while metric(tg, "tollgate_global_rate_limit_store_up", &[]).await != want {
            assert!(
                Instant::now() < deadline,
                "store_up never became {want}\n{}",
                tg.proc_.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn get(tg: &Tollgate, src: &str, host: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = req("GET", host, "/");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let src: IpAddr = src.parse().unwrap();
    send_from(src, tg.http_addr(), b.body(Full::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET http://{host}/ from {src}: {e}"))
}

/// Sends `n` requests from `src`, round-robin over `tgs`, all at once;
/// returns the statuses and how long it took.
async fn burst(tgs: &[&Tollgate], src: &str, host: &str, n: usize) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let sends = (0..n).map(|i| get(tgs[i % tgs.len()], src, host, &[]));
    let statuses = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    (statuses, started.elapsed())
}

/// The most a rate 5/s burst 10 limit passes in a burst that took `took`:
/// 16 within a second (the burst, the rate, one request of slack for the
/// replicas' requests in flight at the second's edge); on a machine so
/// loaded that sending 40 requests takes longer, GCRA's bound for that time.
fn most_within(took: Duration) -> usize {
    if took <= Duration::from_secs(1) {
        16
    } else {
        10 + (5.0 * took.as_secs_f64()).ceil() as usize + 1
    }
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn total(tgs: &[Tollgate], name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for tg in tgs {
        sum += metric(tg, name, labels).await;
    }
    sum
}

/// rate 5/s, burst 10: of 40 requests sent round-robin over the replicas
/// within a second, 10 to 16 pass, whether two or three replicas share
/// the store; another client has its own budget.
#[tokio::test]
async fn replicas_sharing_one_redis_hold_one_combined_limit() {
    let redis = Redis::start().await;
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(global_5_per_second("shared", "shared.test"));
    let tgs = replicas(3, &docs, &["--global-rate-limit-store", &redis.url()]).await;
    wait_store_up(&tgs, true, Duration::from_secs(10)).await;

    let mut passed = 0;
    for (replicas, client) in [(3, "127.0.0.2"), (2, "127.0.0.3")] {
        let serving: Vec<&Tollgate> = tgs.iter().take(replicas).collect();
        let (statuses, took) = burst(&serving, client, "shared.test", 40).await;
        let allowed = count(&statuses, 200);
        assert_eq!(allowed + count(&statuses, 429), 40, "{statuses:?}");
        assert!(
            (10..=most_within(took)).contains(&allowed),
            "{replicas} replicas: {allowed} of 40 allowed in {took:?}: {statuses:?}"
        );
        passed += allowed;
    }
    // A third client is unaffected by the two that are over their limit.
    assert_eq!(
        get(&tgs[2], "127.0.0.4", "shared.test", &[]).await.status,
        200
    );
    let route = [("route", "Ingress/default/shared")];
    let allowed = total(
        &tgs,
        "tollgate_global_rate_limit_decisions_total",
        &[route[0], ("result", "allowed")],
    )
    .await;
    assert_eq!(allowed, (passed + 1) as f64, "every 200 was an `allowed`");
    assert_eq!(
        total(
            &tgs,
            "tollgate_global_rate_limit_decisions_total",
            &[route[0], ("result", "fallback")]
        )
        .await,
        0.0
    );
    // One round trip per request at most (fewer: batches and the refusal
    // cache), counted by Redis itself.
    let calls = redis.calls("evalsha") + redis.calls("eval");
    assert!(
        (1..=81).contains(&calls),
        "{calls} script calls for 81 requests"
    );
}

/// Redis stops: traffic keeps flowing under the local per-replica limit,
/// and the metrics say so; Redis returns: global limiting resumes within
/// seconds, without a restart.
#[tokio::test]
async fn a_store_outage_falls_back_to_local_limits_and_recovers() {
    let mut redis = Redis::start().await;
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(global_5_per_second("outage", "outage.test"));
    let tgs = replicas(2, &docs, &["--global-rate-limit-store", &redis.url()]).await;
    wait_store_up(&tgs, true, Duration::from_secs(10)).await;
    let both: Vec<&Tollgate> = tgs.iter().collect();

    redis.stop();
    // Requests never wait on the dead store: the local limit decides, per
    // replica (10 at once on each), and nothing fails.
    let (statuses, took) = burst(&both, "127.0.0.5", "outage.test", 40).await;
    assert_eq!(
        count(&statuses, 200) + count(&statuses, 429),
        40,
        "{statuses:?}"
    );
    assert!(
        (20..=26).contains(&count(&statuses, 200)),
        "per replica 10 at once (+5/s over {took:?}): {statuses:?}"
    );
    wait_store_up(&tgs, false, Duration::from_secs(5)).await;
    let fallback = total(
        &tgs,
        "tollgate_global_rate_limit_decisions_total",
        &[("result", "fallback")],
    )
    .await;
    assert!(fallback >= 40.0, "{fallback} fallback decisions");
    let errors = total(&tgs, "tollgate_global_rate_limit_store_errors_total", &[]).await;
    assert!(errors >= 1.0, "{errors} store errors");
    assert!(
        tgs.iter().all(|tg| tg
            .proc_
            .logs()
            .matches("global rate limit store: connection lost")
            .count()
            <= 1),
        "one line per outage"
    );

    let back = Instant::now();
    redis.restart().await;
    wait_store_up(&tgs, true, Duration::from_secs(5)).await;
    let resumed = back.elapsed();
    let (statuses, took) = burst(&both, "127.0.0.6", "outage.test", 40).await;
    let allowed = count(&statuses, 200);
    assert!(
        (10..=most_within(took)).contains(&allowed),
        "global again after {resumed:?}: {allowed} of 40 in {took:?}"
    );
}

/// `--global-rate-limit-fail closed`: no store, no service (503); the
/// default (open) serves under the local limit.
#[tokio::test]
async fn without_an_answer_closed_refuses_and_open_serves() {
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(global_5_per_second("closed", "closed.test"));
    // Nothing listens on this port.
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let closed = replicas(
        1,
        &docs,
        &[
            "--global-rate-limit-store",
            &nowhere,
            "--global-rate-limit-fail",
            "closed",
        ],
    )
    .await;
    let r = get(&closed[0], "127.0.0.2", "closed.test", &[]).await;
    assert_eq!(r.status, 503, "{}", r.summary());
    let open = replicas(1, &docs, &["--global-rate-limit-store", &nowhere]).await;
    assert_eq!(
        get(&open[0], "127.0.0.2", "closed.test", &[]).await.status,
        200
    );
    assert_eq!(
        metric(
            &closed[0],
            "tollgate_global_rate_limit_decisions_total",
            &[("result", "unavailable")]
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &open[0],
            "tollgate_global_rate_limit_decisions_total",
            &[("result", "fallback")]
        )
        .await,
        1.0
    );
}

/// `SCRIPT FLUSH` (or a restarted Redis) makes EVALSHA fail with NOSCRIPT:
/// the next call loads the script again, and decisions stay global.
#[tokio::test]
async fn a_flushed_script_is_loaded_again() {
    let redis = Redis::start().await;
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(global_5_per_second("flush", "flush.test"));
    let tgs = replicas(1, &docs, &["--global-rate-limit-store", &redis.url()]).await;
    wait_store_up(&tgs, true, Duration::from_secs(10)).await;
    assert_eq!(
        get(&tgs[0], "127.0.0.2", "flush.test", &[]).await.status,
        200
    );
    assert_eq!(redis.cmd(&["SCRIPT", "FLUSH"]).as_deref(), Some("OK"));
    for _ in 0..3 {
        assert_eq!(
            get(&tgs[0], "127.0.0.2", "flush.test", &[]).await.status,
            200
        );
    }
    let tg = &tgs[0];
    let decided = |result: &'static str| async move {
        metric(
            tg,
            "tollgate_global_rate_limit_decisions_total",
            &[("result", result)],
        )
        .await
    };
    assert_eq!(decided("allowed").await, 4.0, "{}", tg.metrics().await);
    assert_eq!(decided("fallback").await, 0.0);
    assert!(redis.calls("eval") >= 1, "the script was sent again");
}

/// ingress-nginx's `global-rate-limit` annotations: N per window, by the
/// configured key, across replicas; ignored CIDRs are never counted.
#[tokio::test]
async fn ingress_nginx_global_rate_limit_annotations() {
    let redis = Redis::start().await;
    let echo = Echo::services(&["app"]).await;
    let mut docs = echo.backends(NS);
    docs.push(ingress(
        "api",
        "api.test",
        &[
            ("global-rate-limit", "6"),
            ("global-rate-limit-window", "1m"),
            ("global-rate-limit-key", "${http_x_api_client}"),
            ("global-rate-limit-ignored-cidrs", "127.0.0.9/32"),
        ],
    ));
    let tgs = replicas(2, &docs, &["--global-rate-limit-store", &redis.url()]).await;
    wait_store_up(&tgs, true, Duration::from_secs(10)).await;
    // One API client from several addresses through both replicas: one
    // budget of 6 per minute.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let src = ["127.0.0.2", "127.0.0.3"][i % 2];
        statuses.push(get(&tgs[i % 2], src, "api.test", &[("x-api-client", "a")]).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status).collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    assert!(statuses[6].header("retry-after").is_some());
    // Another key has its own budget; an ignored address is not counted.
    let other = get(&tgs[0], "127.0.0.2", "api.test", &[("x-api-client", "b")]).await;
    assert_eq!(other.status, 200);
    for _ in 0..8 {
        let ignored = get(&tgs[1], "127.0.0.9", "api.test", &[("x-api-client", "a")]).await;
        assert_eq!(ignored.status, 200);
    }
    // No header: counted by the client address (ingress-nginx's fallback).
    let by_address = get(&tgs[0], "127.0.0.4", "api.test", &[]).await;
    assert_eq!(by_address.status, 200);
}

/// A global limit without `--global-rate-limit-store` is reported by
/// `check` (and applies per replica), on the Ingress and the TrafficPolicy
/// that ask for one; with a store configured, nothing is reported.
#[tokio::test]
async fn a_global_limit_without_a_store_is_a_diagnostic() {
    let echo = Echo::services(&["app"]).await;
    let dir = TempDir::new("check");
    let mut docs = echo.backends(NS);
    docs.push(global_5_per_second("annotated", "annotated.test"));
    docs.push(ingress("by-policy", "policy.test", &[]));
    docs.push(json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": "global", "namespace": NS},
        "spec": {
            "targetRefs": [{"group": "networking.k8s.io", "kind": "Ingress", "name": "by-policy"}],
            "rateLimit": {"requestsPerSecond": 1, "burst": 2, "scope": "Global"}
        }
    }));
    dir.write("m.yaml", &yaml_docs(&docs));
    let (_, out, err) = check(dir.path(), &[]).await;
    let all = format!("{out}{err}");
    let reported = |what: &str| {
        all.lines()
            .any(|l| l.contains(what) && l.contains("no --global-rate-limit-store"))
    };
    assert!(reported("annotated"), "{all}");
    assert!(reported("by-policy"), "{all}");
    assert!(reported("TrafficPolicy"), "{all}");
    let (_, out, err) = check(
        dir.path(),
        &["--global-rate-limit-store", "redis://127.0.0.1:1"],
    )
    .await;
    assert!(
        !format!("{out}{err}").contains("global-rate-limit-store"),
        "{out}{err}"
    );

    // Served anyway, limited per replica: 2 at once, then 429.
    let tg = replicas(1, &docs, &[]).await;
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(get(&tg[0], "127.0.0.2", "policy.test", &[]).await.status);
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429]);
}
