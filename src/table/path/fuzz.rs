//! Fuzz target: the request-path normalizer ([`super::normalize`]).
//!
//! Invariants checked on every input (near-valid paths built from the
//! pieces that matter, with byte mutations, and arbitrary strings):
//! the output starts with `/`, holds no `//`, no `.` or `..` segment and
//! only `%HH` escapes of reserved bytes in upper case; normalizing it again
//! changes nothing; a borrowed result is the input itself; and it equals a
//! reference model written from RFC 3986 §5.2.4 (decode unreserved escapes,
//! merge slashes, then the standard dot-segment loop).

use proptest::prelude::*;

use super::normalize;
use crate::fuzzing::{self, mutate_text, mutations};

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Reference: percent-decoding of unreserved bytes, escapes upper-cased,
/// a `%` that starts no escape written as `%25`, a leading `/` added.
fn model_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::new();
    if !raw.starts_with('/') {
        out.push(b'/');
    }
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok().map(|v| (v, h)));
        match (bytes[i], escape) {
            (_, Some((v, _))) if unreserved(v) => {
                out.push(v);
                i += 3;
            }
            (_, Some((_, h))) => {
                out.push(b'%');
                out.extend(h.to_ascii_uppercase().bytes());
                i += 3;
            }
            (b'%', None) => {
                out.extend_from_slice(b"%25");
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was decoded")
}

/// Reference: RFC 3986 §5.2.4 `remove_dot_segments`, literally (input and
/// output buffers, rules A to E), after merging runs of `/`.
fn model_remove_dots(path: &str) -> String {
    let mut merged = String::new();
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    let mut input = merged.as_str();
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or(input.strip_prefix("./")) {
            input = rest; // A
        } else if input.starts_with("/./") {
            input = &input[2..]; // B
        } else if input == "/." {
            input = "/";
        } else if input.starts_with("/../") || input == "/.." {
            // C
            input = if input == "/.." { "/" } else { &input[3..] };
            match output.rfind('/') {
                Some(at) => output.truncate(at),
                None => output.clear(),
            }
        } else if input == "." || input == ".." {
            input = ""; // D
        } else {
            // E
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            output.push_str(&input[..end]);
            input = &input[end..];
        }
    }
    if output.is_empty() {
        output.push('/');
    }
    output
}

fn check(raw: &str) -> Result<(), TestCaseError> {
    let result = normalize(raw);
    let once: &str = &result;
    prop_assert!(once.starts_with('/'), "{raw:?} -> {once:?}");
    prop_assert!(!once.contains("//"), "{raw:?} -> {once:?}");
    for segment in once.split('/') {
        prop_assert!(segment != "." && segment != "..", "{raw:?} -> {once:?}");
    }
    let bytes = once.as_bytes();
    for (i, _) in once.match_indices('%') {
        let escape = bytes.get(i + 1..i + 3).unwrap_or_default();
        let upper_hex = escape.len() == 2
            && escape
                .iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b));
        prop_assert!(upper_hex, "{raw:?} -> {once:?}: bad escape at {i}");
        let value = std::str::from_utf8(escape)
            .ok()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        prop_assert!(
            !value.is_some_and(unreserved),
            "{raw:?} -> {once:?}: unreserved byte left encoded"
        );
    }
    if let std::borrow::Cow::Borrowed(b) = &result {
        prop_assert_eq!(*b, raw);
    }
    prop_assert_eq!(normalize(once), once, "not idempotent for {:?}", raw);
    prop_assert_eq!(
        once,
        model_remove_dots(&model_decode(raw)),
        "model, {:?}",
        raw
    );
    Ok(())
}

/// Near-valid paths: the pieces normalization cares about.
fn paths() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("/./".to_string()),
        Just("/../".to_string()),
        "[a-zA-Z0-9_~-]{1,4}",
        "%[0-9a-fA-F]{2}",
        "%2[eEfF]",
        "%[0-9a-zA-Z%]{0,2}",
        "[?#;=:@!$&'()*+, ]",
        any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|p| p.concat())
}

#[test]
fn normalizer() {
    let inputs = prop_oneof![
        4 => paths(),
        2 => (paths(), mutations()).prop_map(|(p, m)| mutate_text(&p, &m)),
        1 => any::<String>(),
    ];
    fuzzing::run("path::normalize", 1_000, inputs, |raw| check(&raw));
}

#[test]
fn model_matches_known_cases() {
    for (raw, want) in [
        ("/public/../admin", "/admin"),
        ("/a/b/..", "/a/"),
        ("//a///b", "/a/b"),
        ("", "/"),
        ("/%2e%2E/x", "/x"),
        ("/a%2fb", "/a%2Fb"),
        ("/%%41", "/%25A"),
    ] {
        assert_eq!(model_remove_dots(&model_decode(raw)), want, "{raw:?}");
        assert_eq!(normalize(raw), want, "{raw:?}");
    }
}
