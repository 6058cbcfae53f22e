//! A snapshot never waits for a task whose poll is blocked: whichever way
//! the root was entered (a worker thread, a thread-local destructor after
//! the thread's registration was torn down, `block_on` on the main thread),
//! `capture` returns within 100 ms and shows the task as running.
//!
//! Runs without the test harness, so that one case really blocks the
//! process's main thread.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::wait::watchdog;
use webstack::{Options, Snapshot};

#[webstack::instrument(skip(started, release))]
async fn blocked_poll(path: u32, started: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    started.send(()).unwrap();
    // Blocks inside the poll, as a task stuck on a std lock or channel does.
    let _ = release.recv();
}

#[webstack::instrument]
fn register_thread() {}

/// Captures from a helper thread while `path`'s task is blocked in its
/// poll; fails (after unblocking the task) if the capture does not return
/// within 100 ms or does not show the task running.
fn capture_while_blocked(path: u32, started: mpsc::Receiver<()>, release: mpsc::Sender<()>) {
    started
        .recv_timeout(Duration::from_secs(10))
        .expect("the task started its poll");
    let (done_tx, done_rx) = mpsc::channel();
    let capturer = std::thread::spawn(move || {
        let start = Instant::now();
        let snapshot = Snapshot::capture(&Options::default().augment(false));
        let _ = done_tx.send((start.elapsed(), snapshot));
    });
    let result = done_rx.recv_timeout(Duration::from_secs(5));
    let _ = release.send(());
    capturer.join().unwrap();
    let (elapsed, snapshot) = result.unwrap_or_else(|_| {
        panic!("path {path}: capture waited for the blocked poll (still waiting after 5 s)")
    });
    assert!(
        elapsed < Duration::from_millis(100),
        "path {path}: capture took {elapsed:?}"
    );
    let task = snapshot
        .routines()
        .find(|r| r.name == "blocked_poll")
        .unwrap_or_else(|| panic!("path {path}: the blocked task is not in the snapshot"));
    assert_eq!(task.state.as_str(), "running", "path {path}");
    assert!(
        task.running_on.is_some(),
        "path {path}: a running task names the thread polling it"
    );
}

fn on_a_worker_thread() {
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        futures::executor::block_on(blocked_poll(1, started_tx, release_rx));
    });
    capture_while_blocked(1, started, release);
    worker.join().unwrap();
}

/// Polls the task when the thread's thread-locals are destroyed.
struct PollOnExit(Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>);

impl Drop for PollOnExit {
    fn drop(&mut self) {
        if let Some((started, release)) = self.0.take() {
            futures::executor::block_on(blocked_poll(2, started, release));
        }
    }
}

thread_local! {
    static POLL_ON_EXIT: std::cell::RefCell<PollOnExit> =
        const { std::cell::RefCell::new(PollOnExit(None)) };
}

fn in_a_thread_local_destructor() {
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        // Destructors run in reverse order of first use: this one runs after
        // webstack's, so the poll happens on the detached stack.
        POLL_ON_EXIT.with(|slot| slot.borrow_mut().0 = Some((started_tx, release_rx)));
        register_thread();
    });
    capture_while_blocked(2, started, release);
    worker.join().unwrap();
}

fn with_block_on_on_the_main_thread() {
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let capturer = std::thread::spawn(move || capture_while_blocked(3, started, release));
    futures::executor::block_on(blocked_poll(3, started_tx, release_rx));
    capturer.join().unwrap();
}

fn main() {
    let cases: [(&str, fn()); 3] = [
        ("on a worker thread", on_a_worker_thread),
        ("in a thread-local destructor", in_a_thread_local_destructor),
        (
            "with block_on on the main thread",
            with_block_on_on_the_main_thread,
        ),
    ];
    for (name, case) in cases {
        // A capture that waits for the blocked poll would hang the joins.
        let _watchdog = watchdog(name, Duration::from_secs(60));
        case();
        println!("test {name} ... ok");
    }
}
