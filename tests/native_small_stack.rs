//! A thread with a 64 KiB stack, recursed until about 2 KiB are left, is
//! captured with native stacks: the handler must not overflow that stack.
//! The process survives, and the thread shows its native frames (the
//! handler ran on the thread's alternate signal stack) or a clear "no room
//! to unwind" note. The same with the thread's alternate stack disabled
//! (as for a thread created by C code) and about 5 KiB left: enough for
//! the kernel's signal frame, so the handler runs on the thread's own stack
//! and must see that there is no room below it.
//!
//! Runs in a child process, so that an overflow fails the test instead of
//! killing the test binary.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::child::run_in_child;
use support::wait::watchdog;
use webstack::{Options, Snapshot};

/// Removes the calling thread's alternate signal stack.
fn disable_alternate_stack() {
    let disable = libc::stack_t {
        ss_sp: std::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: `disable` is a valid `stack_t`; the thread is not running on
    // its alternate stack.
    let rc = unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// The alternate signal stack of the captured thread.
#[derive(Clone, Copy, PartialEq)]
enum Alternate {
    /// The one std gave the thread.
    Std,
    /// The smallest std ever gives, installed on purpose
    /// (`max(SIGSTKSZ, AT_MINSIGSTKSZ)`): the same room on every CPU.
    Smallest,
    /// None at all.
    Disabled,
}

/// Spins a 64 KiB thread with about `target` bytes of stack left, with
/// the given alternate signal stack, captures it 20 times, and checks that
/// each capture shows its frames or the note; with [`Alternate::Smallest`],
/// that each shows its frames.
fn capture_a_thread_near_its_guard_page(target: usize, alternate: Alternate) {
    let stop = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicUsize::new(0));
    let (tid_tx, tid_rx) = mpsc::channel();
    let deep = {
        let (stop, left) = (stop.clone(), left.clone());
        std::thread::Builder::new()
            .name("small-stack".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _smallest =
                    (alternate == Alternate::Smallest).then(support::altstack::install_small);
                if alternate == Alternate::Disabled {
                    disable_alternate_stack();
                }
                // SAFETY: `gettid` has no preconditions.
                tid_tx.send(i64::from(unsafe { libc::gettid() })).unwrap();
                black_box(support::guard_page::descend_and_spin(target, &left, &stop));
            })
            .unwrap()
    };
    let tid = tid_rx.recv().unwrap();
    while left.load(Ordering::Acquire) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let remaining = left.load(Ordering::Acquire);
    println!("spinning with {remaining} bytes of stack left");
    assert!((target - 1024..=target).contains(&remaining), "{remaining}");
    let mut answered = 0;
    let mut no_room = 0;
    let mut others = Vec::new();
    for _ in 0..20 {
        let snapshot = Snapshot::capture(&Options::default().augment(true));
        assert!(snapshot.augmented, "{:?}", snapshot.native_error);
        let routine = snapshot
            .routines()
            .find(|r| r.tid == Some(tid))
            .expect("the small-stack thread is in the snapshot");
        let state = routine.state.as_str();
        let frames: Vec<&str> = routine.frames.iter().map(|f| &*f.function).collect();
        // The innermost frames are the spinning loop, inlined into
        // `descend`. (How many outer frames follow depends on frame
        // pointers.)
        if frames
            .iter()
            .take(2)
            .any(|f| f.ends_with("guard_page::descend"))
        {
            answered += 1;
        } else if state.contains("no room to unwind") && frames.is_empty() {
            no_room += 1;
        } else {
            others.push(format!("{state}, {frames:?}"));
        }
    }
    println!("of 20 captures, {answered} showed the thread's frames, {no_room} said no room");
    assert!(
        others.is_empty(),
        "{} captures showed neither the thread's frames nor a note: {others:#?}",
        others.len()
    );
    if alternate == Alternate::Smallest {
        // The handler only saves registers and copies the stack: a few
        // hundred bytes, which the smallest alternate stack always has.
        assert_eq!(
            (answered, no_room),
            (20, 0),
            "an alternate stack of {} bytes must be room enough",
            support::altstack::small_size()
        );
    }
    stop.store(true, Ordering::Relaxed);
    deep.join().unwrap();
}

#[test]
fn a_thread_near_its_guard_page_survives_a_capture() {
    let _watchdog = watchdog(
        "native_small_stack::a_thread_near_its_guard_page_survives_a_capture",
        Duration::from_secs(120),
    );
    run_in_child(
        "a_thread_near_its_guard_page_survives_a_capture",
        Duration::from_secs(60),
        || capture_a_thread_near_its_guard_page(2048 + 256, Alternate::Std),
    );
}

#[test]
fn a_thread_without_alternate_stack_near_its_guard_page_survives_a_capture() {
    let _watchdog = watchdog(
        "native_small_stack::a_thread_without_alternate_stack_near_its_guard_page_survives_a_capture",
        Duration::from_secs(120),
    );
    run_in_child(
        "a_thread_without_alternate_stack_near_its_guard_page_survives_a_capture",
        Duration::from_secs(60),
        || capture_a_thread_near_its_guard_page(5376, Alternate::Disabled),
    );
}

#[test]
fn a_thread_near_its_guard_page_with_the_smallest_alternate_stack_shows_its_frames() {
    let _watchdog = watchdog(
        "native_small_stack::a_thread_near_its_guard_page_with_the_smallest_alternate_stack_shows_its_frames",
        Duration::from_secs(120),
    );
    run_in_child(
        "a_thread_near_its_guard_page_with_the_smallest_alternate_stack_shows_its_frames",
        Duration::from_secs(60),
        || capture_a_thread_near_its_guard_page(2048 + 256, Alternate::Smallest),
    );
}
