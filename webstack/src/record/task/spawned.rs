//! Task records that do not start at an instrumented future: tasks spawned
//! through `webstack::task` (the spawn wrappers), the closures of
//! `webstack::task::spawn_blocking`, and, under `--cfg tokio_unstable`, every
//! task of a runtime built with `webstack::tokio::hooks`.
//!
//! A wrapped task registers at spawn, with the caller's location and the
//! innermost instrumented function of the spawning thread as its creator,
//! and stays registered until its future finishes or is dropped. Its future
//! ([`Spawned`]) acts as the task root: it holds the record's lock for each
//! poll and sets the thread's poll context, exactly as a root
//! [`Instrumented`](super::Instrumented) does, so instrumented futures inside
//! it behave as nested frames and save their await chain into this record.
//! A task that contains no instrumented frame still shows: its chain is
//! empty, its spawn site, state, age, idle time and poll count are known.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{
    end_root_poll, recycle, unregister, PollCtx, Running, TaskShared, LEAF_FILTER, POLL_CTX,
};
use crate::record::meta::FrameMeta;
use crate::record::stack::{self, Site};

/// Where a task record comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// An instrumented future polled as a task root.
    Root,
    /// A future spawned through a spawn wrapper.
    Spawned,
    /// A closure run by `spawn_blocking` through the wrapper.
    Blocking,
    /// A task known only from the tokio runtime's hooks.
    Hooked,
}

/// What a record holds beyond an instrumented root's: set before the record
/// is published, except `tokio_id`, which a spawn wrapper learns from the
/// `JoinHandle` after publishing.
pub(crate) struct SpawnInfo {
    pub(crate) source: Source,
    /// The name given at spawn (`webstack::task::Builder::name`), shown
    /// instead of [`TaskShared::name`].
    pub(crate) label: Option<Box<str>>,
    /// The tokio task id, 0 when unknown.
    pub(crate) tokio_id: AtomicU64,
    /// For [`Source::Hooked`]: the index of the task's poll slot plus one
    /// (0: none; see `crate::record::tokio_hooks`).
    pub(crate) hook_slot: u32,
}

impl SpawnInfo {
    /// What a record of an instrumented task root starts with: the tokio
    /// task id of the task polling it, where there is one, so that a
    /// snapshot merges it with the hooks' record of that task.
    pub(crate) fn root() -> SpawnInfo {
        SpawnInfo {
            source: Source::Root,
            label: None,
            tokio_id: AtomicU64::new(current_tokio_id()),
            hook_slot: 0,
        }
    }

    /// The tokio id, when known.
    pub(crate) fn tokio_id(&self) -> Option<u64> {
        match self.tokio_id.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }
}

/// What the tokio poll hooks recorded of a [`Source::Hooked`] task.
pub(crate) struct HookState {
    /// Webstack id of the thread polling it, 0 when idle.
    pub(crate) running_on: u64,
    pub(crate) polls: u64,
    /// [`crate::clock::now_ns`] at the end of its last poll.
    pub(crate) last_poll_end_ns: u64,
}

/// The poll hooks' record of a [`Source::Hooked`] task; `None` once it
/// terminated.
#[cfg(all(feature = "tokio", tokio_unstable))]
pub(crate) fn hook_state(task: &TaskShared) -> Option<HookState> {
    crate::record::tokio_hooks::state(task)
}

/// Without the hooks no record is [`Source::Hooked`].
#[cfg(not(all(feature = "tokio", tokio_unstable)))]
pub(crate) fn hook_state(_: &TaskShared) -> Option<HookState> {
    None
}

/// Live tasks of hooked runtimes that the hooks' table had no room for.
#[cfg(all(feature = "tokio", tokio_unstable))]
pub(crate) fn hooks_untracked() -> usize {
    crate::record::tokio_hooks::untracked()
}

/// Without the hooks no task goes untracked.
#[cfg(not(all(feature = "tokio", tokio_unstable)))]
pub(crate) fn hooks_untracked() -> usize {
    0
}

/// The id of the tokio task running on this thread, 0 if none.
#[cfg(feature = "tokio")]
fn current_tokio_id() -> u64 {
    ::tokio::task::try_id().map_or(0, id_u64)
}

#[cfg(not(feature = "tokio"))]
fn current_tokio_id() -> u64 {
    0
}

/// A tokio task id as a number. `tokio::task::Id` shows its number only
/// through `Display` (which would allocate) and `Hash` (which hashes exactly
/// that `u64`): read it from a hasher that keeps the word.
#[cfg(feature = "tokio")]
#[inline]
pub(crate) fn id_u64(id: ::tokio::task::Id) -> u64 {
    use std::hash::{Hash, Hasher};

    #[derive(Default)]
    struct Word(u64);

    impl Hasher for Word {
        fn finish(&self) -> u64 {
            self.0
        }

        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 = (self.0 << 8) | u64::from(byte);
            }
        }

        fn write_u64(&mut self, word: u64) {
            self.0 = word;
        }
    }

    let mut word = Word::default();
    id.hash(&mut word);
    word.finish()
}

/// The metadata of a record that has no instrumented root: it gives the
/// record its (empty) default name.
static NO_ROOT: FrameMeta = FrameMeta {
    name: "",
    function: "",
    task_name: "",
    file: "",
    line: 0,
    args: &[],
};

/// A published record of a task that starts without an instrumented frame.
pub(crate) fn register(
    source: Source,
    label: Option<Box<str>>,
    created_by: Site,
    hook: Option<(u64, u32)>,
) -> Arc<TaskShared> {
    let mut record = TaskShared::new_record(&NO_ROOT, Some(created_by));
    if let Some(fresh) = Arc::get_mut(&mut record) {
        fresh.spawn.source = source;
        fresh.spawn.label = label;
        let (tokio_id, slot) = hook.unwrap_or((0, 0));
        *fresh.spawn.tokio_id.get_mut() = tokio_id;
        fresh.spawn.hook_slot = slot;
    }
    record.publish();
    record
}

/// Takes a record out of the registry (a task that ended, or whose future
/// was dropped) and keeps it for reuse if nothing else holds it.
#[cfg(all(feature = "tokio", tokio_unstable))]
pub(crate) fn retire(record: Arc<TaskShared>) {
    unregister(record);
}

/// The root future of a task spawned through a spawn wrapper.
pub(crate) struct Spawned<F> {
    inner: F,
    task: Option<Arc<TaskShared>>,
}

impl<F> Spawned<F> {
    pub(crate) fn new(inner: F, task: Arc<TaskShared>) -> Self {
        Spawned {
            inner,
            task: Some(task),
        }
    }
}

impl<F: Future> Future for Spawned<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `self`, and `Spawned` is `Unpin` only when `F` is (auto trait). The
        // record is not pinned and only read or taken.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let Some(record) = &this.task else {
            // Polled again after it finished: nothing left to record.
            return inner.poll(cx);
        };
        let result = poll_spawned(record, inner, cx);
        if result.is_ready() {
            if let Some(record) = this.task.take() {
                recycle(record);
            }
        }
        result
    }
}

impl<F> Drop for Spawned<F> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            unregister(task);
        }
    }
}

/// Puts back the poll context (and leaf filter) of a root polling this one,
/// if any, when a wrapped task's poll ends (also during unwinding): a
/// `LocalSet` may run wrapped tasks inside an instrumented root's poll.
struct Restore {
    ctx: *const PollCtx,
    filter: u64,
}

impl Drop for Restore {
    fn drop(&mut self) {
        POLL_CTX.with(|ctx| ctx.set(self.ctx));
        LEAF_FILTER.with(|filter| filter.set(self.filter));
    }
}

/// One poll of a wrapped task, as the root of its task: the protocol of
/// [`Instrumented::poll_root`](super::Instrumented) without a frame of its
/// own, so the chains saved start at the outermost instrumented future the
/// task is awaiting (the task shows an empty chain when none stands).
#[inline(never)]
fn poll_spawned<F: Future>(
    record: &TaskShared,
    inner: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    let thread = stack::current();
    record.running_on.store(thread.id, Ordering::Relaxed);
    let running = Running(&record.running_on);
    let mut state = record.state.lock();
    let traced = super::trace_poll();
    if !traced {
        state.polls += 1;
    }
    if state.polls == 1 && record.spawn.tokio_id.load(Ordering::Relaxed) == 0 {
        record
            .spawn
            .tokio_id
            .store(current_tokio_id(), Ordering::Relaxed);
    }
    let filter = LEAF_FILTER.with(Cell::get);
    let ctx = PollCtx::new(
        &mut state,
        thread.depth.load(crate::sync::Ordering::Relaxed),
    );
    let restore = Restore {
        ctx: POLL_CTX.with(|c| c.replace(&ctx as *const PollCtx)),
        filter,
    };
    let result = inner.poll(cx);
    drop(restore);
    end_root_poll(record, state, running, result.is_pending(), traced);
    result
}

/// The record of a `spawn_blocking` closure, moved into the closure given
/// to tokio: a closure that never runs (its runtime shut down first) takes
/// its task out of the registry when it is dropped.
pub(crate) struct Blocking(Option<Arc<TaskShared>>);

impl Blocking {
    pub(crate) fn new(record: Arc<TaskShared>) -> Self {
        Blocking(Some(record))
    }

    /// Runs the closure as its task: the record is marked running on this
    /// thread and its lock held while the closure runs (a snapshot reports
    /// it running, never waits for it, and finds the closure's instrumented
    /// frames on this thread's stack); the task leaves the registry when the
    /// closure returns or unwinds.
    pub(crate) fn run<R>(mut self, f: impl FnOnce() -> R) -> R {
        let Some(record) = &self.0 else {
            return f();
        };
        let thread = stack::current();
        record.running_on.store(thread.id, Ordering::Relaxed);
        let running = Running(&record.running_on);
        let mut state = record.state.lock();
        state.polls = 1;
        record
            .spawn
            .tokio_id
            .store(current_tokio_id(), Ordering::Relaxed);
        let result = f();
        record.leave();
        drop(state);
        drop(running);
        if let Some(record) = self.0.take() {
            recycle(record);
        }
        result
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            unregister(task);
        }
    }
}
