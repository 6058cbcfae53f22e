//! What the signal handler takes of the interrupted thread: its registers
//! and a bounded copy of the top of its stack. Nothing here unwinds; the
//! collector does that afterwards on the copy ([`super::unwind`]).
//! Everything called from [`take`] is async-signal-safe: no allocation, no
//! lock, and memory of the interrupted stack is read only through
//! `process_vm_readv`, which fails with `EFAULT` instead of faulting.
//!
//! # Why a copy
//!
//! An unwinder that reads DWARF call-frame information needs more stack
//! than a signal handler can count on (libgcc's used 1.6 KiB in a debug
//! build; std's alternate signal stacks leave about 4.5 KiB below the
//! kernel's AVX-512 signal frame on CPUs without AMX), and libgcc's takes
//! locks that the interrupted thread may hold (`__register_frame` of JIT
//! compilers). Copying needs neither: the handler records the registers an
//! unwinder starts from and copies the stack from the stack pointer up to
//! the end of the thread's stack (its descriptor, which the C library puts
//! at the top of the stack, or else the end of the mapping holding the
//! stack pointer), at most the copy bound
//! ([`set_stack_copy`](crate::native::set_stack_copy), 64 KiB by default),
//! into its slot's preallocated buffer, in one system call.
//!
//! # Room to run
//!
//! The handler is installed with `SA_ONSTACK`, so it runs on the thread's
//! alternate signal stack where the thread has one (std gives one to the
//! main thread and to every thread it spawns, of
//! `max(SIGSTKSZ, getauxval(AT_MINSIGSTKSZ))` bytes, part of which holds the
//! kernel's signal frame). Before copying, [`has_room`] measures the room left
//! below its own frame: on the alternate stack from its bounds
//! (`sigaltstack`), on the thread's own stack (a thread created without
//! one) by reading one byte of each page below the stack pointer with
//! `process_vm_readv`, which fails on the guard page. With less than
//! [`ROOM`] it copies nothing and the thread is shown as `no room to
//! unwind`. A thread without an alternate stack whose own stack cannot even
//! hold the kernel's signal frame and the handler's first frames (about
//! 1 KiB in a debug build, before the check runs) is killed when the signal
//! arrives: no handler can prevent that. Nor can one help a thread whose
//! alternate stack is smaller than the kernel's signal frame.

use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Registers saved per thread: enough for a DWARF unwinder on x86_64 (pc,
/// sp, fp and the callee-saved rbx, r12–r15) and aarch64 (pc, sp, fp, lr
/// and the callee-saved x19–x28).
pub(super) const REGS: usize = 14;

/// Indices into the saved registers.
pub(super) const PC: usize = 0;
pub(super) const SP: usize = 1;
pub(super) const FP: usize = 2;
/// The link register (aarch64; 0 on x86_64).
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(super) const LR: usize = 3;

/// Stack the handler needs below its own frame to copy, with a wide
/// margin: the handler's frames and the system call used under 700 bytes
/// in a debug build.
pub(super) const ROOM: usize = 2 << 10;

/// The process's writable mappings, `[start, end)` sorted by start, as
/// published by the collector for the handlers of one capture (see
/// [`publish_mappings`]); null when none is published.
static MAPPINGS: AtomicPtr<[usize; 2]> = AtomicPtr::new(std::ptr::null_mut());
static MAPPINGS_LEN: AtomicUsize = AtomicUsize::new(0);

/// Publishes the process's writable mappings (sorted, disjoint `[start,
/// end)` pairs) for the handlers of the coming requests, which copy the
/// stack only up to the end of the mapping holding the interrupted stack
/// pointer: the thread's stack. An empty slice withdraws them.
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

/// What [`take`] found.
pub(super) enum Taken {
    /// The registers were saved and `copied` bytes of the stack from the
    /// stack pointer up; `cut` when the stack goes on above the copy.
    Copied { copied: usize, cut: bool },
    /// The kernel gave no usable context (an architecture webstack does not
    /// read registers of).
    NoContext,
}

/// Whether the stack the handler runs on has [`ROOM`] below this call.
/// Called from the signal handler before anything else.
#[inline(never)]
pub(super) fn has_room(pid: libc::pid_t) -> bool {
    stack_room(ROOM, pid) >= ROOM
}

/// Saves the interrupted context's registers into `regs` and copies the
/// top of its stack into `buffer` (`capacity` bytes, written by the kernel
/// only). Called only from the signal handler, after [`has_room`]; `pid`
/// is this process's.
///
/// # Safety
///
/// `buffer` must be valid for writes of `capacity` bytes, and nothing may
/// read or write it until the handler has published its answer.
pub(super) unsafe fn take(
    context: *mut c_void,
    regs: &[AtomicUsize; REGS],
    buffer: *mut u8,
    capacity: usize,
    pid: libc::pid_t,
) -> Taken {
    let Some(saved) = registers(context) else {
        return Taken::NoContext;
    };
    for (slot, value) in regs.iter().zip(saved) {
        slot.store(value, Ordering::Relaxed);
    }
    let sp = saved[SP];
    let mut wanted = capacity;
    let mut cut = true;
    if let Some(mut end) = stack_end(sp) {
        // The C library keeps a thread's descriptor at the top of the
        // stack it allocated, above every frame (glibc and musl). The
        // kernel may have merged the stack's mapping with memory above it:
        // where the descriptor lies in the same mapping, the stack ends
        // there. (The main thread's lies elsewhere.)
        // SAFETY: `pthread_self` reads the thread pointer register and
        // nothing else: no lock, no allocation, no system call.
        let descriptor = unsafe { libc::pthread_self() } as usize;
        if (sp..end).contains(&descriptor) {
            end = descriptor;
        }
        if end - sp <= capacity {
            wanted = end - sp;
            cut = false;
        }
    }
    // A mapping that shrank since the table was read fails the whole read:
    // try shorter copies, which still hold the innermost frames.
    let full = wanted;
    let mut copied = 0;
    for _ in 0..4 {
        // SAFETY: `buffer` is writable for `capacity >= wanted` bytes (the
        // caller's promise); the kernel validates the remote range.
        let read = unsafe { read_memory(pid, sp, buffer, wanted) };
        if read > 0 {
            copied = read;
            break;
        }
        wanted /= 4;
        if wanted == 0 {
            break;
        }
    }
    Taken::Copied {
        copied,
        cut: cut || copied < full,
    }
}

/// Reads `len` bytes at `address` of this process (`pid`) into `out`;
/// returns the count read (possibly short), or 0 on failure.
///
/// # Safety
/// `out` must be valid for writes of `len` bytes.
unsafe fn read_memory(pid: libc::pid_t, address: usize, out: *mut u8, len: usize) -> usize {
    let local = libc::iovec {
        iov_base: out.cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: address as *mut c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes `len` writable bytes (the caller's
    // promise); the kernel validates `remote` and fails with `EFAULT`
    // instead of faulting. A raw system call, async-signal-safe.
    let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    usize::try_from(read).unwrap_or(0)
}

/// Registers of the interrupted context, in the order of the constants
/// above.
fn registers(context: *mut c_void) -> Option<[usize; REGS]> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the kernel passes a valid `ucontext_t` as the handler's third
        // argument.
        let gregs = unsafe { &(*uc).uc_mcontext.gregs };
        let reg = |index: libc::c_int| gregs[index as usize] as usize;
        let mut out = [0; REGS];
        out[PC] = reg(libc::REG_RIP);
        out[SP] = reg(libc::REG_RSP);
        out[FP] = reg(libc::REG_RBP);
        for (slot, index) in out[4..].iter_mut().zip([
            libc::REG_RBX,
            libc::REG_R12,
            libc::REG_R13,
            libc::REG_R14,
            libc::REG_R15,
        ]) {
            *slot = reg(index);
        }
        Some(out)
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above.
        let mc = unsafe { &(*uc).uc_mcontext };
        let mut out = [0; REGS];
        out[PC] = mc.pc as usize;
        out[SP] = mc.sp as usize;
        out[FP] = mc.regs[29] as usize;
        out[LR] = mc.regs[30] as usize;
        for (slot, value) in out[4..].iter_mut().zip(&mc.regs[19..29]) {
            *slot = *value as usize;
        }
        Some(out)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = uc;
        None
    }
}

/// Bytes of stack below the caller's frame, up to `wanted` (at most
/// [`ROOM`]): on the alternate signal stack if the handler runs there, else
/// on the thread's own stack, as far as its pages are readable.
/// Async-signal-safe: raw system calls only (`sigaltstack`,
/// `process_vm_readv`). `pid` is this process's.
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
    const PAGES: usize = ROOM.div_ceil(PAGE) + 1;
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

    #[test]
    fn a_read_of_unmapped_memory_fails_instead_of_faulting() {
        // SAFETY: `getpid` has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mut out = [0u8; 64];
        // SAFETY: `out` is writable for its length.
        let read = unsafe { read_memory(pid, 8, out.as_mut_ptr(), out.len()) };
        assert_eq!(read, 0);
        let source = [7u8; 64];
        // SAFETY: as above.
        let read =
            unsafe { read_memory(pid, source.as_ptr() as usize, out.as_mut_ptr(), out.len()) };
        assert_eq!(read, 64);
        assert_eq!(out, source);
    }
}
