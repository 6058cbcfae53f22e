//! Cache prefetch hints, for the read side's walks over many cold
//! allocations (task records, routines' frames) whose addresses the
//! hardware's stride prefetcher cannot guess.

/// Cache lines are 64 bytes on every target this hint does something on.
const LINE: usize = 64;

/// Asks the CPU to start loading the cache line at `address`, for a read
/// soon after. Only a hint: it reads nothing the program sees, never
/// faults, and is a no-op off x86-64.
#[inline]
pub(crate) fn line(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that loads nothing into registers and
    // does not fault, whatever the address; SSE is part of x86-64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// [`line`] for each cache line of the `bytes` bytes from `start`.
#[inline]
pub(crate) fn bytes(start: *const u8, bytes: usize) {
    for offset in (0..bytes).step_by(LINE) {
        line(start.wrapping_add(offset));
    }
}
