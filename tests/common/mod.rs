//! Test harness for black-box tests of the `tollgate` binary.
//!
//! Everything goes through real sockets on 127.0.0.1 and real child
//! processes:
//! - [`free_port`] hands out ports for the listeners the binary must bind
//!   itself (it does not accept port 0);
//! - [`Echo`] runs `tollgate echo` (the conformance-style echo backend);
//! - [`Tollgate`] writes manifests into its own temporary directory, runs
//!   `tollgate run` against them and waits for `/readyz`;
//! - [`send`] / [`get`] are a small hyper HTTP/1.1 client, [`raw`] a raw
//!   TCP one for requests hyper refuses to produce;
//! - [`serve`] starts in-test hyper backends with a custom handler;
//! - the `service`/`slice`/`ingress` functions build Kubernetes objects.
//!
//! Every wait in here is bounded; a child process is killed when its
//! handle drops, and its temporary directory is removed unless the test
//! panicked (then the logs are printed to help diagnosis).
#![allow(dead_code)]
// Test scaffolding, not the data plane: a lock guarding the port registry is fine.
#![allow(clippy::disallowed_types)]

pub mod cluster;
pub mod fakeapi;
pub mod gateway;
pub mod h2raw;
pub mod ws;

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// Upper bound for any single HTTP exchange made by the helpers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a child process to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for a manifest change to become visible (contract: up to
/// ~2 s; one more second of margin for a loaded 2-core machine).
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------
// Ports and temporary directories
// ---------------------------------------------------------------------------

/// Ports handed out by this test process, so that two tests running in
/// parallel never get the same one.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that is free right now on 127.0.0.1.
///
/// Ports come from 20000..32000, below Linux' ephemeral range
/// (32768..60999), so that outgoing connections made by concurrently running
/// tests cannot grab the port between the check here and the moment the
/// child process binds it. Falls back to a kernel-chosen port.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap();
    let set = guard.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let port = fastrand::u16(20000..32000);
        if set.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            set.insert(port);
            return port;
        }
    }
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if set.insert(port) {
            return port;
        }
    }
}

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A uniquely named directory under the system temp dir, removed on drop
/// (kept when the test panicked, to allow looking at logs and manifests).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "tollgate-test-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `content` to `name` (relative) atomically: a temp file that no
    /// manifest glob matches, then a rename over the target.
    pub fn write(&self, name: &str, content: &str) {
        write_atomic(&self.path.join(name), content);
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn write_atomic(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap().to_string_lossy(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A spawned child with stdout/stderr redirected to files; killed on drop.
pub struct Proc {
    child: Child,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
    exited: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, args: &[String]) -> Proc {
        Proc::spawn_env(name, dir, args, &[])
    }

    /// Like [`Proc::spawn`], with extra environment variables.
    pub fn spawn_env(name: &str, dir: &Path, args: &[String], env: &[(String, String)]) -> Proc {
        let stdout = dir.join(format!("{name}.stdout.log"));
        let stderr = dir.join(format!("{name}.stderr.log"));
        let child = Command::new(BIN)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .env("RUST_BACKTRACE", "1")
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {BIN} {args:?}: {e}"));
        Proc {
            child,
            name: name.to_string(),
            stdout,
            stderr,
            exited: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().unwrap();
        }
        self.exited
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// The last bytes of the process's stdout and stderr.
    /// Everything the child wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        let tail = |p: &Path| {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            let start = s.len().saturating_sub(4000);
            let start = (start..s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(s.len());
            s[start..].to_string()
        };
        format!(
            "---- {} stdout (tail) ----\n{}\n---- {} stderr (tail) ----\n{}",
            self.name,
            tail(&self.stdout),
            self.name,
            tail(&self.stderr)
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Waits (bounded) until something accepts TCP connections on `port`.
pub async fn wait_port(port: u16, proc_: &mut Proc) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        if let Some(st) = proc_.try_exit() {
            panic!(
                "{} exited with {st} before listening on {port}\n{}",
                proc_.name,
                proc_.logs()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "{} did not listen on {port} in time\n{}",
                proc_.name,
                proc_.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `tollgate echo` serving one or more (port, service-name) listeners.
pub struct Echo {
    pub listens: Vec<(u16, String)>,
    pub proc_: Proc,
    _dir: TempDir,
}

impl Echo {
    /// One listener per service name.
    pub async fn services(names: &[&str]) -> Echo {
        Echo::start(names.iter().map(|n| (free_port(), n.to_string())).collect()).await
    }

    /// `n` listeners all reporting the same service name.
    pub async fn replicas(name: &str, n: usize) -> Echo {
        Echo::start((0..n).map(|_| (free_port(), name.to_string())).collect()).await
    }

    pub async fn start(listens: Vec<(u16, String)>) -> Echo {
        let dir = TempDir::new("echo");
        let mut args = vec!["echo".to_string()];
        for (port, svc) in &listens {
            args.push("--listen".into());
            args.push(format!("127.0.0.1:{port}={svc}"));
        }
        let mut proc_ = Proc::spawn("echo", dir.path(), &args);
        for (port, _) in &listens {
            wait_port(*port, &mut proc_).await;
        }
        Echo {
            listens,
            proc_,
            _dir: dir,
        }
    }

    /// The port of the (first) listener for `svc`.
    pub fn port(&self, svc: &str) -> u16 {
        self.ports(svc)[0]
    }

    pub fn ports(&self, svc: &str) -> Vec<u16> {
        let v: Vec<u16> = self
            .listens
            .iter()
            .filter(|(_, s)| s == svc)
            .map(|(p, _)| *p)
            .collect();
        assert!(!v.is_empty(), "echo has no listener for {svc}");
        v
    }

    /// Service + EndpointSlices (namespace `ns`, service port 8080 named
    /// `http`) for every service this echo serves.
    pub fn backends(&self, ns: &str) -> Vec<Value> {
        let mut names: Vec<&str> = Vec::new();
        for (_, s) in &self.listens {
            if !names.contains(&s.as_str()) {
                names.push(s);
            }
        }
        names
            .into_iter()
            .flat_map(|n| backend(ns, n, &self.ports(n)))
            .collect()
    }
}

/// A running `tollgate run`.
pub struct Tollgate {
    pub http_port: u16,
    pub https_port: u16,
    pub admin_port: u16,
    pub proc_: Proc,
    pub dir: TempDir,
}

pub struct TollgateBuilder {
    files: Vec<(String, String)>,
    extra_files: Vec<(String, String)>,
    args: Vec<String>,
    wait_ready: bool,
    /// Kubernetes mode: the kubeconfig to use (no `--manifests`).
    kubeconfig: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Tollgate {
    pub fn builder() -> TollgateBuilder {
        TollgateBuilder {
            files: Vec::new(),
            extra_files: Vec::new(),
            args: Vec::new(),
            wait_ready: true,
            kubeconfig: None,
            env: Vec::new(),
        }
    }

    /// Starts with a single manifest file `manifests.yaml` holding `docs`.
    pub async fn with_docs(docs: &[Value]) -> Tollgate {
        Tollgate::builder()
            .file("manifests.yaml", &yaml_docs(docs))
            .start()
            .await
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    pub fn manifests_dir(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// Atomically (re)writes a manifest file.
    pub fn write(&self, name: &str, content: &str) {
        write_atomic(&self.manifests_dir().join(name), content);
    }

    /// Removes a manifest file.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.manifests_dir().join(name)).unwrap();
    }

    /// Writes a manifest file in place (not atomically).
    pub fn write_in_place(&self, name: &str, content: &str) {
        std::fs::write(self.manifests_dir().join(name), content).unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.proc_.pid()
    }

    /// GET on the proxy's HTTP port with the given Host header.
    pub async fn get(&self, host: &str, path: &str) -> Resp {
        get(self.http_addr(), host, path).await
    }

    /// A request without a body on the proxy's HTTP port, with these
    /// headers (each replaces the client's own, so a test's User-Agent
    /// wins); panics naming the request if it gets no response
    /// (ingress-nginx's e2e `HTTPTestClient()`).
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut request = req(method, host, target).body(Full::default()).unwrap();
        for (k, v) in headers {
            request.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        send(self.http_addr(), request)
            .await
            .unwrap_or_else(|e| panic!("{method} http://{host}{target}: {e}"))
    }

    pub async fn admin(&self, path: &str) -> Result<Resp, String> {
        send(
            self.admin_addr(),
            req("GET", "localhost", path).body(Full::default()).unwrap(),
        )
        .await
    }

    pub async fn metrics(&self) -> String {
        let r = self.admin("/metrics").await.expect("GET /metrics");
        assert_eq!(r.status, 200, "GET /metrics");
        r.text()
    }

    /// Polls `host``path` until `pred` holds for the response (bounded by
    /// [`RELOAD_TIMEOUT`]); returns the last response.
    pub async fn eventually<F: Fn(&Resp) -> bool>(&self, host: &str, path: &str, pred: F) -> Resp {
        self.eventually_within(host, path, RELOAD_TIMEOUT, pred)
            .await
    }

    /// [`Tollgate::eventually`] with an explicit bound.
    pub async fn eventually_within<F: Fn(&Resp) -> bool>(
        &self,
        host: &str,
        path: &str,
        timeout: Duration,
        pred: F,
    ) -> Resp {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(host, path).await;
            if pred(&r) || Instant::now() >= deadline {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl TollgateBuilder {
    pub fn file(mut self, name: &str, content: &str) -> Self {
        self.files.push((name.to_string(), content.to_string()));
        self
    }

    /// A manifest file outside the manifests directory, passed with its
    /// own `--manifests FILE` argument.
    pub fn extra_file(mut self, name: &str, content: &str) -> Self {
        self.extra_files
            .push((name.to_string(), content.to_string()));
        self
    }

    pub fn docs(self, name: &str, docs: &[Value]) -> Self {
        let y = yaml_docs(docs);
        self.file(name, &y)
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn args(mut self, a: &[&str]) -> Self {
        self.args.extend(a.iter().map(|s| s.to_string()));
        self
    }

    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    /// Kubernetes mode against the API server this kubeconfig names
    /// (`KUBECONFIG`; no `--manifests`).
    pub fn kubeconfig(mut self, path: &Path) -> Self {
        self.kubeconfig = Some(path.to_path_buf());
        self
    }

    /// An environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub async fn start(self) -> Tollgate {
        let dir = TempDir::new("tollgate");
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        for (name, content) in &self.files {
            write_atomic(&manifests.join(name), content);
        }
        let (http_port, https_port, admin_port) = (free_port(), free_port(), free_port());
        let mut args: Vec<String> = vec!["run".into()];
        let mut env = self.env;
        match &self.kubeconfig {
            Some(path) => {
                env.push(("KUBECONFIG".into(), path.to_string_lossy().into_owned()));
            }
            None => {
                args.push("--manifests".into());
                args.push(manifests.to_string_lossy().into_owned());
            }
        }
        args.extend([
            "--http-addr".into(),
            format!("127.0.0.1:{http_port}"),
            "--https-addr".into(),
            format!("127.0.0.1:{https_port}"),
            "--admin-addr".into(),
            format!("127.0.0.1:{admin_port}"),
        ]);
        for (name, content) in &self.extra_files {
            let path = dir.path().join("extra").join(name);
            write_atomic(&path, content);
            args.push("--manifests".into());
            args.push(path.to_string_lossy().into_owned());
        }
        args.extend(self.args);
        let mut proc_ = Proc::spawn_env("tollgate", dir.path(), &args, &env);
        if self.wait_ready {
            wait_ready(admin_port, &mut proc_).await;
        }
        Tollgate {
            http_port,
            https_port,
            admin_port,
            proc_,
            dir,
        }
    }
}

async fn wait_ready(admin_port: u16, proc_: &mut Proc) {
    let addr = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last: String;
    loop {
        match send(
            addr,
            req("GET", "localhost", "/readyz")
                .body(Full::default())
                .unwrap(),
        )
        .await
        {
            Ok(r) if r.status == 200 => return,
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = e,
        }
        if let Some(st) = proc_.try_exit() {
            panic!(
                "tollgate exited with {st} before ready ({last})\n{}",
                proc_.logs()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "tollgate not ready in time (last /readyz: {last})\n{}",
                proc_.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs a `tollgate` subcommand to completion (bounded) and returns
/// (exit code, stdout, stderr).
pub async fn run_cmd(args: &[String]) -> (i32, String, String) {
    let dir = TempDir::new("cmd");
    let mut p = Proc::spawn("cmd", dir.path(), args);
    let st = p
        .wait_exit(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("tollgate {args:?} did not finish in 20s\n{}", p.logs()));
    let out = std::fs::read_to_string(&p.stdout).unwrap_or_default();
    let err = std::fs::read_to_string(&p.stderr).unwrap_or_default();
    (st.code().unwrap_or(-1), out, err)
}

/// `tollgate check --manifests DIR [extra...]`.
pub async fn check(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "check".to_string(),
        "--manifests".to_string(),
        dir.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_cmd(&args).await
}

/// Resident set size of a process in kB, from /proc/PID/status.
pub fn vm_rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// A fully received response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body parsed as the echo backend's JSON.
    pub fn echo(&self) -> Echoed {
        Echoed::parse(&self.body, self.status)
    }

    /// Served-by service (echo's `service` field), or `None` when the body
    /// is not echo JSON.
    pub fn service(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("service")?.as_str().map(str::to_string)
    }

    /// "STATUS service" for compact assertion messages.
    pub fn summary(&self) -> String {
        match self.service() {
            Some(s) => format!("{} served by {s}", self.status),
            None => {
                let t = self.text();
                let t: String = t.chars().take(200).collect();
                format!("{} body {t:?}", self.status)
            }
        }
    }
}

/// The echo backend's view of the request it received.
#[derive(Debug, Clone)]
pub struct Echoed(pub Value);

impl Echoed {
    pub fn parse(body: &[u8], status: u16) -> Echoed {
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "status {status}: body is not echo JSON ({e}): {:?}",
                String::from_utf8_lossy(body)
            )
        });
        Echoed(v)
    }

    fn str_field(&self, f: &str) -> String {
        self.0
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("echo JSON has no string field {f:?}: {}", self.0))
            .to_string()
    }

    pub fn service(&self) -> String {
        self.str_field("service")
    }
    pub fn path(&self) -> String {
        self.str_field("path")
    }
    pub fn host(&self) -> String {
        self.str_field("host")
    }
    pub fn method(&self) -> String {
        self.str_field("method")
    }
    pub fn proto(&self) -> String {
        self.str_field("proto")
    }
    pub fn pod(&self) -> String {
        self.str_field("pod")
    }
    pub fn body_bytes(&self) -> u64 {
        self.0
            .get("bodyBytes")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("echo JSON has no bodyBytes: {}", self.0))
    }

    /// All values of request header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let Some(obj) = self.0.get("headers").and_then(Value::as_object) else {
            panic!("echo JSON has no headers object: {}", self.0)
        };
        let mut out = Vec::new();
        for (k, v) in obj {
            if k.eq_ignore_ascii_case(name) {
                match v {
                    Value::Array(a) => {
                        out.extend(a.iter().filter_map(|x| x.as_str().map(str::to_string)))
                    }
                    Value::String(s) => out.push(s.clone()),
                    _ => {}
                }
            }
        }
        out
    }

    /// Request header `name` with multiple values joined by ", ".
    pub fn header(&self, name: &str) -> Option<String> {
        let v = self.header_values(name);
        if v.is_empty() {
            None
        } else {
            Some(v.join(", "))
        }
    }
}

/// A Service `svc` (port 8080 named `http`) in `ns` whose one EndpointSlice
/// lists `addresses` (127.0.0.x) on `port`.
pub fn multi_address_backend(ns: &str, svc: &str, port: u16, addresses: &[&str]) -> Vec<Value> {
    let endpoints: Vec<Value> = addresses
        .iter()
        .map(|a| json!({"addresses": [a], "conditions": {"ready": true}}))
        .collect();
    vec![
        service(ns, svc, &[("http", 8080)]),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{svc}-0"), "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": endpoints,
        }),
    ]
}

/// A TrafficPolicy `name` in `ns` targeting the named Ingresses, with
/// `extra` merged into its spec.
pub fn traffic_policy(ns: &str, name: &str, targets: &[&str], extra: Value) -> Value {
    let refs: Vec<Value> = targets
        .iter()
        .map(|t| json!({"group": "networking.k8s.io", "kind": "Ingress", "name": t}))
        .collect();
    let mut spec = json!({"targetRefs": refs});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    })
}

/// A request builder with method, Host header and origin-form target.
pub fn req(method: &str, host: &str, target: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(target)
        .header("host", host)
        .header("user-agent", "Go-http-client/1.1")
}

/// Sends one request on a fresh HTTP/1.1 connection (bounded by
/// [`REQUEST_TIMEOUT`]) and reads the whole response.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Resp, String> {
    send_over(None, addr, req).await
}

/// As [`send`], from source address `src` (any 127.0.0.0/8 address: a
/// distinct client for limits and access lists).
pub async fn send_from(
    src: std::net::IpAddr,
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> Result<Resp, String> {
    send_over(Some(src), addr, req).await
}

async fn send_over(
    src: Option<std::net::IpAddr>,
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> Result<Resp, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let stream = match src {
            None => TcpStream::connect(addr).await,
            Some(src) => {
                let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
                socket
                    .bind(SocketAddr::new(src, 0))
                    .map_err(|e| format!("bind {src}: {e}"))?;
                socket.connect(addr).await
            }
        }
        .map_err(|e| format!("connect {addr}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        collect(resp).await
    })
    .await
    .map_err(|_| format!("request to {addr} timed out after {REQUEST_TIMEOUT:?}"))?
}

pub async fn collect<B>(resp: Response<B>) -> Result<Resp, String>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Display,
{
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading body: {e}"))?
        .to_bytes();
    Ok(Resp {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

/// GET `path` with Host `host`; panics on transport errors.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Resp {
    send(addr, req("GET", host, path).body(Full::default()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("GET http://{host}{path} via {addr}: {e}"))
}

/// A keep-alive HTTP/1.1 connection for sending several requests.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.sender
                .ready()
                .await
                .map_err(|e| format!("connection not ready: {e}"))?;
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(|e| format!("send: {e}"))?;
            collect(resp).await
        })
        .await
        .map_err(|_| "request timed out".to_string())?
    }
}

/// A response read from a raw socket.
#[derive(Debug, Clone)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
    pub fn echo(&self) -> Echoed {
        Echoed::parse(&self.body, self.status)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `request` verbatim on a fresh connection and reads one response.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Result<RawResp, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        read_response(&mut s).await
    })
    .await
    .map_err(|_| "raw request timed out".to_string())?
}

/// Reads one HTTP/1.1 response (Content-Length, chunked or until EOF).
pub async fn read_response<R: tokio::io::AsyncRead + Unpin>(s: &mut R) -> Result<RawResp, String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut tmp = [0u8; 16384];
    // Head.
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        let n = s
            .read(&mut tmp)
            .await
            .map_err(|e| format!("read head: {e} (got {:?})", String::from_utf8_lossy(&buf)))?;
        if n == 0 {
            return Err(format!(
                "EOF before response head (got {:?})",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let hv = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if hv("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        loop {
            // chunk size line
            let line_end = loop {
                if let Some(i) = find(&rest, b"\r\n") {
                    break i;
                }
                let n = s
                    .read(&mut tmp)
                    .await
                    .map_err(|e| format!("read chunk: {e}"))?;
                if n == 0 {
                    return Err("EOF in chunked body".into());
                }
                rest.extend_from_slice(&tmp[..n]);
            };
            let size_str = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)
                .map_err(|_| format!("bad chunk size {size_str:?}"))?;
            rest.drain(..line_end + 2);
            if size == 0 {
                // trailers until empty line; best effort
                while find(&rest, b"\r\n").is_none() {
                    let n = s
                        .read(&mut tmp)
                        .await
                        .map_err(|e| format!("read trailer: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    rest.extend_from_slice(&tmp[..n]);
                }
                break out;
            }
            while rest.len() < size + 2 {
                let n = s
                    .read(&mut tmp)
                    .await
                    .map_err(|e| format!("read chunk data: {e}"))?;
                if n == 0 {
                    return Err("EOF in chunk data".into());
                }
                rest.extend_from_slice(&tmp[..n]);
            }
            out.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
        }
    } else if let Some(cl) = hv("content-length") {
        let cl: usize = cl
            .trim()
            .parse()
            .map_err(|_| format!("bad content-length {cl:?}"))?;
        while rest.len() < cl {
            let n = s
                .read(&mut tmp)
                .await
                .map_err(|e| format!("read body: {e}"))?;
            if n == 0 {
                return Err("EOF in body".into());
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        rest.truncate(cl);
        rest
    } else {
        loop {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&tmp[..n]),
            }
        }
        rest
    };
    Ok(RawResp {
        status,
        headers,
        body,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// In-test backends
// ---------------------------------------------------------------------------

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An in-test HTTP/1.1 backend; its accept loop is aborted on drop.
pub struct Backend {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` on a new 127.0.0.1 port (HTTP/1.1, upgrades enabled).
pub async fn serve<F, Fut>(handler: F) -> Backend
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_on(SocketAddr::from(([127, 0, 0, 1], 0)), handler).await
}

/// As [`serve`], on `addr` (another 127.0.0.x address, a given port).
pub async fn serve_on<F, Fut>(addr: SocketAddr, handler: F) -> Backend
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind(addr).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(r).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Backend { port, task }
}

/// A backend that accepts connections and never answers (holding them).
pub async fn black_hole() -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((mut s, _)) = listener.accept().await {
                // Drain what the client sends so that it never blocks, but
                // never write anything back.
                held.push(tokio::spawn(async move {
                    let mut b = [0u8; 4096];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 {
                            break;
                        }
                    }
                    // keep the socket open until the task is aborted
                    std::future::pending::<()>().await;
                }));
            }
        }
    });
    Backend { port, task }
}

/// The HTTP/2 prior-knowledge client executor.
pub fn executor() -> TokioExecutor {
    TokioExecutor::new()
}

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

/// Joins objects into one multi-document YAML text.
pub fn yaml_docs(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Parses a YAML snippet written in a test (panics on a typo in the test).
pub fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("bad YAML in test: {e}\n{text}"))
}

/// IngressClass `name` handled by tollgate's controller name.
pub fn ingress_class(name: &str, default: bool) -> Value {
    let mut v = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": "tollgate.dev/ingress-controller"},
    });
    if default {
        v["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    v
}

/// IngressClass `name` owned by some other controller.
pub fn foreign_ingress_class(name: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name},
        "spec": {"controller": "example.com/other-controller"},
    })
}

/// A Service with the given (name, port) ports.
pub fn service(ns: &str, name: &str, ports: &[(&str, u16)]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": name},
            "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect::<Vec<_>>(),
        },
    })
}

/// An EndpointSlice of service `svc` with endpoints `(address, ready)` and
/// ports `(name, port)`.
pub fn slice(
    ns: &str,
    svc: &str,
    slice_name: &str,
    endpoints: &[(&str, bool)],
    ports: &[(&str, u16)],
) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name,
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "endpoints": endpoints.iter().map(|(a, ready)| json!({
            "addresses": [a],
            "conditions": {"ready": ready},
        })).collect::<Vec<_>>(),
        "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP"})).collect::<Vec<_>>(),
    })
}

/// Service `svc` (port 8080 named `http`) plus one ready EndpointSlice per
/// target port on 127.0.0.1.
pub fn backend(ns: &str, svc: &str, ports: &[u16]) -> Vec<Value> {
    let mut v = vec![service(ns, svc, &[("http", 8080)])];
    for (i, p) in ports.iter().enumerate() {
        v.push(slice(
            ns,
            svc,
            &format!("{svc}-{i}"),
            &[("127.0.0.1", true)],
            &[("http", *p)],
        ));
    }
    v
}

/// A ConfigMap `ns/name` with `data` (an ingress-nginx ConfigMap, for
/// `--configmap`).
pub fn config_map_in(ns: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    })
}

/// An Ingress `ns/name` of class `tollgate` with one rule: `host`, one
/// path (`path`, `path_type`) → `svc`:8080. Annotation keys without a `/`
/// are ingress-nginx's (`nginx.ingress.kubernetes.io/` is prepended).
pub fn annotated_ingress(
    ns: &str,
    name: &str,
    host: &str,
    (path, path_type): (&str, &str),
    svc: &str,
    annotations: &[(&str, &str)],
) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| {
            let key = if k.contains('/') {
                k.to_string()
            } else {
                format!("nginx.ingress.kubernetes.io/{k}")
            };
            (key, json!(v))
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {
            "ingressClassName": "tollgate",
            "rules": [{"host": host, "http": {"paths": [{
                "path": path, "pathType": path_type,
                "backend": {"service": {"name": svc, "port": {"number": 8080}}}
            }]}}]
        }
    })
}

/// An Ingress with `spec` given as YAML text.
pub fn ingress(ns: &str, name: &str, spec: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": ns},
        "spec": yaml(spec),
    })
}

/// An Ingress from a full YAML object (as in the conformance features),
/// placed into namespace `ns`.
pub fn ingress_object(ns: &str, text: &str) -> Value {
    let mut v = yaml(text);
    v["metadata"]["namespace"] = json!(ns);
    v
}

/// Manifests routing `host` (Prefix /) to service `svc` in namespace `ns`
/// with the given endpoint ports, plus our IngressClass.
pub fn routed(ns: &str, host: &str, svc: &str, ports: &[u16]) -> Vec<Value> {
    let mut docs = vec![
        ingress_class("tollgate", false),
        ingress(ns, &format!("{svc}-ing"), &simple_spec(host, svc)),
    ];
    docs.extend(backend(ns, svc, ports));
    docs
}

/// A one-rule Ingress spec: `host` (empty = no host), Prefix `/` to `svc`
/// port 8080, with `ingressClassName: tollgate`.
pub fn simple_spec(host: &str, svc: &str) -> String {
    let host_line = if host.is_empty() {
        String::new()
    } else {
        format!("  - host: \"{host}\"\n    http:\n")
    };
    let rule_start = if host.is_empty() { "  - http:\n" } else { "" };
    format!(
        "ingressClassName: tollgate\nrules:\n{host_line}{rule_start}      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: {svc}\n            port:\n              number: 8080\n"
    )
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// Sum of the values of `name` samples whose label set contains every
/// `key="value"` in `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_part, value_part) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = r.find('}') else { continue };
            (&r[..end], r[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue;
        };
        if labels.iter().all(|(k, v)| {
            label_part
                .split(',')
                .any(|kv| kv.trim() == format!("{k}=\"{v}\""))
        }) {
            let v: f64 = value_part.split_whitespace().next()?.parse().ok()?;
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Collects failures of a table-driven test so that all of them are
/// reported at once.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.0.push(msg());
        }
    }
    pub fn push(&mut self, msg: String) {
        self.0.push(msg);
    }
    pub fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}

// --- TLS helpers ---
//
// Certificates are made in the test with rcgen (a self-signed test CA that
// signs P-256 leaf certificates); the client is rustls over tokio-rustls.
// The client accepts whatever certificate it is shown (the handshake
// signature is still checked, so the server must hold the matching key) and
// tests look at the presented leaf to see which certificate was selected.

use std::sync::Arc;

/// Subject common name of the certificate tollgate generates at start-up
/// when no `--default-certificate` is given.
pub const DEFAULT_CERT_CN: &str = "tollgate default certificate";

impl Tollgate {
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.https_port))
    }
}

/// A self-signed certificate authority for one test.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    pub pem: String,
}

/// A leaf certificate with its key, as PEM.
pub struct TestCert {
    /// The leaf alone.
    pub cert_pem: String,
    /// The leaf followed by the CA certificate (what `tls.crt` usually holds).
    pub chain_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
    /// DER of the leaf, to compare with what the server presents.
    pub der: Vec<u8>,
}

impl TestCert {
    /// A rustls server configuration presenting this certificate (with its
    /// chain), offering these ALPN protocols, for in-test TLS backends.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(self.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl TestCa {
    pub fn new(cn: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        let pem = issuer.pem();
        TestCa { issuer, pem }
    }

    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A leaf for `sans` (DNS names, wildcards allowed) with subject CN
    /// `cn`, signed by this CA with a fresh P-256 key.
    pub fn leaf(&self, cn: &str, sans: &[&str]) -> TestCert {
        self.leaf_with(cn, sans, |_| {})
    }

    /// Like [`TestCa::leaf`], letting the test adjust the parameters
    /// (validity, for example) before signing.
    pub fn leaf_with(
        &self,
        cn: &str,
        sans: &[&str],
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> TestCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let key_pem = key.serialize_pem();
        self.leaf_for_key(cn, sans, &key, key_pem, edit)
    }

    /// A leaf for an existing key; `key_pem` is what ends up in
    /// [`TestCert::key_pem`] (any encoding of `key`).
    pub fn leaf_for_key(
        &self,
        cn: &str,
        sans: &[&str],
        key: &rcgen::KeyPair,
        key_pem: String,
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> TestCert {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        edit(&mut params);
        let cert = params.signed_by(key, &self.issuer).unwrap();
        let cert_pem = cert.pem();
        TestCert {
            chain_pem: format!("{cert_pem}{}", self.pem),
            cert_pem,
            key_pem,
            der: cert.der().to_vec(),
        }
    }
}

/// A `kubernetes.io/tls` Secret with PEM text in `stringData`.
pub fn tls_secret(ns: &str, name: &str, crt: &str, key: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": crt, "tls.key": key},
    })
}

/// A `kubernetes.io/tls` Secret with base64 `data`, as `kubectl get -o yaml`
/// shows it.
pub fn tls_secret_b64(ns: &str, name: &str, crt: &str, key: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64_encode(crt.as_bytes()),
            "tls.key": base64_encode(key.as_bytes()),
        },
    })
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Accepts any server certificate, but still checks the handshake
/// signatures against the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How the test client connects.
#[derive(Clone)]
pub struct TlsClient {
    /// ALPN protocols offered, in order (empty: no ALPN extension).
    pub alpn: Vec<&'static str>,
    /// Protocol versions offered (empty: rustls' defaults, 1.2 and 1.3).
    pub versions: Vec<&'static rustls::SupportedProtocolVersion>,
    /// Verify the chain and name against this CA (PEM) instead of
    /// accepting anything.
    pub trust: Option<String>,
}

impl Default for TlsClient {
    fn default() -> Self {
        TlsClient {
            alpn: vec!["http/1.1"],
            versions: Vec::new(),
            trust: None,
        }
    }
}

impl TlsClient {
    pub fn alpn(alpn: &[&'static str]) -> TlsClient {
        TlsClient {
            alpn: alpn.to_vec(),
            ..TlsClient::default()
        }
    }

    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = if self.versions.is_empty() {
            rustls::DEFAULT_VERSIONS.to_vec()
        } else {
            self.versions.clone()
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .expect("rustls protocol versions");
        let mut config = match &self.trust {
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth(),
            Some(ca_pem) => {
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(rustls::pki_types::CertificateDer::from(
                        pem_blocks(ca_pem)[0].clone(),
                    ))
                    .expect("test CA as trust anchor");
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }

    /// TLS handshake with `addr`. `sni: None` connects with the IP address
    /// as server name, for which rustls sends no SNI extension.
    pub async fn connect(&self, addr: SocketAddr, sni: Option<&str>) -> Result<TlsStream, String> {
        let name = match sni {
            Some(s) => rustls::pki_types::ServerName::try_from(s.to_string())
                .map_err(|e| format!("bad server name {s:?}: {e}"))?,
            None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
        };
        let connector = tokio_rustls::TlsConnector::from(self.config());
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr} (SNI {sni:?}): {e}"))
        })
        .await
        .map_err(|_| format!("TLS handshake with {addr} (SNI {sni:?}) timed out"))?
    }
}

pub type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The leaf certificate a TLS server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub der: Vec<u8>,
    pub cn: Option<String>,
    pub sans: Vec<String>,
}

impl PeerCert {
    pub fn of(stream: &TlsStream) -> PeerCert {
        let certs = stream
            .get_ref()
            .1
            .peer_certificates()
            .expect("server presented no certificate");
        PeerCert::from_der(certs[0].as_ref())
    }

    pub fn from_der(der: &[u8]) -> PeerCert {
        let (cn, sans) = cert_names(der).unwrap_or_default();
        PeerCert {
            der: der.to_vec(),
            cn,
            sans,
        }
    }

    /// Whether this is the certificate tollgate generated at start-up.
    pub fn is_generated_default(&self) -> bool {
        self.cn.as_deref() == Some(DEFAULT_CERT_CN)
    }

    pub fn is(&self, cert: &TestCert) -> bool {
        self.der == cert.der
    }

    /// "CN=… SANs=[…]" for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "CN={} SANs={:?}",
            self.cn.as_deref().unwrap_or("<none>"),
            self.sans
        )
    }
}

/// Handshakes with `sni` and returns the presented leaf.
pub async fn served_cert(addr: SocketAddr, sni: Option<&str>) -> Result<PeerCert, String> {
    let s = TlsClient::default().connect(addr, sni).await?;
    Ok(PeerCert::of(&s))
}

/// Polls new handshakes with `sni` until `pred` holds for the presented
/// certificate or `timeout` passes; returns the last certificate seen.
pub async fn eventually_cert<F: Fn(&PeerCert) -> bool>(
    addr: SocketAddr,
    sni: &str,
    timeout: Duration,
    pred: F,
) -> Result<PeerCert, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let c = served_cert(addr, Some(sni)).await?;
        if pred(&c) || Instant::now() >= deadline {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

enum HttpsSender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// An HTTP connection over TLS: HTTP/2 when ALPN chose `h2`, else HTTP/1.1.
pub struct HttpsConn {
    sender: HttpsSender,
    pub cert: PeerCert,
    /// The ALPN protocol the server selected, if any.
    pub alpn: Option<String>,
    pub tls_version: Option<rustls::ProtocolVersion>,
}

impl HttpsConn {
    /// Default client (ALPN `http/1.1` only).
    pub async fn open(addr: SocketAddr, sni: Option<&str>) -> Result<HttpsConn, String> {
        HttpsConn::open_with(&TlsClient::default(), addr, sni).await
    }

    pub async fn open_with(
        client: &TlsClient,
        addr: SocketAddr,
        sni: Option<&str>,
    ) -> Result<HttpsConn, String> {
        let stream = client.connect(addr, sni).await?;
        let cert = PeerCert::of(&stream);
        let conn = stream.get_ref().1;
        let alpn = conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let tls_version = conn.protocol_version();
        let io = TokioIo::new(stream);
        let sender = tokio::time::timeout(REQUEST_TIMEOUT, async {
            if alpn.as_deref() == Some("h2") {
                let (sender, conn) = hyper::client::conn::http2::handshake(executor(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok::<_, String>(HttpsSender::H2(sender))
            } else {
                let (sender, conn) = hyper::client::conn::http1::handshake(io)
                    .await
                    .map_err(|e| format!("http1 handshake: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(HttpsSender::H1(sender))
            }
        })
        .await
        .map_err(|_| "HTTP handshake over TLS timed out".to_string())??;
        Ok(HttpsConn {
            sender,
            cert,
            alpn,
            tls_version,
        })
    }

    /// Sends `req` as is (for HTTP/2 the URI must carry the authority).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Resp, String> {
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = match &mut self.sender {
                HttpsSender::H1(s) => {
                    s.ready()
                        .await
                        .map_err(|e| format!("connection not ready: {e}"))?;
                    s.send_request(req).await
                }
                HttpsSender::H2(s) => {
                    s.ready()
                        .await
                        .map_err(|e| format!("connection not ready: {e}"))?;
                    s.send_request(req).await
                }
            }
            .map_err(|e| format!("send: {e}"))?;
            collect(resp).await
        })
        .await
        .map_err(|_| "request over TLS timed out".to_string())?
    }

    /// GET `path` for `host`: a Host header on HTTP/1.1, the `:authority`
    /// on HTTP/2.
    pub async fn get(&mut self, host: &str, path: &str) -> Result<Resp, String> {
        let r = match self.sender {
            HttpsSender::H1(_) => req("GET", host, path).body(Full::default()).unwrap(),
            HttpsSender::H2(_) => Request::builder()
                .method("GET")
                .uri(format!("https://{host}{path}"))
                .header("user-agent", "tollgate-tls-test")
                .body(Full::default())
                .unwrap(),
        };
        self.send(r).await
    }
}

/// One GET over a fresh TLS connection with SNI `sni`, Host `host`.
pub async fn https_get(
    addr: SocketAddr,
    sni: Option<&str>,
    host: &str,
    path: &str,
) -> Result<(Resp, PeerCert), String> {
    let mut c = HttpsConn::open(addr, sni).await?;
    let r = c.get(host, path).await?;
    Ok((r, c.cert))
}

/// Runs an external program with a bound on its run time; `None` if it
/// could not be started (not installed), panics if it overruns.
pub fn run_external(
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Option<std::process::Output> {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{program} {args:?} did not finish in {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the `openssl` command-line tool can be run.
pub fn have_openssl() -> bool {
    run_external("openssl", &["version"], &[], Duration::from_secs(10))
        .is_some_and(|o| o.status.success())
}

/// The DER contents of every PEM block in `text`.
pub fn pem_blocks(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            cur = Some(String::new());
        } else if line.starts_with("-----END ") {
            if let Some(b64) = cur.take() {
                out.push(base64_decode(&b64).expect("valid base64 in PEM"));
            }
        } else if let Some(c) = cur.as_mut() {
            c.push_str(line);
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// One DER element: (tag, contents, rest).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, mut rest) = rest.split_first()?;
    let len = if len0 < 0x80 {
        len0 as usize
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let l = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        rest = &rest[n..];
        l
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Subject CN and SAN DNS names / IP addresses of a DER certificate.
fn cert_names(der: &[u8]) -> Option<(Option<String>, Vec<String>)> {
    const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
    const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
    let (_, cert, _) = der_next(der)?;
    let (_, tbs, _) = der_next(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = der_next(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    // serial, signature algorithm, issuer, validity
    for _ in 0..4 {
        rest = der_next(rest)?.2;
    }
    let (_, subject, r) = der_next(rest)?;
    rest = der_next(r)?.2; // subject public key info
    let mut cn = None;
    let mut rdns = subject;
    while let Some((_, set, r)) = der_next(rdns) {
        rdns = r;
        let mut atvs = set;
        while let Some((_, atv, r)) = der_next(atvs) {
            atvs = r;
            let (_, oid, v) = der_next(atv)?;
            if oid == OID_CN {
                let (_, value, _) = der_next(v)?;
                cn = Some(String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    let mut sans = Vec::new();
    while let Some((tag, content, r)) = der_next(rest) {
        rest = r;
        if tag != 0xa3 {
            continue;
        }
        let (_, exts, _) = der_next(content)?;
        let mut exts = exts;
        while let Some((_, ext, r)) = der_next(exts) {
            exts = r;
            let (_, oid, v) = der_next(ext)?;
            if oid != OID_SAN {
                continue;
            }
            // An optional BOOLEAN (critical) precedes the OCTET STRING.
            let (tag, first, r) = der_next(v)?;
            let octets = if tag == 0x01 { der_next(r)?.1 } else { first };
            let (_, names, _) = der_next(octets)?;
            let mut names = names;
            while let Some((tag, name, r)) = der_next(names) {
                names = r;
                match tag {
                    0x82 => sans.push(String::from_utf8_lossy(name).into_owned()),
                    0x87 if name.len() == 4 => sans.push(
                        std::net::Ipv4Addr::new(name[0], name[1], name[2], name[3]).to_string(),
                    ),
                    _ => {}
                }
            }
        }
    }
    Some((cn, sans))
}

// --- backend protocol helpers ---
//
// In-test backends for the `backend-protocol` annotation: HTTP/1.1 inside
// TLS, cleartext HTTP/2 only, and HTTP/2 inside TLS. Each speaks exactly one
// protocol (anything else fails on its socket), and records what it saw on
// the wire, so a test can prove how tollgate talked to it. gRPC is framed by
// hand: a 5-byte prefix (compressed flag, big-endian length) per message,
// the status in trailers.

/// How an in-test protocol backend speaks on its socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// HTTP/1.1 inside TLS; the server offers ALPN `http/1.1` only.
    Https,
    /// HTTP/2 with prior knowledge in cleartext; HTTP/1.1 fails the preface.
    H2c,
    /// HTTP/2 inside TLS; the server offers ALPN `h2` only.
    H2Tls,
}

/// One completed TLS handshake, as the backend saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The ALPN protocol agreed on.
    pub alpn: Option<String>,
}

/// What a protocol backend observed; written by its connection tasks.
#[derive(Default)]
pub struct Observed {
    /// TCP connections accepted.
    pub connections: AtomicUsize,
    /// Completed TLS handshakes (TLS wires only).
    pub handshakes: Mutex<Vec<Handshake>>,
    /// Failed handshakes and connection errors, for assertion messages.
    pub errors: Mutex<Vec<String>>,
}

/// An in-test backend speaking one [`Wire`]; aborted on drop.
pub struct ProtoBackend {
    pub port: u16,
    pub wire: Wire,
    pub seen: Arc<Observed>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProtoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProtoBackend {
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.seen.handshakes.lock().unwrap().clone()
    }

    pub fn errors(&self) -> Vec<String> {
        self.seen.errors.lock().unwrap().clone()
    }

    /// "WIRE: N connections, handshakes [...], errors [...]" for assertion
    /// messages.
    pub fn describe(&self) -> String {
        format!(
            "{:?} backend: {} connection(s), handshakes {:?}, errors {:?}",
            self.wire,
            self.connections(),
            self.handshakes(),
            self.errors()
        )
    }
}

/// A rustls server configuration with a fresh self-signed certificate for
/// `backend.test` (which matches no name tollgate could ask for: a
/// verifying client would refuse it) offering `alpn`.
pub fn backend_tls_config(alpn: &[&str]) -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["backend.test".to_string()]).unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("rustls protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key.into())
        .expect("backend certificate");
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Serves `handler` on a new 127.0.0.1 port speaking `wire` only.
pub async fn serve_proto<F, Fut>(wire: Wire, handler: F) -> ProtoBackend
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = match wire {
        Wire::H2c => None,
        Wire::Https => Some(tokio_rustls::TlsAcceptor::from(backend_tls_config(&[
            "http/1.1",
        ]))),
        Wire::H2Tls => Some(tokio_rustls::TlsAcceptor::from(backend_tls_config(&["h2"]))),
    };
    let seen = Arc::new(Observed::default());
    let observed = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            observed.connections.fetch_add(1, Ordering::SeqCst);
            let (h, observed, acceptor) = (handler.clone(), observed.clone(), acceptor.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |r| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(r).await) }
                });
                let served = match acceptor {
                    None => {
                        hyper::server::conn::http2::Builder::new(executor())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                    }
                    Some(acceptor) => {
                        let tls = match acceptor.accept(stream).await {
                            Ok(tls) => tls,
                            Err(e) => {
                                observed
                                    .errors
                                    .lock()
                                    .unwrap()
                                    .push(format!("TLS handshake: {e}"));
                                return;
                            }
                        };
                        let conn = tls.get_ref().1;
                        observed.handshakes.lock().unwrap().push(Handshake {
                            sni: conn.server_name().map(str::to_string),
                            alpn: conn
                                .alpn_protocol()
                                .map(|p| String::from_utf8_lossy(p).into_owned()),
                        });
                        if wire == Wire::Https {
                            hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), svc)
                                .with_upgrades()
                                .await
                        } else {
                            hyper::server::conn::http2::Builder::new(executor())
                                .serve_connection(TokioIo::new(tls), svc)
                                .await
                        }
                    }
                };
                if let Err(e) = served {
                    observed
                        .errors
                        .lock()
                        .unwrap()
                        .push(format!("serving {wire:?}: {e}"));
                }
            });
        }
    });
    ProtoBackend {
        port,
        wire,
        seen,
        task,
    }
}

/// One gRPC message with its 5-byte length prefix (not compressed).
pub fn grpc_frame(msg: &[u8]) -> Bytes {
    let len = u32::try_from(msg.len()).expect("gRPC message under 4 GiB");
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    Bytes::from(out)
}

/// Splits complete length-prefixed messages off the front of `buf`,
/// leaving an incomplete tail in place.
pub fn grpc_take_messages(buf: &mut Vec<u8>) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 5 {
            return Ok(out);
        }
        if buf[0] != 0 {
            return Err(format!("compressed flag {} on a gRPC message", buf[0]));
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            return Ok(out);
        }
        out.push(Bytes::copy_from_slice(&buf[5..5 + len]));
        buf.drain(..5 + len);
    }
}

/// All messages of a complete gRPC body; an incomplete tail is an error.
pub fn grpc_messages(body: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut buf = body.to_vec();
    let out = grpc_take_messages(&mut buf)?;
    if !buf.is_empty() {
        return Err(format!(
            "{} trailing bytes after the last gRPC message",
            buf.len()
        ));
    }
    Ok(out)
}

/// `(name, value)` pairs as a header map (trailers, usually).
pub fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.append(*k, http::HeaderValue::from_static(v));
    }
    map
}

/// A gRPC response body: each of `messages` framed, `gap` before every
/// message but the first, then `trailers`.
pub fn grpc_body(messages: Vec<Bytes>, gap: Duration, trailers: HeaderMap) -> Body {
    let state = (messages.into_iter(), Some(trailers), true);
    let frames =
        futures_util::stream::unfold(state, move |(mut msgs, mut trailers, first)| async move {
            if let Some(m) = msgs.next() {
                if !first {
                    tokio::time::sleep(gap).await;
                }
                let frame = hyper::body::Frame::data(grpc_frame(&m));
                return Some((Ok::<_, BoxError>(frame), (msgs, trailers, false)));
            }
            let t = trailers.take()?;
            Some((Ok(hyper::body::Frame::trailers(t)), (msgs, None, false)))
        });
    BodyExt::boxed(http_body_util::StreamBody::new(frames))
}

/// A gRPC response: `content-type: application/grpc` and `body`.
pub fn grpc_response(body: Body) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

pub type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// An HTTP/2 prior-knowledge (h2c) client connection to `addr`.
pub async fn h2c_connect(addr: SocketAddr) -> Result<H2Sender, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        h2_handshake(TokioIo::new(stream)).await
    })
    .await
    .map_err(|_| format!("h2c handshake with {addr} timed out"))?
}

/// An HTTP/2 client connection over TLS (ALPN `h2` only) with `client`'s
/// trust settings; fails unless the server selected `h2`.
pub async fn h2_tls_connect(
    client: &TlsClient,
    addr: SocketAddr,
    sni: &str,
) -> Result<H2Sender, String> {
    let client = TlsClient {
        alpn: vec!["h2"],
        ..client.clone()
    };
    let stream = client.connect(addr, Some(sni)).await?;
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"h2".as_slice()) {
        return Err(format!(
            "server selected ALPN {:?}, want h2",
            alpn.map(|a| String::from_utf8_lossy(&a).into_owned())
        ));
    }
    tokio::time::timeout(REQUEST_TIMEOUT, h2_handshake(TokioIo::new(stream)))
        .await
        .map_err(|_| format!("h2 handshake over TLS with {addr} timed out"))?
}

async fn h2_handshake<T>(io: T) -> Result<H2Sender, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http2::handshake(executor(), io)
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A gRPC response as the client received it.
#[derive(Debug)]
pub struct GrpcReply {
    pub status: u16,
    pub version: Version,
    pub headers: HeaderMap,
    /// Each message with the time it was complete, since the request was sent.
    pub messages: Vec<(Duration, Bytes)>,
    pub trailers: Option<HeaderMap>,
}

impl GrpcReply {
    pub fn bodies(&self) -> Vec<Bytes> {
        self.messages.iter().map(|(_, m)| m.clone()).collect()
    }

    pub fn trailer(&self, name: &str) -> Option<String> {
        self.trailers
            .as_ref()?
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// `grpc-status` from the trailers or, for a trailers-only response,
    /// from the headers.
    pub fn grpc_status(&self) -> Option<String> {
        self.trailer("grpc-status")
            .or_else(|| self.header("grpc-status"))
    }

    pub fn grpc_message(&self) -> Option<String> {
        self.trailer("grpc-message")
            .or_else(|| self.header("grpc-message"))
    }
}

/// One gRPC call on `sender`: POST `uri` (absolute: scheme, authority,
/// `/package.Service/Method`) with one message; reads the whole response,
/// timing each message (bounded by [`REQUEST_TIMEOUT`]).
pub async fn grpc_call(sender: &mut H2Sender, uri: &str, msg: &[u8]) -> Result<GrpcReply, String> {
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "grpc-tollgate-test/1.0")
        .body(Full::new(grpc_frame(msg)))
        .unwrap();
    tokio::time::timeout(REQUEST_TIMEOUT, async {
        sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let sent = Instant::now();
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send {uri}: {e}"))?;
        let (parts, mut body) = resp.into_parts();
        let mut buf = Vec::new();
        let mut messages = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                format!(
                    "reading body of {uri} after {} message(s): {e}",
                    messages.len()
                )
            })?;
            match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    let at = sent.elapsed();
                    messages.extend(grpc_take_messages(&mut buf)?.into_iter().map(|m| (at, m)));
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        if !buf.is_empty() {
            return Err(format!("{} bytes of an incomplete gRPC message", buf.len()));
        }
        Ok(GrpcReply {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            messages,
            trailers,
        })
    })
    .await
    .map_err(|_| format!("gRPC call {uri} timed out after {REQUEST_TIMEOUT:?}"))?
}
