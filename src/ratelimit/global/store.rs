//! [`GlobalStore`]: the connection to the shared Redis, the GCRA script
//! and the supervisor that keeps the connection alive.
//!
//! Invariants:
//! - The request path never connects and never waits for a connection:
//!   it loads the current connection (one `ArcSwapOption` load, no lock)
//!   and, while there is none, fails at once ([`StoreError::Down`]).
//! - One call per batch: `EVALSHA` of [`SCRIPT`]; a `NOSCRIPT` answer
//!   (the server restarted or `SCRIPT FLUSH`) is answered with one `EVAL`,
//!   which also loads the script again. The caller bounds every call with
//!   its budget.
//! - Time comes from Redis (`TIME` inside the script), never from the
//!   replicas' clocks.
//! - The supervisor (its own thread and runtime, so neither the control
//!   plane nor a data-plane worker hosts the connection) connects with
//!   capped exponential backoff, pings once a second (at once when a
//!   request saw a connection error), and logs each outage once, when it
//!   starts, and once when the store is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::metrics::GlobalMetrics;

/// GCRA over one theoretical arrival time (TAT, µs on the Redis clock) per
/// key. KEYS[1]: the key. ARGV: interval (µs), burst, requests asking (a
/// batch). Returns {allowed, wait_us}: the first `allowed` of the requests
/// pass; the rest may retry after `wait_us`. Numbers are written with
/// `%d` (Lua would print a 16-digit TAT in exponent form).
pub const SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0
if tat < now then tat = now end
local tolerance = interval * burst
local room = math.floor((now + tolerance - tat) / interval)
if room < 0 then room = 0 end
local allowed = n
if room < n then allowed = room end
if allowed > 0 then
  tat = tat + allowed * interval
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX',
    string.format('%d', math.ceil((tat - now) / 1000) + 1))
end
local wait = 0
if allowed < n then wait = tat + interval - now - tolerance end
return {allowed, wait}
"#;

/// Why a store call gave no decision.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("no connection to the store")]
    Down,
    #[error("the store did not answer within the budget")]
    Timeout,
    #[error("the store call failed: {0}")]
    Call(String),
    #[error("the store answered something other than the script's reply")]
    Reply,
    #[error("the request that carried this batch went away")]
    Cancelled,
}

/// Why the store could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--global-rate-limit-store: {0}")]
    Url(#[source] redis::RedisError),
    #[error("starting the store's connection thread")]
    Thread(#[source] std::io::Error),
}

/// What the store does when it cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// The local per-replica limit decides (default).
    #[default]
    Open,
    /// Requests are refused (503).
    Closed,
}

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS).
    pub url: String,
    /// Used when the URL carries none (`TOLLGATE_GLOBAL_RATE_LIMIT_PASSWORD`).
    pub password: Option<String>,
    /// The budget of one decision (wait for a batch and its round trip).
    pub timeout: Duration,
    pub fail: FailMode,
}

/// The shared store, one per process.
pub struct GlobalStore {
    /// The live connection; `None` while down. Swapped by the supervisor
    /// only; a request loads it once.
    conn: ArcSwapOption<MultiplexedConnection>,
    /// A request saw a connection error: the supervisor checks at once.
    suspect: Notify,
    /// Stops the supervisor (tests start and drop stores).
    stopped: AtomicBool,
    sha: String,
    pub(super) timeout: Duration,
    pub(super) fail: FailMode,
    pub(super) metrics: GlobalMetrics,
}

/// Backoff between connection attempts: doubles from the first to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// Health check period while connected.
const PING_EVERY: Duration = Duration::from_secs(1);

impl GlobalStore {
    /// Parses the URL and starts the supervisor thread; returns at once
    /// (the store is down until the first connection succeeds).
    pub fn start(config: StoreConfig, metrics: GlobalMetrics) -> Result<Arc<Self>, SetupError> {
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(SetupError::Url)?;
        if let Some(password) = config.password.as_ref().filter(|p| !p.is_empty()) {
            if info.redis_settings().password().is_none() {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
        }
        let client = Client::open(info).map_err(SetupError::Url)?;
        let store = Arc::new(GlobalStore {
            conn: ArcSwapOption::empty(),
            suspect: Notify::new(),
            stopped: AtomicBool::new(false),
            sha: redis::Script::new(SCRIPT).get_hash().to_string(),
            timeout: config.timeout,
            fail: config.fail,
            metrics,
        });
        let weak = Arc::downgrade(&store);
        let connect_timeout = config.timeout.max(Duration::from_secs(1));
        std::thread::Builder::new()
            .name("tollgate-store".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "global rate limit store: no runtime; global limits fall back");
                        return;
                    }
                };
                rt.block_on(supervise(weak, client, connect_timeout));
            })
            .map_err(SetupError::Thread)?;
        Ok(store)
    }

    /// True while connected (the last ping or call succeeded).
    pub fn is_up(&self) -> bool {
        self.conn.load().is_some()
    }

    /// Stops the supervisor and drops the connection.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.conn.store(None);
        self.suspect.notify_one();
    }

    /// One script call for `requests` requests of `key`: how many pass,
    /// and the wait of the rest. Not bounded here: the caller's budget is.
    pub(super) async fn call(
        &self,
        key: &[u8],
        interval_us: u64,
        burst: u32,
        requests: u32,
    ) -> Result<(u32, Duration), StoreError> {
        let Some(conn) = self.conn.load_full() else {
            return Err(StoreError::Down);
        };
        let mut conn = MultiplexedConnection::clone(&conn);
        let started = Instant::now();
        self.metrics.store_calls.inc();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha)
            .arg(1)
            .arg(key)
            .arg(interval_us)
            .arg(burst)
            .arg(requests);
        // A server error comes back as a value: made an `Err` here.
        let mut reply = conn
            .send_packed_command(&cmd)
            .await
            .and_then(Value::extract_error);
        if matches!(&reply, Err(e) if e.code() == Some("NOSCRIPT")) {
            let mut eval = redis::cmd("EVAL");
            eval.arg(SCRIPT)
                .arg(1)
                .arg(key)
                .arg(interval_us)
                .arg(burst)
                .arg(requests);
            reply = conn
                .send_packed_command(&eval)
                .await
                .and_then(Value::extract_error);
        }
        self.metrics.round_trip.observe(started.elapsed());
        match reply {
            Ok(value) => parse_reply(&value).ok_or(StoreError::Reply),
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() {
                    self.suspect.notify_one();
                }
                Err(StoreError::Call(e.to_string()))
            }
        }
    }

    /// A call failed or ran out of budget: counted, and the supervisor
    /// checks the connection.
    pub(super) fn failed(&self) {
        self.metrics.store_errors.inc();
        self.suspect.notify_one();
    }
}

impl std::fmt::Debug for GlobalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalStore")
            .field("up", &self.is_up())
            .field("timeout", &self.timeout)
            .field("fail", &self.fail)
            .finish()
    }
}

/// `{allowed, wait_us}` as the script returns it.
fn parse_reply(value: &Value) -> Option<(u32, Duration)> {
    let Value::Array(items) = value else {
        return None;
    };
    match items.as_slice() {
        [Value::Int(allowed), Value::Int(wait)] => Some((
            u32::try_from(*allowed).ok()?,
            Duration::from_micros(u64::try_from(*wait).unwrap_or(0)),
        )),
        _ => None,
    }
}

/// The supervisor: connect (backoff), ping, reconnect; ends when the store
/// is stopped (or dropped while disconnected).
async fn supervise(store: std::sync::Weak<GlobalStore>, client: Client, connect_timeout: Duration) {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(connect_timeout));
    let mut backoff = BACKOFF_FIRST;
    // Whether the current outage was logged (one line per outage).
    let mut outage_logged = false;
    let mut ever_up = false;
    loop {
        let Some(s) = store.upgrade() else { return };
        if s.stopped.load(Ordering::Acquire) {
            return;
        }
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(mut conn) => {
                // Load the script now, so the first requests need no EVAL.
                let loaded: Result<String, _> = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(SCRIPT)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = loaded {
                    s.metrics.store_errors.inc();
                    if !outage_logged {
                        tracing::warn!(error = %e, "global rate limit store: loading the script failed; global limits fall back until it works");
                        outage_logged = true;
                    }
                } else {
                    s.conn.store(Some(Arc::new(conn.clone())));
                    s.metrics.store_up.set(1);
                    if outage_logged || !ever_up {
                        tracing::info!("global rate limit store: connected; global limits are counted across replicas");
                    }
                    ever_up = true;
                    backoff = BACKOFF_FIRST;
                    watch(&s, &mut conn).await;
                    s.conn.store(None);
                    s.metrics.store_up.set(0);
                    if s.stopped.load(Ordering::Acquire) {
                        return;
                    }
                    tracing::warn!(fail = ?s.fail, "global rate limit store: connection lost; reconnecting (meanwhile: local limits when failing open, 503 when closed)");
                    outage_logged = true;
                }
            }
            Err(e) => {
                s.metrics.store_errors.inc();
                if !outage_logged {
                    tracing::warn!(error = %e, fail = ?s.fail, "global rate limit store: cannot connect; retrying with backoff (meanwhile: local limits when failing open, 503 when closed)");
                    outage_logged = true;
                }
            }
        }
        drop(s);
        let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(BACKOFF_CAP);
    }
}

/// Pings while the connection answers; returns when it does not.
async fn watch(store: &GlobalStore, conn: &mut MultiplexedConnection) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PING_EVERY) => {}
            _ = store.suspect.notified() => {}
        }
        if store.stopped.load(Ordering::Acquire) {
            return;
        }
        let ping: Result<String, _> = redis::cmd("PING").query_async(conn).await;
        if ping.is_err() {
            store.metrics.store_errors.inc();
            return;
        }
    }
}
