//! `webstack::task`: tasks spawned through the wrappers are listed from
//! spawn to finish with their creator (the spawning function and the line
//! of the spawn call), whether or not they contain instrumented frames; a
//! spawned instrumented async fn shows once, with its frames; names from the
//! builder; `spawn_blocking` closures; grouping by spawn site and state.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::gate::Gate;
use support::snapshot::{describe, shadow_snapshot_until};
use support::wait::watchdog;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Kind, Options, Routine, Similarity, Snapshot, State};

/// Far above any test's time (well under a second in a debug build).
const LIMIT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("spawn-worker")
        .build()
        .unwrap()
}

/// Tasks created at `file:line` of this file.
fn created_at(snapshot: &Snapshot, line: u32) -> Vec<Routine> {
    snapshot
        .routines()
        .filter(|r| {
            r.kind == Kind::Task
                && r.created_by
                    .is_some_and(|c| c.file.ends_with("spawn_wrappers.rs") && c.line == line)
        })
        .collect()
}

/// Spawns an uninstrumented task that waits on `rx`; returns the line of
/// the spawn call.
#[webstack::instrument(skip(rx))]
fn accept(conn: u32, rx: oneshot::Receiver<u32>) -> (JoinHandle<u32>, u32) {
    let line = line!() + 1;
    let handle = webstack::task::spawn(async move { rx.await.unwrap_or(0) + conn });
    (handle, line)
}

#[test]
fn a_task_without_instrumented_frames_is_listed_with_its_creator() {
    let _watchdog = watchdog(
        "spawn_wrappers::a_task_without_instrumented_frames_is_listed_with_its_creator",
        LIMIT,
    );
    let rt = runtime();
    let (tx, rx) = oneshot::channel();
    let (handle, line) = rt.block_on(async { accept(1, rx) });
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
        created_at(s, line)
            .iter()
            .any(|r| r.state == State::Idle && r.polls == Some(1))
    });
    let tasks = created_at(&snapshot, line);
    assert_eq!(tasks.len(), 1, "{snapshot:#?}");
    let task = &tasks[0];
    assert_eq!(
        describe(task),
        "Task \"\" idle created_by=spawn_wrappers::accept at spawn_wrappers.rs:LINE\n"
    );
    assert_eq!(task.polls, Some(1));
    assert!(task.tokio_id.is_some(), "{task:?}");
    assert!(task.waiting.is_some());

    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let text = render(&snapshot, &buckets, &View::default().format(Format::Text)).unwrap();
    let created =
        format!("    spawned by spawn_wrappers::accept at tests/spawn_wrappers.rs:{line}");
    let block = text
        .split("\n\n")
        .find(|block| block.contains(&created))
        .unwrap_or_else(|| panic!("no block created at line {line}:\n{text}"));
    let header = block.lines().next().unwrap();
    assert!(header.starts_with("1: task idle ["), "{block}");
    assert!(
        header.contains(&format!("(tokio id {}; polls 1)", task.tokio_id.unwrap())),
        "{block}"
    );

    tx.send(41).unwrap();
    assert_eq!(rt.block_on(handle).unwrap(), 42);
    // A finished task leaves.
    let snapshot =
        shadow_snapshot_until(Duration::from_secs(5), |s| created_at(s, line).is_empty());
    assert!(created_at(&snapshot, line).is_empty());
}

#[webstack::instrument(skip(rx))]
async fn worker(job: u32, rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0) + job
}

#[webstack::instrument(skip(rx))]
fn dispatch(job: u32, rx: oneshot::Receiver<u32>) -> (JoinHandle<u32>, u32) {
    let line = line!() + 1;
    let handle = webstack::task::spawn(worker(job, rx));
    (handle, line)
}

#[test]
fn a_spawned_instrumented_async_fn_shows_once_with_its_creator() {
    let _watchdog = watchdog(
        "spawn_wrappers::a_spawned_instrumented_async_fn_shows_once_with_its_creator",
        LIMIT,
    );
    let rt = runtime();
    let (tx, rx) = oneshot::channel();
    let (handle, line) = rt.block_on(async { dispatch(7, rx) });
    let shows_worker = |r: &Routine| {
        r.frames
            .iter()
            .any(|f| f.function == "spawn_wrappers::worker")
    };
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
        s.routines()
            .filter(shows_worker)
            .any(|r| r.state == State::Idle)
    });
    let tasks: Vec<Routine> = snapshot.routines().filter(shows_worker).collect();
    assert_eq!(tasks.len(), 1, "{snapshot:#?}");
    assert_eq!(
        describe(&tasks[0]),
        "Task \"worker\" idle created_by=spawn_wrappers::dispatch at spawn_wrappers.rs:LINE\n\
         \x20 spawn_wrappers::worker(job: u32 = 7) spawn_wrappers.rs:LINE\n"
    );
    assert_eq!(created_at(&snapshot, line).len(), 1);
    tx.send(1).unwrap();
    assert_eq!(rt.block_on(handle).unwrap(), 8);
}

#[test]
fn a_builder_names_the_task() {
    let _watchdog = watchdog("spawn_wrappers::a_builder_names_the_task", LIMIT);
    let rt = runtime();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = webstack::task::Builder::new()
        .name("connection-worker")
        .spawn_on(async move { rx.await.is_ok() }, rt.handle())
        .unwrap();
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
        s.routines()
            .any(|r| r.name == "connection-worker" && r.polls == Some(1))
    });
    let task = snapshot
        .routines()
        .find(|r| r.name == "connection-worker")
        .unwrap_or_else(|| panic!("{snapshot:#?}"));
    assert_eq!(
        describe(&task),
        "Task \"connection-worker\" idle created_by=<uninstrumented> at spawn_wrappers.rs:LINE\n"
    );
    tx.send(()).unwrap();
    assert!(rt.block_on(handle).unwrap());
}

#[webstack::instrument(skip(inside, release))]
fn crunch(rows: u32, inside: &Barrier, release: &Gate) -> u32 {
    inside.wait();
    release.wait();
    rows * 2
}

#[webstack::instrument(skip(inside, release))]
fn start_crunch(inside: Arc<Barrier>, release: Arc<Gate>) -> (JoinHandle<u32>, u32) {
    let line = line!() + 1;
    let handle = webstack::task::spawn_blocking(move || crunch(21, &inside, &release));
    (handle, line)
}

#[test]
fn a_blocking_closure_shows_as_a_task_running_on_its_pool_thread() {
    let _watchdog = watchdog(
        "spawn_wrappers::a_blocking_closure_shows_as_a_task_running_on_its_pool_thread",
        LIMIT,
    );
    let rt = runtime();
    let inside = Arc::new(Barrier::new(2));
    let release = Arc::new(Gate::new());
    // Dropped before the runtime, whose drop waits for the blocked thread.
    let _open = release.opener();
    let (handle, line) = rt.block_on(async { start_crunch(inside.clone(), release.clone()) });
    inside.wait();
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |_| true);
    let tasks = created_at(&snapshot, line);
    assert_eq!(tasks.len(), 1, "{snapshot:#?}");
    let task = &tasks[0];
    assert_eq!(task.state, State::Running);
    assert_eq!(
        task.created_by.map(|c| c.function),
        Some("spawn_wrappers::start_crunch")
    );
    let thread = snapshot
        .routines()
        .find(|r| Some(r.id) == task.running_on)
        .expect("the pool thread running the closure is listed");
    assert_eq!(thread.kind, Kind::Thread);
    assert_eq!(thread.frames[0].function, "spawn_wrappers::crunch");
    release.open();
    assert_eq!(rt.block_on(handle).unwrap(), 42);
    let snapshot =
        shadow_snapshot_until(Duration::from_secs(5), |s| created_at(s, line).is_empty());
    assert!(created_at(&snapshot, line).is_empty());
}

/// Spawns `n` idle tasks at one line, and one task that blocks inside its
/// poll at another (it meets `inside`, then waits at `gate`); returns both
/// lines.
fn spawn_sites(
    n: usize,
    release: &Arc<tokio::sync::Notify>,
    inside: &Arc<Barrier>,
    gate: &Arc<Gate>,
) -> (Vec<JoinHandle<()>>, u32, u32) {
    let mut handles = Vec::new();
    let idle_line = line!() + 3;
    for _ in 0..n {
        let release = release.clone();
        handles.push(webstack::task::spawn(
            async move { release.notified().await },
        ));
    }
    let (inside, gate) = (inside.clone(), gate.clone());
    let busy_line = line!() + 1;
    handles.push(webstack::task::spawn(async move {
        inside.wait();
        gate.wait();
    }));
    (handles, idle_line, busy_line)
}

#[test]
fn tasks_group_by_spawn_site_and_state() {
    let _watchdog = watchdog("spawn_wrappers::tasks_group_by_spawn_site_and_state", LIMIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let inside = Arc::new(Barrier::new(2));
    let gate = Arc::new(Gate::new());
    // Dropped before the runtime, whose drop waits for the blocked worker.
    let _open = gate.opener();
    let (handles, idle_line, busy_line) = {
        let _enter = rt.enter();
        let first = spawn_sites(3, &release, &inside, &gate);
        let open = Arc::new(Gate::new());
        open.open();
        let second = spawn_sites(2, &release, &Arc::new(Barrier::new(1)), &open);
        let mut handles = first.0;
        handles.extend(second.0);
        (handles, first.1, first.2)
    };
    inside.wait();
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
        created_at(s, idle_line)
            .iter()
            .filter(|r| r.polls == Some(1))
            .count()
            == 5
            && matches!(&created_at(s, busy_line)[..], [r] if r.state == State::Running)
    });
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let mut seen: Vec<(usize, String, u32)> = buckets
        .buckets
        .iter()
        .filter(|b| b.kind == Kind::Task)
        .filter_map(|b| {
            let c = b.created_by?;
            (c.file.ends_with("spawn_wrappers.rs") && [idle_line, busy_line].contains(&c.line))
                .then(|| (b.count, b.state.as_str().to_owned(), c.line))
        })
        .collect();
    seen.sort();
    // With native stacks, the running task shows its worker's stack: the
    // task's own code, blocked at the gate.
    let augmented = Snapshot::capture(&Options::default());
    let worker_stack = augmented.augmented.then(|| {
        created_at(&augmented, busy_line)
            .iter()
            .find(|r| r.state == State::Running)
            .map(|r| r.frames.clone())
            .unwrap_or_default()
    });
    gate.open();
    release.notify_waiters();
    for handle in handles {
        rt.block_on(handle).unwrap();
    }
    // The second busy task ran to its end at once (a one-party barrier, an
    // open gate).
    assert_eq!(
        seen,
        vec![
            (1, "running".to_owned(), busy_line),
            (5, "idle".to_owned(), idle_line)
        ],
    );
    if let Some(frames) = worker_stack {
        assert!(
            frames
                .iter()
                .any(|f| f.function.starts_with("spawn_wrappers::spawn_sites")),
            "{frames:#?}"
        );
    }
}
