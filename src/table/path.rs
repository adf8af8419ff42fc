//! Request-path normalization for matching.
//!
//! Invariants:
//! - Matching happens on the normalized path; the request is forwarded with
//!   its original target. So `/public/../admin` is matched as `/admin` and
//!   can never reach a `/public` backend.
//! - Normalization decodes percent-encoded *unreserved* characters only
//!   (`%2E` becomes `.`, `%2F` stays encoded, escapes are uppercased, a bare
//!   `%` becomes `%25`), then removes dot segments (RFC 3986 §5.2.4) and
//!   merges repeated slashes. It decodes once: normalizing a normalized path
//!   changes nothing.
//! - The common case (nothing to normalize) borrows and does not allocate.

use std::borrow::Cow;

/// Where ACME HTTP-01 challenges are answered (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Whether a (normalized) request path is an ACME HTTP-01 challenge: such
/// requests are never redirected to HTTPS (ingress-nginx's
/// `no-tls-redirect-locations` default), so a certificate can be issued
/// for a host that forces HTTPS.
pub fn is_acme_challenge(path: &str) -> bool {
    path.starts_with(ACME_CHALLENGE_PREFIX)
}

/// Normalizes a request path (without the query).
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !needs_work(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    Cow::Owned(remove_dot_segments(&decoded))
}

fn needs_work(bytes: &[u8]) -> bool {
    if bytes.first() != Some(&b'/') {
        return true;
    }
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'%' || (prev == b'/' && (b == b'/' || b == b'.')) {
            return true;
        }
        prev = b;
    }
    false
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + 1);
    if bytes.first() != Some(&b'/') {
        out.push(b'/');
    }
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let decoded = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&h), Some(&l)) => match (hex(h), hex(l)) {
                    (Some(h), Some(l)) => Some(h * 16 + l),
                    _ => None,
                },
                _ => None,
            };
            match decoded {
                Some(c) if is_unreserved(c) => {
                    out.push(c);
                    i += 3;
                    continue;
                }
                Some(_) => {
                    // Keep reserved escapes, uppercased so equal paths compare equal.
                    out.push(b'%');
                    out.extend(
                        bytes
                            .get(i + 1..i + 3)
                            .unwrap_or_default()
                            .iter()
                            .map(u8::to_ascii_uppercase),
                    );
                    i += 3;
                    continue;
                }
                None => {
                    // A bare `%` (not a valid escape) becomes `%25`, so the
                    // normalized form never holds a `%` that a second pass
                    // could read as an escape.
                    out.extend_from_slice(b"%25");
                    i += 1;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    // Only ASCII was decoded and the input was valid UTF-8, so this holds.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn clean_paths_are_borrowed() {
        assert!(matches!(
            normalize("/foo/bar.txt"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(normalize("/"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(normalize("/public/../admin"), "/admin");
        assert_eq!(normalize("/public/./x"), "/public/x");
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(normalize("//a///b"), "/a/b");
        assert_eq!(normalize("/a/b/.."), "/a/");
        assert_eq!(normalize("/a/"), "/a/");
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/.."), "/");
    }

    #[test]
    fn percent_decoding_of_unreserved_only() {
        assert_eq!(normalize("/public/%2e%2e/admin"), "/admin");
        assert_eq!(normalize("/public/%2E%2E/admin"), "/admin");
        assert_eq!(normalize("/%61bc"), "/abc");
        assert_eq!(normalize("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize("/a%zz"), "/a%25zz");
        assert_eq!(normalize("/a%2"), "/a%252");
        assert_eq!(normalize("/%"), "/%25");
        assert_eq!(normalize("/%%41"), "/%25A");
    }
}

#[cfg(test)]
mod properties {
    use super::normalize;

    /// Random paths built from the pieces that matter to normalization.
    fn random_path(rng: &mut fastrand::Rng) -> String {
        const PIECES: [&str; 14] = [
            "/", "//", "a", "b", ".", "..", "%2e", "%2E", "%2f", "%41", "%", "%zz", "~x", "/./",
        ];
        let n = rng.usize(0..12);
        (0..n).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
    }

    #[test]
    fn normalized_paths_are_clean_and_stable() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let raw = random_path(&mut rng);
            let once = normalize(&raw).into_owned();
            assert!(once.starts_with('/'), "{raw:?} -> {once:?}");
            assert!(!once.contains("//"), "{raw:?} -> {once:?}");
            for segment in once.split('/') {
                assert!(segment != "." && segment != "..", "{raw:?} -> {once:?}");
                assert!(!segment.eq_ignore_ascii_case("%2e"), "{raw:?} -> {once:?}");
            }
            assert_eq!(normalize(&once), once, "not idempotent for {raw:?}");
        }
    }

    /// Whether a raw segment is `.` or `..` once its `%HH` escapes are read
    /// (left to right, as the normalizer does: only a valid escape is one).
    fn dot_segment(raw: &str) -> Option<usize> {
        let bytes = raw.as_bytes();
        let mut dots = 0;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            let escape = (b == b'%')
                .then(|| bytes.get(i + 1..i + 3))
                .flatten()
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let dot = match escape {
                Some(h) => {
                    i += 3;
                    h.eq_ignore_ascii_case(b"2e")
                }
                None => {
                    i += 1;
                    b == b'.'
                }
            };
            if !dot {
                return None;
            }
            dots += 1;
        }
        (1..=2).contains(&dots).then_some(dots)
    }

    /// An independent model of where `/public/<tail>` resolves: whether the
    /// result is still under `/public` (RFC 3986 §5.2.4 on segments; empty
    /// segments are merged slashes). No piece of [`random_path`] can spell
    /// `public`, so climbing out can never land back under it.
    fn stays_under_public(tail: &str) -> bool {
        let mut depth: usize = 1; // the `public` segment
        let mut under = true;
        for segment in tail.split('/') {
            match (segment.is_empty(), dot_segment(segment)) {
                (true, _) | (false, Some(1)) => {}
                (false, Some(_)) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        under = false;
                    }
                }
                (false, None) => depth += 1,
            }
        }
        under
    }

    #[test]
    fn a_path_under_a_prefix_never_escapes_it_by_dot_segments() {
        // For every input, `/public/<tail>` normalizes to something under
        // `/public` exactly when the segment model says it stays there: `..`
        // and `%2e%2e` (any case, any mix) climb, nothing else does.
        let mut rng = fastrand::Rng::with_seed(11);
        let mut climbed = 0;
        for _ in 0..20_000 {
            let tail = random_path(&mut rng);
            let raw = format!("/public/{tail}");
            let n = normalize(&raw);
            let under = n == "/public" || n.starts_with("/public/");
            let expected = stays_under_public(&tail);
            assert_eq!(under, expected, "{raw:?} -> {n:?}");
            climbed += usize::from(!expected);
        }
        // The generator does produce the case the test is named for.
        assert!(climbed > 500, "only {climbed} inputs climbed out");
    }

    #[test]
    fn dot_segment_model() {
        assert_eq!(dot_segment("."), Some(1));
        assert_eq!(dot_segment("%2E%2e"), Some(2));
        assert_eq!(dot_segment(".%2e"), Some(2));
        assert_eq!(dot_segment("%%2e"), None);
        assert_eq!(dot_segment("..."), None);
        assert_eq!(dot_segment("a"), None);
        assert!(stays_under_public("a/../b"));
        assert!(!stays_under_public("%2e%2e/a"));
        assert!(!stays_under_public("a/../../b"));
    }
}

#[cfg(test)]
mod fuzz;
