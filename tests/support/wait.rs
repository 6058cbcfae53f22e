//! Waiting with a limit: poll a condition until a deadline, or abort a test
//! that hangs.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Polls `check` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    check()
}

/// Aborts the whole process with a message unless dropped within `limit`:
/// a hung test must fail CI, not stall it.
#[must_use = "the watchdog is disarmed when dropped"]
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

pub fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("watchdog-{what}"))
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // Straight to stderr: `eprintln!` on a thread a test started
                // goes to the test's captured output, which the abort loses.
                let _ = writeln!(
                    std::io::stderr(),
                    "watchdog: {what} did not finish within {limit:?}; aborting"
                );
                std::process::abort();
            }
        })
        .expect("spawn watchdog");
    Watchdog { _disarm: tx }
}
