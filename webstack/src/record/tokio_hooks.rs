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

use std::ptr::{self, NonNull};
use std::sync::atomic::{
    fence, AtomicI32, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::Arc;

use ::tokio::runtime::{Builder, TaskMeta};

use crate::clock;
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

/// What the poll hooks write for one task, read by snapshots. A cache line
/// each: workers polling neighbouring tasks do not share lines.
///
/// A snapshot reads the fields, then the id again (after an acquire
/// fence): the hooks store every field with release ordering, after the
/// task's claim of the slot, so a field written for a later holder of the
/// slot shows the reader that the id changed.
#[repr(align(64))]
struct Slot {
    /// The tokio id of the task holding the slot, 0 when free; with
    /// [`TOMBSTONE`] set, the id of a task whose termination came before
    /// its spawn.
    id: AtomicU64,
    /// Webstack id of the thread polling the task, 0 when idle.
    running_on: AtomicU64,
    polls: AtomicU64,
    /// [`clock::now_ns`] at the end of the last poll (at spawn before one).
    last_poll_end_ns: AtomicU64,
    /// The registry's reference to the task's record (from `Arc::into_raw`),
    /// taken back at termination; null before the spawn hook stores it,
    /// [`terminated`] when the task ended first.
    record: AtomicPtr<TaskShared>,
    /// Live tasks whose own slot (their id's) this is that found no slot in
    /// their probe window: not listed, counted in [`UNTRACKED`]. Negative
    /// while a termination that found neither a slot nor room for its
    /// tombstone waits for its spawn.
    untracked: AtomicI32,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            id: AtomicU64::new(0),
            running_on: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            last_poll_end_ns: AtomicU64::new(0),
            record: AtomicPtr::new(ptr::null_mut()),
            untracked: AtomicI32::new(0),
        }
    }
}

/// Slots in the table (a power of two); untouched pages cost no memory.
const SLOTS: usize = 1 << 16;
/// Slots tried after a task id's own: tokio ids are sequential, so a task
/// mostly finds its own slot free.
const PROBES: usize = 8;
/// Set in a slot's id for a task whose termination tokio reported before
/// its spawn (a spawn on a runtime that is shutting down): the spawn hook
/// that finds it registers nothing. Tokio ids count up from 1 and never
/// reach it.
const TOMBSTONE: u64 = 1 << 63;

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// Tombstones in the table: while there are none, a spawn looks for none.
static TOMBSTONES: AtomicUsize = AtomicUsize::new(0);
/// The sum of the slots' `untracked` counts.
static UNTRACKED: AtomicIsize = AtomicIsize::new(0);

/// The value in a slot's `record` once the task ended before its spawn
/// hook stored the record there: never the address of a record.
fn terminated() -> *mut TaskShared {
    NonNull::dangling().as_ptr()
}

/// The indexes of the slots task `id` may hold, its own first.
#[inline(always)]
fn window(id: u64) -> impl Iterator<Item = usize> {
    (0..PROBES).map(move |probe| (id as usize).wrapping_add(probe) & (SLOTS - 1))
}

/// The slot whose id is `value`, if one is.
#[inline(always)]
fn find(value: u64) -> Option<&'static Slot> {
    window(value & !TOMBSTONE)
        .map(|index| &TABLE[index])
        .find(|slot| slot.id.load(Ordering::SeqCst) == value)
}

/// Tasks of hooked runtimes alive but not listed: their id found no free
/// slot in the table (shown on the page as left out).
pub(crate) fn untracked() -> usize {
    usize::try_from(UNTRACKED.load(Ordering::Relaxed)).unwrap_or(0)
}

/// The spawn hook. Tokio reports the termination of a task spawned on a
/// runtime that is shutting down before its spawn, on the spawning thread
/// or on another: `on_terminate` then leaves a tombstone, which this hook
/// takes instead of registering. Each side first stores what it did (a
/// claimed slot, a tombstone, an untracked count), then looks for the
/// other's, all sequentially consistent: at least one of the two sees the
/// other, and whoever takes the tombstone back ends the task.
fn on_spawn(meta: &TaskMeta<'_>) {
    runtimes::remember_current();
    let id = id_u64(meta.id());
    let mut claimed = None;
    let mut tombstone = None;
    for index in window(id) {
        match TABLE[index]
            .id
            .compare_exchange(0, id, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => {
                claimed = Some(index);
                break;
            }
            Err(held) if held == id | TOMBSTONE => {
                tombstone = Some(&TABLE[index]);
                break;
            }
            Err(_) => {}
        }
    }
    let home = &TABLE[id as usize & (SLOTS - 1)];
    if claimed.is_none() && tombstone.is_none() {
        home.untracked.fetch_add(1, Ordering::SeqCst);
        UNTRACKED.fetch_add(1, Ordering::Relaxed);
    }
    if tombstone.is_none() && TOMBSTONES.load(Ordering::SeqCst) != 0 {
        tombstone = find(id | TOMBSTONE);
    }
    if let Some(tombstone) = tombstone {
        if take_back(tombstone, id) {
            match claimed {
                Some(index) => TABLE[index].id.store(0, Ordering::Release),
                None => {
                    home.untracked.fetch_sub(1, Ordering::SeqCst);
                    UNTRACKED.fetch_sub(1, Ordering::Relaxed);
                }
            }
            return;
        }
        // `on_terminate` took its tombstone back: it saw this hook's slot
        // or count, and ends the task there.
    }
    let Some(index) = claimed else {
        return;
    };
    let slot = &TABLE[index];
    // Orders the claim before the field stores, for snapshots (see `Slot`).
    fence(Ordering::Release);
    slot.running_on.store(0, Ordering::Release);
    slot.polls.store(0, Ordering::Release);
    slot.last_poll_end_ns
        .store(clock::now_ns(), Ordering::Release);
    let record = Arc::into_raw(spawned::register(
        Source::Hooked,
        None,
        stack::creator_here(meta.spawned_at()),
        Some((id, index as u32 + 1)),
    ));
    if slot
        .record
        .compare_exchange(
            ptr::null_mut(),
            record.cast_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_err()
    {
        // The task ended while this hook registered it (`terminated()`).
        slot.record.store(ptr::null_mut(), Ordering::Relaxed);
        slot.id.store(0, Ordering::Release);
        // SAFETY: `record` comes from `Arc::into_raw` above and was never
        // stored anywhere: this is its one conversion back.
        spawned::retire(unsafe { Arc::from_raw(record) });
    }
}

/// Removes the tombstone of task `id` from `slot`: whether this call did.
fn take_back(slot: &Slot, id: u64) -> bool {
    let taken = slot
        .id
        .compare_exchange(id | TOMBSTONE, 0, Ordering::SeqCst, Ordering::Relaxed)
        .is_ok();
    if taken {
        TOMBSTONES.fetch_sub(1, Ordering::SeqCst);
    }
    taken
}

/// Takes one from the untracked count of `home`, if it has one.
fn take_untracked(home: &Slot) -> bool {
    let taken = home
        .untracked
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n > 0).then_some(n - 1)
        })
        .is_ok();
    if taken {
        UNTRACKED.fetch_sub(1, Ordering::Relaxed);
    }
    taken
}

fn before_poll(meta: &TaskMeta<'_>) {
    // A runtime whose tasks are all spawned from outside it (a
    // `Runtime::spawn` on another thread) is remembered by its workers. A
    // thread-local check per poll, and only with the feature.
    runtimes::remember_current();
    if let Some(slot) = find(id_u64(meta.id())) {
        slot.running_on
            .store(stack::current().id, Ordering::Release);
    }
}

fn after_poll(meta: &TaskMeta<'_>) {
    if let Some(slot) = find(id_u64(meta.id())) {
        // Only the task's own poll hooks write these, one poll at a time.
        let polls = slot.polls.load(Ordering::Relaxed);
        slot.polls.store(polls + 1, Ordering::Release);
        slot.last_poll_end_ns
            .store(clock::now_ns(), Ordering::Release);
        slot.running_on.store(0, Ordering::Release);
    }
}

fn on_terminate(meta: &TaskMeta<'_>) {
    let id = id_u64(meta.id());
    if let Some(slot) = find(id) {
        end(slot);
        return;
    }
    // No slot: the task found none at its spawn (counted untracked), or its
    // spawn hook has not run yet.
    let home = &TABLE[id as usize & (SLOTS - 1)];
    if take_untracked(home) {
        return;
    }
    TOMBSTONES.fetch_add(1, Ordering::SeqCst);
    let Some(tombstone) = window(id).map(|index| &TABLE[index]).find(|slot| {
        slot.id
            .compare_exchange(0, id | TOMBSTONE, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }) else {
        // No room for a tombstone: the spawn hook will most likely find no
        // slot either, and its count cancels this one.
        TOMBSTONES.fetch_sub(1, Ordering::SeqCst);
        home.untracked.fetch_sub(1, Ordering::SeqCst);
        UNTRACKED.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    // The spawn hook may have claimed a slot or counted the task while the
    // tombstone went in; if it did not take the tombstone, end it here.
    if let Some(slot) = find(id) {
        if take_back(tombstone, id) {
            end(slot);
        }
    } else if home.untracked.load(Ordering::SeqCst) > 0 && take_back(tombstone, id) {
        take_untracked(home);
    }
}

/// Ends the task holding `slot`: its record leaves, the slot is free; or,
/// if the spawn hook has not stored the record yet, tells it to.
fn end(slot: &Slot) {
    let record = slot.record.swap(terminated(), Ordering::AcqRel);
    if record.is_null() {
        return;
    }
    slot.record.store(ptr::null_mut(), Ordering::Relaxed);
    slot.running_on.store(0, Ordering::Release);
    slot.id.store(0, Ordering::Release);
    // SAFETY: a non-null `record` in the slot was stored by `on_spawn`
    // from `Arc::into_raw` (`terminated()` is stored only by this function,
    // which runs once per task), and the swap above took it out of the
    // slot, so this is the one place that turns it back into its `Arc`.
    spawned::retire(unsafe { Arc::from_raw(record) });
}

/// The poll hooks' record of `task`; `None` once it terminated.
pub(crate) fn state(task: &TaskShared) -> Option<HookState> {
    let index = (task.spawn.hook_slot as usize).checked_sub(1)?;
    let slot = TABLE.get(index)?;
    let id = task.spawn.tokio_id()?;
    let state = HookState {
        running_on: slot.running_on.load(Ordering::Relaxed),
        polls: slot.polls.load(Ordering::Relaxed),
        last_poll_end_ns: slot.last_poll_end_ns.load(Ordering::Relaxed),
    };
    // Orders the field loads before the id's: see `Slot`.
    fence(Ordering::Acquire);
    (slot.id.load(Ordering::Relaxed) == id).then_some(state)
}

/// Whether a slot of the table is taken for tokio task `id` (for tests).
pub fn holds_slot(id: u64) -> bool {
    (0..PROBES).any(|probe| {
        let slot = &TABLE[(id as usize).wrapping_add(probe) & (SLOTS - 1)];
        slot.id.load(Ordering::Acquire) & !TOMBSTONE == id
    })
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
