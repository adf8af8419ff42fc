//! Fuzz target: the PROXY protocol parser ([`super::parse`]).
//!
//! Invariants, on generated v1 and v2 headers (TCP4, TCP6, UNKNOWN, LOCAL,
//! UNSPEC, UNIX, TLVs of any length) followed by arbitrary bytes, and on
//! their byte mutations:
//! - a generated header parses to exactly its length and the address it
//!   was generated with (round trip), whatever follows it;
//! - every strict prefix of its decisive part is `Incomplete`;
//! - a decision is made within the bounded prefix (107 bytes for v1, 52
//!   for v2) and never reads beyond the input: a v1 header's length is at
//!   most the input's and ends in CRLF, a v2 header's is its 16 fixed
//!   bytes plus its length field;
//! - more bytes never change a decision.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::{parse, Parsed, V1_MAX, V2_FIXED, V2_SIGNATURE};
use crate::fuzzing::{self, mutate, mutations};

/// A header, the length of its decisive part, its total length, and the
/// source it carries.
#[derive(Debug, Clone)]
struct Generated {
    bytes: Vec<u8>,
    decisive: usize,
    source: Option<SocketAddr>,
}

fn v1() -> impl Strategy<Value = Generated> {
    let tcp = (
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(six, s, d, sport, dport)| {
            let (family, src, dst): (_, IpAddr, IpAddr) = if six {
                ("TCP6", Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
            } else {
                let v4 = |b: [u8; 16]| Ipv4Addr::new(b[0], b[1], b[2], b[3]).into();
                ("TCP4", v4(s), v4(d))
            };
            let text = format!("PROXY {family} {src} {dst} {sport} {dport}\r\n");
            Generated {
                decisive: text.len(),
                bytes: text.into_bytes(),
                source: Some(SocketAddr::new(src, sport)),
            }
        });
    let unknown = "( [ -~]{0,80})?".prop_map(|rest| {
        let text = format!("PROXY UNKNOWN{rest}\r\n");
        Generated {
            decisive: text.len(),
            bytes: text.into_bytes(),
            source: None,
        }
    });
    prop_oneof![3 => tcp, 1 => unknown.prop_filter("v1 fits 107 bytes", |g| g.bytes.len() <= V1_MAX)]
}

fn v2() -> impl Strategy<Value = Generated> {
    (
        prop_oneof![Just(0u8), Just(1u8)], // LOCAL, PROXY
        0u8..4,                            // UNSPEC, INET, INET6, UNIX
        0u8..3,                            // transport
        any::<[u8; 36]>(),
        proptest::collection::vec(any::<u8>(), 0..300), // TLVs
    )
        .prop_map(|(command, family, transport, addr, tlvs)| {
            let addr_len = [0, 12, 36, 216][usize::from(family)];
            let mut body: Vec<u8> = addr.iter().copied().cycle().take(addr_len).collect();
            body.extend_from_slice(&tlvs);
            let mut bytes = V2_SIGNATURE.to_vec();
            bytes.push(0x20 | command);
            bytes.push(family << 4 | transport);
            bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&body);
            let port = |at: usize| u16::from_be_bytes([addr[at], addr[at + 1]]);
            let source = match (command, family) {
                (1, 1) => Some(SocketAddr::new(
                    Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).into(),
                    port(8),
                )),
                (1, 2) => {
                    let ip: [u8; 16] = addr[..16].try_into().expect("16 bytes");
                    Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port(32)))
                }
                _ => None,
            };
            let decisive = V2_FIXED
                + if command == 1 && (family == 1 || family == 2) {
                    addr_len
                } else {
                    0
                };
            Generated {
                bytes,
                decisive,
                source,
            }
        })
}

/// A decision as a comparable value.
fn decide(input: &[u8]) -> Result<Parsed, String> {
    parse(input).map_err(|e| e.to_string())
}

fn bounds(input: &[u8]) -> Result<(), TestCaseError> {
    let first = decide(input);
    let v1 = input.first() == Some(&b'P');
    match &first {
        Ok(Parsed::Done(h)) if v1 => {
            prop_assert!(h.len <= input.len() && h.len <= V1_MAX, "{input:?}: {h:?}");
            prop_assert_eq!(input.get(h.len - 2..h.len), Some(&b"\r\n"[..]));
        }
        Ok(Parsed::Done(h)) => {
            let field = input
                .get(14..16)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
            prop_assert_eq!(Some(h.len), field.map(|f| V2_FIXED + f), "{:?}", input);
        }
        Ok(Parsed::Incomplete) => {
            let bound = if v1 { V1_MAX } else { V2_FIXED + 36 };
            prop_assert!(
                input.len() < bound,
                "undecided after {} bytes: {input:?}",
                input.len()
            );
        }
        Err(_) => {}
    }
    // Decided from a bounded prefix: cutting the input there changes nothing.
    if let Some(prefix) = input.get(..V1_MAX) {
        prop_assert_eq!(&decide(prefix), &first, "{:?}", input);
    }
    // More bytes never change a decision.
    if !matches!(first, Ok(Parsed::Incomplete)) {
        let mut longer = input.to_vec();
        longer.extend_from_slice(b"\r\nGET / HTTP/1.1\r\n");
        prop_assert_eq!(&decide(&longer), &first, "{:?}", input);
    }
    Ok(())
}

fn round_trip((g, tail): (Generated, Vec<u8>)) -> Result<(), TestCaseError> {
    let mut input = g.bytes.clone();
    input.extend_from_slice(&tail);
    let want = Parsed::Done(super::Header {
        len: g.bytes.len(),
        source: g.source,
    });
    prop_assert_eq!(decide(&input), Ok(want), "{:?}", g);
    let decisive = input.get(..g.decisive).unwrap_or_default();
    prop_assert_eq!(decide(decisive), Ok(want));
    for cut in 0..g.decisive {
        prop_assert_eq!(
            decide(&input[..cut]),
            Ok(Parsed::Incomplete),
            "cut at {}",
            cut
        );
    }
    bounds(&input)
}

#[test]
fn valid_headers_round_trip() {
    let header = prop_oneof![v1(), v2()];
    let tail = proptest::collection::vec(any::<u8>(), 0..64);
    fuzzing::run(
        "proxy_protocol::round_trip",
        1_000,
        (header, tail),
        round_trip,
    );
}

#[test]
fn mutated_headers_stay_in_bounds() {
    let header = prop_oneof![v1(), v2()].prop_map(|g| g.bytes);
    let input = prop_oneof![
        4 => (header, mutations()).prop_map(|(h, m)| mutate(h, &m)),
        1 => proptest::collection::vec(any::<u8>(), 0..200),
    ];
    fuzzing::run("proxy_protocol::mutated", 1_500, input, |input| {
        bounds(&input)
    });
}
