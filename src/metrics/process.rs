//! Process metrics under their conventional names (`process_*`, no
//! `tollgate_` prefix, as every Prometheus client exposes them), read from
//! `/proc/self` at scrape time: CPU seconds, resident and virtual memory,
//! open and maximum file descriptors, start time.
//!
//! Invariants:
//! - Read only when scraped (admin thread), never on the request path.
//! - Outside Linux, or when `/proc` cannot be read, a value is left out
//!   rather than reported as 0.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Clock ticks per second of `/proc/self/stat` times (`USER_HZ`, 100 on
/// every Linux architecture tollgate ships for).
const TICKS_PER_SECOND: f64 = 100.0;

/// The process collector (stateless: everything is read per scrape).
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What one scrape reads.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<i64>,
    pub virtual_bytes: Option<i64>,
    pub open_fds: Option<i64>,
    pub max_fds: Option<i64>,
    pub start_time_seconds: Option<i64>,
}

impl ProcessStats {
    /// Reads `/proc/self` (Linux).
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let boot = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let (cpu_seconds, start_ticks) = parse_stat(&stat);
        let boot_time = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<i64>().ok());
        Self {
            cpu_seconds,
            resident_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024),
            virtual_bytes: status_kib(&status, "VmSize:").map(|k| k * 1024),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .and_then(|d| i64::try_from(d.count()).ok()),
            max_fds: limits
                .lines()
                .find_map(|l| l.strip_prefix("Max open files"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok()),
            start_time_seconds: boot_time.zip(start_ticks).map(|(boot, ticks)| {
                boot + i64::try_from(ticks / TICKS_PER_SECOND as u64).unwrap_or(0)
            }),
        }
    }
}

/// `(utime + stime in seconds, starttime in ticks)` from `/proc/self/stat`
/// (fields after the command name, which may hold spaces and parentheses).
fn parse_stat(stat: &str) -> (Option<f64>, Option<u64>) {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return (None, None);
    };
    // `rest` starts at field 3 (state): utime is field 14, stime 15,
    // starttime 22.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu = field(14)
        .zip(field(15))
        .map(|(u, s)| (u + s) as f64 / TICKS_PER_SECOND);
    (cpu, field(22))
}

fn status_kib(status: &str, key: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = ProcessStats::read();
        if let Some(cpu) = stats.cpu_seconds {
            let m = ConstCounter::new(cpu);
            m.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds",
                Some(&Unit::Seconds),
                m.metric_type(),
            )?)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(Unit::Bytes),
                stats.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(Unit::Bytes),
                stats.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                stats.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                stats.max_fds,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch in seconds",
                Some(Unit::Seconds),
                stats.start_time_seconds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(value) = value {
                let m = ConstGauge::new(value);
                m.encode(encoder.encode_descriptor(name, help, unit.as_ref(), m.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let stat =
            "42 (a b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 12345 1000 200";
        let (cpu, start) = parse_stat(stat);
        assert_eq!(cpu, Some(3.0));
        assert_eq!(start, Some(12345));
        assert_eq!(parse_stat("garbage"), (None, None));
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::read();
        if cfg!(target_os = "linux") {
            assert!(stats.resident_bytes.unwrap_or(0) > 0, "{stats:?}");
            assert!(stats.open_fds.unwrap_or(0) > 0, "{stats:?}");
            assert!(
                stats.start_time_seconds.unwrap_or(0) > 1_600_000_000,
                "{stats:?}"
            );
        }
    }
}
