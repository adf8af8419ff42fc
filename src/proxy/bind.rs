//! Listening sockets: how the listeners (proxy, admin, webhook) bind.
//!
//! Invariants:
//! - `[::]` (the default of every listener) binds one dual-stack socket:
//!   IPv6 with IPv4-mapped addresses (`IPV6_V6ONLY` off), so one socket
//!   serves both families wherever the pod has IPv6. Where it has none
//!   (the kernel refuses an IPv6 socket or address), it falls back to
//!   `0.0.0.0` on the same port. Any other address binds as given.
//! - A port in use or a permission error never falls back: it fails start-up.
//! - Sockets are non-blocking, `SO_REUSEADDR`, and `SO_REUSEPORT` when
//!   several workers share the address.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds a listening socket for `addr` (see the module invariants).
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    bind_socket(addr, reuse_port).map(Into::into)
}

/// [`bind`], returning the socket (tests read its options).
pub fn bind_socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let Some(fallback) = ipv4_fallback(addr) else {
        return bind_one(addr, reuse_port);
    };
    match bind_one(addr, reuse_port) {
        Err(e) if no_ipv6(&e) => {
            tracing::info!(%addr, %fallback, error = %e, "no IPv6 here: listening on IPv4 only");
            bind_one(fallback, reuse_port)
        }
        other => other,
    }
}

/// The IPv4 address a dual-stack `[::]:port` falls back to.
pub fn ipv4_fallback(addr: SocketAddr) -> Option<SocketAddr> {
    (addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        .then(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port()))
}

/// Whether binding failed because the host has no (usable) IPv6, rather
/// than for a reason that would fail on IPv4 too.
fn no_ipv6(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

/// An unbound socket for `addr` with the listeners' options.
fn socket_for(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Dual-stack on `[::]` (Linux defaults to this, but a sysctl can
        // change the default); a specific IPv6 address binds IPv6 only
        // whatever this says.
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    Ok(socket)
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let socket = socket_for(addr, reuse_port)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_unspecified_ipv6_address_falls_back() {
        assert_eq!(
            ipv4_fallback("[::]:8080".parse().unwrap()),
            Some("0.0.0.0:8080".parse().unwrap())
        );
        assert_eq!(ipv4_fallback("[::1]:8080".parse().unwrap()), None);
        assert_eq!(ipv4_fallback("0.0.0.0:8080".parse().unwrap()), None);
        assert_eq!(ipv4_fallback("127.0.0.1:8080".parse().unwrap()), None);
    }

    #[test]
    fn a_taken_port_or_a_refused_permission_never_falls_back() {
        assert!(!no_ipv6(&io::Error::from(io::ErrorKind::AddrInUse)));
        assert!(!no_ipv6(&io::Error::from(io::ErrorKind::PermissionDenied)));
        // EAFNOSUPPORT (no IPv6 in the kernel), EADDRNOTAVAIL (IPv6 off).
        assert!(no_ipv6(&io::Error::from(io::ErrorKind::AddrNotAvailable)));
        assert!(no_ipv6(&io::Error::from_raw_os_error(97)));
    }

    #[test]
    fn ipv6_sockets_are_dual_stack() {
        // The `[::]` socket is made dual-stack before it binds (never bound
        // here: tests listen on loopback only).
        if let Ok(socket) = socket_for("[::]:0".parse().unwrap(), false) {
            assert_eq!(socket.only_v6().ok(), Some(false));
        }
        // ::1 only where the host has IPv6 (CI containers may not).
        let Ok(socket) = bind_socket("[::1]:0".parse().unwrap(), false) else {
            return;
        };
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr().unwrap();
        assert!(std::net::TcpStream::connect(addr).is_ok());
    }

    #[test]
    fn ipv4_addresses_bind_as_given() {
        let socket = bind_socket("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(std::net::TcpStream::connect(addr).is_ok());
    }
}
