//! `maxmem` bounds a snapshot: once its buffers reach the bound, the rest
//! are counted as left out, never silently dropped.

use support::poll::poll_once;
use webstack::{Kind, Options, Snapshot};

#[webstack::instrument]
async fn level(depth: u32, id: u64) {
    if depth == 0 {
        std::future::pending::<()>().await;
    } else {
        Box::pin(level(depth - 1, id)).await;
    }
}

#[test]
fn a_full_budget_leaves_routines_out_and_counts_them() {
    const TASKS: usize = 5_000;
    let mut tasks = Vec::with_capacity(TASKS);
    for id in 0..TASKS as u64 {
        let mut task = Box::pin(level(4, id));
        assert!(poll_once(task.as_mut()).is_pending());
        tasks.push(task);
    }
    let full = Snapshot::capture(&Options::default().augment(false));
    assert_eq!(full.left_out.tasks + full.left_out.threads, 0);
    assert!(full.tasks() >= TASKS);
    let ours = |s: &Snapshot| {
        s.routines()
            .filter(|r| r.kind == Kind::Task && r.name == "level")
            .count()
    };
    assert_eq!(ours(&full), TASKS);
    assert!(full
        .routines()
        .filter(|r| r.name == "level")
        .all(|r| r.frames.len() == 5));

    // Asking for less than the minimum gets the minimum, 1 MiB.
    let bounded = Snapshot::capture(&Options::default().augment(false).maxmem(10));
    assert_eq!(bounded.maxmem, webstack::MIN_MAXMEM);
    assert!(bounded.bytes_used <= bounded.maxmem);
    assert!(
        bounded.left_out.tasks > 0,
        "5,000 five-frame tasks do not fit in 1 MiB"
    );
    let registered = full.tasks() + full.threads();
    let accounted =
        bounded.tasks() + bounded.threads() + bounded.left_out.tasks + bounded.left_out.threads;
    // Other tests of this binary do not run concurrently with a registered
    // count this large changing by more than a few routines.
    assert!(
        accounted.abs_diff(registered) <= 4,
        "{accounted} vs {registered}"
    );
    drop(tasks);
    let after = Snapshot::capture(&Options::default().augment(false));
    assert_eq!(ours(&after), 0, "dropped tasks leave the registry");
}
