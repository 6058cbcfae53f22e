//! Native stacks of threads in every kind of wait: futex, pipe read, sleep,
//! busy loop; threads that block the signal, that exit mid-capture, and a
//! long run of snapshots while threads come and go.
//!
//! The captures use the libgcc unwinder ([`Method::Libgcc`]), since the
//! checks name this test's own functions and the test builds without frame
//! pointers, which the default frame-pointer walk needs to see them; nothing
//! here registers unwind information at run time, which is what makes
//! libgcc unsafe in a handler. `native_small_stack` and `native_jit_frames`
//! capture with the default.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use webstack::native::{self, Method};
use webstack::{Frame, Options, Routine, Snapshot};

fn capture() -> Snapshot {
    native::set_method(Method::Libgcc);
    Snapshot::capture(&Options::default().augment(true))
}

fn gettid() -> i64 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::gettid() as i64 }
}

fn thread_by_tid(snapshot: &Snapshot, tid: i64) -> &Routine {
    snapshot
        .routines
        .iter()
        .find(|r| r.tid == Some(tid))
        .unwrap_or_else(|| panic!("no routine for tid {tid} in {:#?}", names(snapshot)))
}

fn names(snapshot: &Snapshot) -> Vec<(Option<i64>, String, String)> {
    snapshot
        .routines
        .iter()
        .map(|r| (r.tid, r.name.to_string(), r.state.as_str().to_owned()))
        .collect()
}

fn position(frames: &[Frame], suffix: &str) -> Option<usize> {
    frames.iter().position(|f| f.function.ends_with(suffix))
}

fn describe(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| format!("  {} {}:{}\n", f.function, f.file, f.line))
        .collect()
}

/// Spawns a thread that reports its tid, then runs `body`.
fn spawn_reporting(name: &str, body: impl FnOnce() + Send + 'static) -> (i64, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            tx.send(gettid()).unwrap();
            body();
        })
        .unwrap();
    (rx.recv().unwrap(), handle)
}

/// Captures until the thread's stack shows `marker` (the thread may not have
/// reached its wait yet), and returns that routine.
fn capture_until(tid: i64, marker: &str) -> Routine {
    let started = Instant::now();
    loop {
        let snapshot = capture();
        let routine = thread_by_tid(&snapshot, tid).clone();
        if position(&routine.frames, marker).is_some() {
            return routine;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{marker} never appeared on tid {tid} ({}):\n{}",
            routine.state.as_str(),
            describe(&routine.frames)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[inline(never)]
fn wait_on_condvar(pair: &(Mutex<bool>, Condvar)) {
    let mut done = pair.0.lock().unwrap();
    while !*done {
        done = pair.1.wait(done).unwrap();
    }
}

#[test]
fn futex_wait_answers_with_its_stack() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let waiter = pair.clone();
    let (tid, handle) = spawn_reporting("condvar-waiter", move || wait_on_condvar(&waiter));
    let routine = capture_until(tid, "native_stacks::wait_on_condvar");
    assert_eq!(routine.name, "condvar-waiter");
    assert!(
        routine.state.as_str().starts_with("sleeping"),
        "{}",
        routine.state.as_str()
    );
    let marker = position(&routine.frames, "native_stacks::wait_on_condvar").unwrap();
    let condvar = routine
        .frames
        .iter()
        .position(|f| f.function.contains("Condvar") || f.function.contains("futex"))
        .unwrap_or_else(|| panic!("no futex frame:\n{}", describe(&routine.frames)));
    assert!(condvar < marker, "{}", describe(&routine.frames));
    let frame = &routine.frames[marker];
    assert!(!frame.instrumented);
    assert!(frame.address.is_some());
    assert!(frame.file.ends_with("native_stacks.rs"), "{}", frame.file);
    assert!(frame.line > 0);
    // The source line of a frame in this file is read from disk.
    assert!(frame.source.is_some(), "{frame:?}");
    assert!(routine
        .frames
        .iter()
        .all(|f| !f.function.contains("native::signal::handler")));
    *pair.0.lock().unwrap() = true;
    pair.1.notify_all();
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
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (result_tx, result_rx) = mpsc::channel();
    let read_end = fds[0];
    let (tid, handle) = spawn_reporting("pipe-reader", move || {
        result_tx.send(read_from_pipe(read_end)).unwrap();
    });
    let routine = capture_until(tid, "native_stacks::read_from_pipe");
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
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (tid, handle) = spawn_reporting("sleeper", move || sleep_until(&flag));
    let routine = capture_until(tid, "native_stacks::sleep_until");
    let marker = position(&routine.frames, "native_stacks::sleep_until").unwrap();
    let sleep = routine
        .frames
        .iter()
        .position(|f| f.function.starts_with("std::") && f.function.ends_with("::sleep"))
        .unwrap_or_else(|| panic!("{}", describe(&routine.frames)));
    assert!(sleep < marker);
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
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let (tid, handle) = spawn_reporting("spinner", move || {
        std::hint::black_box(spin_until(&flag));
    });
    let routine = capture_until(tid, "native_stacks::spin_until");
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
    webstack::__private::native::skip_blocked_check(true);
    let started = Instant::now();
    let snapshot = capture();
    let elapsed = started.elapsed();
    webstack::__private::native::skip_blocked_check(false);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(elapsed >= native::timeout(), "{elapsed:?}");
    let routine = thread_by_tid(&snapshot, tid);
    assert!(
        routine.state.as_str().contains("no answer (timed out)"),
        "{}",
        routine.state.as_str()
    );
    // Other threads still answered in the same snapshot.
    let me = thread_by_tid(&snapshot, gettid());
    assert!(
        position(
            &me.frames,
            "native_stacks::thread_blocking_the_signal_is_no_answer_without_stalling"
        )
        .is_some(),
        "{}",
        describe(&me.frames)
    );
    release_tx.send(()).unwrap();
    handle.join().unwrap();
}

#[test]
fn threads_exiting_during_captures_are_left_out() {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let spawner = std::thread::spawn(move || {
        let mut spawned = 0u32;
        while !flag.load(Ordering::Relaxed) {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    std::thread::Builder::new()
                        .name("short-lived".into())
                        .spawn(move || std::thread::sleep(Duration::from_millis(1 + i)))
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
        for routine in snapshot.routines.iter().filter(|r| r.name == "short-lived") {
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
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let churn = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let waiter = pair.clone();
            let handle = std::thread::spawn(move || wait_on_condvar(&waiter));
            std::thread::sleep(Duration::from_micros(300));
            *pair.0.lock().unwrap() = true;
            pair.1.notify_all();
            handle.join().unwrap();
        }
    });
    let started = Instant::now();
    let mut with_native = 0;
    for _ in 0..1000 {
        let snapshot = capture();
        assert!(snapshot.augmented);
        if snapshot
            .routines
            .iter()
            .any(|r| position(&r.frames, "native_stacks::wait_on_condvar").is_some())
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
