//! Every task of a tokio runtime on the page, without annotation: tokio's
//! task hooks (`--cfg tokio_unstable` and the `tokio` feature).
//!
//! ```
//! let runtime = webstack::tokio::hooks(&mut tokio::runtime::Builder::new_current_thread())
//!     .enable_all()
//!     .build()
//!     .unwrap();
//! runtime.block_on(async {
//!     // Spawned here or inside any library: listed with its tokio id, spawn
//!     // location, state, poll count, age and idle time.
//!     tokio::spawn(async { 1 }).await.unwrap();
//! });
//! ```
//!
//! [`hooks`] installs four callbacks on a runtime builder. At spawn (on the
//! spawning thread) a task is registered with its tokio id and creator: the
//! spawn location tokio reports and the innermost instrumented function
//! running on the spawning thread. Around each poll, the worker marks the
//! task running on itself, then counts the poll and stamps its end: a few
//! stores into a fixed table of per-task slots found by the task's id, no
//! lock, no allocation, no pointer followed. At termination the task leaves;
//! a task spawned on a runtime that is shutting down, whose termination
//! tokio reports before its spawn, is never registered.
//!
//! A task that also runs instrumented frames, or was spawned through
//! [`crate::task`], shows once: a snapshot merges the records that carry
//! the same tokio id (instrumented task roots record the id of the tokio
//! task polling them).
//!
//! Limits: tokio calls these hooks for tasks of the runtime's scheduler
//! only, so tasks of a `LocalSet` and `spawn_blocking` closures are not
//! listed through them (spawn them through [`crate::task`]); the table holds
//! 65,536 tasks, and a task that finds no free slot near its id's is not
//! listed, only counted as left out
//! ([`LeftOut::untracked_tasks`](crate::LeftOut::untracked_tasks)); a task
//! whose termination tokio never reports (a runtime leaked without
//! shutdown) stays listed, idle. Tokio keeps one callback of each
//! kind per runtime: [`hooks`] replaces callbacks set before it, and
//! callbacks set after it replace webstack's.

use ::tokio::runtime::{Builder, TaskMeta};

use crate::clock;
use crate::record::hook_table::Table;
use crate::record::stack;
use crate::record::task::spawned::{self, id_u64, HookState, Source};
use crate::record::task::TaskShared;

/// Installs webstack's task hooks on a tokio runtime builder, so that every
/// task of the runtime it builds appears on the page: its tokio id, spawn
/// location, state (idle, or running on thread N), poll count, age and idle
/// time. Returns the builder, for chaining.
///
/// Replaces any `on_task_spawn`, `on_task_terminate`,
/// `on_before_task_poll` and `on_after_task_poll` callbacks set earlier.
pub fn hooks(builder: &mut Builder) -> &mut Builder {
    builder
        .on_task_spawn(on_spawn)
        .on_before_task_poll(before_poll)
        .on_after_task_poll(after_poll)
        .on_task_terminate(on_terminate)
}

/// Slots in the table (a power of two).
const SLOTS: usize = 1 << 16;
/// Slots a task may take, its id's own first: tokio ids are sequential, so
/// a task mostly finds its own slot free.
const PROBES: usize = 8;

/// Every hooked task's slot, found by its tokio id.
static TABLE: Table<TaskShared, SLOTS, PROBES> = Table::new();

/// Tasks of hooked runtimes alive but not listed: their id found no free
/// slot in the table (shown on the page as left out).
pub(crate) fn untracked() -> usize {
    TABLE.untracked()
}

/// The spawn hook: the task takes a slot and is registered, unless tokio
/// reported its termination first (see [`Table::spawn`]).
fn on_spawn(meta: &TaskMeta<'_>) {
    runtimes::remember_current();
    let id = id_u64(meta.id());
    TABLE.spawn(
        id,
        clock::now_ns,
        |index| {
            spawned::register(
                Source::Hooked,
                None,
                stack::creator_here(meta.spawned_at()),
                Some((id, index as u32 + 1)),
            )
        },
        spawned::retire,
    );
}

fn before_poll(meta: &TaskMeta<'_>) {
    // A runtime whose tasks are all spawned from outside it (a
    // `Runtime::spawn` on another thread) is remembered by its workers. A
    // thread-local check per poll, and only with the feature.
    runtimes::remember_current();
    TABLE.before_poll(id_u64(meta.id()), || stack::current().id);
}

fn after_poll(meta: &TaskMeta<'_>) {
    TABLE.after_poll(id_u64(meta.id()), clock::now_ns);
}

fn on_terminate(meta: &TaskMeta<'_>) {
    TABLE.terminate(id_u64(meta.id()), spawned::retire);
}

/// The poll hooks' record of `task`; `None` once it terminated.
pub(crate) fn state(task: &TaskShared) -> Option<HookState> {
    let index = (task.spawn.hook_slot as usize).checked_sub(1)?;
    TABLE.state(index, task.spawn.tokio_id()?)
}

/// Tokio task `id` was traced by a task dump, and tokio woke it: its next
/// poll is not counted (see [`Table::traced`]). `polls` and `end_ns` are
/// what a snapshot read of it before the dump.
pub(crate) fn traced(id: u64, polls: u64, end_ns: u64) {
    TABLE.traced(id, polls, end_ns);
}

/// Whether a slot of the table is taken for tokio task `id` (for tests).
pub fn holds_slot(id: u64) -> bool {
    TABLE.holds(id)
}

/// The runtimes built with [`hooks`], for the task traces (feature
/// `taskdump`): each is remembered by the first spawn or poll on each
/// thread that runs in its context, so nothing more is asked of the user.
#[cfg(all(
    feature = "taskdump",
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
pub(crate) mod runtimes {
    use std::cell::Cell;
    use std::sync::Mutex;

    use ::tokio::runtime::Handle;

    /// Most runtimes remembered; the oldest is forgotten for a new one (a
    /// test suite builds a runtime per test).
    const MAX_RUNTIMES: usize = 64;

    /// Only ever `try_lock`ed: a spawn never waits, and neither does a
    /// snapshot (nor the child of a fork that found it held).
    static RUNTIMES: Mutex<Vec<Handle>> = Mutex::new(Vec::new());

    thread_local! {
        static REMEMBERED: Cell<bool> = const { Cell::new(false) };
    }

    /// Remembers the runtime whose context the calling thread is in, once
    /// per thread: a thread-local check on every later spawn.
    #[inline]
    pub(super) fn remember_current() {
        if REMEMBERED.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        remember_slow();
    }

    #[cold]
    fn remember_slow() {
        let Ok(handle) = Handle::try_current() else {
            return;
        };
        let Ok(mut list) = RUNTIMES.try_lock() else {
            return; // the next spawn on this thread tries again
        };
        if !list.iter().any(|known| known.id() == handle.id()) {
            if list.len() == MAX_RUNTIMES {
                list.remove(0);
            }
            list.push(handle);
        }
        drop(list);
        let _ = REMEMBERED.try_with(|r| r.set(true));
    }

    /// Every runtime remembered, or `None` while a spawn is adding one.
    pub(crate) fn all() -> Option<Vec<Handle>> {
        RUNTIMES.try_lock().ok().map(|list| list.clone())
    }
}

/// Without task traces nothing is remembered.
#[cfg(not(all(
    feature = "taskdump",
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod runtimes {
    #[inline(always)]
    pub(super) fn remember_current() {}
}
