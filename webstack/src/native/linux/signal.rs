//! The signal handler, its pool of capture slots, and the collector's side
//! of the request/answer protocol.
//!
//! Each request uses its own slot of a grow-only pool, allocated by the
//! collector outside any handler and never freed; each slot has a copy
//! buffer of the configured size (64 KiB by default), in one anonymous
//! mapping per 64 slots whose pages the kernel may take back after
//! every capture (`MADV_FREE`). A slot's `phase` word
//! holds a 30-bit sequence number and a 2-bit tag: the collector writes
//! `REQUESTED(seq)`, counts the request in [`REMAINING`] and queues the
//! signal with the slot's index and `seq` in `sival_ptr`; the handler claims
//! that slot with a compare-and-swap to `CLAIMED(seq)`, fills it, stores
//! `DONE(seq)`, then takes one from `REMAINING` and wakes the collector's
//! futex wait on it if it took the last one. The collector sends every
//! request of a batch first, then sleeps on `REMAINING` until it reaches
//! zero or one deadline passes (the last request's sending time plus the
//! timeout). Then it swaps `REQUESTED(seq)` for `ABANDONED(seq)` in every
//! slot still unanswered, so a late handler (the thread unblocked the
//! signal later) finds nothing to claim and returns, and takes those
//! requests back from `REMAINING`; a handler that had already claimed its
//! slot gets a grace period to finish, after which its slot is retired for
//! good (stuck). The transitions themselves are in
//! [`protocol`](crate::native::protocol), which the loom model checks.

use std::ffi::c_void;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::copy::{self, Taken, REGS};
use super::Error;

use crate::native::protocol::{self, Settled, SEQ_BITS, SEQ_MASK};

/// Where the handler writes one thread's registers and stack copy.
struct Slot {
    phase: AtomicU32,
    /// The thread running the handler in this slot right now, or 0.
    tid: AtomicI32,
    /// Set by the collector when a handler never finished in this slot: it is
    /// never used again.
    retired: AtomicBool,
    /// The interrupted context's registers (see [`copy::REGS`]).
    regs: [AtomicUsize; REGS],
    /// Bytes of the stack copied into the slot's buffer.
    copied: AtomicUsize,
    /// [`NO_ROOM`], [`NO_CONTEXT`] and [`CUT`].
    flags: AtomicUsize,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            phase: AtomicU32::new(protocol::IDLE),
            tid: AtomicI32::new(0),
            retired: AtomicBool::new(false),
            regs: [const { AtomicUsize::new(0) }; REGS],
            copied: AtomicUsize::new(0),
            flags: AtomicUsize::new(0),
        }
    }
}

/// The stack the handler ran on had no room to copy.
const NO_ROOM: usize = 1;
/// The kernel gave no usable context.
const NO_CONTEXT: usize = 2;
/// The stack goes on above the copy.
const CUT: usize = 4;

/// Slots per chunk of the pool.
const CHUNK: usize = 64;
/// Chunks the pool can grow to.
const MAX_CHUNKS: usize = 1024;
/// Slots the pool can hold: bounded by the chunk table and by the bits of
/// `sival_ptr` left above the sequence number.
const MAX_SLOTS: usize = {
    let by_bits = 1usize.checked_shl(usize::BITS - SEQ_BITS);
    match by_bits {
        Some(n) if n < CHUNK * MAX_CHUNKS => n,
        _ => CHUNK * MAX_CHUNKS,
    }
};

/// The pool: chunk `c` holds slots `c * CHUNK ..`; null until allocated.
/// Chunks are leaked, so a pointer once published stays valid for the
/// handlers forever; only the collector (under the capture lock) grows it.
static CHUNKS: [AtomicPtr<Slot>; MAX_CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS];

/// The copy buffers of chunk `c`: one anonymous mapping of `CHUNK` buffers
/// of `BUFFER[c]` bytes each, slot `i` of the chunk at `i * BUFFER[c]`;
/// null until allocated. Replaced by the collector (under the capture lock)
/// only while no handler can write it: between captures, and never for a
/// chunk holding a retired slot.
static REGIONS: [AtomicPtr<u8>; MAX_CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_CHUNKS];
static BUFFER: [AtomicUsize; MAX_CHUNKS] = [const { AtomicUsize::new(0) }; MAX_CHUNKS];

/// The buffer size the collector wants for this capture (see [`prepare`]).
static WANTED: AtomicUsize = AtomicUsize::new(0);

/// Requests sent and not yet answered or taken back; the futex word the
/// collector sleeps on.
static REMAINING: AtomicU32 = AtomicU32::new(0);

/// The slot at `index`, if its chunk was allocated. Async-signal-safe.
fn slot_at(index: usize) -> Option<&'static Slot> {
    if index >= MAX_SLOTS {
        return None;
    }
    let chunk = CHUNKS.get(index / CHUNK)?.load(Ordering::Acquire);
    if chunk.is_null() {
        return None;
    }
    // SAFETY: a non-null chunk pointer was published by `grow` after it
    // leaked a boxed slice of `CHUNK` initialised slots, never freed; the
    // offset is below `CHUNK`.
    Some(unsafe { &*chunk.add(index % CHUNK) })
}

/// Allocates the chunk holding slot `index` if needed (collector only, under
/// the capture lock, never in a handler).
fn grow(index: usize) -> Option<&'static Slot> {
    if index >= MAX_SLOTS {
        return None;
    }
    let chunk = index / CHUNK;
    let cell = CHUNKS.get(chunk)?;
    if cell.load(Ordering::Acquire).is_null() {
        let slots: Box<[Slot]> = (0..CHUNK).map(|_| Slot::new()).collect();
        let ptr = Box::leak(slots).as_mut_ptr();
        cell.store(ptr, Ordering::Release);
    }
    if REGIONS[chunk].load(Ordering::Relaxed).is_null() {
        map_region(chunk, WANTED.load(Ordering::Relaxed))?;
    }
    slot_at(index)
}

/// Maps the copy buffers of `chunk`, `buffer` bytes each, replacing those
/// it had (collector only, when no handler can write them).
fn map_region(chunk: usize, buffer: usize) -> Option<()> {
    let buffer = buffer.max(PAGE).next_multiple_of(PAGE);
    // SAFETY: a fresh anonymous mapping at an address the kernel chooses,
    // reserving no swap: pages are only backed as the copies touch them.
    // The result is checked.
    let region = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            CHUNK * buffer,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if region == libc::MAP_FAILED {
        return None;
    }
    let old = REGIONS[chunk].swap(region.cast(), Ordering::Relaxed);
    let old_buffer = BUFFER[chunk].swap(buffer, Ordering::Relaxed);
    if !old.is_null() {
        // SAFETY: the old region was mapped above with this size; the caller
        // guarantees no handler writes it any more, and the collector holds
        // no slice of it across captures.
        unsafe { libc::munmap(old.cast(), CHUNK * old_buffer) };
    }
    Some(())
}

const PAGE: usize = 4096;

/// Sets the size of the copy buffers for the coming capture: chunks with
/// another size get new buffers, except a chunk holding a retired slot,
/// whose stuck handler may still write its old one. Collector only, under
/// the capture lock, with no request in flight.
pub(super) fn prepare(buffer: usize) {
    WANTED.store(buffer, Ordering::Relaxed);
    for chunk in 0..MAX_CHUNKS {
        let slots = CHUNKS[chunk].load(Ordering::Acquire);
        if slots.is_null() {
            break;
        }
        let size = buffer.max(PAGE).next_multiple_of(PAGE);
        if BUFFER[chunk].load(Ordering::Relaxed) == size {
            continue;
        }
        // SAFETY: as in `slot_at`: a published chunk of `CHUNK` slots.
        let retired = (0..CHUNK).any(|i| unsafe { &*slots.add(i) }.retired.load(Ordering::Relaxed));
        if !retired {
            map_region(chunk, buffer);
        }
    }
}

/// Lets the kernel take the pages of the copy buffers back after a
/// capture (`MADV_FREE`): reclaimed when memory runs short, and reused
/// without a page fault by the next capture if they are still there (with
/// `MADV_DONTNEED` each capture faulted and zeroed every page again, a
/// tenth of the signalling phase's time). Collector only, under the capture
/// lock, with no request in flight.
pub(super) fn release_copies() {
    for chunk in 0..MAX_CHUNKS {
        let region = REGIONS[chunk].load(Ordering::Relaxed);
        if region.is_null() {
            break;
        }
        // SAFETY: a region mapped by `map_region` with this size. A stuck
        // handler still writing into a retired slot's buffer only sees its
        // pages zeroed; nothing reads that buffer again.
        unsafe {
            libc::madvise(
                region.cast(),
                CHUNK * BUFFER[chunk].load(Ordering::Relaxed),
                libc::MADV_FREE,
            )
        };
    }
}

/// The copy buffer of slot `index` and its size.
fn buffer_of(index: usize) -> Option<(*mut u8, usize)> {
    let chunk = index / CHUNK;
    let region = REGIONS.get(chunk)?.load(Ordering::Relaxed);
    if region.is_null() {
        return None;
    }
    let size = BUFFER[chunk].load(Ordering::Relaxed);
    // The offset stays inside the region of `CHUNK * size` bytes.
    Some((region.wrapping_add(index % CHUNK * size), size))
}

/// The first usable slot at or after `*cursor` (allocating it if needed),
/// or `None` once the pool is exhausted; `*cursor` moves past it. Retired
/// slots are skipped.
pub(super) fn next_slot(cursor: &mut usize) -> Option<usize> {
    while *cursor < MAX_SLOTS {
        let index = *cursor;
        *cursor += 1;
        if !grow(index)?.retired.load(Ordering::Relaxed) {
            return Some(index);
        }
    }
    None
}

/// Whether the calling thread is running the handler right now. For tests
/// that check the handler does not allocate.
pub(super) fn in_handler() -> bool {
    // SAFETY: `gettid` has no preconditions.
    let me = unsafe { libc::gettid() };
    let mut index = 0;
    while let Some(slot) = slot_at(index) {
        if slot.tid.load(Ordering::Relaxed) == me {
            return true;
        }
        index += 1;
    }
    false
}

static HANDLER_RUNS: AtomicU64 = AtomicU64::new(0);

pub(super) fn handler_runs() -> u64 {
    HANDLER_RUNS.load(Ordering::Relaxed)
}

/// The chosen signal (0 = not chosen yet: `SIGRTMIN+3`) and the one the
/// handler is installed on (0 = none).
struct Config {
    chosen: i32,
    installed: i32,
}

static CONFIG: Mutex<Config> = Mutex::new(Config {
    chosen: 0,
    installed: 0,
});

/// The configuration's lock, held across a fork.
static CONFIG_HELD: crate::fork::Held<MutexGuard<'static, Config>> = crate::fork::Held::new();

/// Takes the configuration's lock before a fork.
///
/// # Safety
/// Only from the *prepare* fork handler.
pub(super) unsafe fn prepare_fork() {
    let config = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: in *prepare*, with the lock just taken.
    unsafe { CONFIG_HELD.put(config) };
}

/// Releases the configuration's lock after a fork.
///
/// # Safety
/// Only from the *parent* or *child* fork handler.
pub(super) unsafe fn after_fork() {
    // SAFETY: guaranteed by the caller.
    drop(unsafe { CONFIG_HELD.take() });
}

/// Frees every slot in the child of a fork: a handler that claimed one in
/// the parent and never finished ran on a thread the child does not have.
pub(super) fn forget_requests() {
    for chunk in &CHUNKS {
        let chunk = chunk.load(Ordering::Acquire);
        if chunk.is_null() {
            break;
        }
        for i in 0..CHUNK {
            // SAFETY: as in `slot_at`: a published chunk of `CHUNK` slots.
            let slot = unsafe { &*chunk.add(i) };
            slot.phase.store(protocol::IDLE, Ordering::Release);
            slot.tid.store(0, Ordering::Relaxed);
            slot.retired.store(false, Ordering::Relaxed);
        }
    }
    REMAINING.store(0, Ordering::Release);
}

/// Drops the copy buffers in the child of a fork whose parent was in the
/// middle of a capture, which may have been replacing them (a region and
/// its size are two words): the next capture maps new ones. The old ones
/// stay mapped, unused.
pub(super) fn forget_copies() {
    for chunk in 0..MAX_CHUNKS {
        REGIONS[chunk].store(std::ptr::null_mut(), Ordering::Relaxed);
        BUFFER[chunk].store(0, Ordering::Relaxed);
    }
}

fn default_signal() -> i32 {
    libc::SIGRTMIN() + 3
}

pub(super) fn signal() -> i32 {
    let config = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    if config.chosen == 0 {
        default_signal()
    } else {
        config.chosen
    }
}

pub(super) fn set_signal(signal: i32) -> Result<(), Error> {
    if !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signal) {
        return Err(Error::NotRealTime(signal));
    }
    let mut config = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    if config.installed != 0 && config.installed != signal {
        return Err(Error::AlreadyInstalled(config.installed));
    }
    config.chosen = signal;
    Ok(())
}

/// Installs the handler if needed and checks that it is still in place;
/// returns the signal, or why native stacks cannot be taken.
pub(super) fn ensure_installed() -> Result<i32, String> {
    let mut config = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    let sig = if config.chosen == 0 {
        default_signal()
    } else {
        config.chosen
    };
    let current = current_action(sig)?;
    let ours = handler as *const () as usize;
    if config.installed == sig {
        if current != ours {
            return Err(format!(
                "the application replaced webstack's handler on signal {sig} \
                 (SIGRTMIN+{}); native stacks disabled",
                sig - libc::SIGRTMIN()
            ));
        }
        return Ok(sig);
    }
    if current != libc::SIG_DFL {
        return Err(format!(
            "signal {sig} (SIGRTMIN+{}) already has a handler installed by the application; \
             webstack does not replace it: choose another signal with \
             webstack::native::set_signal before the first snapshot",
            sig - libc::SIGRTMIN()
        ));
    }
    // SAFETY: a zeroed `sigaction` is a valid value; every field the kernel
    // reads is set below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as *const () as usize;
    // SA_ONSTACK: run on the thread's alternate signal stack where it has
    // one, so a thread near its guard page is not pushed over it.
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid `sigset_t` to initialise; `action` is fully
    // initialised and `handler` has the `SA_SIGINFO` signature.
    let rc = unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(sig, &action, std::ptr::null_mut())
    };
    if rc != 0 {
        return Err(format!(
            "cannot install the handler on signal {sig}: {}",
            std::io::Error::last_os_error()
        ));
    }
    config.installed = sig;
    Ok(sig)
}

fn current_action(sig: i32) -> Result<usize, String> {
    // SAFETY: a zeroed `sigaction` is a valid out-parameter.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is writable.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    if rc != 0 {
        return Err(format!(
            "cannot query signal {sig}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(old.sa_sigaction)
}

/// The head of a Linux `siginfo_t` for `SI_QUEUE`: the `_rt` member of the
/// union starts at the union's alignment (pointer size).
#[repr(C)]
struct QueueInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    rt: RtFields,
}

#[repr(C)]
struct RtFields {
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: *mut c_void,
}

/// What became of one request.
pub(super) enum Answer {
    /// The handler filled the slot; read it with [`read_slot`].
    Done,
    /// The thread no longer exists.
    Exited,
    /// The thread did not run the handler in time.
    TimedOut,
    /// The handler claimed the slot and never finished: the unwinder hung.
    /// The slot cannot be reused.
    Stuck,
    /// The signal could not be queued (e.g. the queue limit was reached).
    SendFailed,
}

static NEXT_SEQ: AtomicU32 = AtomicU32::new(1);

/// How long the collector waits for a handler that claimed its slot.
const CLAIMED_GRACE: Duration = Duration::from_secs(1);

/// A request sent to one thread, to be waited for with [`wait_all`].
pub(super) struct Sent {
    slot: usize,
    seq: u32,
    at: Instant,
}

impl Sent {
    /// The slot the answer is in.
    pub(super) fn slot(&self) -> usize {
        self.slot
    }
}

/// Asks thread `tid` of this process (`pid`, run by `uid`) for its stack,
/// to be written in slot `slot` (from
/// [`next_slot`], not used by another request of the batch). The caller holds
/// the capture lock and calls [`wait_all`] before it reuses the slot.
pub(super) fn send(
    sig: i32,
    (pid, uid): (libc::pid_t, libc::uid_t),
    tid: i32,
    slot: usize,
) -> Result<Sent, Answer> {
    let Some(cell) = slot_at(slot) else {
        return Err(Answer::SendFailed);
    };
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed) & SEQ_MASK;
    protocol::request(&cell.phase, &REMAINING, seq);
    // SAFETY: a zeroed `siginfo_t` is valid; `QueueInfo` is a prefix of its
    // layout and smaller than it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let head = (&mut info as *mut libc::siginfo_t).cast::<QueueInfo>();
    // The slot's index above the sequence number: `slot < MAX_SLOTS` fits.
    let value = (slot << SEQ_BITS) | seq as usize;
    // SAFETY: `head` points into `info`, which is large enough and aligned for
    // `QueueInfo`.
    unsafe {
        (*head).signo = sig;
        (*head).code = libc::SI_QUEUE;
        (*head).rt.pid = pid;
        (*head).rt.uid = uid;
        (*head).rt.value = value as *mut c_void;
    }
    // SAFETY: `info` is a valid siginfo for this process (`SI_QUEUE`, our pid)
    // and outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid as libc::c_long,
            tid as libc::c_long,
            sig as libc::c_long,
            &info as *const libc::siginfo_t,
        )
    };
    if rc != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // No signal was queued, so no handler can claim the slot.
        protocol::unsend(&cell.phase, &REMAINING, seq);
        return Err(if errno == libc::ESRCH {
            Answer::Exited
        } else {
            Answer::SendFailed
        });
    }
    Ok(Sent {
        slot,
        seq,
        at: Instant::now(),
    })
}

/// Sleeps on [`REMAINING`] until it is zero or `deadline` passes.
fn sleep_until_answered(deadline: Instant) {
    loop {
        let remaining = protocol::remaining(&REMAINING);
        if remaining == 0 {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        crate::futex::wait(&REMAINING, remaining, Some(deadline - now));
    }
}

/// Waits for the answers to `sent` (every request sent since the last call)
/// until `timeout` after the last was sent, all against that one deadline;
/// then abandons the unanswered requests and gives handlers that claimed
/// their slot a grace period. Fills `answers` in the order of `sent`.
pub(super) fn wait_all(sent: &[Sent], timeout: Duration, answers: &mut Vec<Answer>) {
    answers.clear();
    let Some(last) = sent.last() else {
        return;
    };
    sleep_until_answered(last.at + timeout);
    let mut claimed = false;
    for request in sent {
        let Some(slot) = slot_at(request.slot) else {
            answers.push(Answer::SendFailed);
            continue;
        };
        let answer = match protocol::settle(&slot.phase, &REMAINING, request.seq) {
            Settled::Done => Answer::Done,
            // A late handler finds nothing to claim.
            Settled::TimedOut => Answer::TimedOut,
            Settled::Claimed => {
                claimed = true;
                Answer::Stuck
            }
        };
        answers.push(answer);
    }
    if !claimed {
        return;
    }
    // Handlers that claimed their slot before the deadline: the grace.
    sleep_until_answered(Instant::now() + CLAIMED_GRACE);
    for (request, answer) in sent.iter().zip(answers.iter_mut()) {
        if !matches!(answer, Answer::Stuck) {
            continue;
        }
        let Some(slot) = slot_at(request.slot) else {
            continue;
        };
        if protocol::is_done(&slot.phase, request.seq) {
            *answer = Answer::Done;
        } else {
            // The handler may still write the slot: never use it again.
            slot.retired.store(true, Ordering::Relaxed);
        }
    }
}

/// What a handler left in its slot.
pub(super) enum Contents<'a> {
    /// The registers, the stack copied from the stack pointer up, and
    /// whether the stack goes on above the copy.
    Copy {
        regs: [usize; REGS],
        stack: &'a [u8],
        cut: bool,
    },
    /// The stack the handler ran on had no room to copy.
    NoRoom,
    /// The kernel gave no usable context.
    NoContext,
}

/// Hands slot `slot`'s contents to `read`, after [`Answer::Done`] and
/// before the slot is requested again.
pub(super) fn read_slot<R>(slot: usize, read: impl FnOnce(Contents<'_>) -> R) -> Option<R> {
    let (buffer, size) = buffer_of(slot)?;
    let slot = slot_at(slot)?;
    let flags = slot.flags.load(Ordering::Relaxed);
    if flags & NO_ROOM != 0 {
        return Some(read(Contents::NoRoom));
    }
    if flags & NO_CONTEXT != 0 {
        return Some(read(Contents::NoContext));
    }
    let regs = std::array::from_fn(|i| slot.regs[i].load(Ordering::Relaxed));
    let copied = slot.copied.load(Ordering::Relaxed).min(size);
    // SAFETY: the buffer holds `size >= copied` bytes, of which the handler
    // wrote the first `copied` (its `DONE` was read with `Acquire` in
    // `wait_all`); no handler writes it again before the collector requests
    // this slot anew, after `read` has returned, and its region is only
    // replaced between captures.
    let stack = unsafe { std::slice::from_raw_parts(buffer, copied) };
    Some(read(Contents::Copy {
        regs,
        stack,
        cut: flags & CUT != 0,
    }))
}

/// Saves the registers and copies the stack into claimed slot `slot`
/// (index `index`); returns the bytes copied and the flags. Called by the
/// handler once it knows the stack it runs on has room: kept out of the
/// handler's own frame, which runs before that check.
#[inline(never)]
fn fill(slot: &Slot, index: usize, context: *mut c_void, pid: libc::pid_t) -> (usize, usize) {
    let Some((buffer, size)) = buffer_of(index) else {
        return (0, NO_CONTEXT);
    };
    // SAFETY: the slot's buffer, `size` writable bytes that only this
    // handler writes until it publishes (the slot is claimed; the collector
    // reads it after `DONE` and replaces the region only between captures).
    match unsafe { copy::take(context, &slot.regs, buffer, size, pid) } {
        Taken::Copied { copied, cut } => (copied, if cut { CUT } else { 0 }),
        Taken::NoContext => (0, NO_CONTEXT),
    }
}

/// The signal handler. Async-signal-safe: atomics, `getpid`, `gettid`,
/// `sigaltstack`, `process_vm_readv` and a futex wake; no allocation, lock,
/// unwinder or formatting. Saves and restores `errno`. Runs on the thread's
/// alternate signal stack where it has one (`SA_ONSTACK`), and copies only
/// when the stack it runs on has room (see [`copy::take`]). Handlers of one
/// batch run at once on their threads, each in its own slot.
extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: `__errno_location` returns this thread's errno, always valid.
    let errno_ptr = unsafe { libc::__errno_location() };
    // SAFETY: see above.
    let saved_errno = unsafe { *errno_ptr };
    // SAFETY: `getpid` is async-signal-safe.
    let pid = unsafe { libc::getpid() };
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler.
    let value = unsafe {
        if info.is_null() || (*info).si_code != libc::SI_QUEUE || (*info).si_pid() != pid {
            None
        } else {
            Some((*info).si_value().sival_ptr as usize)
        }
    };
    let request = value.and_then(|value| {
        let seq = value as u32 & SEQ_MASK;
        let index = value >> SEQ_BITS;
        Some((slot_at(index)?, index, seq))
    });
    if let Some((slot, value_slot, seq)) = request {
        if protocol::claim(&slot.phase, seq) {
            // SAFETY: `gettid` has no preconditions.
            slot.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
            // The room is measured before anything else runs on a stack
            // that may be nearly full.
            let (copied, flags) = if copy::has_room(pid) {
                fill(slot, value_slot, context, pid)
            } else {
                (0, NO_ROOM)
            };
            slot.copied.store(copied, Ordering::Relaxed);
            slot.flags.store(flags, Ordering::Relaxed);
            HANDLER_RUNS.fetch_add(1, Ordering::Relaxed);
            slot.tid.store(0, Ordering::Relaxed);
            // The last answer of a batch wakes the collector.
            if protocol::publish(&slot.phase, &REMAINING, seq) {
                crate::futex::wake_one(&REMAINING);
            }
        }
    }
    // SAFETY: restoring the value saved above.
    unsafe { *errno_ptr = saved_errno };
}
