//! The compiled patterns and the parsers of the string-typed fields
//! (durations, CIDRs) that [`super::types`]' accessors and
//! [`super::validate`] both use.
//!
//! Invariants:
//! - Each regex is compiled from the pattern in [`super::rules`] the schema
//!   also uses.
//! - Fails closed: a pattern that does not compile matches nothing.
//! - Never panics on any input; pure.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;

use super::rules::{
    CIDR_PATTERN, COOKIE_PATH_PATTERN, DURATION_PATTERN, HEADER_VALUE_PATTERN, MAX_DURATION_LEN,
    NAME_PATTERN, ORIGIN_PATTERN, TOKEN_PATTERN,
};

/// A compiled pattern. `None` (a pattern that does not compile, which the
/// tests rule out) matches nothing: validation fails closed.
pub(super) type Pattern = LazyLock<Option<Regex>>;

pub(super) static DURATION_RE: Pattern = LazyLock::new(|| Regex::new(DURATION_PATTERN).ok());
pub(super) static TOKEN_RE: Pattern = LazyLock::new(|| Regex::new(TOKEN_PATTERN).ok());
pub(super) static NAME_RE: Pattern = LazyLock::new(|| Regex::new(NAME_PATTERN).ok());
pub(super) static COOKIE_PATH_RE: Pattern = LazyLock::new(|| Regex::new(COOKIE_PATH_PATTERN).ok());
pub(super) static ORIGIN_RE: Pattern = LazyLock::new(|| Regex::new(ORIGIN_PATTERN).ok());
pub(super) static HEADER_VALUE_RE: Pattern =
    LazyLock::new(|| Regex::new(HEADER_VALUE_PATTERN).ok());
pub(super) static CIDR_RE: Pattern = LazyLock::new(|| Regex::new(&CIDR_PATTERN).ok());

pub(super) fn matches(pattern: &Pattern, text: &str) -> bool {
    pattern.as_ref().is_some_and(|re| re.is_match(text))
}

/// Parses a duration of [`DURATION_PATTERN`]. Fractions are exact to the
/// nanosecond (further digits are dropped); anything above Go's limit
/// (about 292 years, `i64` nanoseconds) is refused, as CEL would.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("`{text}` is not a duration like 5s, 1m30s or 250ms");
    if text.len() > MAX_DURATION_LEN {
        return Err(format!(
            "`{text}` is longer than {MAX_DURATION_LEN} characters"
        ));
    }
    if !matches(&DURATION_RE, text) {
        return Err(invalid());
    }
    let too_long = || format!("`{text}` is longer than Go's largest duration (about 292 years)");
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => {
                let end = f.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
                f.split_at(end)
            }
            None => ("", after),
        };
        let (unit_nanos, after): (u128, &str) = if let Some(a) = after.strip_prefix("ms") {
            (1_000_000, a)
        } else if let Some(a) = after.strip_prefix('s') {
            (1_000_000_000, a)
        } else if let Some(a) = after.strip_prefix('m') {
            (60_000_000_000, a)
        } else if let Some(a) = after.strip_prefix('h') {
            (3_600_000_000_000, a)
        } else {
            return Err(invalid());
        };
        // Leading zeros cannot overflow; more than 30 significant digits
        // is far beyond the limit anyway.
        let digits = int_part.trim_start_matches('0');
        if digits.len() > 30 {
            return Err(too_long());
        }
        let whole: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| invalid())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
        // The fraction, to the nanosecond: unit_nanos * 0.frac.
        let mut scale = unit_nanos;
        for d in frac_part.bytes().take(20) {
            scale /= 10;
            nanos += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        if total > i64::MAX as u128 {
            return Err(too_long());
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_long())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, nanos))
}

/// Parses an address or CIDR of [`CIDR_PATTERN`]. A bare address is a
/// single-address network; host bits in a CIDR are cleared
/// (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let invalid = || format!("`{text}` is not an IP address or CIDR (10.0.0.0/8, 2001:db8::/32)");
    if !matches(&CIDR_RE, text) {
        return Err(invalid());
    }
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| invalid())
}
