//! The stages of one snapshot, in order: the shadow capture
//! ([`crate::snapshot`]), then the native pass ([`crate::native`]).
//! Grouping and rendering come after ([`crate::page`], or the user's own).

use std::cell::Cell;

use crate::snapshot::{capture, Options, Snapshot};

impl Snapshot {
    /// Captures every registered thread and task, and with
    /// [`Options::augment`] the native stack of every thread of the process.
    ///
    /// Never waits for the program: a task being polled is reported as
    /// running (its frames are on the polling thread's stack), and a thread's
    /// stack is read without stopping it. It waits only for a task record
    /// that another snapshot is copying (at most 1 ms per snapshot in all),
    /// and, while another thread is inside `fork()`, starts once the fork
    /// returns. With `augment`, the threads that do not answer their signal
    /// cost at most [`native::timeout`](crate::native::timeout) together.
    pub fn capture(options: &Options) -> Snapshot {
        let _here = Capturing::enter();
        let started = std::time::Instant::now();
        // Only the registry reads hold the fork gate: a fork waits for them,
        // not for the native pass (see `crate::fork`).
        let mut snapshot = {
            let _gate = crate::fork::capturing();
            capture::shadow(options)
        };
        if options.augment {
            crate::native::augment(&mut snapshot);
        }
        snapshot.capture_time = started.elapsed();
        snapshot
    }
}

thread_local! {
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

/// Marks the thread as inside [`Snapshot::capture`] for the length of one.
struct Capturing(bool);

impl Capturing {
    fn enter() -> Capturing {
        Capturing(CAPTURING.try_with(|c| c.replace(true)).unwrap_or(false))
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        let _ = CAPTURING.try_with(|c| c.set(self.0));
    }
}

/// Whether the calling thread is inside [`Snapshot::capture`] (a panic hook
/// asks: the native pass's locks may be held by this thread).
pub(crate) fn capturing_here() -> bool {
    CAPTURING.try_with(Cell::get).unwrap_or(false)
}
