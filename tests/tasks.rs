//! Async tasks: roots register, idle tasks show their await chain with
//! argument values, running tasks show on their worker thread, creators,
//! removal on drop, and futures that move between threads or parents.

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::gate::Gate;
use support::poll::poll_once;
use support::snapshot::{describe, describe_all, routines, shadow_snapshot};
use support::wait::{wait_until, watchdog};

/// Far above any test's time (well under a second in a debug build).
const LIMIT: Duration = Duration::from_secs(60);
use tokio::sync::oneshot;

#[webstack::instrument(skip(rx))]
async fn wait_reply(request: u64, rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0)
}

#[webstack::instrument(skip(rx))]
async fn handle(conn: u32, peer: &'static str, rx: oneshot::Receiver<u32>) -> u32 {
    let quick = quick_step(conn).await;
    wait_reply(conn as u64 * 100, rx).await + quick
}

#[webstack::instrument]
async fn quick_step(conn: u32) -> u32 {
    conn
}

#[webstack::instrument(name = "connection", skip(rx))]
async fn connection(conn: u32, rx: oneshot::Receiver<u32>) -> u32 {
    handle(conn, "10.0.0.1", rx).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("task-worker")
        .build()
        .unwrap()
}

#[test]
fn idle_tasks_show_their_await_chain() {
    let _watchdog = watchdog("tasks::idle_tasks_show_their_await_chain", LIMIT);
    let rt = runtime();
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for conn in [1u32, 2] {
        let (tx, rx) = oneshot::channel();
        senders.push(tx);
        handles.push(rt.spawn(connection(conn, rx)));
    }
    assert!(wait_until(Duration::from_secs(5), || {
        routines(&shadow_snapshot(), |n| n == "connection")
            .iter()
            .filter(|r| r.frames.len() == 3 && r.state.as_str() == "idle")
            .count()
            == 2
    }));
    let snapshot = shadow_snapshot();
    assert_eq!(
        describe_all(&snapshot, |n| n == "connection"),
        "Task \"connection\" idle\n\
         \x20 tasks::wait_reply(request: u64 = 100) tasks.rs:LINE\n\
         \x20 tasks::handle(conn: u32 = 1, peer: &'static str = \"10.0.0.1\") tasks.rs:LINE\n\
         \x20 tasks::connection(conn: u32 = 1) tasks.rs:LINE [task root]\n\
         Task \"connection\" idle\n\
         \x20 tasks::wait_reply(request: u64 = 200) tasks.rs:LINE\n\
         \x20 tasks::handle(conn: u32 = 2, peer: &'static str = \"10.0.0.1\") tasks.rs:LINE\n\
         \x20 tasks::connection(conn: u32 = 2) tasks.rs:LINE [task root]\n"
    );
    let task = routines(&snapshot, |n| n == "connection").remove(0);
    assert_eq!(task.polls, Some(1));
    assert!(task.waiting.is_some());
    for tx in senders {
        tx.send(5).unwrap();
    }
    let results: Vec<u32> = handles
        .into_iter()
        .map(|h| rt.block_on(h).unwrap())
        .collect();
    assert_eq!(results, vec![6, 7]);
    // Completed tasks leave the registry.
    assert!(wait_until(Duration::from_secs(5), || describe_all(
        &shadow_snapshot(),
        |n| n == "connection"
    )
    .is_empty()));
}

#[webstack::instrument(skip(inside, release))]
async fn busy_task(job: u32, inside: Arc<Barrier>, release: Arc<Gate>) {
    // Block inside a poll: the task is running, its frames are on the worker.
    inside.wait();
    release.wait();
}

#[test]
fn running_task_appears_on_its_worker_thread() {
    let _watchdog = watchdog("tasks::running_task_appears_on_its_worker_thread", LIMIT);
    let rt = runtime();
    let inside = Arc::new(Barrier::new(2));
    let release = Arc::new(Gate::new());
    // Dropped before the runtime, whose drop waits for the blocked worker.
    let _open = release.opener();
    let handle = rt.spawn(busy_task(42, inside.clone(), release.clone()));
    inside.wait();
    let snapshot = shadow_snapshot();
    let task = routines(&snapshot, |n| n == "busy_task").remove(0);
    assert_eq!(task.state.as_str(), "running");
    let worker = snapshot
        .routines()
        .find(|r| r.kind == webstack::Kind::Thread && r.id == task.running_on.unwrap())
        .expect("worker thread registered");
    assert_eq!(worker.name, "task-worker");
    assert_eq!(
        describe(&worker),
        "Thread \"task-worker\" alive\n  tasks::busy_task(job: u32 = 42) tasks.rs:LINE [task root]\n"
    );
    assert_eq!(worker.frames[0].task, Some(task.id));
    release.open();
    rt.block_on(handle).unwrap();
}

#[webstack::instrument]
fn make_job(job: u32) -> impl Future<Output = u32> + Send {
    async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        job
    }
}

#[webstack::instrument]
async fn make_async_job(job: u32) -> u32 {
    tokio::time::sleep(Duration::from_secs(30)).await;
    job
}

#[webstack::instrument]
fn spawn_jobs(count: u32, rt: &tokio::runtime::Runtime) -> Vec<tokio::task::JoinHandle<u32>> {
    (0..count)
        .flat_map(|job| [rt.spawn(make_job(job)), rt.spawn(make_async_job(job))])
        .collect()
}

#[test]
fn impl_future_records_its_creator_at_call_time_and_async_fn_at_first_poll() {
    let _watchdog = watchdog(
        "tasks::impl_future_records_its_creator_at_call_time_and_async_fn_at_first_poll",
        LIMIT,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let handles = spawn_jobs(2, &rt);
    let is_job = |n: &str| n == "make_job" || n == "make_async_job";
    assert!(wait_until(Duration::from_secs(5), || {
        routines(&shadow_snapshot(), is_job)
            .iter()
            .filter(|r| r.state.as_str() == "idle")
            .count()
            == 4
    }));
    let snapshot = shadow_snapshot();
    assert_eq!(
        describe_all(&snapshot, |n| n == "make_job"),
        "Task \"make_job\" idle created_by=tasks::spawn_jobs at tasks.rs:LINE\n\
         \x20 tasks::make_job(job: u32 = 0) tasks.rs:LINE [task root]\n\
         Task \"make_job\" idle created_by=tasks::spawn_jobs at tasks.rs:LINE\n\
         \x20 tasks::make_job(job: u32 = 1) tasks.rs:LINE [task root]\n"
    );
    // An `async fn`'s creator is the frame on top where it is first polled
    // as a task root: on the worker, nothing (docs/instrument.md, "Async functions and idle tasks").
    assert_eq!(
        describe_all(&snapshot, |n| n == "make_async_job"),
        "Task \"make_async_job\" idle\n\
         \x20 tasks::make_async_job(job: u32 = 0) tasks.rs:LINE [task root]\n\
         Task \"make_async_job\" idle\n\
         \x20 tasks::make_async_job(job: u32 = 1) tasks.rs:LINE [task root]\n"
    );
    for handle in &handles {
        handle.abort();
    }
    for handle in handles {
        assert!(rt.block_on(handle).unwrap_err().is_cancelled());
    }
    // Aborted tasks are dropped: they leave the registry.
    assert!(wait_until(Duration::from_secs(5), || describe_all(
        &shadow_snapshot(),
        is_job
    )
    .is_empty()));
}

#[webstack::instrument(skip(rx))]
async fn first_choice(tag: u32, rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0) + tag
}

#[webstack::instrument(skip(rx))]
async fn never(tag: u32, rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0) + tag
}

#[webstack::instrument(skip(a, b))]
async fn selector(round: u32, a: oneshot::Receiver<u32>, b: oneshot::Receiver<u32>) -> (u32, u32) {
    let mut slow = Box::pin(first_choice(7, a));
    let fast = never(8, b);
    tokio::pin!(fast);
    let first = tokio::select! {
        biased;
        v = &mut slow => v,
        v = &mut fast => v,
    };
    // `slow` was polled under this task inside select!, now awaited again
    // directly, maybe on another thread after moving.
    (first, slow.await)
}

#[test]
fn futures_polled_in_select_then_awaited_elsewhere_are_sound() {
    let _watchdog = watchdog(
        "tasks::futures_polled_in_select_then_awaited_elsewhere_are_sound",
        LIMIT,
    );
    let rt = runtime();
    let (ta, ra) = oneshot::channel();
    let (tb, rb) = oneshot::channel();
    let handle = rt.spawn(selector(1, ra, rb));
    assert!(wait_until(Duration::from_secs(5), || {
        routines(&shadow_snapshot(), |n| n == "selector")
            .iter()
            .any(|r| r.state.as_str() == "idle")
    }));
    // Pending in select!: the chain shows the last branch polled.
    let text = describe_all(&shadow_snapshot(), |n| n == "selector");
    assert!(text.contains("tasks::never(tag: u32 = 8)"), "{text}");
    tb.send(1).unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        describe_all(&shadow_snapshot(), |n| n == "selector")
            .contains("tasks::first_choice(tag: u32 = 7)")
    }));
    ta.send(2).unwrap();
    assert_eq!(rt.block_on(handle).unwrap(), (9, 9));
}

#[test]
fn a_root_moved_between_threads_keeps_working() {
    let _watchdog = watchdog("tasks::a_root_moved_between_threads_keeps_working", LIMIT);
    let (tx, rx) = oneshot::channel();
    let mut fut = Box::pin(connection(9, rx));
    assert!(poll_once(fut.as_mut()).is_pending());
    let id = routines(&shadow_snapshot(), |n| n == "connection")
        .iter()
        .find(|r| r.frames.last().map(|f| f.args[0].value.to_string()) == Some("9".into()))
        .map(|r| r.id)
        .unwrap_or_else(|| {
            panic!(
                "registered after first poll: {}",
                describe_all(&shadow_snapshot(), |n| n == "connection")
            )
        });
    let fut = std::thread::spawn(move || {
        let mut fut = fut;
        assert!(poll_once(fut.as_mut()).is_pending());
        fut
    })
    .join()
    .unwrap();
    let snapshot = shadow_snapshot();
    let task = snapshot.routines().find(|r| r.id == id).unwrap();
    assert_eq!(task.polls, Some(2));
    tx.send(1).unwrap();
    assert_eq!(futures::executor::block_on(fut), 10);
    assert!(snapshot.routines().any(|r| r.id == id));
    assert!(shadow_snapshot().routines().all(|r| r.id != id));
}

#[webstack::instrument]
fn blocking_entry(seed: u32) -> u32 {
    futures::executor::block_on(async { quick_step(seed).await })
}

#[test]
fn unpolled_futures_are_not_registered() {
    let _watchdog = watchdog("tasks::unpolled_futures_are_not_registered", LIMIT);
    assert_eq!(blocking_entry(4), 4);
    let (tx, rx) = oneshot::channel::<u32>();
    let fut = connection(11, rx);
    drop(tx);
    // Never polled: nothing registered.
    assert!(routines(&shadow_snapshot(), |n| n == "connection")
        .iter()
        .all(|r| r.frames.last().map(|f| f.args[0].value.to_string()) != Some("11".into())));
    drop(fut);
}

#[webstack::instrument(skip(rx))]
async fn parked_under(parent_arg: u32, rx: oneshot::Receiver<u32>) -> u32 {
    rx.await.unwrap_or(0)
}

#[webstack::instrument]
fn creator_fn(
    seed: u32,
) -> (
    oneshot::Sender<u32>,
    std::pin::Pin<Box<dyn Future<Output = u32> + Send>>,
) {
    let (tx, rx) = oneshot::channel();
    let mut fut: std::pin::Pin<Box<dyn Future<Output = u32> + Send>> =
        Box::pin(parked_under(seed, rx));
    assert!(poll_once(fut.as_mut()).is_pending());
    (tx, fut)
}

#[test]
fn first_poll_inside_an_instrumented_fn_names_it_as_creator() {
    let _watchdog = watchdog(
        "tasks::first_poll_inside_an_instrumented_fn_names_it_as_creator",
        LIMIT,
    );
    let (tx, fut) = creator_fn(3);
    assert_eq!(
        describe_all(&shadow_snapshot(), |n| n == "parked_under"),
        "Task \"parked_under\" idle created_by=tasks::creator_fn at tasks.rs:LINE\n\
         \x20 tasks::parked_under(parent_arg: u32 = 3) tasks.rs:LINE [task root]\n"
    );
    tx.send(1).unwrap();
    assert_eq!(futures::executor::block_on(fut), 1);
}
