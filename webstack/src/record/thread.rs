//! Drop-in replacements for [`std::thread::spawn`] and
//! [`std::thread::Builder`] that register the new thread with its name and
//! its creator: the instrumented function that spawned it and the source
//! location of the spawn call.
//!
//! ```
//! #[webstack::instrument]
//! fn start_workers() -> Vec<std::thread::JoinHandle<u32>> {
//!     (0..2)
//!         .map(|i| {
//!             webstack::thread::Builder::new()
//!                 .name(format!("worker-{i}"))
//!                 .spawn(move || i * 10)
//!                 .unwrap()
//!         })
//!         .collect()
//! }
//!
//! let sum: u32 = start_workers().into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 10);
//! ```

use std::io;
use std::panic::Location;
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

use crate::record::stack;

/// Spawns a thread like [`std::thread::spawn`], registered with webstack.
///
/// # Panics
/// Like [`std::thread::spawn`], if the OS fails to create a thread.
#[track_caller]
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn thread")
}

/// Thread factory like [`std::thread::Builder`]; threads it spawns register
/// with webstack before running their closure.
#[derive(Debug)]
pub struct Builder {
    inner: std::thread::Builder,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with no name and the default stack size.
    pub fn new() -> Self {
        Builder {
            inner: std::thread::Builder::new(),
        }
    }

    /// Names the thread; the name is shown on the snapshot page. Default: none
    /// (the page shows the thread's `ThreadId`).
    pub fn name(self, name: String) -> Self {
        Builder {
            inner: self.inner.name(name),
        }
    }

    /// Sets the stack size in bytes. Default: std's (2 MiB, or
    /// `RUST_MIN_STACK`).
    pub fn stack_size(self, size: usize) -> Self {
        Builder {
            inner: self.inner.stack_size(size),
        }
    }

    /// Spawns the thread, like [`std::thread::Builder::spawn`].
    ///
    /// # Errors
    /// When the OS cannot create the thread.
    #[track_caller]
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let created_by = stack::creator_here(Location::caller());
        self.inner.spawn(move || {
            stack::register_current(Some(created_by));
            f()
        })
    }

    /// Spawns a scoped thread, like [`std::thread::Builder::spawn_scoped`].
    ///
    /// # Errors
    /// When the OS cannot create the thread.
    #[track_caller]
    pub fn spawn_scoped<'scope, 'env, F, T>(
        self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> io::Result<ScopedJoinHandle<'scope, T>>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let created_by = stack::creator_here(Location::caller());
        self.inner.spawn_scoped(scope, move || {
            stack::register_current(Some(created_by));
            f()
        })
    }
}
