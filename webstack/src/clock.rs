//! The process's clocks: a cheap monotonic clock for task timings, and the
//! uptime every snapshot reports.
//!
//! Task roots stamp every poll; `Instant::now()` costs ~40 ns on virtual
//! machines (a full `clock_gettime(CLOCK_MONOTONIC)`), while the coarse clock
//! is a few nanoseconds and ticks every few milliseconds: plenty for
//! "idle for 3 s".

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static STARTED: OnceLock<Instant> = OnceLock::new();

/// Time since [`init`](crate::init) was first called (or since the first
/// snapshot).
pub fn uptime() -> Duration {
    STARTED.get_or_init(Instant::now).elapsed()
}

/// Nanoseconds on a monotonic clock with an arbitrary origin.
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; CLOCK_MONOTONIC_COARSE
    // exists on every Linux since 2.6.32, and the call cannot fail with it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds on a monotonic clock with an arbitrary origin.
#[cfg(not(target_os = "linux"))]
#[inline]
pub(crate) fn now_ns() -> u64 {
    static ORIGIN: std::sync::LazyLock<std::time::Instant> =
        std::sync::LazyLock::new(std::time::Instant::now);
    ORIGIN.elapsed().as_nanos() as u64
}

/// Time from `earlier` to `later` (zero if the clock reads went backwards).
pub(crate) fn between(earlier: u64, later: u64) -> Duration {
    Duration::from_nanos(later.saturating_sub(earlier))
}
