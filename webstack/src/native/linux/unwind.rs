//! Unwinding inside the signal handler: a bounded frame-pointer walk by
//! default, the libgcc unwinder only when chosen explicitly. Everything
//! called from [`capture`] is async-signal-safe: no allocation, no lock.
//!
//! # Why frame pointers by default
//!
//! libgcc's `_Unwind_Find_FDE` first searches the unwind information that
//! JIT compilers (cranelift/wasmtime, LuaJIT, some profilers) register at run
//! time with `__register_frame`, under a global mutex (GCC 12 and earlier) or
//! a version lock that readers spin on (GCC 13 and later), and the first
//! search of a newly registered object sorts it with `malloc`. A handler
//! that unwinds with libgcc on a thread interrupted inside
//! `__register_frame`, `__deregister_frame` or its own unwinding (a panic, a
//! backtrace) waits forever on a lock its own thread holds. Whether anything
//! registered frames cannot be known from outside libgcc, and no version of
//! glibc or libgcc makes the search lock-free, so no run-time check can make
//! the libgcc unwinder safe in every process. The frame-pointer walk takes no
//! lock, calls nothing but `process_vm_readv`, and reads the interrupted
//! stack only through it: a read outside mapped memory fails with `EFAULT`
//! instead of faulting. It follows records only inside the thread's stack,
//! the writable mapping holding the interrupted stack pointer, from a table
//! of mappings the collector reads before signalling
//! ([`publish_mappings`]), so that a register that holds data instead of a
//! frame pointer does not send it through the heap. It is the default ([`Method::Auto`]); the libgcc
//! unwinder stays available as [`Method::Libgcc`] for processes that know
//! nothing registers frames at run time.
//!
//! Its cost: code built without frame pointers (Rust's default on x86_64,
//! in debug and release builds alike; the standard library is shipped with
//! them) records no frame of its own, so the function that called it is not
//! seen, and the stack shows the functions that called code *with* frame
//! pointers. Build with `RUSTFLAGS="-C force-frame-pointers=yes"` for
//! complete stacks.
//!
//! # Room to run
//!
//! The handler is installed with `SA_ONSTACK`, so it runs on the thread's
//! alternate signal stack where the thread has one (std gives one to the
//! main thread and to every thread it spawns, of
//! `max(SIGSTKSZ, getauxval(AT_MINSIGSTKSZ))` bytes, part of which holds the
//! kernel's signal frame). Before unwinding, [`capture`] measures the room
//! left below its own frame: on the alternate stack from its bounds
//! (`sigaltstack`), on the thread's own stack (a thread created without one)
//! by reading one byte of each page below the stack pointer with
//! `process_vm_readv`, which fails on the guard page. With less than
//! [`FRAME_POINTER_ROOM`] it unwinds nothing and the thread is shown as
//! `no room to unwind`; the libgcc unwinder, which needs more, runs only
//! with [`LIBGCC_ROOM`] to spare and otherwise gives way to the frame-pointer
//! walk. A thread without an alternate stack whose own stack cannot even
//! hold the kernel's signal frame and the handler's first frames (about
//! 1 KiB in a debug build, before the check runs) is killed when the signal
//! arrives: no handler can prevent that. Nor can one help a thread whose
//! alternate stack is smaller than the kernel's signal frame (one of the
//! legacy `MINSIGSTKSZ`, 2 KiB): such a thread cannot take any `SA_ONSTACK`
//! signal, its own application's included.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

use super::Method;

/// The method chosen by [`set_method`]: 0 auto, 1 libgcc, 2 frame pointers.
static CHOSEN: AtomicU8 = AtomicU8::new(0);
/// The method the handler uses, set by the collector before each capture.
static ACTIVE: AtomicU8 = AtomicU8::new(2);

const LIBGCC: u8 = 1;
const FRAME_POINTERS: u8 = 2;

/// The frame-pointer walk never goes further than this above the
/// interrupted stack pointer. Only a stop for a corrupt chain: the walk
/// reads through `process_vm_readv`, so no address it follows can fault.
const MAX_STACK_SPAN: usize = 64 << 20;

/// The process's writable mappings, `[start, end)` sorted by start, as
/// published by the collector for the handlers of one capture (see
/// [`publish_mappings`]); null when none is published.
static MAPPINGS: AtomicPtr<[usize; 2]> = AtomicPtr::new(std::ptr::null_mut());
static MAPPINGS_LEN: AtomicUsize = AtomicUsize::new(0);

/// Frames the libgcc walk may skip (the handler, the unwinder, the signal
/// trampoline) before it finds the interrupted instruction.
const MAX_SKIPPED: usize = 32;

/// Stack the frame-pointer walk needs below the handler's frame, with a
/// wide margin: it used under 300 bytes in a debug build (measured on a
/// painted alternate stack).
pub(super) const FRAME_POINTER_ROOM: usize = 2 << 10;

/// Stack the libgcc unwinder needs below the handler's frame, with a
/// margin: it used about 1.6 KiB in a debug build. std's alternate stacks
/// leave about 8 KiB below the kernel's signal frame on an AVX-512 machine
/// (`AT_MINSIGSTKSZ` 11,952 bytes, a signal frame of about 3.7 KiB).
pub(super) const LIBGCC_ROOM: usize = 6 << 10;

pub(super) fn set_method(method: Method) {
    let code = match method {
        Method::Auto => 0,
        Method::Libgcc => LIBGCC,
        Method::FramePointers => FRAME_POINTERS,
    };
    CHOSEN.store(code, Ordering::Relaxed);
}

pub(super) fn effective_method() -> Method {
    match CHOSEN.load(Ordering::Relaxed) {
        LIBGCC => Method::Libgcc,
        _ => Method::FramePointers,
    }
}

/// Sets the method the handler will use; called by the collector under the
/// capture lock.
pub(super) fn activate() -> Method {
    let method = effective_method();
    let code = if method == Method::Libgcc {
        LIBGCC
    } else {
        FRAME_POINTERS
    };
    ACTIVE.store(code, Ordering::Relaxed);
    method
}

/// Publishes the process's writable mappings (sorted, disjoint `[start,
/// end)` pairs) for the handlers of the coming requests, which end the
/// frame-pointer walk at the end of the mapping holding the interrupted
/// stack pointer: the thread's stack. An empty slice withdraws them.
///
/// # Safety
///
/// `mappings` must stay allocated and unchanged until every handler that
/// may read it has finished: the collector publishes it before it sends the
/// first request (whose `Release` store orders it before the handler's
/// claim), withdraws it after the last answer, and leaks it if a handler
/// never finished.
pub(super) unsafe fn publish_mappings(mappings: &[[usize; 2]]) {
    let ptr = if mappings.is_empty() {
        std::ptr::null_mut()
    } else {
        mappings.as_ptr().cast_mut()
    };
    MAPPINGS_LEN.store(mappings.len(), Ordering::Relaxed);
    MAPPINGS.store(ptr, Ordering::Relaxed);
}

/// The end of the published mapping that holds `sp`, if any.
fn stack_end(sp: usize) -> Option<usize> {
    let ptr = MAPPINGS.load(Ordering::Relaxed);
    if ptr.is_null() {
        return None;
    }
    let len = MAPPINGS_LEN.load(Ordering::Relaxed);
    // SAFETY: a non-null pointer was published with this length by
    // `publish_mappings`, whose caller keeps the slice alive and unchanged
    // until this handler has finished; the collector publishes before the
    // first request of a capture and withdraws after the last answer, never
    // while a handler that claimed a slot runs.
    let mappings = unsafe { std::slice::from_raw_parts(ptr, len) };
    mapping_end(mappings, sp)
}

/// The end of the mapping in `mappings` (sorted, disjoint) that holds `sp`.
fn mapping_end(mappings: &[[usize; 2]], sp: usize) -> Option<usize> {
    let after = mappings.partition_point(|m| m[0] <= sp);
    let [start, end] = *mappings.get(after.checked_sub(1)?)?;
    (start..end).contains(&sp).then_some(end)
}

/// Runs the unwinder once outside any handler, so that symbol binding and
/// its one-time initialisation (which may lock or allocate) happen here.
pub(super) fn warm_up() {
    let mut frames = 0usize;
    // SAFETY: captures are serialised by the caller (the capture lock or the
    // installation lock); the closure does not panic.
    unsafe {
        backtrace::trace_unsynchronized(|_| {
            frames += 1;
            frames < 4
        });
    }
}

/// Registers of the interrupted context: instruction, stack and frame
/// pointers.
fn registers(context: *mut c_void) -> Option<(usize, usize, usize)> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the kernel passes a valid `ucontext_t` as the handler's third
        // argument.
        let gregs = unsafe { &(*uc).uc_mcontext.gregs };
        Some((
            gregs[libc::REG_RIP as usize] as usize,
            gregs[libc::REG_RSP as usize] as usize,
            gregs[libc::REG_RBP as usize] as usize,
        ))
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above.
        let mc = unsafe { &(*uc).uc_mcontext };
        Some((mc.pc as usize, mc.sp as usize, mc.regs[29] as usize))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = uc;
        None
    }
}

/// Unwinds the interrupted thread into `out`, innermost first; returns the
/// count, or `None` if the stack the handler runs on has no room for the
/// unwinder (see the module docs). Called only from the signal handler.
pub(super) fn capture(
    context: *mut c_void,
    out: &[AtomicUsize],
    exact_first: &mut bool,
    pid: libc::pid_t,
) -> Option<usize> {
    let room = stack_room(LIBGCC_ROOM, pid);
    if room < FRAME_POINTER_ROOM {
        return None;
    }
    let regs = registers(context);
    if ACTIVE.load(Ordering::Relaxed) == LIBGCC && room >= LIBGCC_ROOM {
        let n = libgcc_walk(regs.map(|(pc, _, _)| pc), out);
        // One frame only: the interrupted code has no unwind tables (or the
        // trampoline was not crossed); frame pointers may still go further.
        if n > 1 || (n == 1 && regs.is_none()) {
            *exact_first = regs.is_some();
            return Some(n);
        }
    }
    Some(match regs {
        Some((pc, sp, fp)) => {
            *exact_first = true;
            let span_end = sp.saturating_add(MAX_STACK_SPAN);
            let limit = stack_end(sp).map_or(span_end, |end| end.min(span_end));
            frame_pointer_walk(pc, sp, fp, limit, out, pid)
        }
        None => 0,
    })
}

/// Bytes of stack below the caller's frame, up to `wanted`: on the
/// alternate signal stack if the handler runs there, else on the thread's
/// own stack, as far as its pages are readable. Async-signal-safe: raw
/// system calls only (`sigaltstack`, `process_vm_readv`). `pid` is this
/// process's.
#[inline(never)]
fn stack_room(wanted: usize, pid: libc::pid_t) -> usize {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    // SAFETY: a zeroed `stack_t` is a valid out-parameter.
    let mut alt: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `alt` is writable. A raw system
    // call, async-signal-safe.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sigaltstack,
            std::ptr::null::<libc::stack_t>(),
            &mut alt as *mut libc::stack_t,
        )
    };
    if rc == 0 && alt.ss_flags & libc::SS_ONSTACK != 0 {
        let low = alt.ss_sp as usize;
        return if (low..low.saturating_add(alt.ss_size)).contains(&here) {
            (here - low).min(wanted)
        } else {
            0
        };
    }
    readable_below(here, wanted, pid)
}

/// How many of the `wanted` bytes below `here` lie in readable pages,
/// counted in whole pages from the one holding `here` down, stopping at the
/// first unreadable page (a guard page, or the end of the mapping).
fn readable_below(here: usize, wanted: usize, pid: libc::pid_t) -> usize {
    const PAGE: usize = 4096;
    const PAGES: usize = LIBGCC_ROOM.div_ceil(PAGE);
    let top = here & !(PAGE - 1);
    let pages = wanted.div_ceil(PAGE).min(PAGES).min(top / PAGE);
    let mut bytes = [0u8; PAGES];
    let mut remote = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 1,
    }; PAGES];
    let mut k = 0;
    while k < pages {
        // One byte of the page k+1 pages below the one holding `here`.
        remote[k].iov_base = (top - (k + 1) * PAGE) as *mut c_void;
        k += 1;
    }
    let local = libc::iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: pages,
    };
    // SAFETY: `local` describes `bytes`, writable for `pages` bytes; the
    // first `pages` entries of `remote` are set above; the kernel validates
    // each remote address and stops at the first one it cannot read (a
    // partial read) instead of faulting.
    let read = unsafe {
        libc::process_vm_readv(pid, &local, 1, remote.as_ptr(), pages as libc::c_ulong, 0)
    };
    let pages_read = usize::try_from(read).unwrap_or(0);
    (here - top + pages_read * PAGE).min(wanted)
}

/// Walks with `_Unwind_Backtrace`, dropping the frames above the
/// interrupted instruction `pc` (the handler, the unwinder, the signal
/// trampoline). Returns 0 if `pc` is never reached.
fn libgcc_walk(pc: Option<usize>, out: &[AtomicUsize]) -> usize {
    let mut n = 0;
    let mut skipped = 0;
    let mut found = pc.is_none();
    // SAFETY: with `Method::Libgcc` the collector asks one thread at a time
    // under the capture lock and waits for each answer (a handler that never
    // finishes disables native stacks), so no other unwind runs in the
    // process; the closure neither panics nor allocates. Signal
    // safety is the caller's choice: this runs only for `Method::Libgcc`,
    // documented as safe only where nothing registers frames at run time and
    // the C library finds unwind tables without the loader lock.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            let ip = frame.ip() as usize;
            if !found {
                if Some(ip) == pc {
                    found = true;
                } else {
                    skipped += 1;
                    return skipped < MAX_SKIPPED;
                }
            }
            if let Some(slot) = out.get(n) {
                slot.store(ip, Ordering::Relaxed);
                n += 1;
            }
            n < out.len() && ip != 0
        });
    }
    if found {
        n
    } else {
        0
    }
}

/// Follows the frame-pointer chain from the interrupted context. Each frame
/// record must lie above the previous one, be aligned and lie wholly in
/// `sp..limit` (the thread's stack: up to the end of the mapping that holds
/// `sp`, and never more than [`MAX_STACK_SPAN`]); records are read with
/// `process_vm_readv`, which fails instead of faulting on a bad address.
fn frame_pointer_walk(
    pc: usize,
    sp: usize,
    mut fp: usize,
    limit: usize,
    out: &[AtomicUsize],
    pid: libc::pid_t,
) -> usize {
    const RECORD: usize = 2 * std::mem::size_of::<usize>();
    let Some(first) = out.first() else {
        return 0;
    };
    first.store(pc, Ordering::Relaxed);
    let mut n = 1;
    while n < out.len() {
        if fp < sp || fp.saturating_add(RECORD) > limit || fp % std::mem::align_of::<usize>() != 0 {
            break;
        }
        let Some([next_fp, ret]) = read_two_words(fp, pid) else {
            break;
        };
        if ret == 0 {
            break;
        }
        out[n].store(ret, Ordering::Relaxed);
        n += 1;
        if next_fp <= fp {
            break;
        }
        fp = next_fp;
    }
    n
}

/// Reads the frame record at `addr` in this process (`pid`).
fn read_two_words(addr: usize, pid: libc::pid_t) -> Option<[usize; 2]> {
    let mut words = [0usize; 2];
    let local = libc::iovec {
        iov_base: words.as_mut_ptr().cast(),
        iov_len: std::mem::size_of_val(&words),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: std::mem::size_of_val(&words),
    };
    // SAFETY: `local` describes `words`, writable for its length; the kernel
    // validates `remote` and returns an error instead of faulting.
    let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    (read == std::mem::size_of_val(&words) as isize).then_some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_end_finds_the_mapping_holding_the_address() {
        let mappings = [[0x1000, 0x3000], [0x5000, 0x6000]];
        assert_eq!(mapping_end(&mappings, 0x1000), Some(0x3000));
        assert_eq!(mapping_end(&mappings, 0x2fff), Some(0x3000));
        assert_eq!(mapping_end(&mappings, 0x3000), None);
        assert_eq!(mapping_end(&mappings, 0x5800), Some(0x6000));
        assert_eq!(mapping_end(&mappings, 0x0fff), None);
        assert_eq!(mapping_end(&mappings, 0x7000), None);
        assert_eq!(mapping_end(&[], 0x1000), None);
    }

    /// A chain of frame records in one buffer: the first half plays the
    /// thread's stack, the second half the memory above it.
    #[test]
    fn the_frame_pointer_walk_stays_inside_the_limit() {
        let mut words = vec![0usize; 64];
        let base = words.as_ptr() as usize;
        let word = std::mem::size_of::<usize>();
        // Records at words 4, 12, 20 (below the limit), 36 and 44 (above).
        let records = [4, 12, 20, 36, 44];
        for (i, &at) in records.iter().enumerate() {
            let next = records.get(i + 1).map_or(0, |&w| base + w * word);
            words[at] = next;
            words[at + 1] = 0x1000 + i;
        }
        let sp = base;
        let fp = base + 4 * word;
        let out: Vec<AtomicUsize> = (0..16).map(|_| AtomicUsize::new(0)).collect();
        let read = |n: usize| -> Vec<usize> {
            out[..n].iter().map(|a| a.load(Ordering::Relaxed)).collect()
        };
        let limit = base + 32 * word;
        // SAFETY: `getpid` has no preconditions.
        let pid = unsafe { libc::getpid() };
        let n = frame_pointer_walk(0x42, sp, fp, limit, &out, pid);
        assert_eq!(read(n), [0x42, 0x1000, 0x1001, 0x1002]);
        let n = frame_pointer_walk(0x42, sp, fp, base + 64 * word, &out, pid);
        assert_eq!(read(n), [0x42, 0x1000, 0x1001, 0x1002, 0x1003, 0x1004]);
        // A record straddling the limit is not read.
        let n = frame_pointer_walk(0x42, sp, fp, base + 21 * word, &out, pid);
        assert_eq!(read(n), [0x42, 0x1000, 0x1001]);
        std::hint::black_box(&mut words);
    }
}
