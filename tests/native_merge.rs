//! Native frames merged with instrumented frames: one stack per thread,
//! innermost first, instrumented frames with their arguments at their place
//! among the native ones.
//!
//! The captures use the default method, which must give whole stacks of
//! code built without frame pointers, as this test is: from the futex call
//! through the test's own plain and instrumented functions to the thread's
//! start. The captured threads run on the smallest alternate signal stack
//! std gives (`support::altstack`); the gates they wait at open when a test
//! fails, so that a failure ends the test instead of hanging its join or its
//! runtime's drop, and every test is bounded by a watchdog.
#![cfg(target_os = "linux")]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::altstack;
use support::gate::Gate;
use support::stack::assert_whole;
use support::wait::watchdog;
use webstack::Origin;
use webstack::{Frame, Kind, Options, Routine, Snapshot, State};

/// Far above any test's time (10 s at most, when a stack never shows).
const LIMIT: Duration = Duration::from_secs(120);

/// Where the threads of these tests block: a plain function of the test,
/// between the futex call and the instrumented frames.
#[inline(never)]
fn block_on_gate(gate: &Gate) {
    gate.wait();
}

/// A thread blocked in [`block_on_gate`], from the futex call up.
const IN_GATE: [&str; 4] = [
    "syscall|futex_wait",
    "Condvar::wait",
    "support::gate::Gate::wait",
    "native_merge::block_on_gate",
];

fn describe(frames: &[Frame]) -> String {
    frames
        .iter()
        .map(|f| {
            let args: Vec<String> = f.args.iter().map(|a| a.value.to_string()).collect();
            format!(
                "  {}{}({}) {:?} {}:{}\n",
                if f.instrumented { "*" } else { " " },
                f.function,
                args.join(", "),
                f.origin,
                f.file,
                f.line
            )
        })
        .collect()
}

fn find(frames: &[Frame], suffix: &str, instrumented: bool) -> Option<usize> {
    frames
        .iter()
        .position(|f| f.instrumented == instrumented && f.function.ends_with(suffix))
}

/// Captures until some thread's stack has the instrumented `marker` and a
/// native frame inside it; returns the snapshot and that thread.
fn capture_until(marker: &str) -> (Snapshot, Routine) {
    let started = Instant::now();
    loop {
        let snapshot = Snapshot::capture(&Options::default().augment(true));
        let found = snapshot
            .routines()
            .filter(|r| r.kind == Kind::Thread)
            // The native stack and the kernel state are read moments apart:
            // wait until both show the thread asleep in the condvar.
            .filter(|r| matches!(&r.state, State::Native(s) if s.starts_with("sleeping")))
            .find(|r| {
                find(&r.frames, marker, true).is_some_and(|i| {
                    r.frames[..i]
                        .iter()
                        .any(|f| f.function.contains("Condvar") || f.function.contains("futex"))
                })
            });
        if let Some(routine) = found {
            return (snapshot, routine);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{marker} never showed blocked: {:#?}",
            snapshot
                .routines()
                .map(|r| (r.name.to_string(), describe(&r.frames)))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[webstack::instrument]
fn wait_for(job: u32, label: &str, gate: &Gate) {
    block_on_gate(gate);
}

#[webstack::instrument]
fn run_job(job: u32, gate: &Gate) {
    wait_for(job * 10, "alpha", gate);
}

#[test]
fn instrumented_thread_blocked_in_condvar() {
    let _watchdog = watchdog(
        "native_merge::instrumented_thread_blocked_in_condvar",
        LIMIT,
    );
    static GATE: Gate = Gate::new();
    let (tid_tx, tid_rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("job-runner".into())
        .spawn(move || {
            let _altstack = altstack::install_small();
            // SAFETY: `gettid` has no preconditions.
            tid_tx.send(unsafe { libc::gettid() } as i64).unwrap();
            run_job(7, &GATE);
        })
        .unwrap();
    let _open = GATE.opener();
    let tid = tid_rx.recv().unwrap();
    let (snapshot, routine) = capture_until("native_merge::wait_for");
    assert_eq!(routine.tid, Some(tid));
    assert_eq!(routine.name, "job-runner");
    let frames = &routine.frames;
    let text = describe(frames);

    // The whole stack: the plain function that blocks, both instrumented
    // frames, the thread's closure, down to the thread's start.
    assert_whole(
        frames,
        &[
            &IN_GATE[..],
            &[
                "native_merge::wait_for",
                "native_merge::run_job",
                "native_merge::instrumented_thread_blocked_in_condvar",
            ],
        ]
        .concat(),
    );

    let futex = frames
        .iter()
        .position(|f| f.function.contains("Condvar") || f.function.contains("futex"))
        .unwrap();
    let inner = find(frames, "native_merge::wait_for", true).unwrap();
    let outer = find(frames, "native_merge::run_job", true).unwrap();
    assert!(futex < inner && inner < outer, "{text}");
    assert!(!frames[futex].instrumented, "{text}");
    assert_eq!(frames[futex].origin, Origin::Std, "{text}");

    // Each instrumented frame replaced its native frame: shown once, with
    // its arguments, the native address and the current line.
    assert_eq!(
        find(frames, "native_merge::wait_for", false),
        None,
        "{text}"
    );
    assert_eq!(find(frames, "native_merge::run_job", false), None, "{text}");
    let wait_for = &frames[inner];
    let args: Vec<String> = wait_for.args.iter().map(|a| a.value.to_string()).collect();
    assert_eq!(args[..2], ["70", "\"alpha\""], "{text}");
    assert_eq!(wait_for.args[2].name, "gate");
    assert!(wait_for.address.is_some(), "{text}");
    assert!(wait_for.file.ends_with("tests/native_merge.rs"), "{text}");
    assert_eq!(wait_for.origin, Origin::App);
    assert_eq!(
        snapshot.source_line(wait_for).as_deref(),
        Some("block_on_gate(gate);"),
        "{text}"
    );
    assert_eq!(frames[outer].args[0].value.to_string(), "7");
    assert_eq!(
        snapshot.source_line(&frames[outer]).as_deref(),
        Some("wait_for(job * 10, \"alpha\", gate);"),
        "{text}"
    );

    // Native frames between and around are kept, with their addresses.
    let plain_outside = frames[outer + 1..]
        .iter()
        .any(|f| !f.instrumented && f.address.is_some());
    assert!(plain_outside, "{text}");
    assert!(frames.iter().all(|f| !f.function.contains("__restore_rt")));
    assert!(matches!(&routine.state, State::Native(s) if s.starts_with("sleeping")));

    let json = snapshot.to_json();
    assert!(json.contains("\"origin\":\"app\""), "{json}");
    assert!(json.contains("\"origin\":\"std\""), "{json}");
    // The snapshot's own JSON form shows the lines looked up.
    assert!(
        json.contains("\"source\":\"block_on_gate(gate);\""),
        "{json}"
    );

    GATE.open();
    handle.join().unwrap();
}

#[webstack::instrument]
async fn serve(request: u32, gate: &'static Gate) -> u32 {
    // Blocks the worker on purpose, so the task is caught running.
    block_on_gate(gate);
    request + 1
}

#[test]
fn running_task_sits_inside_its_worker_thread() {
    let _watchdog = watchdog(
        "native_merge::running_task_sits_inside_its_worker_thread",
        LIMIT,
    );
    static GATE: Gate = Gate::new();
    let runtime = altstack::on_runtime_threads(&mut tokio::runtime::Builder::new_multi_thread())
        .worker_threads(1)
        .thread_name("merge-worker")
        .build()
        .unwrap();
    // Dropped before the runtime, whose drop waits for the blocked worker.
    let _open = GATE.opener();
    let task = runtime.spawn(serve(42, &GATE));
    let (snapshot, worker) = capture_until("native_merge::serve");
    let frames = &worker.frames;
    let text = describe(frames);
    assert_eq!(worker.name, "merge-worker");
    // The whole stack: the plain function that blocks, the task's
    // instrumented frame, the runtime polling it, the thread's start.
    assert_whole(
        frames,
        &[&IN_GATE[..], &["native_merge::serve", "tokio::runtime"]].concat(),
    );
    let serve = find(frames, "native_merge::serve", true).unwrap();
    assert_eq!(frames[serve].args[0].value.to_string(), "42", "{text}");
    let task_id = frames[serve].task.expect("root frame carries its task id");
    let runtime_frame = frames[serve + 1..]
        .iter()
        .position(|f| f.origin == Origin::Runtime && f.function.starts_with("tokio::"));
    assert!(runtime_frame.is_some(), "{text}");

    let task_routine = snapshot
        .routines()
        .find(|r| r.id == task_id)
        .expect("the task is in the snapshot");
    assert_eq!(task_routine.kind, Kind::Task);
    assert_eq!(task_routine.state, State::Running);
    assert_eq!(task_routine.running_on, Some(worker.id));

    GATE.open();
    assert_eq!(runtime.block_on(task).unwrap(), 43);
}

#[test]
fn classify_known_paths() {
    let _watchdog = watchdog("native_merge::classify_known_paths", LIMIT);
    use webstack::native::classify;
    assert_eq!(classify("std::sync::condvar::Condvar::wait"), Origin::Std);
    assert_eq!(classify("tokio::runtime::task::raw::poll"), Origin::Runtime);
    assert_eq!(
        classify("actix_rt::system::SystemRunner::run"),
        Origin::Runtime
    );
    assert_eq!(
        classify("webstack::snapshot::Snapshot::capture"),
        Origin::Webstack
    );
    assert_eq!(classify("native_merge::run_job"), Origin::App);
    assert_eq!(classify("clock_nanosleep"), Origin::Std);
    assert_eq!(classify("0x7f00"), Origin::Unknown);
}

#[test]
fn augment_off_takes_no_native_stacks() {
    let _watchdog = watchdog("native_merge::augment_off_takes_no_native_stacks", LIMIT);
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    assert!(!snapshot.augmented);
    assert!(snapshot
        .routines()
        .flat_map(|r| r.frames.to_vec())
        .all(|f| f.instrumented && f.address.is_none() && snapshot.source_line(&f).is_none()));
    assert!(snapshot
        .routines()
        .all(|r| !matches!(r.state, State::Native(_))));
}

#[webstack::instrument]
async fn parked_task(id: u64, rx: futures::channel::oneshot::Receiver<()>) {
    let _ = rx.await;
    std::hint::black_box(id);
}

/// The lines of idle tasks' frames are looked up when the grouped page
/// shows them: one bucket of many tasks shows its frames' lines, a page
/// without `augment` none.
#[test]
fn an_idle_tasks_bucket_shows_its_source_lines() {
    let _watchdog = watchdog(
        "native_merge::an_idle_tasks_bucket_shows_its_source_lines",
        LIMIT,
    );
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for id in 0..100 {
        let (tx, rx) = futures::channel::oneshot::channel();
        let mut task = Box::pin(parked_task(id, rx));
        assert!(support::poll::poll_once(task.as_mut()).is_pending());
        senders.push(tx);
        tasks.push(task);
    }
    let page = |augment: bool| {
        let snapshot = Snapshot::capture(&Options::default().augment(augment));
        let buckets = webstack::Buckets::aggregate(&snapshot, webstack::Similarity::AnyValue);
        let bucket = buckets
            .buckets
            .iter()
            .find(|b| {
                b.frames
                    .iter()
                    .any(|f| f.function == "native_merge::parked_task")
            })
            .expect("the tasks' bucket");
        assert!(bucket.members.len() >= 100, "{}", bucket.members.len());
        let frame = bucket
            .frames
            .iter()
            .find(|f| f.function == "native_merge::parked_task")
            .unwrap();
        (frame.source.clone(), frame.awaiting)
    };
    let (source, awaiting) = page(true);
    assert!(awaiting);
    assert_eq!(
        source.as_deref(),
        Some("let _ = rx.await;"),
        "{:?}",
        std::env::current_dir()
    );
    assert_eq!(page(false).0, None);
    drop(senders);
}
