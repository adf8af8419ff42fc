//! The response body type of the proxy: either a static body (errors,
//! redirects) or an upstream body being streamed through.
//!
//! Invariants:
//! - No boxing: one enum, `Unpin`, polled in place (the one exception: a
//!   `limit-rate` route's body carries its boxed [`Pace`], which delays
//!   and slices frames on a timer).
//! - An upstream connection goes back to its pool only when the response
//!   body has been read to its end; a body dropped early drops the
//!   connection (hyper closes it), so a pooled connection is always clean.
//! - Dropping the body ends the request's in-flight accounting (p2c-ewma)
//!   and the client connection's activity (idle timeout).
//! - The request's [`Record`] rides along: the body counts the bytes it
//!   hands on and finishes the record at its end (or when dropped).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::conn::ActiveRequest;
use super::forward::pool::{self, Sender};
use super::record::Record;
use crate::lb::InFlight;
use crate::ratelimit::ConnPermit;
pub use pace::Pace;

mod pace;

/// A connection to return to its endpoint's pool at end of body.
#[derive(Debug)]
pub struct Checkin {
    pub sender: Sender,
    /// The endpoint's id ([`crate::lb::Endpoint::id`]).
    pub endpoint: u64,
}

impl Checkin {
    fn release(self) {
        pool::put(self.endpoint, self.sender);
    }
}

#[derive(Debug)]
enum Kind {
    Static(Option<Bytes>),
    Upstream {
        body: Incoming,
        checkin: Option<Checkin>,
        _inflight: InFlight,
    },
}

#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
    _active: Option<ActiveRequest>,
    /// A `limit-connections` slot, held until the response ends.
    _permit: Option<ConnPermit>,
    /// The request's metrics and log line, finished at the end of body.
    record: Option<Record>,
    /// `limit-rate`: the body is paced (only on routes asking for it).
    pace: Option<Box<Pace>>,
}

impl ProxyBody {
    pub fn fixed(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Static(Some(bytes)),
            _active: None,
            _permit: None,
            record: None,
            pace: None,
        }
    }

    pub fn empty() -> Self {
        Self {
            kind: Kind::Static(None),
            _active: None,
            _permit: None,
            record: None,
            pace: None,
        }
    }

    pub fn upstream(body: Incoming, checkin: Option<Checkin>, inflight: InFlight) -> Self {
        let mut this = Self {
            kind: Kind::Upstream {
                body,
                checkin,
                _inflight: inflight,
            },
            _active: None,
            _permit: None,
            record: None,
            pace: None,
        };
        this.release_if_done();
        this
    }

    /// Holds a connection-limit slot until the body is done.
    pub fn with_permit(mut self, permit: ConnPermit) -> Self {
        self._permit = Some(permit);
        self
    }

    /// Ties the request's activity and its record to the body: the
    /// record is finished at the end of the body. In place (the body,
    /// inside its response, is not moved for it).
    pub fn attach(&mut self, active: ActiveRequest, record: Record) {
        self._active = Some(active);
        self.record = Some(record);
    }

    /// Paces the rest of the body (`limit-rate`).
    pub fn set_pace(&mut self, pace: Pace) {
        self.pace = Some(Box::new(pace));
    }

    fn release_if_done(&mut self) {
        if let Kind::Upstream { body, checkin, .. } = &mut self.kind {
            if body.is_end_stream() {
                if let Some(c) = checkin.take() {
                    c.release();
                }
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match this.pace.as_deref_mut() {
            Some(pace) => pace.poll_frame(cx, |cx| poll_kind(&mut this.kind, cx)),
            None => poll_kind(&mut this.kind, cx),
        };
        if let Some(record) = &mut this.record {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        record.sent(data.len());
                    }
                }
                Poll::Ready(None) => record.finish(),
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        if self.pace.as_ref().is_some_and(|p| p.holds()) {
            return false;
        }
        match &self.kind {
            Kind::Static(b) => b.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Static(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Static(None) => SizeHint::with_exact(0),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

/// The next frame of the body itself.
fn poll_kind(
    kind: &mut Kind,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
    match kind {
        Kind::Static(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        Kind::Upstream { body, checkin, .. } => {
            let polled = Pin::new(&mut *body).poll_frame(cx);
            match &polled {
                Poll::Ready(None) => {
                    if let Some(c) = checkin.take() {
                        c.release();
                    }
                }
                // Trailers end the message (the chunked body's last part,
                // its final CRLF read): the connection is at a request
                // boundary even if nobody polls the body again (hyper's
                // server stops at trailers the client did not ask for).
                Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || body.is_end_stream() => {
                    if let Some(c) = checkin.take() {
                        c.release();
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    checkin.take();
                }
                _ => {}
            }
            polled
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        self.release_if_done();
    }
}
