//! Drop-in replacements for tokio's [`spawn`](::tokio::task::spawn),
//! [`spawn_blocking`](::tokio::task::spawn_blocking),
//! [`spawn_local`](::tokio::task::spawn_local) and task `Builder` that
//! register the task with webstack at spawn (with the `tokio` feature).
//!
//! A task spawned through them is on the page from its spawn until it
//! finishes, even when it contains no instrumented frame: its name (from
//! [`Builder::name`]), its state (idle, or running on thread N), its age,
//! how long it has been idle, its poll count and its tokio task id, and its
//! creator: the source location of the spawn call and the innermost
//! instrumented function running on the spawning thread or task at that
//! moment. With `augment=1`, a running task shows the native stack of the
//! worker thread polling it.
//!
//! The wrapped future is the task's root: `#[webstack::instrument]` futures
//! inside it are its frames, and the await chain of an idle task starts at
//! the outermost instrumented future it awaits. So an instrumented
//! `async fn` spawned through [`spawn`] shows as one task with its frames,
//! created by the function that spawned it (spawned with plain
//! `tokio::spawn`, its creator is only what runs when it is first polled).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! #[webstack::instrument]
//! async fn serve(port: u16) -> u16 {
//!     tokio::task::yield_now().await;
//!     port
//! }
//!
//! let worker = webstack::task::spawn(serve(8080));
//! let named = webstack::task::Builder::new()
//!     .name("connection-worker")
//!     .spawn(async { 7 })
//!     .unwrap();
//! let blocking = webstack::task::spawn_blocking(|| 6 * 7);
//! assert_eq!(worker.await.unwrap(), 8080);
//! assert_eq!(named.await.unwrap(), 7);
//! assert_eq!(blocking.await.unwrap(), 42);
//! # }
//! ```
//!
//! A `spawn_blocking` closure shows as a task running on the blocking-pool
//! thread that runs it (its instrumented frames are on that thread's stack,
//! and the thread shows as usual); it has no idle state.

use std::future::Future;
use std::io;
use std::panic::Location;

use ::tokio::runtime::Handle;
use ::tokio::task::{JoinHandle, LocalSet};

use crate::record::stack;
use crate::record::task::spawned::{self, Blocking, Source, Spawned};

/// Registers a task about to be spawned at `location`.
#[inline]
fn register(
    location: &'static Location<'static>,
    name: Option<&str>,
    source: Source,
) -> std::sync::Arc<crate::record::task::TaskShared> {
    spawned::register(
        source,
        name.map(Box::from),
        stack::creator_here(location),
        None,
    )
}

/// Spawns a task like [`tokio::spawn`](::tokio::spawn), registered with
/// webstack.
///
/// # Panics
/// Like [`tokio::spawn`](::tokio::spawn), when called outside a tokio
/// runtime.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let record = register(Location::caller(), None, Source::Spawned);
    ::tokio::spawn(Spawned::new(future, record))
}

/// Spawns a `!Send` task on the current [`LocalSet`] or local runtime like
/// [`tokio::task::spawn_local`](::tokio::task::spawn_local), registered with
/// webstack.
///
/// # Panics
/// Like [`tokio::task::spawn_local`](::tokio::task::spawn_local), when called
/// outside a `LocalSet` or local runtime.
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let record = register(Location::caller(), None, Source::Spawned);
    ::tokio::task::spawn_local(Spawned::new(future, record))
}

/// Runs a closure on tokio's blocking pool like
/// [`tokio::task::spawn_blocking`](::tokio::task::spawn_blocking); it shows
/// as a task running on the pool thread that runs it.
///
/// # Panics
/// Like [`tokio::task::spawn_blocking`](::tokio::task::spawn_blocking), when
/// called outside a tokio runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let record = register(Location::caller(), None, Source::Blocking);
    let blocking = Blocking::new(record);
    ::tokio::task::spawn_blocking(move || blocking.run(f))
}

/// Task factory like tokio's `task::Builder` (which needs
/// `--cfg tokio_unstable` and tokio's `tracing` feature; this one does
/// not): sets a task's name, shown on the page, before spawning it. The name
/// is webstack's only: tokio (and tokio-console) does not see it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builder<'a> {
    name: Option<&'a str>,
}

impl<'a> Builder<'a> {
    /// A builder with no name.
    pub fn new() -> Self {
        Builder { name: None }
    }

    /// Names the task. Default: none (the page shows the task's id, and
    /// the name of its outermost instrumented function when it is idle in
    /// one).
    pub fn name(&self, name: &'a str) -> Self {
        Builder { name: Some(name) }
    }

    /// Spawns a task on the current runtime, like
    /// [`tokio::spawn`](::tokio::spawn).
    ///
    /// # Errors
    /// Never: the `io::Result` only keeps the signature of tokio's
    /// builder.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    #[track_caller]
    pub fn spawn<Fut>(self, future: Fut) -> io::Result<JoinHandle<Fut::Output>>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        self.spawn_on(future, &Handle::current())
    }

    /// Spawns a task on the runtime of `handle`, like
    /// [`Handle::spawn`].
    ///
    /// # Errors
    /// Never: the `io::Result` only keeps the signature of tokio's
    /// builder.
    #[track_caller]
    pub fn spawn_on<Fut>(self, future: Fut, handle: &Handle) -> io::Result<JoinHandle<Fut::Output>>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        let record = register(Location::caller(), self.name, Source::Spawned);
        let future = Spawned::new(future, record);
        Ok(handle.spawn(future))
    }

    /// Spawns a `!Send` task on the current [`LocalSet`] or local runtime,
    /// like [`tokio::task::spawn_local`](::tokio::task::spawn_local).
    ///
    /// # Errors
    /// Never: the `io::Result` only keeps the signature of tokio's
    /// builder.
    ///
    /// # Panics
    /// When called outside a `LocalSet` or local runtime.
    #[track_caller]
    pub fn spawn_local<Fut>(self, future: Fut) -> io::Result<JoinHandle<Fut::Output>>
    where
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let record = register(Location::caller(), self.name, Source::Spawned);
        let future = Spawned::new(future, record);
        Ok(::tokio::task::spawn_local(future))
    }

    /// Spawns a `!Send` task on `local_set`, like
    /// [`LocalSet::spawn_local`].
    ///
    /// # Errors
    /// Never: the `io::Result` only keeps the signature of tokio's
    /// builder.
    #[track_caller]
    pub fn spawn_local_on<Fut>(
        self,
        future: Fut,
        local_set: &LocalSet,
    ) -> io::Result<JoinHandle<Fut::Output>>
    where
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let record = register(Location::caller(), self.name, Source::Spawned);
        let future = Spawned::new(future, record);
        Ok(local_set.spawn_local(future))
    }

    /// Runs a closure on the current runtime's blocking pool, like
    /// [`tokio::task::spawn_blocking`](::tokio::task::spawn_blocking).
    ///
    /// # Errors
    /// Never: the `io::Result` only keeps the signature of tokio's
    /// builder.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    #[track_caller]
    pub fn spawn_blocking<Function, Output>(
        self,
        function: Function,
    ) -> io::Result<JoinHandle<Output>>
    where
        Function: FnOnce() -> Output + Send + 'static,
        Output: Send + 'static,
    {
        self.spawn_blocking_on(function, &Handle::current())
    }

    /// Runs a closure on the blocking pool of `handle`'s runtime, like
    /// [`Handle::spawn_blocking`].
    ///
    /// # Errors
    /// Never: the `io::Result` only keeps the signature of tokio's
    /// builder.
    #[track_caller]
    pub fn spawn_blocking_on<Function, Output>(
        self,
        function: Function,
        handle: &Handle,
    ) -> io::Result<JoinHandle<Output>>
    where
        Function: FnOnce() -> Output + Send + 'static,
        Output: Send + 'static,
    {
        let record = register(Location::caller(), self.name, Source::Blocking);
        let blocking = Blocking::new(record);
        let function = move || blocking.run(function);
        Ok(handle.spawn_blocking(function))
    }
}
