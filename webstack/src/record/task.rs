//! Async frames: the [`Instrumented`] future that `#[webstack::instrument]`
//! wraps around an async body, and the registry record of a task root.
//!
//! A frame's data (function, arguments) lives inside its future. While the
//! future is polled, the frame is also pushed on the polling thread's shadow
//! stack, so a worker thread shows what it is running. The outermost
//! instrumented future polled on a thread is the task root: it registers a
//! [`TaskShared`] record and holds that record's lock for the length of each
//! poll. When the innermost instrumented future returns `Pending`, the chain
//! of frames from the root down to it is copied into the record (one chain
//! per pending leaf, the newest shown: see [`chains`]), so a snapshot
//! can read an idle task's await chain under the record's lock (copying it
//! out, then releasing the lock), and reports a task whose poll holds the
//! lock as running, without waiting: a poll sets `running_on` before it
//! takes the lock and clears it after releasing it. A snapshot waits only
//! when the lock is held by another snapshot's copy, and then for at most
//! [`crate::snapshot`]'s small wait budget per snapshot.
//!
//! A task is published in the registry during its first poll, with its lock
//! held, and leaves it when it returns `Ready` (still under the lock) or when
//! its future is dropped unfinished. The registry borrows the root future's
//! reference to the record rather than counting one of its own, and a record
//! that nothing else holds when its task ends is kept on the thread for the
//! next task root: registering a task then costs no allocation.
//!
//! No pointer into a future is ever stored where another thread could follow
//! it, so a future that moves between threads, or is polled under one root and
//! then another (`select!`, then awaited elsewhere), cannot cause undefined
//! behaviour. The documented degradation: such a future shows in the chain of
//! the root that polled it last, and a former root polled inside another task
//! keeps its last recorded chain until it is polled as a root again. A chain
//! is known to be current through the address and size of the future that
//! ends it (only compared, never followed): an `Unpin` future moved after its
//! `Pending` and then dropped can leave its chain in the task's record until
//! a newer chain hides it or the task ends.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;

use crate::clock;
use crate::record::await_point;
use crate::record::frame_args::FrameArgs;
use crate::record::meta::{FrameMeta, NoOwner, Owner, StaticMeta};
use crate::record::registry;
use crate::record::registry::KeyCell;
use crate::record::slot::FrameWords;
use crate::record::stack::{self, PollFrame, Site, MAX_DEPTH};
use crate::record::value::Value;

mod chains;
// Without `tokio` only the record side of it (hook slots, `register`) is unused.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) mod spawned;

use chains::{Chains, Leaf};

/// The registry's record of a task root.
///
/// Aligned to a cache line: records of tasks polled on different threads
/// are allocated side by side, and every poll takes the record's lock and
/// writes `running_on`, so two records sharing a line would make the
/// threads' polls contend for it.
#[repr(align(64))]
pub(crate) struct TaskShared {
    pub(crate) id: u64,
    pub(crate) name: &'static str,
    /// [`clock::now_ns`] at registration.
    pub(crate) created_ns: u64,
    pub(crate) created_by: Option<Site>,
    /// Webstack id of the thread polling the task right now (0 when idle).
    pub(crate) running_on: AtomicU64,
    pub(crate) state: Mutex<TaskState>,
    key: KeyCell,
    /// What a spawn wrapper or the tokio hooks add (see [`spawned`]).
    pub(crate) spawn: spawned::SpawnInfo,
}

/// What a snapshot reads of an idle task, written under the task's lock.
pub(crate) struct TaskState {
    /// The await chains of the task's pending leaves (see [`chains`]).
    chains: Chains,
    pub(crate) polls: u64,
    /// [`clock::now_ns`] at the end of the last poll.
    pub(crate) last_poll_end_ns: u64,
}

impl TaskState {
    /// Copies the chain a snapshot shows (the newest that still stands,
    /// outermost first) into `out`, and returns its count of frames beyond
    /// [`MAX_DEPTH`].
    pub(crate) fn copy_chain_into(&self, out: &mut SavedChain) -> usize {
        match self.chains.newest() {
            Some((chain, elided)) => {
                chain.copy_into(out);
                elided
            }
            None => {
                out.clear();
                0
            }
        }
    }
}

/// An await chain kept compactly: a frame slot holds room for
/// [`MAX_ARGS`](crate::MAX_ARGS) arguments (416 bytes), most frames have one
/// or two. Both vectors are reused from one `Pending` to the next.
#[derive(Default)]
pub(crate) struct SavedChain {
    /// `(meta, owner, task, first argument, argument count, await line)`,
    /// outermost first; the await line is 0 until the frame's own `Pending`
    /// path sets it (see [`await_point`]), and stays 0 when unknown.
    frames: Vec<(usize, usize, u64, u32, u32, u32)>,
    args: Vec<Value>,
}

impl SavedChain {
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.args.clear();
    }

    fn push(&mut self, words: &FrameWords) {
        let first = self.args.len() as u32;
        self.args.extend_from_slice(&words.args[..words.nargs]);
        self.frames.push((
            words.meta,
            words.owner,
            words.task,
            first,
            words.nargs as u32,
            0,
        ));
    }

    /// Records the line of the `.await` the chain's frame `index` (from the
    /// outermost) is suspended at, if that frame is `meta`'s.
    fn set_await_line(&mut self, index: usize, meta: usize, line: u32) {
        if let Some(frame) = self.frames.get_mut(index).filter(|f| f.0 == meta) {
            frame.5 = line;
        }
    }

    /// The line of the `.await` each frame is suspended at (0: unknown),
    /// outermost first, in the order of [`SavedChain::frames`].
    pub(crate) fn await_lines(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.frames.iter().map(|f| f.5)
    }

    /// Copies the chain into `out`, reusing its buffers: a snapshot copies
    /// under the task's lock and builds its frames after releasing it.
    pub(crate) fn copy_into(&self, out: &mut SavedChain) {
        out.frames.clone_from(&self.frames);
        out.args.clone_from(&self.args);
    }

    /// Number of frames.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// `(meta, owner, task, arguments)` of each frame, outermost first.
    pub(crate) fn frames(&self) -> impl DoubleEndedIterator<Item = (usize, usize, u64, &[Value])> {
        self.frames
            .iter()
            .map(|&(meta, owner, task, first, nargs, _)| {
                let first = first as usize;
                (meta, owner, task, &self.args[first..first + nargs as usize])
            })
    }
}

/// The task being polled on this thread, set by its root for one poll.
///
/// Which chains to keep (see [`chains`]): when an instrumented future
/// returns `Pending`, the chain from the root down to it is saved under its
/// address, unless a future it polled (a frame further down) saved one
/// during this poll of it that still stands, or the newest chain from an
/// earlier poll runs through it to a frame further down (a member of a
/// `FuturesUnordered` that this poll did not reach). Siblings polled by the
/// same parent (`join!`, `select!`, `FuturesUnordered`) come and go in
/// between: each save is numbered (`saves`), a future compares the number
/// before and after its poll, and a leaf's chain goes when the leaf is
/// dropped.
struct PollCtx {
    state: *mut TaskState,
    /// Depth of the root frame on the thread's shadow stack.
    base: usize,
    /// The number of the last chain saved in the task ([`Chains::seq`]).
    saves: Cell<u64>,
}

impl PollCtx {
    /// The context of a poll of the task whose lock guards `state`; sets
    /// [`LEAF_FILTER`] to the task's (the caller puts back what it was when
    /// the poll ends).
    fn new(state: &mut TaskState, base: usize) -> PollCtx {
        LEAF_FILTER.with(|filter| filter.set(state.chains.filter));
        PollCtx {
            saves: Cell::new(state.chains.seq),
            state,
            base,
        }
    }
}

thread_local! {
    static POLL_CTX: Cell<*const PollCtx> = const { Cell::new(std::ptr::null()) };
    /// [`Chains::filter`] of the task whose poll `POLL_CTX` points at, 0
    /// outside polls: read by every `Drop` of an instrumented future.
    static LEAF_FILTER: Cell<u64> = const { Cell::new(0) };
    static TASK_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

const TASK_ID_BLOCK: u64 = 256;

fn next_task_id() -> u64 {
    TASK_IDS.with(|ids| {
        let (mut next, mut end) = ids.get();
        if next == end {
            next = registry::next_ids(TASK_ID_BLOCK);
            end = next + TASK_ID_BLOCK;
        }
        ids.set((next + 1, end));
        next
    })
}

thread_local! {
    static HOME_SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn home_shard() -> usize {
    HOME_SHARD.with(|shard| {
        if shard.get() == usize::MAX {
            shard.set(registry::home_shard());
        }
        shard.get()
    })
}

/// Task records kept per thread for reuse: a task that ends while no
/// snapshot holds its record leaves it here, so the next task root polled on
/// this thread skips the allocation (and keeps the chain buffers).
const SPARE_RECORDS: usize = 32;

/// A record whose chain buffers grew beyond this many chains, or frames or
/// arguments in one, is not kept: spare records hold at most ~8 KiB of
/// buffers each.
const SPARE_CHAINS: usize = 4;
const SPARE_CHAIN_FRAMES: usize = 16;
const SPARE_CHAIN_ARGS: usize = 32;

thread_local! {
    static SPARE: RefCell<Vec<Arc<TaskShared>>> = const { RefCell::new(Vec::new()) };
}

impl TaskShared {
    /// A record for a new task root, reused from this thread's spare ones
    /// when possible. Not yet registered: see [`TaskShared::publish`].
    pub(crate) fn new_record(
        meta: &'static FrameMeta,
        created_by: Option<Site>,
    ) -> Arc<TaskShared> {
        let now = clock::now_ns();
        let id = next_task_id();
        let spare = SPARE
            .try_with(|spare| spare.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten();
        let task = match spare {
            Some(mut task) => {
                let record = Arc::get_mut(&mut task)
                    .expect("spare task records are not shared (checked when kept)");
                record.id = id;
                record.name = meta.task_name;
                record.created_ns = now;
                record.created_by = created_by;
                let state = record.state.get_mut();
                state.polls = 0;
                state.last_poll_end_ns = now;
                record.spawn = spawned::SpawnInfo::root();
                task
            }
            None => Arc::new(TaskShared {
                id,
                name: meta.task_name,
                created_ns: now,
                created_by,
                running_on: AtomicU64::new(0),
                state: Mutex::new(TaskState {
                    chains: Chains::default(),
                    polls: 0,
                    last_poll_end_ns: now,
                }),
                key: KeyCell::default(),
                spawn: spawned::SpawnInfo::root(),
            }),
        };
        task
    }

    /// Whether the task is still in the registry: a finished task leaves it
    /// under its lock, so a snapshot that waited for the lock can tell.
    pub(crate) fn is_registered(&self) -> bool {
        self.key.get().is_some()
    }

    /// Forgets the task's registry key without removing its entry: for the
    /// child of a fork, which removes the entry itself (see [`crate::fork`]).
    pub(crate) fn forget_registration(&self) {
        self.key.take();
    }

    /// Removes the task from the registry (once).
    fn leave(&self) {
        if let Some(key) = self.key.take() {
            registry::remove(key);
        }
    }

    /// Makes the task visible to snapshots. Called with the task's lock held
    /// by its first poll, so no snapshot sees it before it has a chain.
    fn publish(self: &Arc<Self>) {
        // SAFETY: the root future keeps this `Arc` until `unregister`, which
        // removes the key first.
        let key = unsafe { registry::insert_task(home_shard(), self) };
        self.key.set(key);
    }
}

/// Takes an unfinished task out of the registry when its future is dropped:
/// a snapshot that already holds the record reads it safely (the chain of
/// its last `Pending`), a later one cannot find it.
#[inline(never)]
fn unregister(task: Arc<TaskShared>) {
    task.leave();
    recycle(task);
}

/// The `Drop` of a root future ([`unregister`]), or of a future that may
/// end one of the chains of the task being polled (`leaf`).
#[cold]
#[inline(never)]
fn drop_slow(task: &mut Option<Arc<TaskShared>>, leaf: Option<Leaf>) {
    if let Some(task) = task.take() {
        unregister(task);
    }
    if let Some(leaf) = leaf {
        leaf_dropped(leaf);
    }
}

/// Keeps a record that left the registry for reuse, if nothing else (a
/// snapshot) holds it.
fn recycle(mut task: Arc<TaskShared>) {
    let Some(record) = Arc::get_mut(&mut task) else {
        return;
    };
    let state = record.state.get_mut();
    if !state
        .chains
        .is_small(SPARE_CHAINS, SPARE_CHAIN_FRAMES, SPARE_CHAIN_ARGS)
    {
        return;
    }
    state.chains.clear();
    *record.running_on.get_mut() = 0;
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < SPARE_RECORDS {
                spare.push(task);
            }
        }
    });
}

/// A future carrying an instrumented async function's frame.
///
/// Created by the code `#[webstack::instrument]` generates; not meant to be
/// named by users. Its fields are what an async call's future carries beyond
/// the body's own state, and a future is copied whole whenever it moves: the
/// metadata, the owner and (for an `async fn`) the creator are zero-sized
/// types, and arguments are kept in two words
/// ([`Narrow`](crate::__private::Narrow)) or one
/// ([`Fixed`](crate::__private::Fixed)) where their type allows.
#[doc(hidden)]
#[must_use = "futures do nothing unless polled"]
pub struct Instrumented<F, A, M, O = NoOwner, C = AtFirstPoll> {
    inner: F,
    args: A,
    meta: M,
    owner: O,
    creator: C,
    task: Option<Arc<TaskShared>>,
}

/// Which frame created a future, recorded in case it is polled as a task
/// root.
#[doc(hidden)]
pub trait Creator {
    /// The creating frame if it was recorded at creation (`Some(None)` when
    /// there was none); `None` to take the frame on top of the thread that
    /// first polls the future as a task root.
    fn known(&self) -> Option<Option<&'static FrameMeta>>;
}

/// The frame on top of the polling thread's stack when the future is first
/// polled as a task root, recorded by `async fn`s: nested calls, most of
/// them, never read it, and reading the caller's frame at creation instead
/// (through a thread-local) added 29 instructions to every nested call. (A
/// future first polled inside another task and only later as a root of its
/// own — `select!`, then awaited elsewhere — records the frame on top at that
/// later poll.)
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct AtFirstPoll;

impl Creator for AtFirstPoll {
    #[inline(always)]
    fn known(&self) -> Option<Option<&'static FrameMeta>> {
        None
    }
}

/// The frame on top when the future was created, for a function returning
/// `impl Future`: the function that called it, often the one that spawns it.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct KnownCreator(Option<&'static FrameMeta>);

impl Creator for KnownCreator {
    #[inline(always)]
    fn known(&self) -> Option<Option<&'static FrameMeta>> {
        Some(self.0)
    }
}

impl<F, A, M, O> Instrumented<F, A, M, O, KnownCreator> {
    /// Wraps `inner`, recording the frame that is current on this thread as
    /// the creator.
    #[inline(always)]
    pub fn new(meta: M, owner: O, args: A, inner: F) -> Self {
        Instrumented {
            inner,
            args,
            meta,
            owner,
            creator: KnownCreator(stack::current_top_meta()),
            task: None,
        }
    }
}

impl<F, A, M, O> Instrumented<F, A, M, O, AtFirstPoll> {
    /// Wraps the body of an `async fn`: the creator is read only if the
    /// future turns out to be a task root, at its first poll as one.
    #[inline(always)]
    pub fn in_async_fn(meta: M, owner: O, args: A, inner: F) -> Self {
        Instrumented {
            inner,
            args,
            meta,
            owner,
            creator: AtFirstPoll,
            task: None,
        }
    }
}

impl<F, A, M: StaticMeta, O, C> std::fmt::Debug for Instrumented<F, A, M, O, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumented")
            .field("function", &self.meta.meta().function)
            .finish_non_exhaustive()
    }
}

/// Marks a task idle again when its root's poll ends (also during
/// unwinding), after the poll released the task's lock.
struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Clears the thread's poll context when a root's poll ends, also during
/// unwinding.
struct RootPollGuard;

impl Drop for RootPollGuard {
    fn drop(&mut self) {
        POLL_CTX.with(|ctx| ctx.set(std::ptr::null()));
        LEAF_FILTER.with(|filter| filter.set(0));
    }
}

impl<F: Future, A: FrameArgs, M: StaticMeta, O: Owner, C: Creator> Future
    for Instrumented<F, A, M, O, C>
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let ctx = POLL_CTX.with(Cell::get);
        let thread = stack::current();
        if ctx.is_null() {
            return self.poll_root(thread, cx);
        }
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `self`, and `Instrumented` is `Unpin` only when `F` is (auto trait).
        // The other fields are not pinned and only read or replaced in place.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        // SAFETY: a non-null `POLL_CTX` points at the `PollCtx` on the stack
        // of the root poll that is running further up this thread's call stack.
        let ctx = unsafe { &*ctx };
        let depth = thread.push(this.meta.meta(), this.owner.addr(), 0, &this.args);
        let guard = PollFrame::new(thread, depth);
        let saves = ctx.saves.get();
        let result = inner.poll(cx);
        if result.is_pending() {
            pending_frame(
                thread,
                ctx,
                depth,
                leaf_addr(this),
                saves,
                this.meta.meta(),
                M::AWAIT_FALLBACK,
            );
        } else if ctx.saves.get() != saves {
            chains_ended(ctx, saves);
        }
        drop(guard);
        result
    }
}

/// Whether this root poll is tokio's trace poll for a task dump (feature
/// `taskdump`): it counts as no poll and leaves the idle time alone, so a
/// page with task traces shows what one without would. (The await chain it
/// saves is the one the task already had: a traced leaf returns `Pending`
/// where the task waits.)
#[inline]
pub(crate) fn trace_poll() -> bool {
    #[cfg(all(
        feature = "taskdump",
        tokio_unstable,
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    return ::tokio::runtime::Handle::is_tracing();
    #[cfg(not(all(
        feature = "taskdump",
        tokio_unstable,
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    false
}

/// The key of a future's chain: its address and size, only ever compared.
#[inline(always)]
fn leaf_addr<T>(future: &T) -> Leaf {
    Leaf(future as *const T as usize, std::mem::size_of::<T>())
}

impl<F: Future, A: FrameArgs, M: StaticMeta, O: Owner, C: Creator> Instrumented<F, A, M, O, C> {
    /// Polls the future as the root of a task: registers the task on the
    /// first poll, holds its lock for the poll, and leaves the registry when
    /// the task finishes. Out of line, so that the nested path stays small.
    #[inline(never)]
    fn poll_root(
        self: Pin<&mut Self>,
        thread: &'static stack::ThreadStack,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        // SAFETY: as in `poll`: only `inner` is pinned, and it is not moved.
        let this = unsafe { self.get_unchecked_mut() };
        let leaf = leaf_addr(this);
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let meta = this.meta.meta();
        let new = this.task.is_none();
        let creator = &this.creator;
        let record = this.task.get_or_insert_with(|| {
            let creator = creator.known().unwrap_or_else(|| thread.top_meta());
            let created_by = creator.map(|m| Site {
                function: m.function,
                file: m.file,
                line: m.line,
            });
            TaskShared::new_record(meta, created_by)
        });
        // Published before the lock is taken and withdrawn after it is
        // released, so that whenever a poll holds the lock a snapshot sees
        // the task as running and does not wait (a thread's id is never 0,
        // the detached stack's included).
        record.running_on.store(thread.id, Ordering::Relaxed);
        let running = Running(&record.running_on);
        let mut state = record.state.lock();
        if new {
            record.publish();
        }
        let traced = trace_poll();
        if !traced {
            state.polls += 1;
        }
        let depth = thread.push(meta, this.owner.addr(), record.id, &this.args);
        let frame = PollFrame::new(thread, depth);
        let ctx = PollCtx::new(&mut state, depth);
        let saves = ctx.saves.get();
        POLL_CTX.with(|c| c.set(&ctx));
        let reset = RootPollGuard;
        await_point::reset();
        let result = inner.poll(cx);
        if result.is_pending() {
            pending_frame(thread, &ctx, depth, leaf, saves, meta, M::AWAIT_FALLBACK);
        }
        drop(reset);
        drop(frame);
        end_root_poll(record, state, running, result.is_pending(), traced);
        if result.is_pending() {
            return result;
        }
        if let Some(record) = this.task.take() {
            recycle(record);
        }
        result
    }
}

/// Ends one poll of a task root (an instrumented root, or a spawned
/// task's wrapper), in the order snapshots rely on: a pending task stamps
/// the end of its poll; a finished one leaves the registry now rather than
/// when its future is dropped, which may be much later (or never), and
/// before its lock is released, so no snapshot shows it idle with the chain
/// of an earlier poll. Then the lock is released, and only after it the task
/// is marked idle (a snapshot that sees it running does not wait for it).
fn end_root_poll(
    record: &TaskShared,
    mut state: parking_lot::MutexGuard<'_, TaskState>,
    running: Running<'_>,
    pending: bool,
    traced: bool,
) {
    if pending {
        if !traced {
            state.last_poll_end_ns = clock::now_ns();
        }
    } else {
        record.leave();
    }
    drop(state);
    drop(running);
}

/// On the `Pending` path of the frame at `depth` (the future `leaf`, whose
/// poll started when the task's last save was number `saves`): keeps the
/// task's chains right (see [`PollCtx`]), then records in them the line of
/// the `.await` the frame's body is suspended at (see [`await_point`]).
#[cold]
#[inline(never)]
fn pending_frame(
    thread: &stack::ThreadStack,
    ctx: &PollCtx,
    depth: usize,
    leaf: Leaf,
    saves: u64,
    meta: &'static FrameMeta,
    fallback: u32,
) {
    // SAFETY: `ctx.state` points into the `MutexGuard` held by the root poll
    // that set `ctx`; that poll is still running further up this call stack,
    // and nothing else touches the state while the lock is held.
    let state = unsafe { &mut *ctx.state };
    let index = depth.wrapping_sub(ctx.base);
    if state.chains.newest_seq() > saves {
        // A chain through this frame was saved below it and stands: this
        // frame is no longer a leaf.
        if LEAF_FILTER.with(Cell::get) & chains::bit(leaf) != 0 {
            state.chains.remove(leaf);
        }
    } else if !thread
        .own_slot(depth)
        .is_some_and(|words| state.chains.newest_runs_through(index, &words))
    {
        let (chain, elided) = state.chains.start(leaf);
        let last = depth.min(MAX_DEPTH - 1);
        for index in ctx.base..=last {
            if let Some(words) = thread.own_slot(index) {
                chain.push(&words);
            }
        }
        *elided = depth.saturating_sub(last);
    }
    ctx.saves.set(state.chains.seq);
    LEAF_FILTER.with(|filter| filter.set(state.chains.filter));
    let line = await_point::take_line(meta, fallback);
    if line != 0 {
        state.chains.set_await_line(saves, index, meta.addr(), line);
    }
}

/// On the `Ready` path of a frame below which chains were saved during its
/// poll (after number `saves`): none of them is awaited any more.
#[cold]
#[inline(never)]
fn chains_ended(ctx: &PollCtx, saves: u64) {
    // SAFETY: as in `pending_frame`: `ctx.state` points into the
    // `MutexGuard` held by the root poll further up this call stack.
    let state = unsafe { &mut *ctx.state };
    state.chains.remove_newer_than(saves);
    LEAF_FILTER.with(|filter| filter.set(state.chains.filter));
}

/// On the `Drop` of a future that may end one of the chains of the task
/// being polled: removes that chain.
#[cold]
#[inline(never)]
fn leaf_dropped(leaf: Leaf) {
    let ctx = POLL_CTX.with(Cell::get);
    if ctx.is_null() {
        return;
    }
    // SAFETY: a non-null `POLL_CTX` points at the `PollCtx` on the stack of
    // the root poll running further up this thread's call stack (reset when
    // that poll ends, also by unwinding), and its `state` into the
    // `MutexGuard` that poll holds.
    let state = unsafe { &mut *(*ctx).state };
    state.chains.remove(leaf);
    LEAF_FILTER.with(|filter| filter.set(state.chains.filter));
}

impl<F, A, M, O, C> Drop for Instrumented<F, A, M, O, C> {
    #[inline]
    fn drop(&mut self) {
        // A pending future dropped during its task's poll (the losing
        // branch of a `select!`, a finished member of a `FuturesUnordered`)
        // no longer ends a chain. One out-of-line call for both cases keeps
        // the `Drop` of a nested future small enough to inline.
        let leaf = leaf_addr(self);
        let chained = LEAF_FILTER.with(Cell::get) & chains::bit(leaf) != 0;
        if chained | self.task.is_some() {
            drop_slow(&mut self.task, chained.then_some(leaf));
        }
    }
}
