//! A gate that a test's threads (or a runtime's workers) wait at until the
//! test opens it, with a guard that opens it when dropped: a failed
//! assertion unwinds through the guard and lets the threads go, so the
//! test ends (failed) instead of hanging in a join or a runtime's drop.

use std::sync::{Condvar, Mutex, PoisonError};

/// Closed until [`Gate::open`]; open for good afterwards.
#[derive(Debug, Default)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub const fn new() -> Gate {
        Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    /// Blocks the calling thread until the gate is open.
    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*open {
            open = self
                .opened
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Opens the gate and wakes every thread waiting at it.
    pub fn open(&self) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.opened.notify_all();
    }

    /// A guard that opens the gate when dropped, at the end of the test or
    /// when it panics. Declare it after what must wait for the threads (a
    /// runtime, a join in a drop), so that it is dropped first.
    pub fn opener(&self) -> Opener<'_> {
        Opener { gate: self }
    }
}

/// Opens its gate when dropped (see [`Gate::opener`]).
#[derive(Debug)]
#[must_use = "the gate opens when the guard is dropped"]
pub struct Opener<'a> {
    gate: &'a Gate,
}

impl Drop for Opener<'_> {
    fn drop(&mut self) {
        self.gate.open();
    }
}
