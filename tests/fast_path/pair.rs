//! Two `tollgate run` processes from the same manifests, one with
//! `--http1-fast-path true`, one with `false`, both routing `fp.test` to
//! one [`ScriptedBackend`] (and `dead.test` to a port nothing listens on).
//! [`Pair::run`] plays the same client connections (plain HTTP, or HTTPS
//! with a server name: [`Conn::over_tls`]) against each in turn and
//! asserts that the client transcripts, what the backend received (and on
//! how many connections) and the access logs are equal after masking what
//! must differ (dates, times, generated request ids, the listeners' own
//! ports).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::backend::{Script, ScriptedBackend, Seen};
use super::common::*;
use super::wire::{Got, Wire};

pub const NS: &str = "fp";
pub const HOST: &str = "fp.test";

/// Upper bound for one client connection's whole exchange.
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for access-log lines and metrics to settle.
const SETTLE: Duration = Duration::from_secs(5);

/// One request as raw bytes; `head` when it is a HEAD (no body follows).
#[derive(Clone)]
pub struct Req {
    pub bytes: Vec<u8>,
    pub head: bool,
}

/// A request written verbatim.
pub fn raw(bytes: impl Into<Vec<u8>>) -> Req {
    let bytes = bytes.into();
    Req {
        head: bytes.starts_with(b"HEAD "),
        bytes,
    }
}

/// `GET path` to `fp.test`, keep-alive.
pub fn get(path: &str) -> Req {
    raw(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"))
}

/// One client connection: batches written with one write each, every
/// batch's responses read before the next batch is written, `pause`
/// between batches; to the plain-HTTP listener, or to the HTTPS one.
pub struct Conn {
    batches: Vec<Vec<Req>>,
    pause: Duration,
    transport: Transport,
}

/// Which listener a [`Conn`] connects to, and how.
enum Transport {
    Plain,
    /// TLS with this server name (`None`: no SNI extension).
    Tls(Option<String>),
}

impl Conn {
    /// The same connection over TLS to the HTTPS listener, with `sni` as
    /// server name (ALPN `http/1.1`; any certificate accepted).
    pub fn over_tls(self, sni: &str) -> Conn {
        Conn {
            transport: Transport::Tls(Some(sni.to_string())),
            ..self
        }
    }

    /// The same connection over TLS without a server name.
    pub fn over_tls_without_sni(self) -> Conn {
        Conn {
            transport: Transport::Tls(None),
            ..self
        }
    }
}

/// Requests one after another on one connection.
pub fn seq(reqs: Vec<Req>) -> Conn {
    paused(reqs, Duration::ZERO)
}

/// Requests one after another on one connection, `pause` apart.
pub fn paused(reqs: Vec<Req>, pause: Duration) -> Conn {
    Conn {
        batches: reqs.into_iter().map(|r| vec![r]).collect(),
        pause,
        transport: Transport::Plain,
    }
}

/// Requests pipelined in one write on one connection.
pub fn pipe(reqs: Vec<Req>) -> Conn {
    Conn {
        batches: vec![reqs],
        pause: Duration::ZERO,
        transport: Transport::Plain,
    }
}

/// What the client got on one connection: every response (or the error
/// that ended reading) and whether the connection stayed open.
#[derive(Debug, Clone)]
pub struct ConnResult {
    pub responses: Vec<Result<Got, String>>,
    pub end: String,
}

impl ConnResult {
    pub fn statuses(&self) -> Vec<u16> {
        self.responses
            .iter()
            .map(|r| r.as_ref().map_or(0, |g| g.status))
            .collect()
    }
}

pub struct Pair {
    pub fast: Tollgate,
    pub hyper: Tollgate,
    pub backend: ScriptedBackend,
    /// Both proxies run one worker, so the upstream connections a run
    /// uses are deterministic and can be compared. Upstream pools are per
    /// worker: with two, which worker accepts a client connection (and so
    /// whether a pooled upstream connection is found) varies run to run.
    single_worker: bool,
}

impl Pair {
    /// Starts the backend and both proxies, with `args` added to both
    /// (`--threads 1` unless `args` sets `--threads`).
    pub async fn start(script: Script, args: &[&str]) -> Pair {
        Pair::start_with(script, args, &simple_spec(HOST, "fp"), Vec::new()).await
    }

    /// [`Pair::start`] with `fp_spec` as the spec of the Ingress `fp-ing`
    /// (which routes to the backend, Service `fp`) and `extra` manifests.
    pub async fn start_with(
        script: Script,
        args: &[&str],
        fp_spec: &str,
        extra: Vec<Value>,
    ) -> Pair {
        let single_worker = !args.contains(&"--threads");
        let threads: &[&str] = match single_worker {
            true => &["--threads", "1"],
            false => &[],
        };
        let scripted = ScriptedBackend::start(script).await;
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let mut docs = vec![
            ingress_class("tollgate", false),
            ingress(NS, "fp-ing", fp_spec),
        ];
        docs.extend(backend(NS, "fp", &[scripted.port]));
        docs.push(ingress(NS, "dead-ing", &simple_spec("dead.test", "dead")));
        docs.extend(backend(NS, "dead", &[dead_port]));
        docs.extend(extra);
        let start = |mode: &'static str| {
            Tollgate::builder()
                .docs("manifests.yaml", &docs)
                .args(args)
                .args(threads)
                .args(&["--http1-fast-path", mode])
                .start()
        };
        let (fast, hyper) = tokio::join!(start("true"), start("false"));
        Pair {
            fast,
            hyper,
            backend: scripted,
            single_worker,
        }
    }

    /// Plays `conns` (one after another) against the fast-path proxy, then
    /// against the hyper one, and asserts both sides saw the same thing.
    /// Returns the fast side's results for the scenario's own checks.
    ///
    /// Which upstream connection each request came on is not compared
    /// here: the hyper path does not reuse an upstream connection after a
    /// response with trailers (its body is dropped before it reports its
    /// end), which a faster path need not copy. [`Pair::run_pooled`]
    /// compares it.
    pub async fn run(&self, scenario: &str, conns: Vec<Conn>) -> Run {
        self.run_with(scenario, conns, false).await
    }

    /// [`Pair::run`], also comparing the upstream connections (needs a
    /// single-worker pair): how many the backend accepted during the run
    /// and which one each request came on.
    pub async fn run_pooled(&self, scenario: &str, conns: Vec<Conn>) -> Run {
        assert!(self.single_worker, "upstream pools are per worker");
        self.run_with(scenario, conns, true).await
    }

    async fn run_with(&self, scenario: &str, conns: Vec<Conn>, pooled: bool) -> Run {
        let fast = self.side(&self.fast, &conns, pooled).await;
        let hyper = self.side(&self.hyper, &conns, pooled).await;
        let mut diffs = Vec::new();
        diff(&mut diffs, "client", &fast.client, &hyper.client);
        diff(&mut diffs, "backend", &fast.backend, &hyper.backend);
        if pooled && fast.accepted != hyper.accepted {
            diffs.push(format!(
                "upstream connections accepted: fast {} hyper {}",
                fast.accepted, hyper.accepted
            ));
        }
        let (fast_log, hyper_log) = self.settled_access_logs().await;
        diff(&mut diffs, "access log", &fast_log, &hyper_log);
        assert!(
            diffs.is_empty(),
            "scenario {scenario}: fast path and hyper differ:\n{}\n\nfast side, client:\n{}\n\nfast side, backend:\n{}",
            diffs.join("\n"),
            fast.client.join("\n"),
            fast.backend.join("\n")
        );
        Run {
            conns: fast.results,
            backend: fast.backend,
            accepted: fast.accepted,
            upstream_conns: fast.upstream_conns,
        }
    }

    async fn side(&self, tg: &Tollgate, conns: &[Conn], pooled: bool) -> Side {
        self.backend.take();
        let mut results = Vec::new();
        for conn in conns {
            results.push(play(tg, conn).await);
        }
        let (seen, accepted) = self.backend.take();
        let ports = [tg.http_port, tg.https_port].map(|p| p.to_string());
        let mut client = Vec::new();
        for (i, r) in results.iter().enumerate() {
            for resp in &r.responses {
                client.push(match resp {
                    Ok(got) => format!("conn {i}: {}", got.transcript()),
                    Err(e) => format!("conn {i}: error {e}"),
                });
            }
            client.push(format!("conn {i}: end {}", r.end));
        }
        Side {
            client,
            backend: seen
                .iter()
                .map(|s| backend_line(s, &ports, pooled))
                .collect(),
            accepted,
            upstream_conns: seen.iter().map(|s| s.conn + 1).max().unwrap_or(0),
            results,
        }
    }

    /// Both proxies' access logs (every line so far, masked, sorted), once
    /// both have the same number of lines and stopped growing.
    async fn settled_access_logs(&self) -> (Vec<String>, Vec<String>) {
        let deadline = Instant::now() + SETTLE;
        let mut last = (Vec::new(), Vec::new());
        loop {
            let now = (access_log(&self.fast), access_log(&self.hyper));
            let settled = now.0.len() == now.1.len()
                && now.0.len() == last.0.len()
                && now.1.len() == last.1.len();
            if settled || Instant::now() >= deadline {
                return now;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Asserts the `tollgate_requests_total` series of both proxies are
    /// equal (polled until they are, bounded).
    pub async fn assert_metrics_equal(&self) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let fast = requests_total(&self.fast.metrics().await);
            let hyper = requests_total(&self.hyper.metrics().await);
            if fast == hyper && !fast.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                let mut diffs = Vec::new();
                diff(&mut diffs, "tollgate_requests_total", &fast, &hyper);
                panic!("metrics differ:\n{}", diffs.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Side {
    client: Vec<String>,
    backend: Vec<String>,
    accepted: usize,
    upstream_conns: usize,
    results: Vec<ConnResult>,
}

/// One side's view of a run (both sides are equal when it returns).
pub struct Run {
    /// What the client got, per connection.
    pub conns: Vec<ConnResult>,
    /// What the backend received, one line per request (as compared).
    pub backend: Vec<String>,
    /// Upstream connections the backend accepted during the run.
    pub accepted: usize,
    /// Distinct upstream connections the run's requests arrived on.
    pub upstream_conns: usize,
}

/// Plays one connection (bounded by [`CONN_TIMEOUT`]).
async fn play(tg: &Tollgate, conn: &Conn) -> ConnResult {
    let run = async {
        match &conn.transport {
            Transport::Plain => {
                let s = tokio::net::TcpStream::connect(tg.http_addr())
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                Ok::<_, String>(converse(Wire::new(s), conn).await)
            }
            Transport::Tls(sni) => {
                let s = TlsClient::default()
                    .connect(tg.https_addr(), sni.as_deref())
                    .await?;
                Ok(converse(Wire::new(s), conn).await)
            }
        }
    };
    match tokio::time::timeout(CONN_TIMEOUT, run).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => ConnResult {
            responses: vec![Err(e)],
            end: "-".into(),
        },
        Err(_) => ConnResult {
            responses: vec![Err("connection timed out".into())],
            end: "-".into(),
        },
    }
}

/// Writes the connection's batches and reads their responses.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(mut wire: Wire<S>, conn: &Conn) -> ConnResult {
    let mut responses = Vec::new();
    'batches: for (i, batch) in conn.batches.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(conn.pause).await;
        }
        let bytes: Vec<u8> = batch.iter().flat_map(|r| r.bytes.clone()).collect();
        if let Err(e) = wire.send(&bytes).await {
            responses.push(Err(e));
            break;
        }
        for req in batch {
            let got = wire.response(req.head).await;
            let failed = got.is_err();
            responses.push(got);
            if failed {
                break 'batches;
            }
        }
    }
    let end = wire.end_state().await;
    ConnResult { responses, end }
}

/// A received request as one comparable line: connection (when
/// `pooled`), request line, sorted fields (a generated request id and the
/// listeners' ports, `[http, https]`, masked), body.
fn backend_line(s: &Seen, listener_ports: &[String; 2], pooled: bool) -> String {
    let fields = s.head.normalised(|k, v| match k {
        "x-request-id" if is_generated_id(v) => "<generated>".into(),
        _ if v == listener_ports[0] => "<listener port>".into(),
        _ if v == listener_ports[1] => "<https listener port>".into(),
        _ => v.to_string(),
    });
    let conn = match pooled {
        true => format!("upstream conn {}: ", s.conn),
        false => String::new(),
    };
    format!(
        "{conn}{} | {} | body {:?}",
        s.head.start,
        fields.join(" ; "),
        String::from_utf8_lossy(&s.body)
    )
}

fn is_generated_id(v: &str) -> bool {
    v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The access-log lines of `tg` (the default `upstreaminfo` format, or
/// one that starts with it and adds plain words) with `[$time_local]`,
/// `$request_time`, `$upstream_response_time` and a generated `$req_id`
/// masked; sorted (workers flush independently).
pub fn access_log(tg: &Tollgate) -> Vec<String> {
    let mut lines: Vec<String> = tg
        .proc_
        .stdout_text()
        .lines()
        .filter(|l| is_access_line(l))
        .map(mask_access_line)
        .collect();
    lines.sort();
    lines
}

/// An access-log line (`$remote_addr - ...`), not one of the process's
/// own log lines, which share stdout.
fn is_access_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let addr = words
        .next()
        .and_then(|w| w.parse::<std::net::IpAddr>().ok());
    addr.is_some() && words.next() == Some("-")
}

fn mask_access_line(line: &str) -> String {
    let (Some(open), Some(close), Some(quote)) =
        (line.find(" ["), line.find("] \""), line.rfind('"'))
    else {
        return line.to_string();
    };
    let tail: Vec<String> = line[quote + 1..]
        .split_whitespace()
        .enumerate()
        .map(|(i, t)| {
            let num = t.trim_end_matches(',');
            let seconds = num.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty() && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            });
            match i {
                1 => "<request_time>".to_string(),
                _ if seconds => "<seconds>".to_string(),
                _ if is_generated_id(t) => "<generated id>".to_string(),
                _ => t.to_string(),
            }
        })
        .collect();
    format!(
        "{} [<time>{} {}",
        &line[..open],
        &line[close..=quote],
        tail.join(" ")
    )
}

/// The `tollgate_requests_total` samples, sorted.
fn requests_total(metrics: &str) -> Vec<String> {
    let mut v: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("tollgate_requests_total"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Appends a line-by-line difference of `fast` and `hyper` to `out`.
fn diff(out: &mut Vec<String>, what: &str, fast: &[String], hyper: &[String]) {
    if fast == hyper {
        return;
    }
    out.push(format!(
        "{what}: {} lines (fast) vs {} (hyper)",
        fast.len(),
        hyper.len()
    ));
    for i in 0..fast.len().max(hyper.len()) {
        let (f, h) = (fast.get(i), hyper.get(i));
        if f != h {
            out.push(format!("  #{i}\n    fast : {f:?}\n    hyper: {h:?}"));
        }
    }
}
