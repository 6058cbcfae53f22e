//! A thread spinning close to its stack's guard page: what a signal
//! handler that does not run on the alternate signal stack cannot survive.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::spin::spin_until;

/// The lowest usable address of the calling thread's stack.
pub fn stack_low_end() -> usize {
    // SAFETY: `attr` is initialised by `pthread_getattr_np` before use and
    // destroyed after; `addr` and `size` are writable out-parameters.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        assert_eq!(libc::pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
        libc::pthread_attr_destroy(&mut attr);
        addr as usize
    }
}

/// Recurses until at most `target` bytes of the calling thread's stack
/// remain below this frame, publishes what remains in `left`, then spins
/// there until `stop`.
pub fn descend_and_spin(target: usize, left: &AtomicUsize, stop: &AtomicBool) -> u64 {
    descend(stack_low_end(), target, left, stop)
}

#[inline(never)]
fn descend(low: usize, target: usize, left: &AtomicUsize, stop: &AtomicBool) -> u64 {
    let pad = black_box([7u8; 128]);
    let here = black_box(&pad) as *const [u8; 128] as usize;
    let remaining = here.saturating_sub(low);
    if remaining > target {
        return descend(low, target, left, stop) + u64::from(pad[1]);
    }
    left.store(remaining, Ordering::Release);
    spin_until(stop);
    u64::from(pad[0])
}
