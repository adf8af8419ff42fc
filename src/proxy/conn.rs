//! The connection context: what a request handler knows about its client
//! connection ([`ConnCtx`]), the connection's activity counters
//! ([`Activity`]) and the guard of one request in progress
//! ([`ActiveRequest`]).
//!
//! Invariants:
//! - Imports nothing of the request path: the listener builds a context,
//!   and the service, policy, forward, response and body steps only read
//!   it, so every step can name it without reaching back up.
//! - Lock-free and allocation-free per request: [`Activity`] is plain
//!   atomics, and beginning a request bumps a reference count.
//! - The activity counters are written only by the listener (its IO
//!   wrapper and watchdog) and by [`ActiveRequest`]; the request path
//!   begins and ends requests, it never writes a counter directly.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use futures_util::task::AtomicWaker;

use super::headers::{ClientInfo, Forwarding, Xff};
use super::shared::ProxyState;
use crate::metrics::BadRequest;
use crate::state::Published;

/// What a request handler knows about its connection.
#[derive(Debug)]
pub struct ConnCtx {
    pub state: Arc<ProxyState>,
    pub client: ClientInfo,
    /// The client end of the connection: the PROXY protocol source address
    /// with `--proxy-protocol`, else the TCP peer.
    pub peer: SocketAddr,
    pub activity: Arc<Activity>,
    /// The negotiated TLS version (`TLSv1.3`, `TLSv1.2`); `None` on plain
    /// HTTP. For the access log.
    pub tls_version: Option<&'static str>,
    /// The certificate chain the client presented (only hosts with
    /// `auth-tls-*` ask for one); checked per request by the route.
    pub client_cert: Option<Box<crate::tls::client_auth::PeerCert>>,
}

impl ConnCtx {
    /// The request's client IP: the peer, or when the peer is a trusted
    /// proxy, the right-most untrusted X-Forwarded-For entry (see
    /// [`super::client_ip`]). No allocation and no lock.
    pub fn client_ip(&self, headers: &http::HeaderMap) -> IpAddr {
        self.forwarding(headers).0
    }

    /// [`Self::client_ip`] with the table the request loaded (no second
    /// load).
    pub fn client_ip_in(&self, published: &Published, headers: &http::HeaderMap) -> IpAddr {
        self.forwarding_in(published, headers).0
    }

    /// The request's client IP and how its forwarding headers are set, by
    /// the trust in force: the ConfigMap's (`use-forwarded-headers`,
    /// `enable-real-ip`, read from the published table with one lock-free
    /// load) or else `--trusted-proxies` (decided once per connection).
    pub fn forwarding(&self, headers: &http::HeaderMap) -> (IpAddr, Forwarding) {
        self.forwarding_in(&self.state.published.load(), headers)
    }

    /// [`Self::forwarding`] with the table the request loaded: the request
    /// path loads the published state once and passes it down.
    pub fn forwarding_in(
        &self,
        published: &Published,
        headers: &http::HeaderMap,
    ) -> (IpAddr, Forwarding) {
        let peer = self.client.peer;
        let flag = &self.state.settings.trusted_proxies;
        let Some(trust) = &published.table.globals().trust else {
            if !self.client.trusted {
                return (peer, Forwarding::of_flag(false));
            }
            let ip = super::client_ip::forwarded_client(peer, flag, headers);
            return (ip, Forwarding::of_flag(true));
        };
        let nets = if trust.nets_from_flag && !flag.is_empty() {
            flag
        } else {
            &trust.nets
        };
        if !super::client_ip::is_trusted(peer, nets) {
            return (peer, Forwarding::of_flag(false));
        }
        let ip = super::client_ip::forwarded_client_in(&trust.header, peer, nets, headers);
        let forwarding = Forwarding {
            keep_forwarded: trust.forwarded_headers,
            xff: if trust.full_chain {
                Xff::Chain
            } else {
                Xff::Client
            },
        };
        (ip, forwarding)
    }
}

/// Activity of one client connection, read by its watchdog.
///
/// The watchdog enforces two timeouts without a timer per request:
/// - header timeout (slowloris guard): bytes arrived (or the connection is
///   new) but no request began within `--client-header-timeout`;
/// - idle timeout: no request in flight and no byte moved for
///   `--idle-timeout`.
#[derive(Debug, Default)]
pub struct Activity {
    /// Bumped by writes and reads (plain stores from the IO wrapper).
    pub(super) io_events: AtomicU64,
    /// Bumped by reads only.
    pub(super) read_events: AtomicU64,
    /// `read_events` when the last request began or ended: reads beyond it
    /// with no request active are a request head still arriving.
    request_mark: AtomicU64,
    /// Requests begun on this connection.
    requests: AtomicU64,
    /// Requests whose response has not finished.
    pub(super) active: AtomicU32,
    /// The client spoke HTTP/2 (heads are framed; no head timeout).
    pub(super) http2: AtomicBool,
    /// Number of the first bad request head (0: none) and what was wrong
    /// with it (an index of [`BadRequest::ALL`]); see [`super::framing`].
    pub(super) bad_head: AtomicU64,
    pub(super) bad_reason: AtomicU8,
    /// HTTP/2 control frames received this watchdog period (see
    /// [`super::h2_flood`]); the watchdog resets it.
    pub(super) control_frames: AtomicU32,
    /// What the accept loop asks of this connection: 0 (run), [`GRACEFUL`]
    /// or [`CLOSE`]; `waker` wakes the connection's task to act on it.
    pub(super) control: AtomicU8,
    pub(super) waker: AtomicWaker,
}

/// [`Activity::control`]: finish in-flight requests, then close.
pub(super) const GRACEFUL: u8 = 1;
/// [`Activity::control`]: close now, no grace.
pub(super) const CLOSE: u8 = 2;

/// One request in progress on a connection; dropping it ends it.
#[derive(Debug)]
pub struct ActiveRequest {
    activity: Arc<Activity>,
    /// 1-based number of this request on its connection.
    seq: u64,
}

impl ActiveRequest {
    /// What was wrong with this request's framing (both Content-Length
    /// and Transfer-Encoding, or an odd Transfer-Encoding), if anything.
    pub fn bad_framing(&self) -> Option<BadRequest> {
        if self.activity.bad_head.load(Ordering::Relaxed) != self.seq {
            return None;
        }
        let reason = self.activity.bad_reason.load(Ordering::Relaxed);
        BadRequest::ALL.get(usize::from(reason)).copied()
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let a = &self.activity;
        a.request_mark
            .store(a.read_events.load(Ordering::Relaxed), Ordering::Relaxed);
        a.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::Relaxed);
        let seq = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let reads = self.read_events.load(Ordering::Relaxed);
        self.request_mark.store(reads, Ordering::Relaxed);
        ActiveRequest {
            activity: self.clone(),
            seq,
        }
    }

    /// Requests begun on this connection so far.
    pub(super) fn begun(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Asks the connection's task for [`GRACEFUL`] or [`CLOSE`]; a request
    /// never lowers what was asked before.
    pub(super) fn signal(&self, what: u8) {
        if self.control.fetch_max(what, Ordering::AcqRel) < what {
            self.waker.wake();
        }
    }

    /// Whether the connection is waiting for a request head it has begun
    /// to receive (or, when new, for any request at all).
    pub(super) fn head_pending(&self) -> bool {
        !self.http2.load(Ordering::Relaxed)
            && self.active.load(Ordering::Relaxed) == 0
            && (self.requests.load(Ordering::Relaxed) == 0
                || self.read_events.load(Ordering::Relaxed)
                    != self.request_mark.load(Ordering::Relaxed))
    }
}
