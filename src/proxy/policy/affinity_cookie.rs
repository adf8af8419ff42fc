//! The affinity cookie's `Set-Cookie` value, attribute by attribute as
//! ingress-nginx's balancer writes it (`key=value; Expires; Max-Age;
//! Domain; Path; Secure; HttpOnly; SameSite`), and its User-Agent test for
//! `SameSite=None`.
//!
//! Invariants:
//! - Only runs when a cookie is set (a new session or a re-pointed one),
//!   so its one `String` is not on the path of requests that carry a
//!   cookie.
//! - Every attribute value was validated by the compiler; the route path
//!   comes from the Ingress as written and is checked to be a cookie path
//!   before use (`/` otherwise).

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::exchange::CookieRequest;
use crate::table::policy::Affinity;

/// The `Set-Cookie` value for `value` on a route whose path is
/// `route_path` (as written in the Ingress).
pub(super) fn set_cookie(
    affinity: &Affinity,
    value: &str,
    route_path: &str,
    req: CookieRequest,
) -> String {
    let attrs = &affinity.attrs;
    let mut out = format!("{}={value}", affinity.cookie);
    if let Some(expires) = attrs.expires {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        out.push_str("; Expires=");
        cookie_time(&mut out, now.saturating_add(expires));
    }
    if let Some(age) = affinity.max_age {
        let _ = write!(out, "; Max-Age={age}");
    }
    if let Some(domain) = &attrs.domain {
        let _ = write!(out, "; Domain={domain}");
    }
    let path = match &affinity.path {
        Some(p) => p,
        None if attrs.nginx && cookie_path(route_path) => route_path,
        None => "/",
    };
    let _ = write!(out, "; Path={path}");
    if attrs.secure || (attrs.nginx && req.tls) {
        out.push_str("; Secure");
    }
    out.push_str("; HttpOnly");
    if let Some(samesite) = attrs.samesite {
        let drop =
            samesite == "None" && attrs.conditional_samesite_none && req.samesite_none_broken;
        if !drop {
            let _ = write!(out, "; SameSite={samesite}");
        }
    }
    out
}

/// Whether a path as written can be a cookie's `Path`.
fn cookie_path(p: &str) -> bool {
    p.starts_with('/') && p.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

/// ingress-nginx's list of clients that mishandle `SameSite=None`
/// (Chrome 40–69, iOS 12, Safari on macOS 10.14).
pub(super) fn samesite_none_broken(user_agent: &str) -> bool {
    user_agent.contains("Chrome/4")
        || user_agent.contains("Chrome/5")
        || user_agent.contains("Chrome/6")
        || user_agent.contains("CPU iPhone OS 12")
        || user_agent.contains("iPad; CPU OS 12")
        || (user_agent.contains("Macintosh")
            && user_agent.contains("Intel Mac OS X 10_14")
            && user_agent.contains("Safari")
            && !user_agent.contains("Chrome"))
}

/// nginx's `cookie_time`: `Thu, 01-Jan-70 00:00:00 GMT`.
fn cookie_time(out: &mut String, unix: u64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = DAYS.get((days % 7) as usize).copied().unwrap_or("Thu");
    let month_name = MONTHS.get((month - 1) as usize).copied().unwrap_or("Jan");
    let _ = write!(
        out,
        "{weekday}, {day:02}-{month_name}-{:02} {:02}:{:02}:{:02} GMT",
        year.rem_euclid(100),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_time_is_nginx_format() {
        let mut s = String::new();
        cookie_time(&mut s, 0);
        assert_eq!(s, "Thu, 01-Jan-70 00:00:00 GMT");
        s.clear();
        // 2024-02-29 12:34:56 UTC, a Thursday.
        cookie_time(&mut s, 1_709_210_096);
        assert_eq!(s, "Thu, 29-Feb-24 12:34:56 GMT");
    }

    #[test]
    fn old_clients_mishandle_samesite_none() {
        assert!(samesite_none_broken("Mozilla/5.0 Chrome/51.0.2704.103"));
        assert!(samesite_none_broken(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X)"
        ));
        assert!(!samesite_none_broken("Mozilla/5.0 Chrome/120.0"));
    }
}
