//! Native stacks of threads in every kind of wait: futex, pipe read, sleep,
//! busy loop; threads that block the signal, that exit mid-capture, and a
//! long run of snapshots while threads come and go.
//!
//! The captures use the default method, which must give whole stacks of
//! code built without frame pointers, as this test is: the checks name this
//! test's own functions, from the blocking call to the thread's start
//! (`support::stack`). Every captured thread runs on the smallest alternate
//! signal stack std gives (`support::altstack`), whatever this machine's
//! `AT_MINSIGSTKSZ`, and every test is bounded by a watchdog.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::altstack;
use support::gate::Gate;
use support::stack::{assert_whole, whole};
use support::wait::watchdog;
use webstack::native;
use webstack::{Frame, Options, Routine, Snapshot};

/// Far above the slowest test's time (`thousand_snapshots_…`, about 20 s in
/// a debug build, 45 s at most).
const LIMIT: Duration = Duration::from_secs(120);

fn capture() -> Snapshot {
    Snapshot::capture(&Options::default().augment(true))
}

fn gettid() -> i64 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::gettid() as i64 }
}

fn thread_by_tid(snapshot: &Snapshot, tid: i64) -> Routine {
    snapshot
        .routines()
        .find(|r| r.tid == Some(tid))
        .unwrap_or_else(|| panic!("no routine for tid {tid} in {:#?}", names(snapshot)))
}

fn names(snapshot: &Snapshot) -> Vec<(Option<i64>, String, String)> {
    snapshot
        .routines()
        .map(|r| (r.tid, r.name.to_string(), r.state.as_str().to_owned()))
        .collect()
}

fn position(frames: &[Frame], suffix: &str) -> Option<usize> {
    frames.iter().position(|f| f.function.ends_with(suffix))
}

/// Spawns a thread on the small alternate stack that reports its tid, then
/// runs `body`.
fn spawn_reporting(name: &str, body: impl FnOnce() + Send + 'static) -> (i64, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _altstack = altstack::install_small();
            tx.send(gettid()).unwrap();
            body();
        })
        .unwrap();
    (rx.recv().unwrap(), handle)
}

/// What a thread started by [`spawn_reporting`] has outermost, before the
/// thread's start.
const REPORTING: &str = "native_stacks::spawn_reporting";

/// Captures until the thread's native stack is whole down to `chain` (the
/// thread may not have reached its wait yet), and returns that routine;
/// fails with the last stack after 10 s.
fn capture_until(tid: i64, chain: &[&str]) -> Routine {
    let started = Instant::now();
    loop {
        let snapshot = capture();
        let routine = thread_by_tid(&snapshot, tid).clone();
        match whole(&routine.frames, chain) {
            Ok(()) => return routine,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "tid {tid} ({}) never showed a whole stack: {e}",
                routine.state.as_str(),
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[inline(never)]
fn wait_on_condvar(gate: &Gate) {
    gate.wait();
}

/// A thread in [`wait_on_condvar`], from the futex call up.
const IN_CONDVAR: [&str; 4] = [
    "syscall|futex_wait",
    "Condvar::wait",
    "support::gate::Gate::wait",
    "native_stacks::wait_on_condvar",
];

#[test]
fn futex_wait_answers_with_its_stack() {
    let _watchdog = watchdog("native_stacks::futex_wait_answers_with_its_stack", LIMIT);
    let gate = Arc::new(Gate::new());
    let waiter = gate.clone();
    let (tid, handle) = spawn_reporting("condvar-waiter", move || wait_on_condvar(&waiter));
    let _open = gate.opener();
    let routine = capture_until(tid, &[&IN_CONDVAR[..], &[REPORTING]].concat());
    assert_eq!(routine.name, "condvar-waiter");
    assert!(
        routine.state.as_str().starts_with("sleeping"),
        "{}",
        routine.state.as_str()
    );
    let marker = position(&routine.frames, "native_stacks::wait_on_condvar").unwrap();
    let frame = &routine.frames[marker];
    assert!(!frame.instrumented);
    assert!(frame.address.is_some());
    assert!(frame.file.ends_with("native_stacks.rs"), "{}", frame.file);
    assert!(frame.line > 0);
    // The source line of a frame in this file is read from disk when shown.
    assert!(frame.source.is_none(), "{frame:?}");
    let line = capture().source_line(frame);
    assert_eq!(line.as_deref(), Some("gate.wait();"), "{frame:?}");
    assert!(routine
        .frames
        .iter()
        .all(|f| !f.function.contains("native::signal::handler")));
    gate.open();
    handle.join().unwrap();
}

#[inline(never)]
fn read_from_pipe(fd: i32) -> Vec<u8> {
    // SAFETY: `fd` is the read end of a pipe, owned by this function.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut data = Vec::new();
    file.read_to_end(&mut data).unwrap();
    data
}

#[test]
fn blocking_pipe_read_answers_and_still_returns_its_data() {
    let _watchdog = watchdog(
        "native_stacks::blocking_pipe_read_answers_and_still_returns_its_data",
        LIMIT,
    );
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (result_tx, result_rx) = mpsc::channel();
    let read_end = fds[0];
    let (tid, handle) = spawn_reporting("pipe-reader", move || {
        result_tx.send(read_from_pipe(read_end)).unwrap();
    });
    let routine = capture_until(
        tid,
        &[
            "libc_read|__read",
            "read_to_end",
            "native_stacks::read_from_pipe",
            REPORTING,
        ],
    );
    assert!(
        routine.state.as_str().starts_with("sleeping"),
        "{}",
        routine.state.as_str()
    );
    // Interrupt the read a few more times: SA_RESTART resumes it each time.
    for _ in 0..20 {
        capture();
    }
    let message = b"data after the captures";
    // SAFETY: writing a live buffer to the pipe's write end, then closing it.
    unsafe {
        assert_eq!(
            libc::write(fds[1], message.as_ptr().cast(), message.len()),
            message.len() as isize
        );
        libc::close(fds[1]);
    }
    let data = result_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(data, message);
    handle.join().unwrap();
}

#[inline(never)]
fn sleep_until(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sleeping_thread_answers() {
    let _watchdog = watchdog("native_stacks::sleeping_thread_answers", LIMIT);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (tid, handle) = spawn_reporting("sleeper", move || sleep_until(&flag));
    let routine = capture_until(
        tid,
        &[
            "nanosleep",
            "std::thread",
            "native_stacks::sleep_until",
            REPORTING,
        ],
    );
    assert!(
        routine.state.as_str().contains("sleep"),
        "{}",
        routine.state.as_str()
    );
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

#[inline(never)]
fn spin_until(stop: &AtomicBool) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
    }
    n
}

#[test]
fn busy_thread_answers() {
    let _watchdog = watchdog("native_stacks::busy_thread_answers", LIMIT);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (tid, handle) = spawn_reporting("spinner", move || {
        std::hint::black_box(spin_until(&flag));
    });
    let routine = capture_until(tid, &["native_stacks::spin_until", REPORTING]);
    assert!(position(&routine.frames, "native_stacks::spin_until").unwrap() <= 2);
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
}

fn block_signal(signal: i32) {
    // SAFETY: `set` is initialised by `sigemptyset` before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
}

#[test]
fn thread_blocking_the_signal_is_no_answer_without_stalling() {
    let _watchdog = watchdog(
        "native_stacks::thread_blocking_the_signal_is_no_answer_without_stalling",
        LIMIT,
    );
    // This thread is captured too.
    let _altstack = altstack::install_small();
    let signal = native::current_signal().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (tid, handle) = spawn_reporting("blocks-signal", move || {
        block_signal(signal);
        release_rx.recv().ok();
    });
    // Let the thread block the signal before the first capture.
    std::thread::sleep(Duration::from_millis(50));

    // First capture: the collector asks, waits for the timeout, goes on
    // (or, if another test's capture asked first, sees the blocked signal).
    let started = Instant::now();
    let snapshot = capture();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    let routine = thread_by_tid(&snapshot, tid);
    assert!(
        routine.state.as_str().contains("no answer ("),
        "{}",
        routine.state.as_str()
    );
    assert!(routine.frames.is_empty());
    assert!(snapshot.augmented);

    // Next time the collector reads the thread's signal mask first and does
    // not wait for it again.
    let snapshot = capture();
    let routine = thread_by_tid(&snapshot, tid);
    assert!(
        routine
            .state
            .as_str()
            .contains("no answer (signal blocked)"),
        "{}",
        routine.state.as_str()
    );

    // Without that check, the collector asks and times out again.
    webstack::__test_hooks::native::skip_blocked_check(true);
    let started = Instant::now();
    let snapshot = capture();
    let elapsed = started.elapsed();
    webstack::__test_hooks::native::skip_blocked_check(false);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed >= native::timeout(), "{elapsed:?}");
    let routine = thread_by_tid(&snapshot, tid);
    assert!(
        routine.state.as_str().contains("no answer (timed out)"),
        "{}",
        routine.state.as_str()
    );
    // Other threads still answered in the same snapshot, whole.
    let me = thread_by_tid(&snapshot, gettid());
    assert_whole(
        &me.frames,
        &["native_stacks::thread_blocking_the_signal_is_no_answer_without_stalling"],
    );
    release_tx.send(()).unwrap();
    handle.join().unwrap();
}

#[test]
fn threads_exiting_during_captures_are_left_out() {
    let _watchdog = watchdog(
        "native_stacks::threads_exiting_during_captures_are_left_out",
        LIMIT,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawner = std::thread::spawn(move || {
        let mut spawned = 0u32;
        while !flag.load(Ordering::Relaxed) {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    std::thread::Builder::new()
                        .name("short-lived".into())
                        .spawn(move || {
                            let _altstack = altstack::install_small();
                            std::thread::sleep(Duration::from_millis(1 + i));
                        })
                        .unwrap()
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
            spawned += 4;
        }
        spawned
    });
    let started = Instant::now();
    let mut seen = 0;
    for _ in 0..100 {
        let snapshot = capture();
        for routine in snapshot.routines().filter(|r| r.name == "short-lived") {
            // A thread that exited after it was listed is left out, never
            // reported as timed out. One still starting may block all
            // signals (glibc does until the thread runs): no answer, at once.
            assert!(!routine.state.as_str().contains("timed out"), "{routine:?}");
            if !routine.state.as_str().contains("no answer") {
                assert!(!routine.frames.is_empty(), "{routine:?}");
                seen += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let spawned = spawner.join().unwrap();
    assert!(spawned > 0);
    assert!(started.elapsed() < Duration::from_secs(30));
    // Some snapshots caught short-lived threads alive and answering.
    assert!(seen > 0, "no short-lived thread ever captured");
}

#[test]
fn thousand_snapshots_while_threads_come_and_go() {
    let _watchdog = watchdog(
        "native_stacks::thousand_snapshots_while_threads_come_and_go",
        LIMIT,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let churn = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            let gate = Arc::new(Gate::new());
            let waiter = gate.clone();
            let handle = std::thread::spawn(move || {
                let _altstack = altstack::install_small();
                wait_on_condvar(&waiter);
            });
            std::thread::sleep(Duration::from_micros(300));
            gate.open();
            handle.join().unwrap();
        }
    });
    let started = Instant::now();
    let mut with_native = 0;
    for _ in 0..1000 {
        let snapshot = capture();
        assert!(snapshot.augmented);
        if snapshot
            .routines()
            .any(|r| whole(&r.frames, &IN_CONDVAR).is_ok())
        {
            with_native += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "too slow: {:?}",
            started.elapsed()
        );
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(with_native > 0);
}
