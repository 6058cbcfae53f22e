//! The smallest alternate signal stack std gives a thread, installed on
//! purpose: `max(SIGSTKSZ, AT_MINSIGSTKSZ)` bytes, 8 KiB on x86_64 and
//! aarch64 unless the CPU's signal frame needs more (AMX). The native-stack
//! handler runs on it, so a test whose threads install it sees that room on
//! every machine, not whatever this one's `AT_MINSIGSTKSZ` gives std
//! (issue 22: stacks cut on a machine whose 8 KiB were too small).

use std::cell::RefCell;
use std::marker::PhantomData;

/// `SIGSTKSZ` on x86_64 and aarch64, and the size std never goes below.
const SIGSTKSZ: usize = 8192;

/// The size [`install_small`] gives: `max(SIGSTKSZ, AT_MINSIGSTKSZ)`, what
/// std's thread start allocates.
pub fn small_size() -> usize {
    // SAFETY: `getauxval` only reads the process's auxiliary vector; an
    // absent entry reads as 0.
    let minimum = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) };
    usize::try_from(minimum).map_or(SIGSTKSZ, |minimum| minimum.max(SIGSTKSZ))
}

/// The calling thread's alternate signal stack while it lives: a mapping of
/// [`small_size`] bytes above a guard page, so that a handler that
/// overflows it faults instead of writing over other memory. Dropped, it
/// puts back the alternate stack it replaced and unmaps its own; it must be
/// dropped on the thread that installed it (it is not `Send`).
#[derive(Debug)]
#[must_use = "the alternate stack is removed when the guard is dropped"]
pub struct AltStackGuard {
    mapping: *mut libc::c_void,
    mapping_len: usize,
    installed: libc::stack_t,
    previous: libc::stack_t,
    _not_send: PhantomData<*mut ()>,
}

/// Installs an alternate signal stack of [`small_size`] bytes on the calling
/// thread, until the guard is dropped. Call it first thing in every thread
/// whose native stack a test checks.
pub fn install_small() -> AltStackGuard {
    install(small_size())
}

fn install(size: usize) -> AltStackGuard {
    // SAFETY: `sysconf` has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).expect("page size");
    let mapping_len = page + size.next_multiple_of(page);
    // SAFETY: a new private anonymous mapping at an address the kernel
    // chooses: no existing memory is touched.
    let mapping = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            mapping_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(
        mapping,
        libc::MAP_FAILED,
        "mmap of an alternate stack: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the first page of the mapping just made, which nothing uses.
    let rc = unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) };
    assert_eq!(rc, 0, "guard page: {}", std::io::Error::last_os_error());
    let installed = libc::stack_t {
        // SAFETY: `page` bytes into a mapping of `page + size` bytes or more.
        ss_sp: unsafe { mapping.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: a zeroed `stack_t` is a valid out-parameter.
    let mut previous: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: `installed` describes `size` writable bytes that stay mapped
    // until the guard's drop, which takes them out of use first;
    // `previous` is a valid out-parameter.
    let rc = unsafe { libc::sigaltstack(&installed, &mut previous) };
    assert_eq!(
        rc,
        0,
        "sigaltstack of {size} bytes: {}",
        std::io::Error::last_os_error()
    );
    AltStackGuard {
        mapping,
        mapping_len,
        installed,
        previous,
        _not_send: PhantomData,
    }
}

impl Drop for AltStackGuard {
    fn drop(&mut self) {
        // SAFETY: a zeroed `stack_t` is a valid out-parameter; a null new
        // stack only asks for the current one.
        let current = unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            libc::sigaltstack(std::ptr::null(), &mut current);
            current
        };
        if current.ss_flags & libc::SS_ONSTACK != 0 {
            // A handler is running on an alternate stack, maybe this one:
            // leave everything as it is, the mapping leaks.
            return;
        }
        if current.ss_sp == self.installed.ss_sp {
            // SAFETY: `previous` is the stack this thread had when the guard
            // was made, on this thread (the guard is not `Send`). Its owner
            // frees it only when the thread ends, after disabling it: if
            // that had happened, ours would no longer be the current one.
            unsafe { libc::sigaltstack(&self.previous, std::ptr::null_mut()) };
        }
        // SAFETY: the mapping made in `install`, no longer the thread's
        // alternate stack and not in use (no handler runs on it).
        unsafe { libc::munmap(self.mapping, self.mapping_len) };
    }
}

thread_local! {
    static KEPT: RefCell<Option<AltStackGuard>> = const { RefCell::new(None) };
}

/// Gives every thread of the runtime `builder` builds (workers and blocking
/// threads) the small alternate stack, from its start to its stop: the
/// runtime starts those threads, not the test.
pub fn on_runtime_threads(builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
    builder
        .on_thread_start(|| {
            KEPT.with(|kept| {
                let mut kept = kept.borrow_mut();
                if kept.is_none() {
                    *kept = Some(install_small());
                }
            });
        })
        .on_thread_stop(|| KEPT.with(|kept| drop(kept.borrow_mut().take())))
}
