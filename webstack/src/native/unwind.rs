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
//! instead of faulting. It is the default ([`Method::Auto`]); the libgcc
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

use std::ffi::c_void;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::Method;

/// The method chosen by [`set_method`]: 0 auto, 1 libgcc, 2 frame pointers.
static CHOSEN: AtomicU8 = AtomicU8::new(0);
/// The method the handler uses, set by the collector before each capture.
static ACTIVE: AtomicU8 = AtomicU8::new(2);

const LIBGCC: u8 = 1;
const FRAME_POINTERS: u8 = 2;

/// The frame-pointer walk stops this far above the interrupted stack
/// pointer. Only a stop for a corrupt chain: the walk reads through
/// `process_vm_readv`, so no address it follows can fault.
const MAX_STACK_SPAN: usize = 64 << 20;

/// Frames the libgcc walk may skip (the handler, the unwinder, the signal
/// trampoline) before it finds the interrupted instruction.
const MAX_SKIPPED: usize = 32;

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
/// count. Called only from the signal handler.
pub(super) fn capture(context: *mut c_void, out: &[AtomicUsize], exact_first: &mut bool) -> usize {
    let regs = registers(context);
    if ACTIVE.load(Ordering::Relaxed) == LIBGCC {
        let n = libgcc_walk(regs.map(|(pc, _, _)| pc), out);
        // One frame only: the interrupted code has no unwind tables (or the
        // trampoline was not crossed); frame pointers may still go further.
        if n > 1 || (n == 1 && regs.is_none()) {
            *exact_first = regs.is_some();
            return n;
        }
    }
    match regs {
        Some((pc, sp, fp)) => {
            *exact_first = true;
            frame_pointer_walk(pc, sp, fp, out)
        }
        None => 0,
    }
}

/// Walks with `_Unwind_Backtrace`, dropping the frames above the
/// interrupted instruction `pc` (the handler, the unwinder, the signal
/// trampoline). Returns 0 if `pc` is never reached.
fn libgcc_walk(pc: Option<usize>, out: &[AtomicUsize]) -> usize {
    let mut n = 0;
    let mut skipped = 0;
    let mut found = pc.is_none();
    // SAFETY: the collector holds the capture lock, so no other unwind runs
    // in the process; the closure neither panics nor allocates. Signal
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
/// record must lie above the previous one, be aligned and lie within
/// [`MAX_STACK_SPAN`] of the stack pointer; records are read with
/// `process_vm_readv`, which fails instead of faulting on a bad address.
fn frame_pointer_walk(pc: usize, sp: usize, mut fp: usize, out: &[AtomicUsize]) -> usize {
    let Some(first) = out.first() else {
        return 0;
    };
    first.store(pc, Ordering::Relaxed);
    let mut n = 1;
    let limit = sp.saturating_add(MAX_STACK_SPAN);
    while n < out.len() {
        if fp < sp || fp >= limit || fp % std::mem::align_of::<usize>() != 0 {
            break;
        }
        let Some([next_fp, ret]) = read_two_words(fp) else {
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

fn read_two_words(addr: usize) -> Option<[usize; 2]> {
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
    let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    (read == std::mem::size_of_val(&words) as isize).then_some(words)
}
