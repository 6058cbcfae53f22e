//! `webstack::tokio::hooks` (`--cfg tokio_unstable`): every task of a
//! runtime is listed, including tasks a library spawns with plain
//! `tokio::spawn`, with tokio id, spawn site, state, poll count; a task that
//! runs instrumented frames shows once. Run with
//! `RUSTFLAGS="--cfg tokio_unstable" cargo test -p webstack-tests --test tokio_hooks`;
//! without the cfg this file is empty.
#![cfg(tokio_unstable)]

use std::sync::{Arc, Barrier};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::gate::Gate;
use support::snapshot::{describe, shadow_snapshot, shadow_snapshot_until};
use support::wait::watchdog;
use tokio::sync::oneshot;
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Kind, Routine, Similarity, Snapshot, State};

/// Stands for a dependency (hyper, a client pool): it spawns its own task
/// with plain `tokio::spawn`, knowing nothing of webstack.
mod library {
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    pub fn start_background(rx: oneshot::Receiver<()>) -> (JoinHandle<()>, u32) {
        let line = line!() + 1;
        let handle = tokio::spawn(async move {
            let _ = rx.await;
        });
        (handle, line)
    }
}

/// Far above any test's time (well under a second in a debug build).
const LIMIT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    webstack::tokio::hooks(&mut tokio::runtime::Builder::new_multi_thread())
        .worker_threads(2)
        .thread_name("hooked-worker")
        .build()
        .unwrap()
}

fn created_at(snapshot: &Snapshot, line: u32) -> Vec<Routine> {
    snapshot
        .routines()
        .filter(|r| {
            r.kind == Kind::Task
                && r.created_by
                    .is_some_and(|c| c.file.ends_with("tokio_hooks.rs") && c.line == line)
        })
        .collect()
}

#[webstack::instrument]
fn app_start(rx: oneshot::Receiver<()>) -> (tokio::task::JoinHandle<()>, u32) {
    library::start_background(rx)
}

#[test]
fn a_task_spawned_inside_a_library_is_listed() {
    let _watchdog = watchdog(
        "tokio_hooks::a_task_spawned_inside_a_library_is_listed",
        LIMIT,
    );
    let rt = runtime();
    let (tx, rx) = oneshot::channel();
    let (handle, line) = rt.block_on(async { app_start(rx) });
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
        created_at(s, line).iter().any(|r| r.polls == Some(1))
    });
    let tasks = created_at(&snapshot, line);
    assert_eq!(tasks.len(), 1, "{snapshot:#?}");
    let task = &tasks[0];
    assert_eq!(
        describe(task),
        "Task \"\" idle created_by=tokio_hooks::app_start at tokio_hooks.rs:LINE\n"
    );
    assert_eq!(task.polls, Some(1));
    assert_eq!(
        task.tokio_id,
        Some(handle.id().to_string().parse().unwrap())
    );
    assert!(task.waiting.is_some());

    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let text = render(&snapshot, &buckets, &View::default().format(Format::Text)).unwrap();
    assert!(
        text.contains(&format!(
            "    spawned by tokio_hooks::app_start at tests/tokio_hooks.rs:{line}"
        )),
        "{text}"
    );
    tx.send(()).unwrap();
    rt.block_on(handle).unwrap();
    let snapshot =
        shadow_snapshot_until(Duration::from_secs(5), |s| created_at(s, line).is_empty());
    assert!(
        created_at(&snapshot, line).is_empty(),
        "a terminated task leaves"
    );
}

#[webstack::instrument(skip(rx))]
async fn served(conn: u32, rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

#[test]
fn a_hooked_task_running_instrumented_frames_shows_once() {
    let _watchdog = watchdog(
        "tokio_hooks::a_hooked_task_running_instrumented_frames_shows_once",
        LIMIT,
    );
    let rt = runtime();
    let (tx, rx) = oneshot::channel();
    let line = line!() + 1;
    let handle = rt.spawn(served(3, rx));
    let id: u64 = handle.id().to_string().parse().unwrap();
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
        s.routines()
            .any(|r| r.tokio_id == Some(id) && !r.frames.is_empty() && r.state.as_str() == "idle")
    });
    let tasks: Vec<Routine> = snapshot
        .routines()
        .filter(|r| r.tokio_id == Some(id))
        .collect();
    assert_eq!(tasks.len(), 1, "{snapshot:#?}");
    // The frames of the instrumented root, the spawn site from the hooks.
    assert_eq!(
        describe(&tasks[0]),
        "Task \"served\" idle created_by=<uninstrumented> at tokio_hooks.rs:LINE\n\
         \x20 tokio_hooks::served(conn: u32 = 3) tokio_hooks.rs:LINE [task root]\n"
    );
    assert_eq!(tasks[0].created_by.unwrap().line, line);
    tx.send(()).unwrap();
    rt.block_on(handle).unwrap();
}

#[test]
fn a_hooked_task_blocked_in_its_poll_is_running_on_its_worker() {
    let _watchdog = watchdog(
        "tokio_hooks::a_hooked_task_blocked_in_its_poll_is_running_on_its_worker",
        LIMIT,
    );
    let rt = runtime();
    let inside = Arc::new(Barrier::new(2));
    let release = Arc::new(Gate::new());
    // Dropped before the runtime, whose drop waits for the blocked worker.
    let _open = release.opener();
    let handle = {
        let (inside, release) = (inside.clone(), release.clone());
        rt.spawn(async move {
            inside.wait();
            release.wait();
        })
    };
    let id: u64 = handle.id().to_string().parse().unwrap();
    inside.wait();
    let snapshot = shadow_snapshot_until(Duration::from_secs(5), |_| true);
    release.open();
    rt.block_on(handle).unwrap();
    let task = snapshot
        .routines()
        .find(|r| r.tokio_id == Some(id))
        .unwrap_or_else(|| panic!("{snapshot:#?}"));
    assert_eq!(task.state, State::Running);
    assert_eq!(task.polls, Some(0));
    let worker = snapshot
        .routines()
        .find(|r| Some(r.id) == task.running_on)
        .expect("the worker is registered");
    assert_eq!(worker.name, "hooked-worker");
}

/// What `#[webstack::main(tokio_hooks)]` runs `main` on: a runtime with
/// the hooks, so a library's plain `tokio::spawn` is listed.
#[test]
fn the_main_attribute_runtime_has_the_hooks() {
    let _watchdog = watchdog(
        "tokio_hooks::the_main_attribute_runtime_has_the_hooks",
        LIMIT,
    );
    // Its own spawn line: the other tests of this file run at the same time
    // and spawn through `library::start_background`.
    fn spawn_plain(rx: oneshot::Receiver<()>) -> (tokio::task::JoinHandle<()>, u32) {
        let line = line!() + 1;
        let handle = tokio::spawn(async move {
            let _ = rx.await;
        });
        (handle, line)
    }
    let (tx, rx) = oneshot::channel();
    let listed = webstack::__private::tokio_main(async move {
        let (handle, line) = spawn_plain(rx);
        let snapshot = shadow_snapshot_until(Duration::from_secs(5), |s| {
            created_at(s, line).iter().any(|r| r.polls == Some(1))
        });
        let listed = created_at(&snapshot, line).len();
        let _ = tx.send(());
        handle.await.unwrap();
        listed
    });
    assert_eq!(listed, 1);
}

fn tokio_id<T>(handle: &tokio::task::JoinHandle<T>) -> u64 {
    handle.id().to_string().parse().unwrap()
}

/// Tokio reports the termination of a task spawned on a runtime that has
/// shut down before its spawn: the hooks must not list it, nor keep a slot
/// for it.
#[test]
fn a_task_spawned_after_shutdown_is_not_listed() {
    let _watchdog = watchdog(
        "tokio_hooks::a_task_spawned_after_shutdown_is_not_listed",
        LIMIT,
    );
    let rt = runtime();
    let handle = rt.handle().clone();
    drop(rt);
    let task = handle.spawn(async {});
    let id = tokio_id(&task);
    let snapshot = shadow_snapshot();
    let listed: Vec<Routine> = snapshot
        .routines()
        .filter(|r| r.tokio_id == Some(id))
        .collect();
    assert!(listed.is_empty(), "{listed:#?}");
    assert!(!webstack::__test_hooks::tokio::holds_slot(id));
    let joined = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(task);
    assert!(joined.unwrap_err().is_cancelled());
}

/// Tasks spawned from other threads while the runtime shuts down: tokio may
/// report a task's termination on the shutting-down thread before the
/// spawning thread reports its spawn. None of them stays listed or keeps a
/// slot.
#[test]
fn tasks_spawned_while_the_runtime_shuts_down_leave_nothing_behind() {
    let _watchdog = watchdog(
        "tokio_hooks::tasks_spawned_while_the_runtime_shuts_down_leave_nothing_behind",
        LIMIT,
    );
    const ROUNDS: usize = 50;
    const SPAWNERS: usize = 2;
    let mut ids = Vec::new();
    for _ in 0..ROUNDS {
        let rt = runtime();
        let start = Arc::new(Barrier::new(SPAWNERS + 1));
        let spawners: Vec<_> = (0..SPAWNERS)
            .map(|_| {
                let (handle, start) = (rt.handle().clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..200)
                        .map(|_| tokio_id(&handle.spawn(std::future::pending::<()>())))
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        start.wait();
        drop(rt);
        for spawner in spawners {
            ids.extend(spawner.join().unwrap());
        }
    }
    let snapshot = shadow_snapshot();
    let listed: Vec<Routine> = snapshot
        .routines()
        .filter(|r| r.tokio_id.is_some_and(|id| ids.contains(&id)))
        .collect();
    let held = ids
        .iter()
        .filter(|&&id| webstack::__test_hooks::tokio::holds_slot(id))
        .count();
    assert_eq!((listed.len(), held), (0, 0), "of {} tasks", ids.len());
}

/// The numbers of the text page's header line: `(tasks, left out)`.
fn header_counts(text: &str) -> (usize, usize) {
    let header = text.lines().next().unwrap_or_default();
    let number_before = |what: &str| -> usize {
        let end = header
            .find(what)
            .unwrap_or_else(|| panic!("no {what:?} in {header:?}"));
        header[..end]
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before {what:?} in {header:?}"))
    };
    (number_before(" tasks,"), number_before(" left out"))
}

/// More live tasks than the hooks' table has slots: the tasks that found no
/// slot are not listed, but the page counts them, so that what it lists
/// and counts adds up to the runtime's live tasks, even after tasks whose
/// termination tokio reported before their spawn. Runs in a child process,
/// alone with its runtime.
#[test]
fn more_live_tasks_than_slots_are_listed_or_counted() {
    support::child::run_in_child(
        "more_live_tasks_than_slots_are_listed_or_counted",
        LIMIT,
        || {
            let _watchdog = watchdog(
                "tokio_hooks::more_live_tasks_than_slots_are_listed_or_counted",
                LIMIT,
            );
            // Spawned on a runtime that has shut down: each leaves a
            // tombstone that its spawn takes, and must not count it out.
            let gone = runtime().handle().clone();
            for _ in 0..3 {
                drop(gone.spawn(async {}));
            }
            const TASKS: usize = 70_000;
            let rt = runtime();
            let (release, parked) = tokio::sync::watch::channel(false);
            for _ in 0..TASKS {
                let mut parked = parked.clone();
                rt.spawn(async move {
                    let _ = parked.changed().await;
                });
            }
            let alive = rt.metrics().num_alive_tasks();
            assert_eq!(alive, TASKS);
            let snapshot =
                Snapshot::capture(&webstack::Options::default().augment(false).maxmem(1 << 30));
            let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
            let text = render(&snapshot, &buckets, &View::default().format(Format::Text)).unwrap();
            let (shown, left_out) = header_counts(&text);
            assert_eq!(shown + left_out, alive, "{}", text.lines().next().unwrap());
            let untracked = snapshot.left_out.untracked_tasks;
            assert_eq!((snapshot.tasks(), untracked), (shown, left_out));
            let json = render(&snapshot, &buckets, &View::default().format(Format::Json)).unwrap();
            let page: serde_json::Value = serde_json::from_str(&json).unwrap();
            let totals = &page["totals"];
            assert_eq!(
                (totals["tasks"].as_u64(), totals["untracked_tasks"].as_u64()),
                (Some(shown as u64), Some(untracked as u64)),
                "{totals}"
            );
            let html = render(&snapshot, &buckets, &View::default().format(Format::Html)).unwrap();
            assert!(html.contains(&format!(
                "{untracked} tasks left out by the tokio hooks (their table is full)"
            )));
            // When they end, the count goes back down with them.
            let _ = release.send(true);
            let ended = support::wait::wait_until(Duration::from_secs(30), || {
                rt.metrics().num_alive_tasks() == 0
            });
            assert!(
                ended,
                "{} tasks still alive",
                rt.metrics().num_alive_tasks()
            );
            let snapshot = shadow_snapshot();
            assert_eq!(
                (snapshot.tasks(), snapshot.left_out.untracked_tasks),
                (0, 0)
            );
        },
    );
}
