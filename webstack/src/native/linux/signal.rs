//! The signal handler, its one capture slot, and the collector's side of the
//! request/answer protocol.
//!
//! The slot's `phase` word holds a 30-bit sequence number and a 2-bit tag:
//! the collector writes `REQUESTED(seq)` and queues the signal with `seq`;
//! the handler claims the slot with a compare-and-swap to `CLAIMED(seq)`,
//! fills it, then stores `DONE(seq)` and wakes the collector's futex wait.
//! On timeout the collector swaps `REQUESTED(seq)` for `ABANDONED(seq)`, so a
//! late handler (the thread unblocked the signal later) finds nothing to
//! claim and returns; if the handler had already claimed the slot, the
//! collector waits for it to finish before it reuses the slot.

use std::ffi::c_void;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::unwind;
use super::{Error, MAX_NATIVE_FRAMES};

const TAG_BITS: u32 = 2;
const REQUESTED: u32 = 0;
const CLAIMED: u32 = 1;
const DONE: u32 = 2;
const ABANDONED: u32 = 3;
const SEQ_MASK: u32 = u32::MAX >> TAG_BITS;

const fn phase(seq: u32, tag: u32) -> u32 {
    ((seq & SEQ_MASK) << TAG_BITS) | tag
}

/// Where the handler writes one thread's stack.
pub(super) struct Slot {
    phase: AtomicU32,
    len: AtomicUsize,
    /// [`EXACT_FIRST`] and [`NO_ROOM`].
    flags: AtomicUsize,
    ips: [AtomicUsize; MAX_NATIVE_FRAMES],
}

/// `ips[0]` is the exact interrupted instruction, not a return address.
const EXACT_FIRST: usize = 1;
/// The stack the handler ran on had no room for the unwinder.
const NO_ROOM: usize = 2;

pub(super) static SLOT: Slot = Slot {
    phase: AtomicU32::new(phase(0, ABANDONED)),
    len: AtomicUsize::new(0),
    flags: AtomicUsize::new(0),
    ips: [const { AtomicUsize::new(0) }; MAX_NATIVE_FRAMES],
};

static HANDLER_TID: AtomicI32 = AtomicI32::new(0);
static HANDLER_RUNS: AtomicU64 = AtomicU64::new(0);

pub(super) fn handler_tid() -> i32 {
    HANDLER_TID.load(Ordering::Relaxed)
}

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

/// Frees the slot in the child of a fork: a handler that claimed it in the
/// parent and never finished ran on a thread the child does not have.
pub(super) fn forget_requests() {
    SLOT.phase.store(phase(0, ABANDONED), Ordering::Release);
    HANDLER_TID.store(0, Ordering::Relaxed);
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
    // Bind the unwinder's symbols and run its one-time initialisation here,
    // outside any handler.
    unwind::warm_up();
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

/// How long the collector waits for a handler that claimed the slot.
const CLAIMED_GRACE: Duration = Duration::from_secs(1);

/// A request sent to one thread, to be waited for with [`wait`].
pub(super) struct Sent {
    seq: u32,
    at: Instant,
}

/// Asks thread `tid` for its stack. The caller holds the capture lock and
/// calls [`wait`] before the next request.
pub(super) fn send(sig: i32, pid: i32, tid: i32) -> Result<Sent, Answer> {
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed) & SEQ_MASK;
    SLOT.phase.store(phase(seq, REQUESTED), Ordering::Release);
    // SAFETY: a zeroed `siginfo_t` is valid; `QueueInfo` is a prefix of its
    // layout and smaller than it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let head = (&mut info as *mut libc::siginfo_t).cast::<QueueInfo>();
    // SAFETY: `head` points into `info`, which is large enough and aligned for
    // `QueueInfo`; `getuid` has no preconditions.
    unsafe {
        (*head).signo = sig;
        (*head).code = libc::SI_QUEUE;
        (*head).rt.pid = pid;
        (*head).rt.uid = libc::getuid();
        (*head).rt.value = seq as usize as *mut c_void;
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
        SLOT.phase.store(phase(seq, ABANDONED), Ordering::Release);
        return Err(if errno == libc::ESRCH {
            Answer::Exited
        } else {
            Answer::SendFailed
        });
    }
    Ok(Sent {
        seq,
        at: Instant::now(),
    })
}

/// Waits until the thread answers `sent`, or `timeout` after it was sent.
pub(super) fn wait(sent: Sent, timeout: Duration) -> Answer {
    let seq = sent.seq;
    let mut deadline = sent.at + timeout;
    let mut grace = false;
    loop {
        let current = SLOT.phase.load(Ordering::Acquire);
        if current == phase(seq, DONE) {
            return Answer::Done;
        }
        let now = Instant::now();
        if now >= deadline {
            if current == phase(seq, CLAIMED) {
                if grace {
                    return Answer::Stuck;
                }
                grace = true;
                deadline = now + CLAIMED_GRACE;
                continue;
            }
            if SLOT
                .phase
                .compare_exchange(
                    phase(seq, REQUESTED),
                    phase(seq, ABANDONED),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return Answer::TimedOut;
            }
            continue;
        }
        crate::futex::wait(&SLOT.phase, current, Some(deadline - now));
    }
}

/// Copies the slot's addresses, innermost first, after [`Answer::Done`].
/// Returns whether the first address is the exact interrupted instruction,
/// or `None` if the handler had no room to unwind.
pub(super) fn read_slot(out: &mut Vec<usize>) -> Option<bool> {
    out.clear();
    let flags = SLOT.flags.load(Ordering::Relaxed);
    if flags & NO_ROOM != 0 {
        return None;
    }
    let len = SLOT.len.load(Ordering::Relaxed).min(MAX_NATIVE_FRAMES);
    out.extend(SLOT.ips[..len].iter().map(|ip| ip.load(Ordering::Relaxed)));
    Some(flags & EXACT_FIRST != 0)
}

/// The signal handler. Async-signal-safe: atomics, `getpid`, `gettid`, the
/// unwinder (see `unwind`) and a futex wake; no allocation, lock or
/// formatting. Saves and restores `errno`. Runs on the thread's alternate
/// signal stack where it has one (`SA_ONSTACK`), and unwinds only when the
/// stack it runs on has room (see `unwind::capture`).
extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: `__errno_location` returns this thread's errno, always valid.
    let errno_ptr = unsafe { libc::__errno_location() };
    // SAFETY: see above.
    let saved_errno = unsafe { *errno_ptr };
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO`
    // handler; `getpid` is async-signal-safe.
    let seq = unsafe {
        if info.is_null() || (*info).si_code != libc::SI_QUEUE || (*info).si_pid() != libc::getpid()
        {
            None
        } else {
            Some((*info).si_value().sival_ptr as usize as u32 & SEQ_MASK)
        }
    };
    if let Some(seq) = seq {
        if SLOT
            .phase
            .compare_exchange(
                phase(seq, REQUESTED),
                phase(seq, CLAIMED),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            // SAFETY: `gettid` has no preconditions.
            HANDLER_TID.store(unsafe { libc::gettid() }, Ordering::Relaxed);
            let mut exact_first = false;
            let (len, flags) = match unwind::capture(context, &SLOT.ips, &mut exact_first) {
                Some(len) => (len, if exact_first { EXACT_FIRST } else { 0 }),
                None => (0, NO_ROOM),
            };
            SLOT.len.store(len, Ordering::Relaxed);
            SLOT.flags.store(flags, Ordering::Relaxed);
            HANDLER_RUNS.fetch_add(1, Ordering::Relaxed);
            HANDLER_TID.store(0, Ordering::Relaxed);
            SLOT.phase.store(phase(seq, DONE), Ordering::Release);
            crate::futex::wake_one(&SLOT.phase);
        }
    }
    // SAFETY: restoring the value saved above.
    unsafe { *errno_ptr = saved_errno };
}
