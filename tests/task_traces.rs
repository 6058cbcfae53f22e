//! Task traces (`--cfg tokio_unstable`, feature `taskdump`): under
//! `augment=1`, every idle task of a runtime built with
//! `webstack::tokio::hooks` shows the line it waits at, annotated or not,
//! within a deadline that a stuck worker cannot stretch. Run with
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test -p webstack-tests
//! --features taskdump --test task_traces`; otherwise this file is empty.
#![cfg(all(
    tokio_unstable,
    feature = "taskdump",
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::io::Write as _;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::wait::{wait_until, watchdog};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream as AsyncStream};
use tokio::sync::{broadcast, oneshot};
use webstack::{Buckets, Kind, Options, Routine, Similarity, Snapshot, State};

/// Far above any test's time (seconds in a debug build).
const LIMIT: Duration = Duration::from_secs(120);

fn runtime() -> tokio::runtime::Runtime {
    webstack::tokio::hooks(&mut tokio::runtime::Builder::new_multi_thread())
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn capture() -> Snapshot {
    webstack::native::set_task_traces(true);
    Snapshot::capture(&Options::default())
}

/// A capture dumps every hooked runtime of the process: the tests take
/// turns, so that one test's stuck worker is not another's.
static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Plain tokio code, as a library would write it: no annotation.
mod server {
    use super::*;

    pub const READ_LINE: u32 = line!() + 4;
    pub async fn read_frame(stream: &mut AsyncStream) -> Option<u8> {
        let mut byte = [0u8; 1];
        // The line readers wait at.
        let n = stream.read(&mut byte).await.ok()?;
        (n == 1).then_some(byte[0])
    }

    pub const SELECT_LINE: u32 = line!() + 4;
    pub async fn subscriber(mut stream: AsyncStream, mut news: broadcast::Receiver<u8>) {
        let mut byte = [0u8; 1];
        loop {
            tokio::select! {
                read = stream.read(&mut byte) => if !matches!(read, Ok(1)) { return },
                message = news.recv() => if message.is_err() { return },
            }
        }
    }

    pub async fn reader(mut stream: AsyncStream) {
        while read_frame(&mut stream).await.is_some() {}
    }

    /// Accepts `readers` connections served by [`reader`], then the rest by
    /// [`subscriber`].
    pub async fn accept(listener: TcpListener, readers: usize, news: broadcast::Sender<u8>) {
        let mut accepted = 0;
        while let Ok((stream, _)) = listener.accept().await {
            if accepted < readers {
                tokio::spawn(reader(stream));
            } else {
                tokio::spawn(subscriber(stream, news.subscribe()));
            }
            accepted += 1;
        }
    }
}

fn frames_of(routine: &Routine) -> String {
    routine
        .frames
        .iter()
        .map(|f| format!("  {} {}:{}", f.function, f.file, f.line))
        .collect::<Vec<_>>()
        .join("\n")
}

fn waits_at(routine: &Routine, function: &str, line: u32) -> bool {
    routine.frames.iter().any(|f| {
        f.function.contains(function) && f.file.ends_with("task_traces.rs") && f.line == line
    })
}

/// Unannotated connection tasks each show the line they wait at, and the
/// page groups readers and subscribers apart.
#[test]
fn every_connection_task_shows_the_line_it_waits_at() {
    let _turn = turn();
    let _watchdog = watchdog("every_connection_task_shows_the_line_it_waits_at", LIMIT);
    let runtime = runtime();
    let (readers, subscribers) = (4, 2);
    let (news, _keep) = broadcast::channel(4);
    let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(server::accept(listener, readers, news));
    let clients: Vec<TcpStream> = (0..readers + subscribers)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Every connection task spawned and waiting.
    assert!(wait_until(Duration::from_secs(20), || {
        runtime.metrics().num_alive_tasks() == 1 + readers + subscribers
    }));
    std::thread::sleep(Duration::from_millis(100));

    let snapshot = capture();
    let note = snapshot.task_traces.clone().unwrap_or_default();
    assert!(note.starts_with("task traces: "), "{note}");
    let tasks: Vec<Routine> = snapshot
        .routines()
        .filter(|r| r.kind == Kind::Task && r.state != State::Running)
        .collect();
    let reading: Vec<&Routine> = tasks
        .iter()
        .filter(|r| waits_at(r, "read_frame", server::READ_LINE))
        .collect();
    let selecting: Vec<&Routine> = tasks
        .iter()
        .filter(|r| waits_at(r, "subscriber", server::SELECT_LINE))
        .collect();
    let all: Vec<String> = tasks.iter().map(frames_of).collect();
    assert_eq!(reading.len(), readers, "{note}\n{}", all.join("\n--\n"));
    assert_eq!(
        selecting.len(),
        subscribers,
        "{note}\n{}",
        all.join("\n--\n")
    );

    // Grouped by where they wait: readers and subscribers apart, each kind
    // in one bucket.
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let bucket_of = |routine: &Routine| {
        buckets
            .buckets
            .iter()
            .position(|b| b.kind == Kind::Task && b.members.iter().any(|m| m.id == routine.id))
            .unwrap()
    };
    let reader_buckets: std::collections::HashSet<usize> =
        reading.iter().map(|r| bucket_of(r)).collect();
    let subscriber_buckets: std::collections::HashSet<usize> =
        selecting.iter().map(|r| bucket_of(r)).collect();
    assert_eq!(reader_buckets.len(), 1, "readers share one bucket");
    assert_eq!(subscriber_buckets.len(), 1, "subscribers share one bucket");
    assert_ne!(reader_buckets, subscriber_buckets);

    drop(clients);
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// A worker blocked in a std mutex keeps tokio's dump from finishing: the
/// capture still returns within the deadline, says so, and names the
/// thread polling the stuck task.
#[test]
fn a_stuck_worker_costs_the_deadline_not_the_page() {
    let _turn = turn();
    let _watchdog = watchdog("a_stuck_worker_costs_the_deadline_not_the_page", LIMIT);
    let runtime = runtime();
    let lock = Arc::new(Mutex::new(()));
    let held = lock.lock().unwrap();
    let (started, on_start) = oneshot::channel();
    let (_idle_tx, idle_rx) = oneshot::channel::<()>();
    runtime.spawn(async move {
        let _ = idle_rx.await;
    });
    let blocked = lock.clone();
    runtime.spawn(async move {
        let _ = started.send(());
        // Blocks the worker, as a bug would.
        drop(blocked.lock());
    });
    runtime.block_on(on_start).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    let began = Instant::now();
    let snapshot = capture();
    let took = began.elapsed();
    let note = snapshot.task_traces.clone().unwrap_or_default();
    // Releases the worker however the assertions go, so the runtime drops.
    drop(held);
    assert!(took < Duration::from_secs(5), "the capture took {took:?}");
    assert!(note.contains("did not finish within 100 ms"), "{note}");
    assert!(note.contains("is polling task"), "{note}");
    runtime.shutdown_timeout(Duration::from_secs(5));
}

#[webstack::instrument]
async fn instrumented_wait(order: u64, rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

/// An instrumented task keeps its typed arguments and gets the trace's
/// line; the trace poll itself is not counted as a poll.
#[test]
fn a_traced_instrumented_task_keeps_its_arguments() {
    let _turn = turn();
    let _watchdog = watchdog("a_traced_instrumented_task_keeps_its_arguments", LIMIT);
    let runtime = runtime();
    let (tx, rx) = oneshot::channel();
    runtime.spawn(instrumented_wait(42, rx));
    std::thread::sleep(Duration::from_millis(100));
    let snapshot = capture();
    let task = snapshot
        .routines()
        .find(|r| {
            r.kind == Kind::Task
                && r.frames
                    .iter()
                    .any(|f| f.function.ends_with("instrumented_wait"))
        })
        .expect("the instrumented task");
    let frame = task
        .frames
        .iter()
        .find(|f| f.function.ends_with("instrumented_wait"))
        .unwrap();
    assert_eq!(
        frame.args[0].value.to_string(),
        "42",
        "{}",
        frames_of(&task)
    );
    assert!(
        frame.address.is_some(),
        "merged with the trace: {}",
        frames_of(&task)
    );
    assert_eq!(task.polls, Some(1), "{}", frames_of(&task));
    let _ = tx.send(());
    runtime.shutdown_timeout(Duration::from_secs(5));
    let _ = std::io::stderr().flush();
}

/// Tokio's dump of a runtime with many runnable tasks queued never ends
/// and stops every worker (its `steal_all` spins once more than about 128
/// are queued): webstack does not dump such a runtime, and it keeps
/// running.
#[test]
fn a_busy_runtime_is_not_dumped_and_keeps_running() {
    let _turn = turn();
    let _watchdog = watchdog("a_busy_runtime_is_not_dumped_and_keeps_running", LIMIT);
    let runtime = runtime();
    let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for _ in 0..1000 {
        let polls = polls.clone();
        runtime.spawn(async move {
            loop {
                polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    let snapshot = capture();
    let note = snapshot.task_traces.clone().unwrap_or_default();
    assert!(
        note.contains("not dumped") && note.contains("tasks are queued"),
        "{note}"
    );
    // The workers still run the tasks.
    let before = polls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(10), || {
        polls.load(std::sync::atomic::Ordering::Relaxed) > before + 1000
    }));
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// Built with the feature, traces stay off until the program turns them
/// on (tokio's dump can leave a runtime frozen): no dump, and the page says
/// how to turn them on.
#[test]
fn traces_are_off_until_turned_on() {
    let _turn = turn();
    let _watchdog = watchdog("traces_are_off_until_turned_on", LIMIT);
    let runtime = runtime();
    let (tx, rx) = oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        let _ = rx.await;
    });
    std::thread::sleep(Duration::from_millis(50));
    webstack::native::set_task_traces(false);
    let snapshot = Snapshot::capture(&Options::default());
    webstack::native::set_task_traces(true);
    let note = snapshot.task_traces.clone().unwrap_or_default();
    assert!(
        note.starts_with("task traces off") && note.contains("set_task_traces(true)"),
        "{note}"
    );
    let id = task
        .id()
        .to_string()
        .parse::<u64>()
        .expect("a numeric tokio id");
    let routine = snapshot
        .routines()
        .find(|r| r.tokio_id == Some(id))
        .expect("the hooked task is listed");
    assert!(routine.frames.is_empty(), "{}", frames_of(&routine));
    drop(tx);
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// Tokio wakes each task it traced once the dump ends, for one real poll:
/// that poll is not the program's, so the next page shows every task with
/// the polls and the idle time it had.
#[test]
fn a_traced_page_changes_no_poll_count_nor_idle_time() {
    let _turn = turn();
    let _watchdog = watchdog("a_traced_page_changes_no_poll_count_nor_idle_time", LIMIT);
    let runtime = runtime();
    let mut senders = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (tx, rx) = oneshot::channel::<()>();
        senders.push(tx);
        let task = runtime.spawn(async move {
            let _ = rx.await;
        });
        ids.push(
            task.id()
                .to_string()
                .parse::<u64>()
                .expect("a numeric tokio id"),
        );
    }
    std::thread::sleep(Duration::from_millis(400));
    let of = |snapshot: &Snapshot| -> Vec<(u64, Option<u64>, Duration)> {
        let mut tasks: Vec<_> = snapshot
            .routines()
            .filter(|r| r.tokio_id.is_some_and(|id| ids.contains(&id)))
            .map(|r| (r.tokio_id.unwrap(), r.polls, r.waiting.unwrap_or_default()))
            .collect();
        tasks.sort();
        tasks
    };
    let traced = capture();
    let note = traced.task_traces.clone().unwrap_or_default();
    assert!(note.contains("tasks traced"), "{note}");
    let before = of(&traced);
    assert_eq!(before.len(), 20, "{before:?}");
    // Tokio's wakes after the dump are polled meanwhile.
    std::thread::sleep(Duration::from_millis(200));
    webstack::native::set_task_traces(false);
    let after = of(&Snapshot::capture(&Options::default()));
    webstack::native::set_task_traces(true);
    for ((id, polls, waited), (_, polls_after, waited_after)) in before.iter().zip(&after) {
        assert_eq!(
            polls, polls_after,
            "task {id}: polls {before:?} then {after:?}"
        );
        assert!(
            *waited_after >= *waited + Duration::from_millis(150),
            "task {id}: idle {waited:?}, then {waited_after:?} 200 ms later"
        );
    }
    drop(senders);
    runtime.shutdown_timeout(Duration::from_secs(5));
}
