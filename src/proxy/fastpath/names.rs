//! The header names the fast path acts on, told once per field: by
//! length first, so most names cost one comparison at most. The request
//! and response sides each decide what a name means to them.
//!
//! Invariant: ASCII case-insensitive, no allocation, never panics.

/// A header name the fast path knows; anything else is [`Name::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    Connection,
    ContentLength,
    Date,
    Expect,
    Host,
    Hsts,
    Http2Settings,
    KeepAlive,
    ProxyConnection,
    Referer,
    RequestId,
    Server,
    Te,
    TransferEncoding,
    Upgrade,
    UserAgent,
    XForwardedFor,
    XForwardedHost,
    XForwardedPort,
    XForwardedProto,
    XRealIp,
    Other,
}

impl Name {
    pub fn of(name: &[u8]) -> Name {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        match name.len() {
            2 if is(b"te") => Name::Te,
            4 if is(b"host") => Name::Host,
            4 if is(b"date") => Name::Date,
            6 if is(b"server") => Name::Server,
            6 if is(b"expect") => Name::Expect,
            7 if is(b"upgrade") => Name::Upgrade,
            7 if is(b"referer") => Name::Referer,
            9 if is(b"x-real-ip") => Name::XRealIp,
            10 if is(b"connection") => Name::Connection,
            10 if is(b"keep-alive") => Name::KeepAlive,
            10 if is(b"user-agent") => Name::UserAgent,
            12 if is(b"x-request-id") => Name::RequestId,
            14 if is(b"content-length") => Name::ContentLength,
            14 if is(b"http2-settings") => Name::Http2Settings,
            15 if is(b"x-forwarded-for") => Name::XForwardedFor,
            16 if is(b"x-forwarded-host") => Name::XForwardedHost,
            16 if is(b"x-forwarded-port") => Name::XForwardedPort,
            16 if is(b"proxy-connection") => Name::ProxyConnection,
            17 if is(b"x-forwarded-proto") => Name::XForwardedProto,
            17 if is(b"transfer-encoding") => Name::TransferEncoding,
            25 if is(b"strict-transport-security") => Name::Hsts,
            _ => Name::Other,
        }
    }

    /// Connection-specific whatever `Connection` names (as
    /// [`crate::hop_by_hop::CONNECTION_SPECIFIC`], plus `Expect`).
    pub fn hop_by_hop(self) -> bool {
        matches!(
            self,
            Name::Connection
                | Name::KeepAlive
                | Name::ProxyConnection
                | Name::Te
                | Name::TransferEncoding
                | Name::Upgrade
                | Name::Expect
        )
    }

    /// A forwarding header the proxy sets itself for an untrusted client.
    pub fn forwarding(self) -> bool {
        matches!(
            self,
            Name::XForwardedFor
                | Name::XForwardedHost
                | Name::XForwardedPort
                | Name::XForwardedProto
                | Name::XRealIp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Name;

    #[test]
    fn names_are_told_case_insensitively() {
        assert_eq!(Name::of(b"Content-Length"), Name::ContentLength);
        assert_eq!(Name::of(b"X-FORWARDED-PORT"), Name::XForwardedPort);
        assert_eq!(Name::of(b"x-forwarded-pork"), Name::Other);
        assert_eq!(Name::of(b""), Name::Other);
        assert!(Name::of(b"TE").hop_by_hop() && !Name::of(b"Host").hop_by_hop());
        assert!(Name::of(b"X-Real-IP").forwarding());
    }
}
