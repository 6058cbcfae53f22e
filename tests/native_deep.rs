//! A stack deeper than the handler's copy: its innermost frames are shown,
//! and the thread's state says that the outermost are not, never silently;
//! with a larger copy bound the same stack is whole. The thread recurses
//! about 100 KiB deep on the 8 KiB alternate signal stack std gives CPUs
//! without AMX, in a test built without frame pointers.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use support::altstack;
use support::gate::Gate;
use support::stack::{assert_whole, describe};
use support::wait::watchdog;
use webstack::{native, Options, Routine, Snapshot};

/// Frames of about 1 KiB each, `depth` of them, then a wait on `gate`.
#[inline(never)]
fn descend(depth: usize, gate: &Gate, reached: &AtomicBool) -> u64 {
    let pad = black_box([depth as u8; 1024]);
    if depth == 0 {
        reached.store(true, Ordering::Release);
        gate.wait();
        return u64::from(pad[7]);
    }
    descend(depth - 1, gate, reached) + u64::from(pad[3])
}

#[inline(never)]
fn deep_entry(gate: &Gate, reached: &AtomicBool) -> u64 {
    descend(90, gate, reached)
}

fn routine(snapshot: &Snapshot, tid: i64) -> Routine {
    snapshot
        .routines()
        .find(|r| r.tid == Some(tid))
        .expect("the deep thread is in the snapshot")
}

#[test]
fn a_stack_deeper_than_the_copy_says_so_and_a_larger_copy_shows_it_whole() {
    let _watchdog = watchdog(
        "native_deep::a_stack_deeper_than_the_copy_says_so_and_a_larger_copy_shows_it_whole",
        Duration::from_secs(120),
    );
    let gate = Arc::new(Gate::new());
    let _opener = gate.opener();
    let reached = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let thread = {
        let (gate, reached) = (gate.clone(), reached.clone());
        std::thread::Builder::new()
            .name("deep".into())
            .stack_size(4 << 20)
            .spawn(move || {
                let _altstack = altstack::install_small();
                // SAFETY: `gettid` has no preconditions.
                tx.send(unsafe { libc::gettid() } as i64).unwrap();
                deep_entry(&gate, &reached)
            })
            .unwrap()
    };
    let tid = rx.recv().unwrap();
    while !reached.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let options = Options::default().augment(true);

    assert_eq!(native::stack_copy(), native::DEFAULT_STACK_COPY);
    let snapshot = Snapshot::capture(&options);
    let cut = routine(&snapshot, tid);
    let text = describe(&cut.frames);
    assert!(
        cut.state
            .as_str()
            .ends_with("stack deeper than 64 KiB: the outermost frames are not shown"),
        "state {:?}\n{text}",
        cut.state.as_str()
    );
    assert!(
        cut.frames.iter().any(|f| f.function.ends_with("descend")),
        "{text}"
    );
    assert!(
        !cut.frames
            .iter()
            .any(|f| f.function.ends_with("deep_entry")),
        "{text}"
    );

    native::set_stack_copy(1 << 20);
    let snapshot = Snapshot::capture(&options);
    native::set_stack_copy(native::DEFAULT_STACK_COPY);
    let whole = routine(&snapshot, tid);
    assert!(
        !whole.state.as_str().contains("deeper"),
        "state {:?}",
        whole.state.as_str()
    );
    let levels = whole
        .frames
        .iter()
        .filter(|f| f.function.ends_with("descend"))
        .count();
    assert_eq!(levels, 91, "{}", describe(&whole.frames));
    assert_whole(&whole.frames, &["Condvar::wait", "descend", "deep_entry"]);

    gate.open();
    thread.join().unwrap();

    // The bound stays between a page and 8 MiB.
    native::set_stack_copy(1);
    assert_eq!(native::stack_copy(), 4 << 10);
    native::set_stack_copy(usize::MAX);
    assert_eq!(native::stack_copy(), 8 << 20);
    native::set_stack_copy(native::DEFAULT_STACK_COPY);
}
