//! A thread that registers and deregisters unwind information at run time,
//! as JIT compilers do (`__register_frame`), while snapshots with native
//! stacks run in a loop: no handler may wait on the lock libgcc holds during
//! registration, so every capture answers, the thread keeps running, and
//! native stacks stay enabled.
//!
//! Runs in a child process: a handler deadlocked on its own thread would
//! otherwise leave a stuck test binary. The registering thread runs on the
//! smallest alternate signal stack std gives (`support::altstack`).
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::altstack;
use support::child::run_in_child;
use support::wait::watchdog;
use webstack::{Options, Snapshot};

extern "C" {
    // libgcc_s, which every Rust program on Linux links for unwinding.
    fn __register_frame(begin: *const u8);
    fn __deregister_frame(begin: *const u8);
}

/// "Code" the synthetic FDE describes: never executed, never on a stack.
static FAKE_CODE: [u8; 64] = [0; 64];

fn push_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Pads a record with `DW_CFA_nop` so that it (length field included) ends
/// on a pointer-size boundary, then writes its length.
fn finish_record(out: &mut Vec<u8>, start: usize) {
    while (out.len() - start) % 8 != 0 {
        out.push(0);
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// An `.eh_frame`-like section: one CIE, one FDE for [`FAKE_CODE`], and the
/// zero terminator. Returned in `u64`s so that it is 8-byte aligned.
fn synthetic_eh_frame() -> Vec<u64> {
    #[cfg(target_arch = "x86_64")]
    let (return_register, initial): (u8, &[u8]) = (
        16,
        // DW_CFA_def_cfa rsp+8; DW_CFA_offset rip at cfa-8.
        &[0x0c, 7, 8, 0x80 | 16, 1],
    );
    #[cfg(target_arch = "aarch64")]
    let (return_register, initial): (u8, &[u8]) = (
        30,
        // DW_CFA_def_cfa sp+0.
        &[0x0c, 31, 0],
    );
    let mut out = Vec::new();
    // CIE.
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&0u32.to_ne_bytes()); // CIE id
    out.push(1); // version
    out.extend_from_slice(b"zR\0");
    push_uleb(&mut out, 1); // code alignment
    out.push(0x78); // data alignment: sleb128 -8
    out.push(return_register);
    push_uleb(&mut out, 1); // augmentation data length
    out.push(0x00); // FDE pointers: DW_EH_PE_absptr
    out.extend_from_slice(initial);
    finish_record(&mut out, 0);
    // FDE.
    let fde = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&((fde + 4) as u32).to_ne_bytes()); // back to the CIE
    out.extend_from_slice(&(FAKE_CODE.as_ptr() as u64).to_ne_bytes());
    out.extend_from_slice(&(FAKE_CODE.len() as u64).to_ne_bytes());
    push_uleb(&mut out, 0); // augmentation data length
    finish_record(&mut out, fde);
    // Terminator.
    out.extend_from_slice(&[0; 8]);
    out.chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

#[inline(never)]
fn register_in_a_loop(stop: &AtomicBool, rounds: &AtomicU64) {
    let section = synthetic_eh_frame();
    let begin = section.as_ptr().cast::<u8>();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `section` is a well-formed, zero-terminated `.eh_frame`
        // image that outlives its registration; each registration is undone
        // before the next.
        unsafe {
            __register_frame(begin);
            __deregister_frame(begin);
        }
        rounds.fetch_add(1, Ordering::Relaxed);
    }
}

fn captures_while_a_thread_registers_frames() {
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let (tid_tx, tid_rx) = mpsc::channel();
    let jit = {
        let (stop, rounds) = (stop.clone(), rounds.clone());
        std::thread::Builder::new()
            .name("jit".into())
            .spawn(move || {
                let _altstack = altstack::install_small();
                // SAFETY: `gettid` has no preconditions.
                tid_tx.send(i64::from(unsafe { libc::gettid() })).unwrap();
                register_in_a_loop(&stop, &rounds)
            })
            .unwrap()
    };
    let jit_tid = tid_rx.recv().unwrap();
    while rounds.load(Ordering::Relaxed) < 1000 {
        std::thread::yield_now();
    }
    let started = Instant::now();
    let mut captures = 0u32;
    let mut answered = 0u32;
    while started.elapsed() < Duration::from_secs(3) {
        let before = Instant::now();
        let snapshot = Snapshot::capture(&Options::default().augment(true));
        let took = before.elapsed();
        captures += 1;
        assert!(
            snapshot.augmented && snapshot.native_error.is_none(),
            "capture {captures} (method {:?}) after {took:?}: native stacks lost: {:?}",
            webstack::native::method(),
            snapshot.native_error
        );
        let jit = snapshot
            .routines()
            .find(|r| r.tid == Some(jit_tid))
            .expect("the registering thread is in the snapshot");
        assert!(
            !jit.state.as_str().contains("did not finish"),
            "capture {captures}: {}",
            jit.state.as_str()
        );
        if !jit.frames.is_empty() {
            answered += 1;
        }
    }
    // The registering thread is not stuck in a handler.
    let seen = rounds.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        rounds.load(Ordering::Relaxed) > seen,
        "the registering thread stopped after {seen} rounds"
    );
    stop.store(true, Ordering::Relaxed);
    jit.join().unwrap();
    assert!(captures >= 10, "only {captures} captures in 3 s");
    assert!(
        answered * 10 >= captures * 9,
        "the registering thread answered {answered} of {captures} captures"
    );
    println!(
        "{captures} captures, {answered} answered, {} registrations, method {:?}",
        rounds.load(Ordering::Relaxed),
        webstack::native::method()
    );
}

#[test]
fn captures_never_hang_on_a_thread_registering_unwind_info() {
    let _watchdog = watchdog(
        "native_jit_frames::captures_never_hang_on_a_thread_registering_unwind_info",
        Duration::from_secs(120),
    );
    run_in_child(
        "captures_never_hang_on_a_thread_registering_unwind_info",
        Duration::from_secs(30),
        captures_while_a_thread_registers_frames,
    );
}
