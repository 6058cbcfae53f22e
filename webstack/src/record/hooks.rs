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
//! lock, no allocation, no pointer followed. At termination the task leaves.
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
//! listed; a task whose termination tokio never reports (a runtime leaked
//! without shutdown) stays listed, idle. Tokio keeps one callback of each
//! kind per runtime: [`hooks`] replaces callbacks set before it, and
//! callbacks set after it replace webstack's.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
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
#[repr(align(64))]
struct Slot {
    /// The tokio id of the task holding the slot, 0 when free.
    id: AtomicU64,
    /// Webstack id of the thread polling the task, 0 when idle.
    running_on: AtomicU64,
    polls: AtomicU64,
    /// [`clock::now_ns`] at the end of the last poll (at spawn before one).
    last_poll_end_ns: AtomicU64,
    /// The registry's reference to the task's record (from `Arc::into_raw`),
    /// taken back at termination; null before the spawn hook stores it.
    record: AtomicPtr<TaskShared>,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            id: AtomicU64::new(0),
            running_on: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            last_poll_end_ns: AtomicU64::new(0),
            record: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

/// Slots in the table (a power of two); untouched pages cost no memory.
const SLOTS: usize = 1 << 16;
/// Slots tried after a task id's own: tokio ids are sequential, so a task
/// mostly finds its own slot free.
const PROBES: usize = 8;

static TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];

/// The slot of task `id`, if it holds one.
#[inline(always)]
fn find(id: u64) -> Option<&'static Slot> {
    (0..PROBES)
        .map(|probe| &TABLE[(id as usize).wrapping_add(probe) & (SLOTS - 1)])
        .find(|slot| slot.id.load(Ordering::Acquire) == id)
}

/// Claims a free slot for task `id`: its index.
fn claim(id: u64) -> Option<usize> {
    (0..PROBES)
        .map(|probe| (id as usize).wrapping_add(probe) & (SLOTS - 1))
        .find(|&index| {
            TABLE[index]
                .id
                .compare_exchange(0, id, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
}

fn on_spawn(meta: &TaskMeta<'_>) {
    let id = id_u64(meta.id());
    let Some(index) = claim(id) else {
        return;
    };
    let slot = &TABLE[index];
    slot.running_on.store(0, Ordering::Relaxed);
    slot.polls.store(0, Ordering::Relaxed);
    slot.last_poll_end_ns
        .store(clock::now_ns(), Ordering::Relaxed);
    let record = spawned::register(
        Source::Hooked,
        None,
        stack::creator_here(meta.spawned_at()),
        Some((id, index as u32 + 1)),
    );
    slot.record
        .store(Arc::into_raw(record).cast_mut(), Ordering::Release);
}

fn before_poll(meta: &TaskMeta<'_>) {
    if let Some(slot) = find(id_u64(meta.id())) {
        slot.running_on
            .store(stack::current().id, Ordering::Relaxed);
    }
}

fn after_poll(meta: &TaskMeta<'_>) {
    if let Some(slot) = find(id_u64(meta.id())) {
        // Only the task's own poll hooks write these, one poll at a time.
        let polls = slot.polls.load(Ordering::Relaxed);
        slot.polls.store(polls + 1, Ordering::Relaxed);
        slot.last_poll_end_ns
            .store(clock::now_ns(), Ordering::Relaxed);
        slot.running_on.store(0, Ordering::Relaxed);
    }
}

fn on_terminate(meta: &TaskMeta<'_>) {
    let Some(slot) = find(id_u64(meta.id())) else {
        return;
    };
    let record = slot.record.swap(std::ptr::null_mut(), Ordering::AcqRel);
    slot.running_on.store(0, Ordering::Relaxed);
    slot.id.store(0, Ordering::Release);
    if !record.is_null() {
        // SAFETY: a non-null `record` was stored by `on_spawn` from
        // `Arc::into_raw`, and the swap above took it out of the slot, so
        // this is the one place that turns it back into the `Arc` it was.
        spawned::retire(unsafe { Arc::from_raw(record) });
    }
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
    (slot.id.load(Ordering::Acquire) == id).then_some(state)
}
