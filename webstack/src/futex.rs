//! The two futex calls webstack makes (Linux): sleeping while a 32-bit word
//! holds a value, and waking one sleeper. Both are plain system calls, safe
//! in a signal handler; a sleeper may return early (a signal, a spurious
//! wake), so callers check the word again in a loop.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `word` holds `expected`, at most `timeout` (`None`: no
/// deadline).
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|timeout| libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: `FUTEX_WAIT` reads the live, aligned 32-bit word behind `word`
    // and returns at once if it does not hold `expected`; `ts_ptr` is null
    // (no deadline) or points at `ts`, which outlives the call. It writes no
    // memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes one thread sleeping in [`wait`] on `word`.
pub(crate) fn wake_one(word: &AtomicU32) {
    // SAFETY: `FUTEX_WAKE` only uses the address as a key; it reads and
    // writes no memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}
