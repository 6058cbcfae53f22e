//! The table of per-task slots behind the tokio hooks
//! (`webstack::tokio`), and its lock-free protocol, apart from tokio so that
//! loom checks it (`loom_tests.rs`, on tables of a few slots).
//!
//! A task takes a slot found by its tokio id at spawn and frees it at
//! termination; between the two its poll hooks write its state there, and
//! its record in the registry (made by the caller, given to the table as an
//! [`Arc`]) knows the slot's index, which snapshots read. Tokio may report
//! a task's termination before its spawn, on another thread (a task spawned
//! on a runtime that is shutting down): the termination then leaves a
//! tombstone, and the spawn that finds it registers nothing.
//!
//! The table is generic over the record and its size only, so each hook
//! monomorphises to the code it was before the split: the poll hooks are a
//! probe of the table and a few stores.

use std::ptr::{self, NonNull};

use crate::record::task::spawned::HookState;
use crate::sync::{
    fence, Arc, AtomicI32, AtomicIsize, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};

/// What the poll hooks write for one task, read by snapshots. A cache line
/// each: workers polling neighbouring tasks do not share lines.
///
/// A snapshot reads the fields, then the id again (after an acquire
/// fence): the hooks store every field with release ordering, after the
/// task's claim of the slot, so a field written for a later holder of the
/// slot shows the reader that the id changed.
#[repr(align(64))]
struct Slot<R> {
    /// The tokio id of the task holding the slot, 0 when free; with
    /// [`TOMBSTONE`] set, the id of a task whose termination came before
    /// its spawn.
    id: AtomicU64,
    /// Webstack id of the thread polling the task, 0 when idle.
    running_on: AtomicU64,
    polls: AtomicU64,
    /// The clock at the end of the last poll (at spawn before one).
    last_poll_end_ns: AtomicU64,
    /// The table's reference to the task's record (from `Arc::into_raw`),
    /// taken back at termination; null before the spawn hook stores it,
    /// [`terminated`] when the task ended first.
    record: AtomicPtr<R>,
    /// Live tasks whose own slot (their id's) this is that found no slot in
    /// their probe window: not listed, counted in the table's total.
    /// Negative while a termination that found neither a slot nor room for
    /// its tombstone waits for its spawn.
    untracked: AtomicI32,
    /// Polls that were tokio's wakes after task dumps, not the program's
    /// (high 32 bits), and the count of polls, truncated to 32 bits, that
    /// the last such wake made (low): see [`Table::traced`]. Written only
    /// by `traced` (one dump of a runtime at a time) and by the spawn.
    wakes: AtomicU64,
    /// The end of the last poll before the last such wake: shown while the
    /// count is the wake's.
    end_before_wake_ns: AtomicU64,
}

impl<R> Slot<R> {
    #[cfg(not(webstack_loom))]
    const fn new() -> Slot<R> {
        Slot {
            id: AtomicU64::new(0),
            running_on: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            last_poll_end_ns: AtomicU64::new(0),
            record: AtomicPtr::new(ptr::null_mut()),
            untracked: AtomicI32::new(0),
            wakes: AtomicU64::new(0),
            end_before_wake_ns: AtomicU64::new(0),
        }
    }

    #[cfg(webstack_loom)]
    fn new() -> Slot<R> {
        Slot {
            id: AtomicU64::new(0),
            running_on: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            last_poll_end_ns: AtomicU64::new(0),
            record: AtomicPtr::new(ptr::null_mut()),
            untracked: AtomicI32::new(0),
            wakes: AtomicU64::new(0),
            end_before_wake_ns: AtomicU64::new(0),
        }
    }
}

/// Set in a slot's id for a task whose termination tokio reported before
/// its spawn (a spawn on a runtime that is shutting down): the spawn hook
/// that finds it registers nothing. Tokio ids count up from 1 and never
/// reach it.
const TOMBSTONE: u64 = 1 << 63;

/// The value in a slot's `record` once the task ended before its spawn
/// hook stored the record there: never the address of a record.
fn terminated<R>() -> *mut R {
    NonNull::dangling().as_ptr()
}

/// `SLOTS` slots (a power of two) holding tasks' records of type `R`; a
/// task may take its id's slot or one of the `PROBES - 1` after it.
pub(crate) struct Table<R, const SLOTS: usize, const PROBES: usize> {
    slots: [Slot<R>; SLOTS],
    /// Tombstones in the table: while there are none, a spawn looks for none.
    tombstones: AtomicUsize,
    /// The sum of the slots' `untracked` counts.
    untracked: AtomicIsize,
}

impl<R, const SLOTS: usize, const PROBES: usize> Table<R, SLOTS, PROBES> {
    const MASK: usize = {
        assert!(SLOTS.is_power_of_two() && PROBES <= SLOTS);
        SLOTS - 1
    };

    /// An empty table; untouched pages of a static one cost no memory.
    #[cfg(not(webstack_loom))]
    pub(crate) const fn new() -> Self {
        Table {
            slots: [const { Slot::new() }; SLOTS],
            tombstones: AtomicUsize::new(0),
            untracked: AtomicIsize::new(0),
        }
    }

    #[cfg(webstack_loom)]
    pub(crate) fn new() -> Self {
        Table {
            slots: std::array::from_fn(|_| Slot::new()),
            tombstones: AtomicUsize::new(0),
            untracked: AtomicIsize::new(0),
        }
    }

    /// The indexes of the slots task `id` may hold, its own first.
    #[inline(always)]
    fn window(id: u64) -> impl Iterator<Item = usize> {
        (0..PROBES).map(move |probe| (id as usize).wrapping_add(probe) & Self::MASK)
    }

    /// The slot whose id is `value`, if one is.
    #[inline(always)]
    fn find(&self, value: u64) -> Option<&Slot<R>> {
        Self::window(value & !TOMBSTONE)
            .map(|index| &self.slots[index])
            .find(|slot| slot.id.load(Ordering::SeqCst) == value)
    }

    /// Task `id`'s own slot, where it is counted when it finds none.
    fn home(&self, id: u64) -> &Slot<R> {
        &self.slots[id as usize & Self::MASK]
    }

    /// Live tasks not listed: their id found no free slot in the table.
    pub(crate) fn untracked(&self) -> usize {
        usize::try_from(self.untracked.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// The spawn hook's part: task `id` takes a slot, stamped with
    /// `now_ns()`, and its record, made by `register` given the slot's
    /// index, goes into it; `retire` takes the record back if the task's
    /// termination came while it was made.
    ///
    /// Tokio reports the termination of a task spawned on a runtime that is
    /// shutting down before its spawn, on the spawning thread or on
    /// another: [`Table::terminate`] then leaves a tombstone, which this
    /// takes instead of registering. Each side first stores what it did (a
    /// claimed slot, a tombstone, an untracked count), then looks for the
    /// other's, all sequentially consistent: at least one of the two sees
    /// the other, and whoever takes the tombstone back ends the task.
    pub(crate) fn spawn(
        &self,
        id: u64,
        now_ns: impl FnOnce() -> u64,
        register: impl FnOnce(usize) -> Arc<R>,
        retire: impl FnOnce(Arc<R>),
    ) {
        let mut claimed = None;
        let mut tombstone = None;
        for index in Self::window(id) {
            match self.slots[index]
                .id
                .compare_exchange(0, id, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    claimed = Some(index);
                    break;
                }
                Err(held) if held == id | TOMBSTONE => {
                    tombstone = Some(&self.slots[index]);
                    break;
                }
                Err(_) => {}
            }
        }
        let home = self.home(id);
        let counted = claimed.is_none() && tombstone.is_none();
        if counted {
            home.untracked.fetch_add(1, Ordering::SeqCst);
            self.untracked.fetch_add(1, Ordering::Relaxed);
        }
        if tombstone.is_none() && self.tombstones.load(Ordering::SeqCst) != 0 {
            tombstone = self.find(id | TOMBSTONE);
        }
        if let Some(tombstone) = tombstone {
            if self.take_back(tombstone, id) {
                if let Some(index) = claimed {
                    self.slots[index].id.store(0, Ordering::Release);
                } else if counted {
                    // (A tombstone met in the window left nothing counted.)
                    home.untracked.fetch_sub(1, Ordering::SeqCst);
                    self.untracked.fetch_sub(1, Ordering::Relaxed);
                }
                return;
            }
            // `terminate` took its tombstone back: it saw this call's slot
            // or count, and ends the task there.
        }
        let Some(index) = claimed else {
            return;
        };
        let slot = &self.slots[index];
        // Orders the claim before the field stores, for snapshots (see `Slot`).
        fence(Ordering::Release);
        slot.running_on.store(0, Ordering::Release);
        slot.polls.store(0, Ordering::Release);
        slot.wakes.store(0, Ordering::Release);
        slot.last_poll_end_ns.store(now_ns(), Ordering::Release);
        let record = Arc::into_raw(register(index));
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
            // The task ended while `register` ran (`terminated()`).
            slot.record.store(ptr::null_mut(), Ordering::Relaxed);
            slot.id.store(0, Ordering::Release);
            // SAFETY: `record` comes from `Arc::into_raw` above and was never
            // stored anywhere: this is its one conversion back.
            retire(unsafe { Arc::from_raw(record) });
        }
    }

    /// Removes the tombstone of task `id` from `slot`: whether this call did.
    fn take_back(&self, slot: &Slot<R>, id: u64) -> bool {
        let taken = slot
            .id
            .compare_exchange(id | TOMBSTONE, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        if taken {
            self.tombstones.fetch_sub(1, Ordering::SeqCst);
        }
        taken
    }

    /// Takes one from the untracked count of `home`, if it has one.
    fn take_untracked(&self, home: &Slot<R>) -> bool {
        let taken = home
            .untracked
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 0).then_some(n - 1)
            })
            .is_ok();
        if taken {
            self.untracked.fetch_sub(1, Ordering::Relaxed);
        }
        taken
    }

    /// The before-poll hook's part: task `id` runs on thread `thread()`.
    #[inline(always)]
    pub(crate) fn before_poll(&self, id: u64, thread: impl FnOnce() -> u64) {
        if let Some(slot) = self.find(id) {
            slot.running_on.store(thread(), Ordering::Release);
        }
    }

    /// The after-poll hook's part: task `id` polled once more, ending at
    /// `now_ns()`.
    #[inline(always)]
    pub(crate) fn after_poll(&self, id: u64, now_ns: impl FnOnce() -> u64) {
        if let Some(slot) = self.find(id) {
            // Only the task's own poll hooks write these, one poll at a time.
            let polls = slot.polls.load(Ordering::Relaxed);
            slot.polls.store(polls + 1, Ordering::Release);
            slot.last_poll_end_ns.store(now_ns(), Ordering::Release);
            slot.running_on.store(0, Ordering::Release);
        }
    }

    /// After a task dump traced task `id`, whose trace reached a leaf
    /// future: tokio wakes such a task once the dump ends, for one real
    /// poll that is not the program's. `polls`, ending at `end_ns`, is what
    /// a snapshot read of the task before the dump. From now on the task's
    /// count is shown without that poll, and while it is the last poll, the
    /// idle time runs from `end_ns` (see [`state`](Table::state)). The poll
    /// hooks are left as they are: they alone write the count and the end.
    pub(crate) fn traced(&self, id: u64, polls: u64, end_ns: u64) {
        let Some(slot) = self.find(id) else {
            return;
        };
        // `polls` is a count as shown, without the wakes before: the
        // poll hooks' own count was that much higher.
        let forgiven = slot.wakes.load(Ordering::Relaxed) >> 32;
        let wake_at = polls.wrapping_add(forgiven).wrapping_add(1);
        slot.end_before_wake_ns.store(end_ns, Ordering::Release);
        slot.wakes.store(
            ((forgiven + 1) << 32) | (wake_at & u64::from(u32::MAX)),
            Ordering::Release,
        );
    }

    /// The terminate hook's part: task `id` leaves, its record handed to
    /// `retire` (at once, or by [`Table::spawn`] if that is still making
    /// it); or, before its spawn, it leaves a tombstone (see `spawn`).
    pub(crate) fn terminate(&self, id: u64, retire: impl FnOnce(Arc<R>)) {
        if let Some(slot) = self.find(id) {
            Self::end(slot, retire);
            return;
        }
        // No slot: the task found none at its spawn (counted untracked), or
        // its spawn hook has not run yet.
        let home = self.home(id);
        if self.take_untracked(home) {
            return;
        }
        self.tombstones.fetch_add(1, Ordering::SeqCst);
        let Some(tombstone) = Self::window(id)
            .map(|index| &self.slots[index])
            .find(|slot| {
                slot.id
                    .compare_exchange(0, id | TOMBSTONE, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
            })
        else {
            // No room for a tombstone: the spawn hook will most likely find
            // no slot either, and its count cancels this one.
            self.tombstones.fetch_sub(1, Ordering::SeqCst);
            home.untracked.fetch_sub(1, Ordering::SeqCst);
            self.untracked.fetch_sub(1, Ordering::Relaxed);
            return;
        };
        // The spawn hook may have claimed a slot or counted the task while
        // the tombstone went in; if it did not take the tombstone, end it
        // here.
        if let Some(slot) = self.find(id) {
            if self.take_back(tombstone, id) {
                Self::end(slot, retire);
            }
        } else if home.untracked.load(Ordering::SeqCst) > 0 && self.take_back(tombstone, id) {
            self.take_untracked(home);
        }
    }

    /// Ends the task holding `slot`: its record goes to `retire`, the slot
    /// is free; or, if the spawn hook has not stored the record yet, tells
    /// it to.
    fn end(slot: &Slot<R>, retire: impl FnOnce(Arc<R>)) {
        let record = slot.record.swap(terminated(), Ordering::AcqRel);
        if record.is_null() {
            return;
        }
        slot.record.store(ptr::null_mut(), Ordering::Relaxed);
        slot.running_on.store(0, Ordering::Release);
        slot.id.store(0, Ordering::Release);
        // SAFETY: a non-null `record` in the slot was stored by `spawn`
        // from `Arc::into_raw` (`terminated()` is stored only by this
        // function, which runs once per task), and the swap above took it
        // out of the slot, so this is the one place that turns it back
        // into its `Arc`.
        retire(unsafe { Arc::from_raw(record) });
    }

    /// What the poll hooks recorded of task `id`, which was given slot
    /// `index`; `None` once it terminated (the slot is free or another
    /// task's).
    pub(crate) fn state(&self, index: usize, id: u64) -> Option<HookState> {
        let slot = self.slots.get(index)?;
        let polls = slot.polls.load(Ordering::Relaxed);
        let wakes = slot.wakes.load(Ordering::Relaxed);
        let (forgiven, wake_at) = (wakes >> 32, wakes as u32);
        // Which of the polls is the last wake's: before it runs, it is not
        // in the count yet; while it is the last, the idle time runs from
        // the poll before it.
        let before = (polls as u32).wrapping_sub(wake_at) as i32;
        let last_poll_end_ns = if forgiven != 0 && before == 0 {
            slot.end_before_wake_ns.load(Ordering::Relaxed)
        } else {
            slot.last_poll_end_ns.load(Ordering::Relaxed)
        };
        let state = HookState {
            running_on: slot.running_on.load(Ordering::Relaxed),
            polls: polls.saturating_sub(forgiven) + u64::from(forgiven != 0 && before < 0),
            last_poll_end_ns,
        };
        // Orders the field loads before the id's: see `Slot`.
        fence(Ordering::Acquire);
        (slot.id.load(Ordering::Relaxed) == id).then_some(state)
    }

    /// Whether a slot is taken for task `id`, by the task or its tombstone.
    pub(crate) fn holds(&self, id: u64) -> bool {
        Self::window(id)
            .any(|index| self.slots[index].id.load(Ordering::Acquire) & !TOMBSTONE == id)
    }
}

/// What a loom model checks once every hook has returned.
#[cfg(all(test, webstack_loom))]
impl<R, const SLOTS: usize, const PROBES: usize> Table<R, SLOTS, PROBES> {
    /// The id in each slot (0: free; [`TOMBSTONE`] set: a tombstone).
    pub(crate) fn ids(&self) -> [u64; SLOTS] {
        std::array::from_fn(|index| self.slots[index].id.load(Ordering::SeqCst))
    }

    /// Each slot's untracked count.
    pub(crate) fn untracked_counts(&self) -> [i32; SLOTS] {
        std::array::from_fn(|index| self.slots[index].untracked.load(Ordering::SeqCst))
    }

    /// The tombstone count and the untracked total, as stored (not clamped).
    pub(crate) fn totals(&self) -> (usize, isize) {
        (
            self.tombstones.load(Ordering::SeqCst),
            self.untracked.load(Ordering::SeqCst),
        )
    }
}
