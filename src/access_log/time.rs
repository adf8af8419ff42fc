//! Timestamps of access-log lines without a date library: Unix time to a
//! civil UTC date (Howard Hinnant's `civil_from_days`), written in nginx's
//! `$time_local` form or ISO 8601.
//!
//! Invariant: writes into the caller's buffer; no allocation.

use std::io::Write as _;
use std::time::SystemTime;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// UTC civil time of a Unix timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    pub fn of(time: SystemTime) -> Self {
        let since = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = i64::try_from(since.as_secs()).unwrap_or(0);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // civil_from_days
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let small = |v: i64| u32::try_from(v).unwrap_or(0);
        Civil {
            year,
            month: small(month),
            day: small(day),
            hour: small(rem / 3_600),
            minute: small(rem % 3_600 / 60),
            second: small(rem % 60),
            millis: since.subsec_millis(),
        }
    }

    /// `07/Dec/2026:11:42:58 +0000` (nginx `$time_local`, in UTC).
    pub fn write_local(&self, out: &mut Vec<u8>) {
        let month = MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .unwrap_or(&"Jan");
        let _ = write!(
            out,
            "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
            self.day, self.year, self.hour, self.minute, self.second
        );
    }

    /// `2026-12-07T11:42:58.123Z`.
    pub fn write_iso8601(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_643_778_123);
        let c = Civil::of(t);
        let mut out = Vec::new();
        c.write_iso8601(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "2026-12-07T11:42:58.123Z");
        let mut out = Vec::new();
        c.write_local(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "07/Dec/2026:11:42:58 +0000"
        );
        let leap = Civil::of(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }
}
