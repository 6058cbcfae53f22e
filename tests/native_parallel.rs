//! Native capture in parallel: every thread is signalled at once and the
//! collector waits for all answers against one deadline, so threads that
//! block the signal cost one timeout together, not one each, and every
//! other thread still answers in the same snapshot. The threads run on the
//! smallest alternate signal stack std gives (`support::altstack`) and wait
//! at a gate that opens if the test fails; a watchdog bounds the test.
#![cfg(target_os = "linux")]

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::altstack;
use support::gate::Gate;
use support::wait::watchdog;
use webstack::native;
use webstack::{Options, Snapshot};

const BLOCKING: usize = 4;
const ANSWERING: usize = 16;

/// Spawns `BLOCKING` threads that block the native-stack signal and
/// `ANSWERING` threads, all waiting at the gate `release`; returns their
/// tids.
fn spawn_threads(release: &Arc<Gate>) -> (Vec<i64>, Vec<i64>, Vec<std::thread::JoinHandle<()>>) {
    let signal = native::current_signal().expect("Linux");
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..BLOCKING + ANSWERING {
        let tx = tx.clone();
        let release = release.clone();
        handles.push(std::thread::spawn(move || {
            let _altstack = altstack::install_small();
            let blocks = i < BLOCKING;
            if blocks {
                // SAFETY: a zeroed `sigset_t` is valid to initialise; the
                // calls only change this thread's mask.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, signal);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                }
            }
            // SAFETY: `gettid` has no preconditions.
            tx.send((blocks, unsafe { libc::gettid() } as i64)).unwrap();
            release.wait();
        }));
    }
    let mut blocking = Vec::new();
    let mut answering = Vec::new();
    for _ in 0..BLOCKING + ANSWERING {
        let (blocks, tid) = rx.recv().unwrap();
        if blocks {
            blocking.push(tid);
        } else {
            answering.push(tid);
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    (blocking, answering, handles)
}

/// The routine of the thread `tid` in `snapshot`; `what` names it if absent.
fn thread(snapshot: &Snapshot, tid: i64, what: &str) -> webstack::Routine {
    snapshot
        .routines()
        .find(|r| r.tid == Some(tid))
        .unwrap_or_else(|| panic!("{what} {tid} is not in the snapshot"))
}

#[test]
fn threads_blocking_the_signal_cost_one_timeout_together() {
    let _watchdog = watchdog(
        "native_parallel::threads_blocking_the_signal_cost_one_timeout_together",
        Duration::from_secs(120),
    );
    native::set_timeout(Duration::from_secs(1));
    let release = Arc::new(Gate::new());
    let (blocking, answering, handles) = spawn_threads(&release);
    let _open = release.opener();

    // Ask every thread, even those known to block the signal.
    webstack::__test_hooks::native::skip_blocked_check(true);
    let runs = webstack::__test_hooks::native::handler_runs();
    let started = Instant::now();
    let snapshot = Snapshot::capture(&Options::default().augment(true));
    let elapsed = started.elapsed();
    webstack::__test_hooks::native::skip_blocked_check(false);
    assert!(snapshot.augmented, "{:?}", snapshot.native_error);

    for tid in &blocking {
        let routine = thread(&snapshot, *tid, "a blocking thread");
        assert!(
            routine.state.as_str().contains("no answer (timed out)"),
            "{}",
            routine.state.as_str()
        );
    }
    for tid in &answering {
        let routine = thread(&snapshot, *tid, "an answering thread");
        assert!(
            !routine.state.as_str().contains("no answer"),
            "{}",
            routine.state.as_str()
        );
        assert!(!routine.frames.is_empty(), "{tid}: no native frame");
    }
    assert!(
        webstack::__test_hooks::native::handler_runs() - runs >= ANSWERING as u64,
        "every answering thread ran the handler"
    );
    // One deadline for the whole batch: four blocked threads asked one after
    // another would cost four timeouts (4 s); together they cost one.
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "{elapsed:?}: the blocked threads were waited for one after another"
    );

    // The next capture reads their masks first and does not wait at all for
    // them; the late signals still pending are never claimed.
    let snapshot = Snapshot::capture(&Options::default().augment(true));
    assert!(snapshot.augmented, "{:?}", snapshot.native_error);
    for tid in &blocking {
        let routine = thread(&snapshot, *tid, "a blocking thread");
        assert!(
            routine.state.as_str().contains("no answer (signal"),
            "{}",
            routine.state.as_str()
        );
    }
    release.open();
    for handle in handles {
        handle.join().unwrap();
    }
    // The blocked threads exited with their signals pending, never claimed:
    // later captures still work.
    let snapshot = Snapshot::capture(&Options::default().augment(true));
    assert!(snapshot.augmented, "{:?}", snapshot.native_error);
    native::set_timeout(native::DEFAULT_TIMEOUT);
}
