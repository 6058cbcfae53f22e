//! The signal handler allocates nothing: a counting global allocator counts
//! every allocation made on a thread while that thread runs the handler,
//! across hundreds of captures of threads in futex waits, pipe reads, sleeps
//! and busy loops, with the default method and the frame-pointer walk. The
//! threads run on the smallest alternate signal stack std gives
//! (`support::altstack`); a watchdog bounds the run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::altstack;
use support::gate::Gate;
use support::stack::{describe, whole};
use support::wait::watchdog;
use webstack::native::{self, Method};
use webstack::{Options, Snapshot};

struct Counting;

static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);

fn count() {
    TOTAL.fetch_add(1, Ordering::Relaxed);
    if webstack::__test_hooks::native::in_handler() {
        IN_HANDLER.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to `System`, only adding counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count();
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[inline(never)]
fn allocate_in_a_loop(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let v: Vec<u64> = (0..64).collect();
        std::hint::black_box(v);
    }
}

/// A loop that calls nothing (even in a debug build), so the interrupted
/// instruction is always in this function. Not `support::spin::spin_until`:
/// its body, inlined here, would be symbolised as its own (inlined) frame,
/// and the test looks for this function as the innermost one.
#[inline(never)]
fn spin_without_calls(stop: &AtomicBool) {
    let flag = stop.as_ptr();
    loop {
        let value: u8;
        // SAFETY: reads one byte of a live `AtomicBool`.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            std::arch::asm!("pause", "mov {v}, byte ptr [{p}]", p = in(reg) flag, v = out(reg_byte) value);
            #[cfg(not(target_arch = "x86_64"))]
            {
                value = u8::from(*flag);
            }
        }
        if value != 0 {
            break;
        }
    }
}

#[webstack::instrument]
fn wait_on(gate: &Gate) {
    gate.wait();
}

/// Checks that the spinning thread's stack has [`spin_without_calls`]
/// innermost and, if `whole_stack`, everything down to the thread's start.
fn spinner_shows_its_loop(spinner_tid: i64, whole_stack: bool) -> Result<(), String> {
    let snapshot = Snapshot::capture(&Options::default().augment(true));
    let frames = &snapshot
        .routines()
        .find(|r| r.tid == Some(spinner_tid))
        .expect("the spinning thread")
        .frames;
    let innermost = frames
        .first()
        .is_some_and(|f| f.function.ends_with("native_alloc::spin_without_calls"));
    if !innermost {
        return Err(format!("not innermost:\n{}", describe(frames)));
    }
    if whole_stack {
        whole(
            frames,
            &["native_alloc::spin_without_calls", "native_alloc::main"],
        )?;
    }
    Ok(())
}

fn main() {
    let _watchdog = watchdog("native_alloc", Duration::from_secs(120));
    // This thread is captured too.
    let _altstack = altstack::install_small();
    let stop = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Gate::new());
    let _open = gate.opener();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let read_end = fds[0];

    let mut handles = Vec::new();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    {
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let _altstack = altstack::install_small();
            allocate_in_a_loop(&stop);
        }));
    }
    {
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let _altstack = altstack::install_small();
            // SAFETY: `gettid` has no preconditions.
            tid_tx.send(i64::from(unsafe { libc::gettid() })).unwrap();
            spin_without_calls(&stop)
        }));
    }
    let spinner_tid = tid_rx.recv().unwrap();
    {
        let gate = gate.clone();
        handles.push(std::thread::spawn(move || {
            let _altstack = altstack::install_small();
            wait_on(&gate);
        }));
    }
    handles.push(std::thread::spawn(move || {
        let _altstack = altstack::install_small();
        let mut byte = [0u8; 1];
        // SAFETY: reading into a live one-byte buffer.
        unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) };
    }));
    {
        let stop = stop.clone();
        handles.push(std::thread::spawn(move || {
            let _altstack = altstack::install_small();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(50));

    for method in [Method::Auto, Method::FramePointers] {
        native::set_method(method);
        // `method()` names the method `Auto` stands for.
        if method != Method::Auto {
            assert_eq!(native::method(), method);
        }
        let runs = webstack::__test_hooks::native::handler_runs();
        for _ in 0..200 {
            let snapshot = Snapshot::capture(&Options::default().augment(true));
            assert!(snapshot.augmented, "{:?}", snapshot.native_error);
        }
        let answered = webstack::__test_hooks::native::handler_runs() - runs;
        // Six threads (main and five others) per capture; on a loaded
        // machine a thread may miss the timeout now and then.
        assert!(
            answered >= 200 * 5 * 9 / 10,
            "{method:?}: {answered} answers"
        );
        assert_eq!(
            IN_HANDLER.load(Ordering::Relaxed),
            0,
            "{method:?}: the handler allocated"
        );
        // Both methods start at the interrupted instruction; the default
        // also unwinds this test, built without frame pointers, down to the
        // thread's start (for the frame-pointer walk the chain above the
        // loop is not checked).
        let whole_stack = method == Method::Auto;
        let missed: Vec<String> = (0..20)
            .filter_map(|_| spinner_shows_its_loop(spinner_tid, whole_stack).err())
            .collect();
        assert!(
            missed.len() <= 5,
            "{method:?}: {} stacks in 20 missed the loop, the first: {}",
            missed.len(),
            missed[0]
        );
    }
    assert!(
        TOTAL.load(Ordering::Relaxed) > 0,
        "the counting allocator is in use"
    );

    stop.store(true, Ordering::Relaxed);
    gate.open();
    // SAFETY: writing one byte to the pipe's write end.
    unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) };
    for handle in handles {
        handle.join().unwrap();
    }
    println!("native_alloc: ok, no allocation in the handler");
}
