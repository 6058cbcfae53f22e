//! Per-thread shadow stacks and the thread-local that points at the current
//! one.
//!
//! A thread registers itself on its first instrumented call (or at spawn, for
//! threads started by [`crate::record::thread`]); a thread-local destructor removes it
//! from the registry when the thread exits. The hot path is one thread-local
//! load, a null check, the slot's sequence-locked stores and a depth store.

use std::cell::Cell;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Instant;

use crate::record::frame_args::FrameArgs;
use crate::record::meta::FrameMeta;
use crate::record::registry::{self, Key};
use crate::record::slot::{self, FrameWords, Slots};
use crate::sync::{AtomicUsize, Ordering};

/// Frames kept per thread; deeper calls are counted as elided.
#[cfg(not(webstack_loom))]
pub const MAX_DEPTH: usize = 256;
/// Frames kept per thread (small under loom to keep the model tractable).
#[cfg(webstack_loom)]
pub const MAX_DEPTH: usize = 3;

/// Where a thread or task was created, as recorded: the instrumented
/// function that was running, and the source location of the spawn. A
/// snapshot shows it as a [`CreatedBy`](crate::CreatedBy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Site {
    pub(crate) function: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
}

/// Aligned to two cache lines: `depth` is written by every instrumented
/// call, and the stacks of threads registered one after the other would
/// otherwise share a line.
#[repr(align(128))]
pub(crate) struct ThreadStack {
    pub(crate) id: u64,
    /// Kernel thread id (Linux `gettid`), 0 where unknown. Changes only in
    /// the child of a fork.
    tid: AtomicI64,
    pub(crate) name: Box<str>,
    pub(crate) created_by: Option<Site>,
    pub(crate) registered: Instant,
    pub(crate) depth: AtomicUsize,
    slots: Slots,
    key: registry::KeyCell,
}

impl ThreadStack {
    pub(crate) fn new(id: u64, name: Box<str>, created_by: Option<Site>) -> Self {
        Self::with_capacity(id, name, created_by, MAX_DEPTH)
    }

    fn with_capacity(id: u64, name: Box<str>, created_by: Option<Site>, slots: usize) -> Self {
        ThreadStack {
            id,
            tid: AtomicI64::new(os_tid()),
            name,
            created_by,
            registered: Instant::now(),
            depth: AtomicUsize::new(0),
            slots: slot::slots(slots),
            key: registry::KeyCell::default(),
        }
    }

    /// Pushes a frame; returns the depth to restore on pop.
    #[inline(always)]
    pub(crate) fn push<A: FrameArgs + ?Sized>(
        &self,
        meta: &'static FrameMeta,
        owner: usize,
        task: u64,
        args: &A,
    ) -> usize {
        let depth = self.depth.load(Ordering::Relaxed);
        if let Some(slot) = self.slots.get(depth) {
            slot.write(meta.addr(), owner, task, args);
        }
        self.depth.store(depth.wrapping_add(1), Ordering::Release);
        depth
    }

    #[inline(always)]
    pub(crate) fn pop(&self, depth: usize) {
        self.depth.store(depth, Ordering::Release);
    }

    /// The owner thread's own view of one of its slots.
    pub(crate) fn own_slot(&self, index: usize) -> Option<FrameWords> {
        self.slots.get(index)?.read().map(|(words, _)| words)
    }

    /// The metadata of the innermost recorded frame, read by the owner thread.
    #[inline]
    pub(crate) fn top_meta(&self) -> Option<&'static FrameMeta> {
        let depth = self.depth.load(Ordering::Relaxed);
        let top = depth.checked_sub(1)?;
        // Only the meta word: a full `own_slot` copy of the frame (416 bytes)
        // made every async call several times slower.
        let meta = self
            .slots
            .get(top.min(self.slots.len().saturating_sub(1)))?
            .own_meta();
        if meta == 0 {
            return None;
        }
        // SAFETY: slot meta words are only written from `&'static FrameMeta`.
        Some(unsafe { FrameMeta::from_addr(meta) })
    }

    /// Reads the stack from another thread: frames outermost first, the total
    /// depth (which may exceed [`MAX_DEPTH`]), and whether the copy is known to
    /// be consistent as a whole. Each returned frame is individually untorn.
    pub(crate) fn read(&self, out: &mut Vec<FrameWords>) -> (usize, bool) {
        let mut seqs: Vec<u64> = Vec::new();
        let mut depth = 0;
        for _attempt in 0..4 {
            out.clear();
            seqs.clear();
            depth = self.depth.load(Ordering::Acquire);
            let n = depth.min(self.slots.len());
            for slot in &self.slots[..n] {
                match slot.read() {
                    Some((words, seq)) => {
                        out.push(words);
                        seqs.push(seq);
                    }
                    None => break,
                }
            }
            if out.len() < n {
                continue;
            }
            let after = self.depth.load(Ordering::Acquire);
            let unchanged = self.slots[..n]
                .iter()
                .zip(&seqs)
                .all(|(slot, seq)| slot.seq() == *seq);
            if unchanged && after >= n {
                return (depth, true);
            }
        }
        (depth, false)
    }

    pub(crate) fn key(&self) -> Option<Key> {
        self.key.get()
    }

    /// Kernel thread id, 0 where unknown.
    pub(crate) fn tid(&self) -> i64 {
        self.tid.load(Ordering::Relaxed)
    }

    /// Records the calling thread's kernel id again: in the child of a fork,
    /// the forking thread keeps its stack under a new id.
    pub(crate) fn refresh_tid(&self) {
        self.tid.store(os_tid(), Ordering::Relaxed);
    }
}

thread_local! {
    static CURRENT: Cell<*const ThreadStack> = const { Cell::new(std::ptr::null()) };
    static OWNER: Cell<Option<ThreadOwner>> = const { Cell::new(None) };
}

/// A stack that belongs to no thread, used by code that runs after this
/// thread's registration was torn down (other thread-local destructors).
/// Several exiting threads may use it at once, so it has no slots: frames
/// pushed on it are only counted (racily, harmlessly) and never stored, which
/// keeps the one-writer rule of the slot protocol. Its id is a real one (not
/// 0): a task polled on it is marked running by that id.
static DETACHED: std::sync::LazyLock<ThreadStack> = std::sync::LazyLock::new(|| {
    ThreadStack::with_capacity(registry::next_ids(1), "<exiting>".into(), None, 0)
});

/// Builds the detached stack now, if not yet built (before a fork: see
/// [`crate::fork`]).
pub(crate) fn force_detached() {
    std::sync::LazyLock::force(&DETACHED);
}

/// This thread's stack, without registering: null if it has none.
pub(crate) fn current_ptr() -> *const ThreadStack {
    CURRENT.try_with(Cell::get).unwrap_or(std::ptr::null())
}

/// Keeps the thread's stack alive and unregisters it when the thread exits.
struct ThreadOwner {
    stack: Arc<ThreadStack>,
}

impl Drop for ThreadOwner {
    fn drop(&mut self) {
        let detached: *const ThreadStack = &*DETACHED;
        let _ = CURRENT.try_with(|current| current.set(detached));
        if let Some(key) = self.stack.key() {
            registry::remove(key);
        }
    }
}

/// The current thread's stack, registering the thread on first use.
#[inline(always)]
pub(crate) fn current() -> &'static ThreadStack {
    let ptr = CURRENT.with(Cell::get);
    if ptr.is_null() {
        return register_current(None);
    }
    // SAFETY: `CURRENT` is either null, or points into the `Arc` held by this
    // thread's `OWNER` (reset to `DETACHED` before that `Arc` is released), or
    // at the `DETACHED` static. The returned reference is only used during the
    // current call, on this thread, so the owner outlives it.
    unsafe { &*ptr }
}

/// Registers the current thread if it is not yet registered.
#[cold]
#[inline(never)]
pub(crate) fn register_current(created_by: Option<Site>) -> &'static ThreadStack {
    let existing = CURRENT.with(Cell::get);
    if !existing.is_null() {
        // SAFETY: see `current`.
        return unsafe { &*existing };
    }
    let thread = std::thread::current();
    let name: Box<str> = match thread.name() {
        Some(name) => name.into(),
        None => format!("{:?}", thread.id()).into(),
    };
    let stack = Arc::new(ThreadStack::new(registry::next_ids(1), name, created_by));
    let ptr: *const ThreadStack = Arc::as_ptr(&stack);
    let key = registry::insert_thread(registry::home_shard(), stack.clone());
    crate::fork::hooks::registering();
    stack.key.set(key);
    let installed = OWNER
        .try_with(|owner| {
            owner.set(Some(ThreadOwner { stack }));
        })
        .is_ok();
    if !installed {
        // The thread is already tearing down its thread-locals: do not leave
        // an entry behind that no destructor would remove.
        registry::remove(key);
        let detached: *const ThreadStack = &*DETACHED;
        let _ = CURRENT.try_with(|current| current.set(detached));
        return &DETACHED;
    }
    let _ = CURRENT.try_with(|current| current.set(ptr));
    // SAFETY: `OWNER` now holds the `Arc` for the rest of the thread's life.
    unsafe { &*ptr }
}

/// The innermost recorded frame of this thread. Does not register the
/// thread: one without a stack has no frames.
#[inline(always)]
pub(crate) fn current_top_meta() -> Option<&'static FrameMeta> {
    let ptr = CURRENT.with(Cell::get);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see `current`.
    unsafe { &*ptr }.top_meta()
}

/// The creator function of a site where no instrumented function was
/// running.
pub(crate) const UNINSTRUMENTED: &str = "<uninstrumented>";

/// The instrumented function running on this thread, as a creator record at
/// `location`.
pub(crate) fn creator_here(location: &'static std::panic::Location<'static>) -> Site {
    let function = current_top_meta().map_or(UNINSTRUMENTED, |meta| meta.function);
    Site {
        function,
        file: location.file(),
        line: location.line(),
    }
}

/// A pushed frame, popped when dropped (also during unwinding): what
/// `__private::enter` returns to the code an instrumented sync fn expands to.
///
/// Safe code can keep a guard longer than the call that made it, for example
/// in a thread-local destroyed after the thread's registration, which frees
/// the stack: so a guard pops only while its stack is still the thread's
/// current one (it is replaced before it is freed).
#[must_use]
pub struct FrameGuard {
    stack: *const ThreadStack,
    depth: usize,
}

impl FrameGuard {
    #[inline(always)]
    pub(crate) fn new(stack: &'static ThreadStack, depth: usize) -> Self {
        FrameGuard { stack, depth }
    }
}

impl Drop for FrameGuard {
    #[inline(always)]
    fn drop(&mut self) {
        if CURRENT.with(Cell::get) == self.stack {
            // SAFETY: the guard is not `Send`, so this is the thread that
            // pushed the frame, and `CURRENT` still points at the stack, which
            // is therefore alive (see `current`).
            unsafe { &*self.stack }.pop(self.depth);
        }
    }
}

impl std::fmt::Debug for FrameGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameGuard")
            .field("depth", &self.depth)
            .finish()
    }
}

/// A frame pushed for the length of one poll, popped when dropped (also
/// during unwinding). Only the runtime makes these, as locals of a poll, so
/// the stack outlives them without the check [`FrameGuard`] makes.
pub(crate) struct PollFrame {
    stack: &'static ThreadStack,
    depth: usize,
}

impl PollFrame {
    #[inline(always)]
    pub(crate) fn new(stack: &'static ThreadStack, depth: usize) -> Self {
        PollFrame { stack, depth }
    }
}

impl Drop for PollFrame {
    #[inline(always)]
    fn drop(&mut self) {
        self.stack.pop(self.depth);
    }
}

#[cfg(target_os = "linux")]
fn os_tid() -> i64 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::gettid() as i64 }
}

#[cfg(not(target_os = "linux"))]
fn os_tid() -> i64 {
    0
}

/// Kernel thread id of the calling thread, where known.
pub(crate) fn current_tid() -> Option<i64> {
    let tid = os_tid();
    (tid != 0).then_some(tid)
}
