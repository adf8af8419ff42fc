//! The process's file-descriptor table, grown once before serving.
//!
//! Linux grows a process's fd table by doubling (64, 128, 256, … slots) the
//! first time an fd number past its end is handed out, and in a process
//! with more than one thread each growth first waits for an RCU grace
//! period (`synchronize_rcu` in `expand_fdtable`): on an idle machine a
//! scheduler tick or two, 8–20 ms on the benchmark machines, spent inside
//! the `socket()` or `accept4()` that crossed the boundary. A proxy worker
//! stalled in that call stalls every request it carries: the endpoint
//! propagation bench saw single requests take 15–25 ms whenever the number
//! of upstream connections crossed a power of two (`docs/benchmarks.md`).
//! The table never shrinks, so growing it at start-up moves that cost out
//! of serving.
//!
//! Invariants:
//! - [`reserve`] runs before the binary starts a thread of its own (only
//!   jemalloc's background thread may exist by then: start-up then waits
//!   for one grace period, once); afterwards no fd number below the
//!   reserved size grows the table.
//! - Never past the soft `RLIMIT_NOFILE` (the kernel refuses an fd number
//!   at or above it) and never more than asked: 8 bytes of kernel memory
//!   per slot, not part of the process's RSS.
//! - Best effort: a failure is returned for the caller to report and
//!   leaves nothing open.

use std::fs::File;
use std::io;

/// Slots reserved by `tollgate run` and `tollgate echo`: 16,384 client and
/// upstream connections before the first growth (128 KiB of kernel
/// memory).
pub const RESERVE: u64 = 16_384;

/// The smallest table Linux starts a process with; nothing to do below it.
const INITIAL: u64 = 64;

/// Grows the fd table to at least `slots` entries (capped by the soft
/// `RLIMIT_NOFILE`) by duplicating a descriptor to the highest number that
/// fits and closing it again. Returns the number of slots now guaranteed:
/// 0 when the limit leaves nothing to grow.
pub fn reserve(slots: u64) -> io::Result<u64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let want = limit.map_or(slots, |l| slots.min(l));
    if want <= INITIAL {
        return Ok(0);
    }
    let highest = i32::try_from(want - 1).unwrap_or(i32::MAX);
    let null = File::open("/dev/null")?;
    // F_DUPFD_CLOEXEC hands out the lowest free number ≥ `highest`: the
    // table grows to cover it. Both descriptors close when dropped.
    let dup = rustix::io::fcntl_dupfd_cloexec(&null, highest)?;
    drop(dup);
    Ok(want)
}

/// The fd table's current size (`FDSize` in `/proc/self/status`), for
/// logs and tests; `None` where that file is not there.
pub fn size() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reserving_grows_the_table_and_leaves_no_descriptor_open() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        // Needs room for 4,096 descriptors (every CI and dev machine has it).
        if limit.is_some_and(|l| l < 4096) {
            panic!("RLIMIT_NOFILE below 4096: raise it to run this test");
        }
        let got = super::reserve(4096);
        assert!(matches!(got, Ok(4096)), "{got:?}");
        let size = super::size();
        assert!(size.is_some_and(|s| s >= 4096), "FDSize {size:?}");
        // The duplicate took number 4095 (the test process never opens
        // that many files): it must be closed again.
        assert!(
            !std::path::Path::new("/proc/self/fd/4095").exists(),
            "the reserving descriptor is still open"
        );
    }

    #[test]
    fn nothing_to_do_below_the_initial_table() {
        assert_eq!(super::reserve(10).ok(), Some(0));
    }
}
