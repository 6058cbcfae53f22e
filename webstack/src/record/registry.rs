//! The global registry of live threads and tasks.
//!
//! Sharded so that threads registering tasks at the same time rarely meet on
//! one lock: each thread is given a home shard when it registers. A snapshot
//! visits one shard at a time and holds its lock only while it clones the
//! entries' `Arc`s, never while it reads a stack.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(webstack_loom)]
use crate::lock::std_backed::{Mutex, MutexGuard};
#[cfg(not(webstack_loom))]
use crate::lock::{Mutex, MutexGuard};

use crate::fork::{ForkHandlers, Held, Rank};
use crate::record::stack::ThreadStack;
use crate::record::task::TaskShared;

pub(crate) const SHARDS: usize = 64;

/// Something a snapshot can read.
#[derive(Clone)]
pub(crate) enum Entry {
    Thread(Arc<ThreadStack>),
    Task(Arc<TaskShared>),
}

/// What a shard holds. A thread's entry owns a reference to its stack; a
/// task's entry borrows the reference its root future holds, which saves a
/// pair of reference-count updates on every task's registration.
enum Stored {
    Thread(Arc<ThreadStack>),
    Task(TaskPtr),
}

/// A task record kept alive by its root future for as long as it is stored
/// (see [`insert_task`]): a bitwise copy of the future's `Arc`, which owns
/// no count of its own and so is never dropped. Cloning it is cloning the
/// future's `Arc`, which std's contract for `Arc::clone` covers; no raw
/// pointer is turned back into an `Arc`.
struct TaskPtr(ManuallyDrop<Arc<TaskShared>>);

impl TaskPtr {
    /// # Safety
    ///
    /// `task` must stay alive (its count above zero) for as long as the
    /// copy is used: the contract of [`insert_task`].
    unsafe fn copy_of(task: &Arc<TaskShared>) -> Self {
        // SAFETY: reading an `Arc` out of a reference makes a second value
        // that points at the same allocation without adding a count; it
        // is wrapped in `ManuallyDrop` at once and never dropped, so the
        // counts stay exactly those of the caller's `Arc`s, and the caller
        // keeps one alive while the copy is used.
        TaskPtr(ManuallyDrop::new(unsafe { std::ptr::read(task) }))
    }

    fn record(&self) -> &TaskShared {
        &self.0
    }
}

impl Stored {
    /// A counted reference for a snapshot. Called under the shard lock.
    fn to_entry(&self) -> Entry {
        match self {
            Stored::Thread(thread) => Entry::Thread(thread.clone()),
            // The count is at least one here: a task stays stored only
            // while its root future holds an `Arc` of it (the contract of
            // `insert_task`), and the future removes the entry under this
            // shard's lock before it lets go of that `Arc`.
            Stored::Task(task) => Entry::Task(Arc::clone(&task.0)),
        }
    }
}

struct Shard {
    entries: Vec<Option<Stored>>,
    free: Vec<u32>,
}

/// A shard and its lock, one whose waiters sleep in the kernel, for `fork`
/// (see [`crate::lock`]).
#[repr(align(128))]
struct Padded(Mutex<Shard>);

impl Padded {
    #[inline]
    fn lock(&self) -> MutexGuard<'_, Shard> {
        self.0.lock()
    }
}

static REGISTRY: [Padded; SHARDS] = [const {
    Padded(Mutex::new(Shard {
        entries: Vec::new(),
        free: Vec::new(),
    }))
}; SHARDS];

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where an entry lives, for removal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    shard: u32,
    index: u32,
}

/// A [`Key`] set once after insertion (0 = not yet): one atomic word
/// instead of a `OnceLock`, for threads and tasks alike.
#[derive(Debug, Default)]
pub(crate) struct KeyCell(AtomicU64);

impl KeyCell {
    pub(crate) fn set(&self, key: Key) {
        let word = (u64::from(key.shard) << 32) | u64::from(key.index);
        self.0.store(word + 1, Ordering::Release);
    }

    pub(crate) fn get(&self) -> Option<Key> {
        Self::decode(self.0.load(Ordering::Acquire))
    }

    /// The key, leaving the cell unset. Only the entry's owner sets or takes
    /// its key, so no read-modify-write is needed.
    pub(crate) fn take(&self) -> Option<Key> {
        let key = self.get();
        self.0.store(0, Ordering::Release);
        key
    }

    fn decode(word: u64) -> Option<Key> {
        match word {
            0 => None,
            word => {
                let word = word - 1;
                Some(Key {
                    shard: (word >> 32) as u32,
                    index: word as u32,
                })
            }
        }
    }
}

/// Picks a home shard for a newly registering thread.
pub(crate) fn home_shard() -> usize {
    NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS
}

/// A new id for a thread or a block of task ids.
pub(crate) fn next_ids(count: u64) -> u64 {
    NEXT_ID.fetch_add(count, Ordering::Relaxed)
}

/// Registers a thread's stack.
pub(crate) fn insert_thread(shard: usize, thread: Arc<ThreadStack>) -> Key {
    insert(shard, Stored::Thread(thread))
}

/// Registers a task record without taking a reference of its own.
///
/// # Safety
///
/// The caller must keep an `Arc` of `task` alive until it has called
/// [`remove`] with the returned key.
pub(crate) unsafe fn insert_task(shard: usize, task: &Arc<TaskShared>) -> Key {
    // SAFETY: the caller keeps an `Arc` of `task` alive until the entry is
    // removed, and the copy lives only in the entry.
    insert(shard, Stored::Task(unsafe { TaskPtr::copy_of(task) }))
}

fn insert(shard: usize, entry: Stored) -> Key {
    // Before this shard lock. The registry's other lock-takers come after
    // an insert or under the capture gate, so this is the first that can
    // hold a shard lock at a fork without the gate: `remove` has a key from
    // an insert, and `for_each_shard` and `counts` run in a capture, inside
    // `fork::capturing`, whose gate a fork's *prepare* takes before it looks
    // for registered stages (so no capture holds a shard lock at a fork,
    // registered or not). Callers hold no lock that a *prepare* takes (a
    // new task's own lock at most). Once per thread or task registration:
    // one atomic load after the first; never on the per-call path.
    crate::fork::register(Rank::Registry, &FORK);
    let shard_index = shard % SHARDS;
    let mut guard = REGISTRY[shard_index].lock();
    let index = match guard.free.pop() {
        Some(index) => {
            guard.entries[index as usize] = Some(entry);
            index
        }
        None => {
            guard.entries.push(Some(entry));
            (guard.entries.len() - 1) as u32
        }
    };
    Key {
        shard: shard_index as u32,
        index,
    }
}

/// Removes an entry. A thread's `Arc` is dropped after the shard lock is
/// released.
pub(crate) fn remove(key: Key) {
    let removed = {
        let mut guard = REGISTRY[key.shard as usize].lock();
        let removed = guard
            .entries
            .get_mut(key.index as usize)
            .and_then(Option::take);
        if removed.is_some() {
            guard.free.push(key.index);
        }
        removed
    };
    drop(removed);
}

/// Entries cloned per visit of a shard: bounds the extra memory of a
/// snapshot (all tasks of one thread share its home shard) and how long the
/// shard's lock is held.
const CHUNK: usize = 1024;

impl Stored {
    /// Asks the CPU to start loading the cache line of the record's
    /// reference counts, which [`Stored::to_entry`] updates: with 100,000
    /// tasks the records are cold, and the chunk's clones would otherwise
    /// miss the cache one after another.
    #[inline]
    fn prefetch(&self) {
        if let Stored::Task(task) = self {
            // `ArcInner` puts the counts 64 bytes before a record aligned
            // to 64; were it laid out otherwise, the hint would only be
            // wasted: a prefetch reads nothing and cannot fault.
            crate::prefetch::line(Arc::as_ptr(&task.0).cast::<u8>().wrapping_sub(64));
        }
    }
}

/// How many entries ahead of the one cloned [`for_each_shard`] prefetches.
const PREFETCH_AHEAD: usize = 8;

/// Calls `f` with the registered entries, a chunk of one shard at a time.
/// `buf` is reused, so a snapshot holds at most [`CHUNK`] extra `Arc`s.
/// Entries are visited by position: one inserted or removed meanwhile may be
/// seen or not, every entry present throughout is seen exactly once.
pub(crate) fn for_each_shard(buf: &mut Vec<Entry>, mut f: impl FnMut(&mut Vec<Entry>)) {
    for shard in &REGISTRY {
        let mut start = 0;
        loop {
            buf.clear();
            let more = {
                let guard = shard.lock();
                let end = guard.entries.len().min(start + CHUNK);
                if start < end {
                    let chunk = &guard.entries[start..end];
                    for stored in chunk.iter().take(PREFETCH_AHEAD).flatten() {
                        stored.prefetch();
                    }
                    for (i, stored) in chunk.iter().enumerate() {
                        if let Some(Some(ahead)) = chunk.get(i + PREFETCH_AHEAD) {
                            ahead.prefetch();
                        }
                        if let Some(stored) = stored {
                            buf.push(stored.to_entry());
                        }
                    }
                }
                start = end;
                end < guard.entries.len()
            };
            if !buf.is_empty() {
                f(buf);
            }
            buf.clear();
            if !more {
                break;
            }
        }
    }
}

/// Number of live entries of each kind: `(threads, tasks)`.
pub(crate) fn counts() -> (usize, usize) {
    let mut threads = 0;
    let mut tasks = 0;
    for shard in &REGISTRY {
        for entry in shard.lock().entries.iter().flatten() {
            match entry {
                Stored::Thread(_) => threads += 1,
                Stored::Task(_) => tasks += 1,
            }
        }
    }
    (threads, tasks)
}

/// The registry's fork handlers, registered by the first [`insert`]: the
/// registry comes first after the gate ([`Rank::Registry`]). Before the
/// gate, the stack for exiting threads is built, which a thread may be
/// building (a `LazyLock`) only once it has inserted its own stack.
static FORK: ForkHandlers = ForkHandlers {
    before_gate: Some(crate::record::stack::force_detached),
    prepare: prepare_fork,
    after: after_fork,
};

/// Every shard's lock, held across a fork.
static HELD: Held<[MutexGuard<'static, Shard>; SHARDS]> = Held::new();

/// Takes every shard's lock, in order, before a fork.
///
/// # Safety
/// Only as [`FORK`]'s *prepare* (see [`ForkHandlers`]).
unsafe fn prepare_fork() {
    let guards = std::array::from_fn(|shard| REGISTRY[shard].lock());
    // SAFETY: in *prepare*, with the locks just taken.
    unsafe { HELD.put(guards) };
}

/// Releases the shard locks after a fork; in the child, first removes what
/// does not exist there (see [`crate::fork`]).
///
/// # Safety
/// Only as [`FORK`]'s *after* (see [`ForkHandlers`]).
unsafe fn after_fork(child: bool) {
    // SAFETY: guaranteed by the caller.
    let Some(mut guards) = (unsafe { HELD.take() }) else {
        return;
    };
    if child {
        keep_only_child(&mut guards);
    }
    drop(guards);
}

/// Leaves in the registry the forking thread, the idle tasks and the tasks
/// it is polling. Runs in the child, where no other thread exists.
fn keep_only_child(shards: &mut [MutexGuard<'static, Shard>]) {
    let me = crate::record::stack::current_ptr();
    // SAFETY: a non-null `CURRENT` points at this thread's live stack (see
    // `stack::current`).
    let my_id = (!me.is_null()).then(|| unsafe { &*me }.id);
    for shard in shards.iter_mut() {
        let shard = &mut **shard;
        for (index, entry) in shard.entries.iter_mut().enumerate() {
            let keep = match entry {
                None => continue,
                Some(Stored::Thread(thread)) => std::ptr::eq(Arc::as_ptr(thread), me),
                Some(Stored::Task(task)) => {
                    // A stored task's root future holds an `Arc` of it (the
                    // contract of `insert_task`), and only this thread could
                    // drop that future now, and it is here.
                    let task = task.record();
                    let keep = match task.running_on.load(Ordering::Relaxed) {
                        // Idle. A poll sets `running_on` before it takes
                        // the lock and a capture cannot run across a fork,
                        // so the lock should be free; if it is not, its
                        // holder does not exist here.
                        0 => !task.state.is_locked(),
                        id => Some(id) == my_id,
                    };
                    if !keep {
                        task.forget_registration();
                    }
                    keep
                }
            };
            if !keep {
                // Dropping the registry's reference to another thread's
                // stack frees nothing: that thread's owner, which no
                // destructor will release in the child, keeps it alive.
                drop(entry.take());
                shard.free.push(index as u32);
            }
        }
    }
    if my_id.is_some() {
        // SAFETY: as above.
        unsafe { &*me }.refresh_tid();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::meta::FrameMeta;

    /// The visit prefetches entries ahead of the one it clones, past chunk
    /// ends and over holes left by removals: every live entry is still
    /// visited exactly once, and no removed one is.
    #[test]
    fn every_entry_is_visited_once_across_chunks_and_holes() {
        static META: FrameMeta = FrameMeta {
            name: "visited",
            function: "registry::tests::visited",
            task_name: "visited",
            file: file!(),
            line: line!(),
            args: &[],
        };
        let shard = SHARDS - 1;
        let records: Vec<_> = (0..2 * CHUNK + PREFETCH_AHEAD + 3)
            .map(|_| TaskShared::new_record(&META, None))
            .collect();
        // SAFETY: `records` holds every record until its key is removed below.
        let keys: Vec<Key> = records
            .iter()
            .map(|r| unsafe { insert_task(shard, r) })
            .collect();
        // Holes at a chunk's start, end and within the look-ahead window.
        let removed = [0, 5, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 2];
        for &i in &removed {
            remove(keys[i]);
        }
        let mine = |id: u64| records.iter().position(|r| r.id == id);
        let mut seen = vec![0u32; records.len()];
        let mut buf = Vec::new();
        for_each_shard(&mut buf, |entries| {
            for entry in entries.iter() {
                if let Entry::Task(task) = entry {
                    if let Some(i) = mine(task.id) {
                        seen[i] += 1;
                    }
                }
            }
        });
        for (i, &count) in seen.iter().enumerate() {
            let expected = u32::from(!removed.contains(&i));
            assert_eq!(count, expected, "record {i}");
        }
        for (i, key) in keys.into_iter().enumerate() {
            if !removed.contains(&i) {
                remove(key);
            }
        }
    }
}
