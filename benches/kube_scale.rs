//! Kubernetes mode at scale: the release `tollgate` binary against the fake
//! API server (`tests/common/fakeapi.rs`, in this process) holding 10,000
//! Ingresses, 20,000 Services and 20,000 EndpointSlices (100,000 endpoints).
//!
//! Measures, in order:
//! 1. start-up: spawn → `/readyz` 200, and VmRSS after the initial sync
//!    (target ≤ 150 MB, ready ≤ 3 s);
//! 2. Ingress propagation: a new Ingress (new host) applied to the fake →
//!    first 200 through the proxy from the backend it names, N=50, one change
//!    at a time, 200 ms apart (target p99 ≤ 30 ms);
//! 3. endpoint propagation: an EndpointSlice of a routed Service moved to
//!    another backend → first response from that backend, N=100, 100 ms
//!    apart (target p99 ≤ 5 ms);
//! 4. tollgate's CPU (utime+stime from /proc/PID/stat) while 100
//!    EndpointSlice updates/s are applied for 15 s (target ≤ 10 % of a
//!    core), next to an idle window of the same process;
//! 5. VmRSS after that churn (target ≤ 150 MB).
//!
//! Endpoints point at real backends: one `tollgate echo --fixed` process
//! listening on 127.0.0.1–127.0.0.5 at one port per backend group; every
//! slice's 5 endpoints are those 5 addresses at its group's port, and each
//! group answers with its own `x-echo-service` (`b0`..`b3`), which tells which
//! backend answered.
//!
//! The proxy is polled over one keep-alive HTTP/1.1 connection (hyper), one
//! request every ~0.5 ms plus the round trip. Every wait is bounded. An
//! endpoint move slower than 5 ms prints its polls (when each was sent and
//! how long it took), which tells one slow request (tollgate, the backend or
//! the kernel) from a slow switch (many answers from the old backend).
//!
//! Run: `cargo build --release && cargo bench --bench kube_scale`
//! (or `bench/kube-scale.sh`). The release binary must exist
//! (`target/release/tollgate`, or `TOLLGATE_BIN`). `TOLLGATE_PROFILE=profiling`
//! measures `target/profiling/tollgate` instead (`cargo build --profile
//! profiling && cargo bench --profile profiling --bench kube_scale`: no fat
//! LTO, minutes instead of a quarter of an hour to build).
//!
//! Knobs (environment): `KUBE_SCALE_INGRESSES` (10000; Services and slices
//! are twice that), `KUBE_SCALE_INGRESS_N` (50), `KUBE_SCALE_ENDPOINT_N`
//! (100), `KUBE_SCALE_CHURN_RATE` (100/s), `KUBE_SCALE_CHURN_SECS` (15),
//! `KUBE_SCALE_TOLLGATE_LOG` (tollgate's `RUST_LOG`; default
//! `info,rustls=error,tollgate::publisher=debug`, which adds one log line per
//! endpoint change so the endpoint path can be timed from the log).
//! `KUBE_SCALE_HTTPROUTES` (0: none) loads that many HTTPRoutes on one
//! Gateway beside the Ingresses and measures HTTPRoute propagation the way
//! Ingress propagation is measured (`KUBE_SCALE_INGRESS_N` new routes).
//! `KUBE_SCALE_PERF=1` also profiles tollgate during each phase
//! (`perf record -e cpu-clock --call-graph dwarf`, into
//! `target/kube-scale/perf-{ingress,endpoints,churn}.data`; it perturbs the
//! figures, so use it for the profile only).
//! tollgate's log (JSON) is kept in `target/kube-scale/tollgate.log`.

#[path = "../tests/common/fakeapi.rs"]
mod fakeapi;

use std::fs::File;
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fakeapi::FakeApi;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// Namespaces the objects are spread over.
const NAMESPACES: usize = 50;
/// Endpoints per EndpointSlice (one slice per Service).
const ENDPOINTS_PER_SLICE: usize = 5;
/// Backend groups: one echo port each, `b0`..`b3`.
const GROUPS: usize = 4;
/// Pause after each Ingress-propagation iteration.
const INGRESS_SPACING: Duration = Duration::from_millis(200);
/// Pause after each endpoint-propagation iteration.
const ENDPOINT_SPACING: Duration = Duration::from_millis(100);
/// Gap between two polls of the proxy.
const POLL_GAP: Duration = Duration::from_micros(500);
/// An endpoint move slower than this prints its poll timeline.
const SLOW_ENDPOINT: Duration = Duration::from_millis(5);
/// Bound of one propagation wait.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of the start-up wait.
const START_TIMEOUT: Duration = Duration::from_secs(240);
/// Idle window measured before the churn.
const IDLE_WINDOW: Duration = Duration::from_secs(5);
/// Settling time before an RSS reading.
const SETTLE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------
// Configuration

struct Config {
    ingresses: usize,
    services: usize,
    ingress_n: usize,
    endpoint_n: usize,
    churn_rate: u64,
    churn_secs: u64,
    tollgate_log: String,
    perf: bool,
    /// HTTPRoutes loaded beside the Ingresses (0: no Gateway API phase).
    httproutes: usize,
}

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a number"))),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Config {
        let ingresses = env_num("KUBE_SCALE_INGRESSES", 10_000).max(10) as usize;
        let ingress_n = env_num("KUBE_SCALE_INGRESS_N", 50) as usize;
        let services = (2 * ingresses).max(ingresses + ingress_n);
        let endpoint_n = (env_num("KUBE_SCALE_ENDPOINT_N", 100) as usize).min(ingresses);
        Config {
            ingresses,
            services,
            ingress_n,
            endpoint_n,
            churn_rate: env_num("KUBE_SCALE_CHURN_RATE", 100).clamp(1, 10_000),
            churn_secs: env_num("KUBE_SCALE_CHURN_SECS", 15).clamp(1, 120),
            tollgate_log: std::env::var("KUBE_SCALE_TOLLGATE_LOG")
                .unwrap_or_else(|_| "info,rustls=error,tollgate::publisher=debug".into()),
            perf: env_num("KUBE_SCALE_PERF", 0) != 0,
            httproutes: env_num("KUBE_SCALE_HTTPROUTES", 0) as usize,
        }
    }
}

/// Children alive (pids), killed by [`fail`]: `process::exit` runs no
/// destructors.
static CHILDREN: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];

fn fail(msg: &str) -> ! {
    eprintln!("kube_scale: error: {msg}");
    for slot in &CHILDREN {
        let pid = slot.swap(0, Ordering::AcqRel);
        if pid != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
    std::process::exit(1);
}

fn log(msg: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{t:7.2}s] {msg}");
}

// ---------------------------------------------------------------------------
// Processes

/// A child process, killed when dropped.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id();
        for slot in &CHILDREN {
            let _ = slot.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn spawn(
    name: &'static str,
    bin: &Path,
    args: &[String],
    env: &[(&str, String)],
    log_path: &Path,
) -> Proc {
    let out = File::create(log_path)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", log_path.display())));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| fail(&format!("cannot dup log file: {e}")));
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .env_remove("KUBECONFIG")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start {}: {e}", bin.display())));
    if let Some(slot) = CHILDREN.iter().find(|s| s.load(Ordering::Acquire) == 0) {
        slot.store(child.id(), Ordering::Release);
    }
    Proc { child, name }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port free on every address (so 127.0.0.1–127.0.0.5 can all bind it).
fn free_port() -> u16 {
    StdListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fail(&format!("no free port: {e}")))
}

fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold
    // spaces): state is field 3, utime 14, stime 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

// ---------------------------------------------------------------------------
// Objects

fn ns(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

fn ingress_class() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": "tollgate"},
        "spec": {"controller": "tollgate.dev/ingress-controller"},
    })
}

/// Our GatewayClass and one Gateway (namespace `gw`) admitting routes from
/// every namespace.
fn gateway_objects() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": "tollgate"},
            "spec": {"controllerName": "tollgate.dev/gateway-controller"},
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "gw"},
            "spec": {"gatewayClassName": "tollgate", "listeners": [{
                "name": "http", "port": 80, "protocol": "HTTP",
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }]},
        }),
    ]
}

/// HTTPRoute `name` in the namespace of Service `svc`: `host` / → `svc-{svc}:80`.
fn http_route(name: &str, host: &str, svc: usize) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": ns(svc)},
        "spec": {
            "parentRefs": [{"name": "gw", "namespace": "gw"}],
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": format!("svc-{svc}"), "port": 80}]}],
        },
    })
}

/// Ingress `name` in the namespace of Service `svc`: `host` / → `svc-{svc}:80`.
fn ingress(name: &str, host: &str, svc: usize) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": ns(svc),
            "labels": {"app.kubernetes.io/name": format!("app-{svc}")},
        },
        "spec": {
            "ingressClassName": "tollgate",
            "rules": [{
                "host": host,
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": format!("svc-{svc}"), "port": {"number": 80}}},
                }]},
            }],
        },
    })
}

fn service(i: usize) -> Value {
    let ip = format!("10.96.{}.{}", i / 250, i % 250 + 1);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": format!("svc-{i}"),
            "namespace": ns(i),
            "labels": {"app.kubernetes.io/name": format!("app-{i}")},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "selector": {"app.kubernetes.io/name": format!("app-{i}")},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        },
    })
}

/// The state of one Service's EndpointSlice that the bench changes.
#[derive(Clone, Copy)]
struct SliceState {
    group: u8,
    /// Bit e set: endpoint e is ready (and serving).
    ready: u8,
}

const ALL_READY: u8 = (1 << ENDPOINTS_PER_SLICE) - 1;

fn slice(i: usize, st: SliceState, ports: &[u16]) -> Value {
    let endpoints: Vec<Value> = (0..ENDPOINTS_PER_SLICE)
        .map(|e| {
            let ready = st.ready & (1 << e) != 0;
            json!({
                "addresses": [format!("127.0.0.{}", e + 1)],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "nodeName": format!("node-{}", (i + e) % 100),
                "zone": format!("zone-{}", e % 3),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns(i),
                    "name": format!("app-{i}-7d9f8c6b5-{e:05}"),
                    "uid": format!("00000000-0000-4000-8000-{:012x}", i * ENDPOINTS_PER_SLICE + e),
                },
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("svc-{i}-x7k2p"),
            "namespace": ns(i),
            "labels": {
                "kubernetes.io/service-name": format!("svc-{i}"),
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": ports[st.group as usize], "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

// ---------------------------------------------------------------------------
// HTTP client: one keep-alive connection, reconnecting when closed.

struct Client {
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
    connects: u64,
}

struct Reply {
    status: u16,
    /// `x-echo-service`: which backend group answered.
    backend: Option<String>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            sender: None,
            connects: 0,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(self.addr))
            .await
            .map_err(|_| format!("connect {}: timed out", self.addr))?
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        self.connects += 1;
        Ok(())
    }

    async fn get(&mut self, host: &str, path: &str) -> Result<Reply, String> {
        let mut last = String::new();
        for _ in 0..3 {
            if self.sender.is_none() {
                if let Err(e) = self.connect().await {
                    last = e;
                    continue;
                }
            }
            let Some(sender) = self.sender.as_mut() else {
                continue;
            };
            if sender.ready().await.is_err() {
                self.sender = None;
                continue;
            }
            let req = Request::get(path)
                .header(header::HOST, host)
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let sent = tokio::time::timeout(Duration::from_secs(5), async {
                let resp = sender.send_request(req).await?;
                let status = resp.status().as_u16();
                let backend = resp
                    .headers()
                    .get("x-echo-service")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                resp.into_body().collect().await?;
                Ok::<_, hyper::Error>(Reply { status, backend })
            })
            .await;
            match sent {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "request timed out".into(),
            }
            self.sender = None;
        }
        Err(format!("GET {host}{path}: {last}"))
    }
}

/// Polls `host` until `done` holds; returns (latency from `t0`, polls, the
/// matching reply).
async fn poll_until(
    client: &mut Client,
    host: &str,
    t0: Instant,
    done: impl Fn(&Reply) -> bool,
) -> Result<(Duration, u32, Reply, Vec<(Duration, Duration)>), String> {
    let mut polls = 0u32;
    // (sent, answered) of each poll since t0: printed for slow samples.
    let mut trace = Vec::new();
    loop {
        polls += 1;
        let sent = t0.elapsed();
        let reply = client.get(host, "/").await?;
        trace.push((sent, t0.elapsed()));
        if done(&reply) {
            return Ok((t0.elapsed(), polls, reply, trace));
        }
        if t0.elapsed() > PROPAGATION_TIMEOUT {
            return Err(format!(
                "{host}: not propagated after {PROPAGATION_TIMEOUT:?} ({polls} polls, last status {} from {:?})",
                reply.status, reply.backend
            ));
        }
        // A blocking sleep: tokio's timer has 1 ms granularity, and nothing
        // else runs on this thread's runtime between two requests.
        std::thread::sleep(POLL_GAP);
    }
}

/// One request on a fresh connection (admin endpoints).
async fn get_once(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut c = Client::new(addr);
    c.connect().await?;
    let sender = c.sender.as_mut().ok_or("no connection")?;
    let req = Request::get(path)
        .header(header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| format!("GET {path}: timed out"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Selected counters from `/metrics`.
#[derive(Default, Clone, Copy)]
struct Metrics {
    reloads: f64,
    endpoint_updates: f64,
    compile_sum: f64,
    compile_count: f64,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            match name {
                "tollgate_reloads_total" => m.reloads = v,
                "tollgate_endpoint_updates_total" => m.endpoint_updates = v,
                "tollgate_compile_duration_seconds_sum" => m.compile_sum = v,
                "tollgate_compile_duration_seconds_count" => m.compile_count = v,
                _ => {}
            }
        }
        m
    }

    fn minus(self, o: Metrics) -> Metrics {
        Metrics {
            reloads: self.reloads - o.reloads,
            endpoint_updates: self.endpoint_updates - o.endpoint_updates,
            compile_sum: self.compile_sum - o.compile_sum,
            compile_count: self.compile_count - o.compile_count,
        }
    }
}

async fn metrics(admin: SocketAddr) -> Metrics {
    match get_once(admin, "/metrics").await {
        Ok((200, text)) => Metrics::parse(&text),
        Ok((s, _)) => {
            log(&format!("warning: /metrics answered {s}"));
            Metrics::default()
        }
        Err(e) => {
            log(&format!("warning: /metrics: {e}"));
            Metrics::default()
        }
    }
}

// ---------------------------------------------------------------------------
// tollgate's JSON log

/// Unix time in µs of an RFC 3339 UTC timestamp (`2026-11-26T08:40:34.123456Z`).
fn parse_ts(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, sec) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let mut micros = 0i64;
    let rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        let padded = format!("{digits:0<6}");
        micros = padded.get(..6)?.parse().ok()?;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000) + micros)
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

struct LogLine {
    ts_us: i64,
    message: String,
    v: Value,
}

fn read_log(path: &Path) -> Vec<LogLine> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let ts_us = parse_ts(v.get("timestamp")?.as_str()?)?;
            let message = v.get("message")?.as_str()?.to_string();
            Some(LogLine { ts_us, message, v })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Statistics

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Dist {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn dist(values: &[f64]) -> Dist {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    Dist {
        n: v.len(),
        p50: pct(&v, 0.50),
        p90: pct(&v, 0.90),
        p99: pct(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
        mean: if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        },
    }
}

fn dist_row(label: &str, values: &[f64]) -> String {
    let d = dist(values);
    format!(
        "  {label:<34} {:>4} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        d.n, d.p50, d.p90, d.p99, d.max, d.mean
    )
}

fn dist_header() -> String {
    format!(
        "  {:<34} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "(ms)", "n", "p50", "p90", "p99", "max", "mean"
    )
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// /proc's "kB" are KiB; decimal MB (the target's unit, the stricter one).
fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

// ---------------------------------------------------------------------------
// Optional profiling: KUBE_SCALE_PERF=1 records each phase with
// `perf record -e cpu-clock` (a software event: works without PMU access)
// into target/kube-scale/perf-<phase>.data.

struct Perf {
    child: Option<Child>,
    path: PathBuf,
}

impl Perf {
    async fn start(cfg: &Config, pid: u32, out_dir: &Path, phase: &str) -> Perf {
        let path = out_dir.join(format!("perf-{phase}.data"));
        if !cfg.perf {
            return Perf { child: None, path };
        }
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "499"])
            .args(["--call-graph", "dwarf,8192", "-p", &pid.to_string(), "-o"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                // Let perf attach before the phase starts.
                tokio::time::sleep(Duration::from_millis(500)).await;
                Perf {
                    child: Some(child),
                    path,
                }
            }
            Err(e) => {
                log(&format!("warning: cannot run perf: {e}"));
                Perf { child: None, path }
            }
        }
    }

    async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
        log(&format!("perf data: {}", self.path.display()));
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// The benchmark

fn locate_binary(root: &Path) -> PathBuf {
    if let Ok(bin) = std::env::var("TOLLGATE_BIN") {
        let p = PathBuf::from(bin);
        if !p.is_file() {
            fail(&format!("TOLLGATE_BIN={} does not exist", p.display()));
        }
        return p;
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let profile = std::env::var("TOLLGATE_PROFILE").unwrap_or_else(|_| "release".into());
    let bin = target.join(&profile).join("tollgate");
    if !bin.is_file() {
        fail(&format!(
            "the {profile} binary {} is missing: run `cargo build --profile {profile}` first \
             (or set TOLLGATE_BIN)",
            bin.display()
        ));
    }
    // Warn when the binary is older than the sources.
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let newest_src = newest_mtime(&root.join("src"));
    if let (Some(built), Some(src)) = (built, newest_src) {
        if src > built {
            log(&format!(
                "WARNING: {} is older than src/ (run `cargo build --profile {profile}`); measuring it anyway",
                bin.display()
            ));
        }
    }
    bin
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    let mut stack = vec![dir.to_path_buf()];
    let mut budget = 10_000;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            budget -= 1;
            if budget == 0 {
                return newest;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(e.path());
            } else if let Ok(m) = meta.modified() {
                newest = Some(newest.map_or(m, |n| n.max(m)));
            }
        }
    }
    newest
}

fn wait_port(addr: SocketAddr, proc_: &mut Proc, log_path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if StdStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Some(status) = proc_.exited() {
            fail(&format!(
                "{} exited ({status}) before listening on {addr}:\n{}",
                proc_.name,
                tail(log_path, 20)
            ));
        }
        if Instant::now() > deadline {
            fail(&format!(
                "{} is not listening on {addr} after 15 s:\n{}",
                proc_.name,
                tail(log_path, 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct IngressSample {
    wall: SystemTime,
    total_ms: f64,
    /// `tollgate_compile_duration_seconds` (config::compile only) for this
    /// change, when exactly one compile happened.
    compile_metric_ms: Option<f64>,
}

/// Where one Ingress change's time went (ms from the apply).
struct IngressBudget {
    total: f64,
    /// apply → the "routing table installed" log line (after the publish).
    installed: f64,
    /// `compile_ms` of that line: the whole recompile (config::compile,
    /// upstreams, route metrics, publish).
    recompile: f64,
    /// config::compile alone (from /metrics).
    compile: f64,
}

struct Results {
    load_ms: f64,
    ready_ms: f64,
    sync_log: Vec<(String, f64)>,
    first_compile_ms: Option<f64>,
    rss_ready_kb: u64,
    rss_sync_kb: u64,
    hwm_sync_kb: u64,
    ingress_ms: Vec<f64>,
    ingress_budget: Vec<IngressBudget>,
    ingress_polls: Vec<f64>,
    httproute_ms: Vec<f64>,
    metrics_bytes: usize,
    metrics_scrape_ms: f64,
    rss_scrape_kb: u64,
    rss_ingress_kb: u64,
    rss_endpoint_kb: u64,
    ingress_metrics: Metrics,
    endpoint_ms: Vec<f64>,
    endpoint_logged_ms: Vec<f64>,
    endpoint_polls: Vec<f64>,
    endpoint_metrics: Metrics,
    idle_pct: f64,
    churn_pct: f64,
    churn_updates: u64,
    churn_secs: f64,
    churn_metrics: Metrics,
    churn_bench_pct: f64,
    rss_churn_kb: u64,
    hwm_churn_kb: u64,
    errors: Vec<String>,
    client_connects: u64,
}

fn main() {
    let cfg = Config::from_env();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = locate_binary(&root);
    let out_dir = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("kube-scale");
    std::fs::create_dir_all(&out_dir)
        .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", out_dir.display())));
    let ticks = clk_tck();
    log(&format!(
        "binary {}; {} Ingresses, {} Services, {} EndpointSlices x {} endpoints; CLK_TCK {ticks}",
        bin.display(),
        cfg.ingresses,
        cfg.services,
        cfg.services,
        ENDPOINTS_PER_SLICE
    ));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    let results = rt.block_on(run(&cfg, &bin, &out_dir, ticks));
    report(&cfg, &results, &out_dir);
}

async fn run(cfg: &Config, bin: &Path, out_dir: &Path, ticks: u64) -> Results {
    // Backends: one echo process, GROUPS ports x 5 addresses.
    let ports: Vec<u16> = (0..GROUPS).map(|_| free_port()).collect();
    let mut echo_args = vec!["echo".to_string(), "--fixed".to_string()];
    for (g, port) in ports.iter().enumerate() {
        for e in 0..ENDPOINTS_PER_SLICE {
            echo_args.push("--listen".into());
            echo_args.push(format!("127.0.0.{}:{port}=b{g}", e + 1));
        }
    }
    let echo_log = out_dir.join("echo.log");
    let mut echo = spawn("echo", bin, &echo_args, &[], &echo_log);
    for port in &ports {
        for e in 0..ENDPOINTS_PER_SLICE {
            let addr: SocketAddr = format!("127.0.0.{}:{port}", e + 1)
                .parse()
                .unwrap_or_else(|e| fail(&format!("address: {e}")));
            wait_port(addr, &mut echo, &echo_log);
        }
    }
    log(&format!(
        "echo backends up: ports {ports:?} on 127.0.0.1-{ENDPOINTS_PER_SLICE}"
    ));

    // The fake API server, loaded before tollgate starts.
    let fake = FakeApi::start();
    let mut slices: Vec<SliceState> = (0..cfg.services)
        .map(|i| SliceState {
            group: (i % GROUPS) as u8,
            ready: ALL_READY,
        })
        .collect();
    let t = Instant::now();
    let mut objects = Vec::with_capacity(1 + cfg.ingresses + 2 * cfg.services);
    objects.push(ingress_class());
    for (i, st) in slices.iter().enumerate() {
        objects.push(service(i));
        objects.push(slice(i, *st, &ports));
    }
    for i in 0..cfg.ingresses {
        objects.push(ingress(&format!("ing-{i}"), &format!("h{i}.bench"), i));
    }
    if cfg.httproutes > 0 {
        objects.extend(gateway_objects());
        for i in 0..cfg.httproutes {
            let svc = i % cfg.services;
            objects.push(http_route(
                &format!("route-{i}"),
                &format!("r{i}.bench"),
                svc,
            ));
        }
    }
    let count = objects.len();
    fake.apply_many(objects);
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    log(&format!(
        "fake API server {} loaded with {count} objects in {load_ms:.0} ms",
        fake.url()
    ));
    let kubeconfig = fake.write_kubeconfig(out_dir);

    // tollgate.
    let (http_port, https_port, admin_port) = (free_port(), free_port(), free_port());
    let http: SocketAddr = SocketAddr::from(([127, 0, 0, 1], http_port));
    let admin: SocketAddr = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let tg_log = out_dir.join("tollgate.log");
    let tg_args: Vec<String> = [
        "run",
        "--http-addr",
        &http.to_string(),
        "--https-addr",
        &format!("127.0.0.1:{https_port}"),
        "--admin-addr",
        &admin.to_string(),
        "--access-log",
        "false",
        "--threads",
        "1",
        "--log-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let spawned_wall = SystemTime::now();
    let spawned = Instant::now();
    let mut tg = spawn(
        "tollgate",
        bin,
        &tg_args,
        &[
            ("KUBECONFIG", kubeconfig.to_string_lossy().into_owned()),
            ("RUST_LOG", cfg.tollgate_log.clone()),
        ],
        &tg_log,
    );
    let pid = tg.pid();
    log(&format!(
        "tollgate started (pid {pid}); waiting for /readyz"
    ));

    // 1. Start-up.
    let ready_ms = loop {
        if let Ok((200, _)) = get_once(admin, "/readyz").await {
            break spawned.elapsed().as_secs_f64() * 1000.0;
        }
        if let Some(status) = tg.exited() {
            fail(&format!(
                "tollgate exited ({status}) before ready:\n{}",
                tail(&tg_log, 30)
            ));
        }
        if spawned.elapsed() > START_TIMEOUT {
            fail(&format!(
                "tollgate not ready after {START_TIMEOUT:?}:\n{}",
                tail(&tg_log, 30)
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let rss_ready_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    log(&format!(
        "ready after {ready_ms:.0} ms; VmRSS {:.1} MiB",
        mib(rss_ready_kb)
    ));
    tokio::time::sleep(SETTLE).await;
    let rss_sync_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    let hwm_sync_kb = proc_status_kb(pid, "VmHWM:").unwrap_or(0);
    log(&format!(
        "after {SETTLE:?} settle: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss_sync_kb),
        mib(hwm_sync_kb)
    ));

    let mut errors = Vec::new();
    let mut client = Client::new(http);
    for i in [0, cfg.ingresses / 2, cfg.ingresses - 1] {
        let want = format!("b{}", i % GROUPS);
        match client.get(&format!("h{i}.bench"), "/").await {
            Ok(r) if r.status == 200 && r.backend.as_deref() == Some(want.as_str()) => {}
            Ok(r) => errors.push(format!(
                "sanity: h{i}.bench answered {} from {:?}, expected 200 from {want}",
                r.status, r.backend
            )),
            Err(e) => errors.push(format!("sanity: {e}")),
        }
    }
    if !errors.is_empty() {
        fail(&format!("{}\n{}", errors.join("\n"), tail(&tg_log, 30)));
    }

    // 2. Ingress propagation.
    log(&format!(
        "ingress propagation: {} new Ingresses, {} ms apart",
        cfg.ingress_n,
        INGRESS_SPACING.as_millis()
    ));
    let scrape = Instant::now();
    let metrics_bytes = get_once(admin, "/metrics")
        .await
        .map(|(_, text)| text.len())
        .unwrap_or(0);
    let metrics_scrape_ms = scrape.elapsed().as_secs_f64() * 1000.0;
    let rss_scrape_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    let perf = Perf::start(cfg, pid, out_dir, "ingress").await;
    let m0 = metrics(admin).await;
    let mut before = m0;
    let mut ingress_ms = Vec::new();
    let mut ingress_polls = Vec::new();
    let mut ingress_samples = Vec::new();
    for k in 0..cfg.ingress_n {
        let svc = cfg.ingresses + k;
        let host = format!("new{k}.bench");
        let want = format!("b{}", slices[svc].group);
        // Warm the connection (and check it still works).
        if let Err(e) = client.get("h0.bench", "/").await {
            errors.push(format!("ingress {k}: warm-up: {e}"));
        }
        let object = ingress(&format!("new-{k}"), &host, svc);
        let wall = SystemTime::now();
        let t0 = Instant::now();
        fake.apply(object);
        match poll_until(&mut client, &host, t0, |r| r.status == 200).await {
            Ok((lat, polls, reply, _)) => {
                let total_ms = lat.as_secs_f64() * 1000.0;
                ingress_ms.push(total_ms);
                ingress_polls.push(f64::from(polls));
                if reply.backend.as_deref() != Some(want.as_str()) {
                    errors.push(format!(
                        "ingress {k}: first 200 for {host} came from {:?}, expected {want}",
                        reply.backend
                    ));
                }
                // One scrape per iteration, after the first 200 (inside the
                // quiet spacing): config::compile's time for this change.
                let after = metrics(admin).await;
                let d = after.minus(before);
                before = after;
                ingress_samples.push(IngressSample {
                    wall,
                    total_ms,
                    compile_metric_ms: (d.compile_count == 1.0).then_some(d.compile_sum * 1000.0),
                });
            }
            Err(e) => {
                errors.push(format!("ingress {k}: {e}"));
                before = metrics(admin).await;
            }
        }
        tokio::time::sleep(INGRESS_SPACING).await;
    }
    let ingress_metrics = metrics(admin).await.minus(m0);
    perf.stop().await;
    let rss_ingress_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    {
        let d = dist(&ingress_ms);
        log(&format!(
            "ingress propagation: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            d.p50, d.p99, d.max
        ));
    }

    // 2b. HTTPRoute propagation (with KUBE_SCALE_HTTPROUTES): the same
    // loop as the Ingresses', new HTTPRoutes instead.
    let mut httproute_ms = Vec::new();
    if cfg.httproutes > 0 {
        log(&format!(
            "httproute propagation: {} new HTTPRoutes beside {} loaded, {} ms apart",
            cfg.ingress_n,
            cfg.httproutes,
            INGRESS_SPACING.as_millis()
        ));
        for k in 0..cfg.ingress_n {
            let svc = cfg.ingresses + k;
            let host = format!("newroute{k}.bench");
            let want = format!("b{}", slices[svc].group);
            if let Err(e) = client.get("h0.bench", "/").await {
                errors.push(format!("httproute {k}: warm-up: {e}"));
            }
            let object = http_route(&format!("new-route-{k}"), &host, svc);
            let t0 = Instant::now();
            fake.apply(object);
            match poll_until(&mut client, &host, t0, |r| r.status == 200).await {
                Ok((lat, _, reply, _)) => {
                    httproute_ms.push(lat.as_secs_f64() * 1000.0);
                    if reply.backend.as_deref() != Some(want.as_str()) {
                        errors.push(format!(
                            "httproute {k}: first 200 for {host} came from {:?}, expected {want}",
                            reply.backend
                        ));
                    }
                }
                Err(e) => errors.push(format!("httproute {k}: {e}")),
            }
            tokio::time::sleep(INGRESS_SPACING).await;
        }
        let d = dist(&httproute_ms);
        log(&format!(
            "httproute propagation: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            d.p50, d.p99, d.max
        ));
    }

    // 3. Endpoint propagation.
    log(&format!(
        "endpoint propagation: {} EndpointSlice moves, {} ms apart",
        cfg.endpoint_n,
        ENDPOINT_SPACING.as_millis()
    ));
    let perf = Perf::start(cfg, pid, out_dir, "endpoints").await;
    let m0 = metrics(admin).await;
    let mut endpoint_ms = Vec::new();
    let mut endpoint_polls = Vec::new();
    let mut endpoint_walls = Vec::new();
    for k in 0..cfg.endpoint_n {
        // Distinct routed Services (7919 is prime, so coprime with most sizes).
        let svc = (k * 7919) % cfg.ingresses;
        let host = format!("h{svc}.bench");
        let old = format!("b{}", slices[svc].group);
        match client.get(&host, "/").await {
            Ok(r) if r.status == 200 && r.backend.as_deref() == Some(old.as_str()) => {}
            Ok(r) => errors.push(format!(
                "endpoints {k}: before the move {host} answered {} from {:?}, expected {old}",
                r.status, r.backend
            )),
            Err(e) => errors.push(format!("endpoints {k}: {e}")),
        }
        let group = (slices[svc].group + 1) % GROUPS as u8;
        slices[svc].group = group;
        let want = format!("b{group}");
        let object = slice(svc, slices[svc], &ports);
        let wall = SystemTime::now();
        let t0 = Instant::now();
        fake.apply(object);
        match poll_until(&mut client, &host, t0, |r| {
            r.status == 200 && r.backend.as_deref() == Some(want.as_str())
        })
        .await
        {
            Ok((lat, polls, _, trace)) => {
                if lat > SLOW_ENDPOINT {
                    // Which part was slow: one poll waiting on tollgate,
                    // or many answered by the old backend.
                    let polls: Vec<String> = trace
                        .iter()
                        .map(|(s, e)| {
                            format!(
                                "{:.2}+{:.2}",
                                s.as_secs_f64() * 1e3,
                                (*e - *s).as_secs_f64() * 1e3
                            )
                        })
                        .collect();
                    log(&format!(
                        "slow endpoint move {k} (svc-{svc}, applied at {}): {:.2} ms; polls (sent+took, ms): {}",
                        wall.duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0),
                        lat.as_secs_f64() * 1e3,
                        polls.join(" ")
                    ));
                }
                endpoint_ms.push(lat.as_secs_f64() * 1000.0);
                endpoint_polls.push(f64::from(polls));
                endpoint_walls.push(Some((wall, svc)));
            }
            Err(e) => {
                errors.push(format!("endpoints {k}: {e}"));
                endpoint_walls.push(None);
            }
        }
        tokio::time::sleep(ENDPOINT_SPACING).await;
    }
    let endpoint_metrics = metrics(admin).await.minus(m0);
    perf.stop().await;
    let rss_endpoint_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    {
        let d = dist(&endpoint_ms);
        log(&format!(
            "endpoint propagation: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            d.p50, d.p99, d.max
        ));
    }

    // 4. CPU: idle window, then the churn.
    let pid_s = pid.to_string();
    log(&format!("idle window: {IDLE_WINDOW:?}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c0, t0) = (cpu_ticks(&pid_s), Instant::now());
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_pct =
        (cpu_ticks(&pid_s) - c0) as f64 / ticks as f64 / t0.elapsed().as_secs_f64() * 100.0;
    log(&format!(
        "idle: {idle_pct:.2} % of a core; churn: {} EndpointSlice updates/s for {} s",
        cfg.churn_rate, cfg.churn_secs
    ));
    // Routed Services only: every update reaches an upstream.
    let routed = cfg.ingresses + cfg.ingress_n;
    let interval = Duration::from_secs_f64(1.0 / cfg.churn_rate as f64);
    let total = cfg.churn_rate * cfg.churn_secs;
    let mut rng = fastrand::Rng::with_seed(0x6b75_6265);
    let m0 = metrics(admin).await;
    let perf = Perf::start(cfg, pid, out_dir, "churn").await;
    let (c0, b0) = (cpu_ticks(&pid_s), cpu_ticks("self"));
    let start = Instant::now();
    let start_tokio = tokio::time::Instant::now();
    let mut sent = 0u64;
    for n in 0..total {
        tokio::time::sleep_until(start_tokio + interval * n as u32).await;
        let svc = rng.usize(..routed);
        let e = rng.usize(..ENDPOINTS_PER_SLICE);
        slices[svc].ready ^= 1 << e;
        fake.apply(slice(svc, slices[svc], &ports));
        sent += 1;
    }
    // The window closes one interval after the last update.
    tokio::time::sleep_until(start_tokio + interval * total as u32).await;
    let churn_secs = start.elapsed().as_secs_f64();
    let churn_pct = (cpu_ticks(&pid_s) - c0) as f64 / ticks as f64 / churn_secs * 100.0;
    let churn_bench_pct = (cpu_ticks("self") - b0) as f64 / ticks as f64 / churn_secs * 100.0;
    perf.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let churn_metrics = metrics(admin).await.minus(m0);
    log(&format!(
        "churn: {sent} updates in {churn_secs:.2} s; tollgate {churn_pct:.2} % of a core \
         (bench process incl. fake API server: {churn_bench_pct:.1} %)"
    ));

    // 5. Memory after the churn.
    tokio::time::sleep(SETTLE).await;
    let rss_churn_kb = proc_status_kb(pid, "VmRSS:").unwrap_or(0);
    let hwm_churn_kb = proc_status_kb(pid, "VmHWM:").unwrap_or(0);
    if let Some(status) = tg.exited() {
        errors.push(format!("tollgate exited during the run ({status})"));
    }

    // Timings from tollgate's log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = read_log(&tg_log);
    let spawned_us = unix_us(spawned_wall);
    let mut sync_log = Vec::new();
    let mut first_compile_ms = None;
    for l in &lines {
        let at = (l.ts_us - spawned_us) as f64 / 1000.0;
        match l.message.as_str() {
            "watch synced" => {
                let kind = l.v.get("kind").and_then(Value::as_str).unwrap_or("?");
                let objects = l.v.get("objects").and_then(Value::as_u64).unwrap_or(0);
                sync_log.push((format!("watch synced: {kind} ({objects})"), at));
            }
            "initial sync complete; routing table published" => {
                sync_log.push(("initial sync complete, published".into(), at));
            }
            "routing table installed" if first_compile_ms.is_none() => {
                first_compile_ms = l.v.get("compile_ms").and_then(Value::as_f64);
                sync_log.push(("first routing table installed".into(), at));
            }
            _ => {}
        }
    }
    sync_log.sort_by(|a, b| a.1.total_cmp(&b.1));

    // Ingress: apply → "routing table installed", and its compile_ms.
    let installs: Vec<(i64, f64)> = lines
        .iter()
        .filter(|l| l.message == "routing table installed")
        .map(|l| {
            (
                l.ts_us,
                l.v.get("compile_ms")
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NAN),
            )
        })
        .collect();
    let mut ingress_budget = Vec::new();
    for sample in &ingress_samples {
        let w = unix_us(sample.wall);
        if let Some((ts, recompile)) = installs.iter().find(|(ts, _)| *ts >= w) {
            let installed = (ts - w) as f64 / 1000.0;
            ingress_budget.push(IngressBudget {
                total: sample.total_ms,
                installed,
                recompile: *recompile,
                compile: sample.compile_metric_ms.unwrap_or(f64::NAN),
            });
        }
    }
    // Endpoints: apply → "endpoints updated" for that Service.
    let mut endpoint_logged_ms = Vec::new();
    for (wall, svc) in endpoint_walls.iter().flatten() {
        let w = unix_us(*wall);
        let needle = format!("/svc-{svc}:");
        if let Some(l) = lines.iter().find(|l| {
            l.ts_us >= w
                && l.message == "endpoints updated"
                && l.v
                    .get("upstream")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.contains(&needle))
        }) {
            endpoint_logged_ms.push((l.ts_us - w) as f64 / 1000.0);
        }
    }

    let client_connects = client.connects;
    drop(tg);
    drop(echo);
    drop(fake);
    Results {
        load_ms,
        ready_ms,
        sync_log,
        first_compile_ms,
        rss_ready_kb,
        rss_sync_kb,
        hwm_sync_kb,
        ingress_ms,
        ingress_budget,
        ingress_polls,
        httproute_ms,
        metrics_bytes,
        metrics_scrape_ms,
        rss_scrape_kb,
        rss_ingress_kb,
        rss_endpoint_kb,
        ingress_metrics,
        endpoint_ms,
        endpoint_logged_ms,
        endpoint_polls,
        endpoint_metrics,
        idle_pct,
        churn_pct,
        churn_updates: sent,
        churn_secs,
        churn_metrics,
        churn_bench_pct,
        rss_churn_kb,
        hwm_churn_kb,
        errors,
        client_connects,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

/// The RSS target of issue 15 at 10,000 Ingresses (MB, 10^6 bytes).
const RSS_TARGET_MB: f64 = 150.0;

fn rss_verdict(kb: u64) -> &'static str {
    if mb(kb) <= RSS_TARGET_MB {
        "ok"
    } else if mib(kb) <= RSS_TARGET_MB {
        "MISSED in MB (10^6 B); ok in MiB"
    } else {
        "MISSED"
    }
}

fn report(cfg: &Config, r: &Results, out_dir: &Path) {
    let ing = dist(&r.ingress_ms);
    let ep = dist(&r.endpoint_ms);
    println!();
    println!(
        "=== kube_scale: {} Ingresses, {} Services, {} EndpointSlices x {} = {} endpoints ===",
        cfg.ingresses,
        cfg.services,
        cfg.services,
        ENDPOINTS_PER_SLICE,
        cfg.services * ENDPOINTS_PER_SLICE
    );
    println!();
    println!(
        "start-up (fake loaded in {:.0} ms before tollgate starts; times from spawn):",
        r.load_ms
    );
    for (what, at) in &r.sync_log {
        println!("  {what:<44} {at:>9.0} ms");
    }
    println!(
        "  {:<44} {:>9.0} ms",
        "/readyz 200 (polled every 5 ms)", r.ready_ms
    );
    if let Some(c) = r.first_compile_ms {
        println!("  {:<44} {c:>9.1} ms", "first compile (compile_ms)");
    }
    println!(
        "  VmRSS at ready {:.1} MiB; {}s later {:.1} MiB; VmHWM {:.1} MiB",
        mib(r.rss_ready_kb),
        SETTLE.as_secs(),
        mib(r.rss_sync_kb),
        mib(r.hwm_sync_kb)
    );
    println!();
    println!(
        "propagation (apply to the fake → first matching response; one keep-alive \
         connection, ~{} µs between polls):",
        POLL_GAP.as_micros()
    );
    println!("{}", dist_header());
    println!("{}", dist_row("ingress: apply → first 200", &r.ingress_ms));
    if !r.httproute_ms.is_empty() {
        println!(
            "{}",
            dist_row("httproute: apply → first 200", &r.httproute_ms)
        );
    }
    let col =
        |f: fn(&IngressBudget) -> f64| -> Vec<f64> { r.ingress_budget.iter().map(f).collect() };
    println!(
        "{}",
        dist_row("  apply → 'routing table installed'", &col(|b| b.installed))
    );
    println!(
        "{}",
        dist_row(
            "  a. apply → recompile start (derived)",
            &col(|b| b.installed - b.recompile)
        )
    );
    println!(
        "{}",
        dist_row("  b. recompile: compile_ms (log)", &col(|b| b.recompile))
    );
    println!(
        "{}",
        dist_row("     of which config::compile", &col(|b| b.compile))
    );
    println!(
        "{}",
        dist_row(
            "     rest: upstreams/metrics/publish",
            &col(|b| b.recompile - b.compile)
        )
    );
    println!(
        "{}",
        dist_row(
            "  c. log line → first 200 (derived)",
            &col(|b| b.total - b.installed)
        )
    );
    println!(
        "  (a = log line time - compile_ms; the line is written after the swap and after the \
         old state is dropped, so c < 0 when the new table served before the line)"
    );
    println!(
        "{}",
        dist_row("endpoints: apply → new backend", &r.endpoint_ms)
    );
    println!(
        "{}",
        dist_row("  apply → 'endpoints updated' (log)", &r.endpoint_logged_ms)
    );
    let im = r.ingress_metrics;
    let em = r.endpoint_metrics;
    println!(
        "  polls per ingress change: median {:.0}; per endpoint change: median {:.0}",
        dist(&r.ingress_polls).p50,
        dist(&r.endpoint_polls).p50
    );
    println!(
        "  /metrics over the ingress phase: {:.0} reloads, mean compile {:.1} ms; \
         over the endpoint phase: {:.0} reloads, {:.0} endpoint updates",
        im.reloads,
        if im.compile_count > 0.0 {
            im.compile_sum / im.compile_count * 1000.0
        } else {
            f64::NAN
        },
        em.reloads,
        em.endpoint_updates
    );
    println!();
    let cm = r.churn_metrics;
    println!(
        "CPU: idle {:.2} % of a core; churn {} updates in {:.2} s ({:.1}/s): {:.2} % of a core \
         ({:.0} endpoint updates, {:.0} reloads in /metrics); the fake API server runs in the \
         bench process and is excluded (bench process: {:.1} %)",
        r.idle_pct,
        r.churn_updates,
        r.churn_secs,
        r.churn_updates as f64 / r.churn_secs,
        r.churn_pct,
        cm.endpoint_updates,
        cm.reloads,
        r.churn_bench_pct
    );
    println!(
        "memory (VmRSS): after sync {:.1} MiB; after one /metrics scrape {:.1} MiB; after the Ingress phase ({} recompiles) {:.1} MiB; \
         after the endpoint phase {:.1} MiB; after the churn {:.1} MiB (VmHWM {:.1} MiB)",
        mib(r.rss_sync_kb),
        mib(r.rss_scrape_kb),
        r.ingress_metrics.reloads,
        mib(r.rss_ingress_kb),
        mib(r.rss_endpoint_kb),
        mib(r.rss_churn_kb),
        mib(r.hwm_churn_kb)
    );
    println!(
        "/metrics: {:.1} KiB, scraped in {:.1} ms",
        r.metrics_bytes as f64 / 1024.0,
        r.metrics_scrape_ms
    );
    println!("client connections opened: {}", r.client_connects);
    println!();
    println!("| metric | measured | target | |");
    println!("|---|---|---|---|");
    println!(
        "| start-up: spawn → /readyz 200 | {:.2} s | ≤ 3 s | {} |",
        r.ready_ms / 1000.0,
        verdict(r.ready_ms <= 3000.0)
    );
    println!(
        "| VmRSS after sync | {:.1} MB ({:.1} MiB) | ≤ {RSS_TARGET_MB:.0} MB | {} |",
        mb(r.rss_sync_kb),
        mib(r.rss_sync_kb),
        rss_verdict(r.rss_sync_kb)
    );
    println!(
        "| Ingress propagation (n={}) p50 / p90 / p99 / max | {:.1} / {:.1} / {:.1} / {:.1} ms | p99 ≤ 30 ms | {} |",
        ing.n,
        ing.p50,
        ing.p90,
        ing.p99,
        ing.max,
        verdict(ing.n == cfg.ingress_n && ing.p99 <= 30.0)
    );
    println!(
        "| endpoint propagation (n={}) p50 / p90 / p99 / max | {:.2} / {:.2} / {:.2} / {:.2} ms | p99 ≤ 5 ms | {} |",
        ep.n,
        ep.p50,
        ep.p90,
        ep.p99,
        ep.max,
        verdict(ep.n == cfg.endpoint_n && ep.p99 <= 5.0)
    );
    println!(
        "| CPU at {} EndpointSlice updates/s ({} s) | {:.2} % of a core (idle {:.2} %) | ≤ 10 % | {} |",
        cfg.churn_rate,
        cfg.churn_secs,
        r.churn_pct,
        r.idle_pct,
        verdict(r.churn_pct <= 10.0)
    );
    println!(
        "| VmRSS after churn | {:.1} MB ({:.1} MiB) | ≤ {RSS_TARGET_MB:.0} MB | {} |",
        mb(r.rss_churn_kb),
        mib(r.rss_churn_kb),
        rss_verdict(r.rss_churn_kb)
    );
    println!();
    println!("tollgate log: {}", out_dir.join("tollgate.log").display());
    if !r.errors.is_empty() {
        println!();
        println!("ERRORS ({}):", r.errors.len());
        for e in r.errors.iter().take(20) {
            println!("  {e}");
        }
        std::process::exit(1);
    }
}
