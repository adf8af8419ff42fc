//! Timestamps of access-log lines without a date library: Unix time to a
//! civil UTC date (Howard Hinnant's `civil_from_days`), written in nginx's
//! `$time_local` form or ISO 8601.
//!
//! Invariants: writes into the caller's buffer; no allocation. A line's
//! stamp is formatted once per second per thread ([`write_local_at`],
//! [`write_iso8601_at`] keep the last second's text), the same text as
//! [`Civil`] writes.

use std::cell::Cell;
use std::time::SystemTime;

use super::num::dec_padded;

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
        dec_padded(out, u64::from(self.day), 2);
        out.push(b'/');
        out.extend_from_slice(month.as_bytes());
        out.push(b'/');
        dec_padded(out, u64::try_from(self.year).unwrap_or(0), 1);
        out.push(b':');
        self.write_clock(out);
        out.extend_from_slice(b" +0000");
    }

    /// `2026-12-07T11:42:58.123Z`.
    pub fn write_iso8601(&self, out: &mut Vec<u8>) {
        self.write_iso8601_second(out);
        dec_padded(out, u64::from(self.millis), 3);
        out.push(b'Z');
    }

    /// `2026-12-07T11:42:58.` (the part that changes once a second).
    fn write_iso8601_second(&self, out: &mut Vec<u8>) {
        dec_padded(out, u64::try_from(self.year).unwrap_or(0), 1);
        out.push(b'-');
        dec_padded(out, u64::from(self.month), 2);
        out.push(b'-');
        dec_padded(out, u64::from(self.day), 2);
        out.push(b'T');
        self.write_clock(out);
        out.push(b'.');
    }

    /// `11:42:58`.
    fn write_clock(&self, out: &mut Vec<u8>) {
        dec_padded(out, u64::from(self.hour), 2);
        out.push(b':');
        dec_padded(out, u64::from(self.minute), 2);
        out.push(b':');
        dec_padded(out, u64::from(self.second), 2);
    }
}

/// The text of one second, kept by a thread for the next line.
#[derive(Clone, Copy)]
struct Cached {
    /// Unix seconds of the text; `u64::MAX`: nothing kept.
    secs: u64,
    len: u8,
    text: [u8; 40],
}

impl Cached {
    const EMPTY: Cached = Cached {
        secs: u64::MAX,
        len: 0,
        text: [0; 40],
    };

    /// The kept text of second `secs`, if it is the one kept.
    fn get(&self, secs: u64) -> Option<&[u8]> {
        (self.secs == secs)
            .then(|| self.text.get(..usize::from(self.len)))
            .flatten()
    }

    /// Keeps `text` as second `secs`'s (a text too long is not kept).
    fn keep(secs: u64, text: &[u8]) -> Cached {
        let mut kept = Cached::EMPTY;
        if let (Some(slot), Ok(len)) = (kept.text.get_mut(..text.len()), u8::try_from(text.len())) {
            slot.copy_from_slice(text);
            kept.secs = secs;
            kept.len = len;
        }
        kept
    }
}

thread_local! {
    static LOCAL: Cell<Cached> = const { Cell::new(Cached::EMPTY) };
    static ISO_SECOND: Cell<Cached> = const { Cell::new(Cached::EMPTY) };
}

fn unix(time: SystemTime) -> std::time::Duration {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Appends `time` as [`Civil::write_local`] does, formatting each second
/// once per thread.
pub fn write_local_at(time: SystemTime, out: &mut Vec<u8>) {
    let secs = unix(time).as_secs();
    cached(&LOCAL, secs, out, |out| Civil::of(time).write_local(out));
}

/// Appends `time` as [`Civil::write_iso8601`] does, formatting each second
/// once per thread (only the milliseconds each time).
pub fn write_iso8601_at(time: SystemTime, out: &mut Vec<u8>) {
    let since = unix(time);
    cached(&ISO_SECOND, since.as_secs(), out, |out| {
        Civil::of(time).write_iso8601_second(out);
    });
    dec_padded(out, u64::from(since.subsec_millis()), 3);
    out.push(b'Z');
}

fn cached(
    key: &'static std::thread::LocalKey<Cell<Cached>>,
    secs: u64,
    out: &mut Vec<u8>,
    format: impl FnOnce(&mut Vec<u8>),
) {
    let kept = key.with(Cell::get);
    if let Some(text) = kept.get(secs) {
        out.extend_from_slice(text);
        return;
    }
    let start = out.len();
    format(out);
    if let Some(text) = out.get(start..) {
        key.with(|k| k.set(Cached::keep(secs, text)));
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

    #[test]
    fn cached_seconds_match_civil() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_643_778_123);
        for step in [0, 1, 500, 877, 878, 1_000, 61_000, 0, 86_400_000] {
            let t = base + Duration::from_millis(step);
            let (mut want, mut got) = (Vec::new(), Vec::new());
            Civil::of(t).write_local(&mut want);
            write_local_at(t, &mut got);
            assert_eq!(got, want);
            let (mut want, mut got) = (Vec::new(), Vec::new());
            Civil::of(t).write_iso8601(&mut want);
            write_iso8601_at(t, &mut got);
            assert_eq!(got, want);
        }
    }
}
