//! A million idle tasks on one page: every one captured at the default
//! `maxmem`, counted and grouped as a snapshot that compares every frame
//! would group them.

use std::time::Instant;

use support::poll::poll_once;
use webstack::render::{render, Format};
use webstack::{Buckets, Kind, Options, Similarity, Snapshot, View};

const TASKS: usize = 1_000_000;

/// The two tests count the tasks of the whole process: one at a time.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tasks given distinct arguments: stacks of their own.
const DISTINCT: usize = 2_000;

#[webstack::instrument(name = "conn")]
async fn connection(shape: u64, peer: u64) {
    handle(shape).await
}

#[webstack::instrument]
async fn handle(shape: u64) {
    match shape % 4 {
        0 => read(shape).await,
        1 => Box::pin(read(shape)).await,
        2 => write(shape).await,
        _ => Box::pin(write(shape)).await,
    }
}

#[webstack::instrument]
async fn read(shape: u64) {
    std::future::pending::<()>().await
}

#[webstack::instrument]
async fn write(shape: u64) {
    if shape < 4 {
        std::future::pending::<()>().await
    } else {
        read(shape).await
    }
}

/// Idle tasks in 8 shapes, three or four frames deep; the first
/// [`DISTINCT`] have an argument no other task has.
fn park(n: usize) -> Vec<std::pin::Pin<Box<impl std::future::Future<Output = ()>>>> {
    (0..n)
        .map(|i| {
            let peer = if i < DISTINCT { i as u64 + 1 } else { 0 };
            let mut task = Box::pin(connection(i as u64 % 8, peer));
            assert!(poll_once(task.as_mut()).is_pending());
            task
        })
        .collect()
}

/// The same routines, each with frames of its own: a snapshot that can
/// only be grouped by comparing frames, as before stacks were shared.
fn unshared(snapshot: &Snapshot) -> Snapshot {
    let mut copy = Snapshot::new(
        snapshot
            .routines()
            .map(|mut r| {
                r.frames = r.frames.to_vec().into();
                r
            })
            .collect(),
    );
    copy.captured_at = snapshot.captured_at;
    copy.captured_by_tid = snapshot.captured_by_tid;
    copy.process = snapshot.process.clone();
    copy.capture_time = snapshot.capture_time;
    copy.maxmem = snapshot.maxmem;
    copy.bytes_used = snapshot.bytes_used;
    copy.augmented = snapshot.augmented;
    copy.left_out = snapshot.left_out;
    copy
}

#[test]
fn a_million_idle_tasks_fit_the_default_maxmem() {
    let _turn = turn();
    let start = Instant::now();
    let tasks = park(TASKS);
    let parked = start.elapsed();

    let start = Instant::now();
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    let captured = start.elapsed();
    assert_eq!(snapshot.maxmem, webstack::DEFAULT_MAXMEM);
    assert_eq!(snapshot.left_out.total(), 0, "{:?}", snapshot.left_out);
    assert!(snapshot.bytes_used <= snapshot.maxmem);
    let ours = snapshot
        .routines()
        .filter(|r| r.kind == Kind::Task && r.name == "conn")
        .count();
    assert_eq!(ours, TASKS);

    let start = Instant::now();
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let text = render(&snapshot, &buckets, &View::default().format(Format::Text)).unwrap();
    let paged = start.elapsed();
    // 8 shapes at `anypointer`: the distinct `peer` values are numbers, not
    // addresses, so each of the 2,000 is a bucket of its own.
    let conn: Vec<_> = buckets
        .buckets
        .iter()
        .filter(|b| b.kind == Kind::Task && b.members.first().is_some_and(|m| m.name == "conn"))
        .collect();
    assert_eq!(conn.len(), 8 + DISTINCT);
    assert_eq!(conn.iter().map(|b| b.count).sum::<usize>(), TASKS);
    let largest = (TASKS - DISTINCT) / 8;
    assert!(conn[..8]
        .iter()
        .all(|b| b.count.abs_diff(largest) <= DISTINCT / 8));
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.contains(&format!("{} tasks", snapshot.tasks())) && header.contains(" 0 left out"),
        "{header}"
    );
    assert!(
        text.contains("million_tasks::read(shape: u64 = 0)"),
        "{header}"
    );
    let at_anyvalue = Buckets::aggregate(&snapshot, Similarity::AnyValue);
    let conn_anyvalue = at_anyvalue
        .buckets
        .iter()
        .filter(|b| b.members.first().is_some_and(|m| m.name == "conn"))
        .count();
    // Values ignored, shapes 0 and 4 (and 1 and 5) are the same frames.
    assert_eq!(conn_anyvalue, 6);
    eprintln!(
        "{TASKS} tasks: parked in {parked:?}, captured in {captured:?} \
         ({} of {} bytes), grouped and rendered in {paged:?}",
        snapshot.bytes_used, snapshot.maxmem
    );
    drop(tasks);
}

#[test]
fn shared_stacks_group_as_compared_frames_do() {
    let _turn = turn();
    let tasks = park(10_000);
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    let copy = unshared(&snapshot);
    for similarity in Similarity::ALL {
        let view = View::default().format(Format::Json).similarity(similarity);
        let shared = render(&snapshot, &Buckets::aggregate(&snapshot, similarity), &view).unwrap();
        let compared = render(&copy, &Buckets::aggregate(&copy, similarity), &view).unwrap();
        // Not `assert_eq!`: the pages are megabytes.
        if let Some(at) = shared
            .bytes()
            .zip(compared.bytes())
            .position(|(a, b)| a != b)
        {
            let window =
                |page: &str| page[at.saturating_sub(200)..(at + 200).min(page.len())].to_owned();
            panic!(
                "{similarity}: the pages differ at byte {at}:\nshared:   {}\ncompared: {}",
                window(&shared),
                window(&compared)
            );
        }
        assert_eq!(shared.len(), compared.len(), "{similarity}");
    }
    drop(tasks);
}
