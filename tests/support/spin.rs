//! Spinning in place, for tests that interrupt a thread and must know which
//! function the interrupted instruction is in.

use std::sync::atomic::AtomicBool;

/// Spins until `stop` without calling any function, not even in a debug
/// build: inlined into its caller, the interrupted instruction is always in
/// the caller's frame.
#[inline(always)]
pub fn spin_until(stop: &AtomicBool) {
    let flag = stop.as_ptr();
    loop {
        let value: u8;
        // SAFETY: reads one byte of a live `AtomicBool`.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            std::arch::asm!("pause", "mov {v}, byte ptr [{p}]", p = in(reg) flag, v = out(reg_byte) value);
            #[cfg(target_arch = "aarch64")]
            std::arch::asm!("yield", "ldrb {v:w}, [{p}]", p = in(reg) flag, v = out(reg) value);
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            {
                value = u8::from(*flag);
            }
        }
        if value != 0 {
            return;
        }
    }
}
