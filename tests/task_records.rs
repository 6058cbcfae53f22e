//! The registry record of a task root: it leaves the registry as soon as the
//! task finishes, and a record reused for a later task (records are kept per
//! thread to save an allocation) shows nothing of the task before it, even
//! while snapshots run during the churn.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use support::poll::poll_once;
use support::snapshot::{describe_all, routines, shadow_snapshot};

/// Pending `polls` times, then ready.
struct PendingFor(u32);

impl Future for PendingFor {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        Poll::Pending
    }
}

#[webstack::instrument]
async fn record_leaf(depth: u32, wait: u32) {
    PendingFor(wait).await
}

#[webstack::instrument]
async fn record_middle(label: &'static str, wait: u32) {
    record_leaf(2, wait).await
}

#[webstack::instrument(name = "record_deep")]
async fn record_deep(seed: u64, wait: u32) {
    record_middle("deep", wait).await
}

#[webstack::instrument(name = "record_shallow")]
async fn record_shallow(seed: u64, wait: u32) {
    PendingFor(wait).await
}

#[webstack::instrument]
async fn churn_middle(label: &'static str, wait: u32) {
    record_leaf(2, wait).await
}

#[webstack::instrument(name = "churn_deep")]
async fn churn_deep(seed: u64, wait: u32) {
    churn_middle("deep", wait).await
}

#[webstack::instrument(name = "churn_shallow")]
async fn churn_shallow(seed: u64, wait: u32) {
    PendingFor(wait).await
}

/// Stops the churning threads also when an assertion fails, so a failing
/// test reports instead of hanging.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[webstack::instrument]
async fn finishing_root(seed: u64) {
    PendingFor(1).await
}

#[test]
fn a_finished_root_leaves_the_registry_before_it_is_dropped() {
    let mut task = Box::pin(finishing_root(5));
    assert!(poll_once(task.as_mut()).is_pending());
    assert_eq!(
        routines(&shadow_snapshot(), |n| n == "finishing_root").len(),
        1
    );
    assert!(poll_once(task.as_mut()).is_ready());
    // Still alive, but finished: nothing to show.
    assert_eq!(
        describe_all(&shadow_snapshot(), |n| n == "finishing_root"),
        ""
    );
    drop(task);
}

#[test]
fn a_reused_record_shows_only_the_new_task() {
    // Runs on its own thread so no other test's tasks use its spare records.
    std::thread::spawn(|| {
        let first_id;
        {
            let mut deep = Box::pin(record_deep(1, u32::MAX));
            for _ in 0..3 {
                assert!(poll_once(deep.as_mut()).is_pending());
            }
            let snapshot = shadow_snapshot();
            let found = routines(&snapshot, |n| n == "record_deep");
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].polls, Some(3));
            assert_eq!(found[0].frames.len(), 3);
            first_id = found[0].id;
        }
        // The deep task was dropped on this thread: its record is spare, and
        // the next root polled here reuses it.
        let mut shallow = Box::pin(record_shallow(9, u32::MAX));
        assert!(poll_once(shallow.as_mut()).is_pending());
        let snapshot = shadow_snapshot();
        assert_eq!(describe_all(&snapshot, |n| n == "record_deep"), "");
        assert_eq!(
            describe_all(&snapshot, |n| n == "record_shallow"),
            "Task \"record_shallow\" idle\n\
             \x20 task_records::record_shallow(seed: u64 = 9, wait: u32 = 4294967295) \
             task_records.rs:LINE [task root]\n"
        );
        let shallow_task = routines(&snapshot, |n| n == "record_shallow").remove(0);
        assert_eq!(shallow_task.polls, Some(1));
        assert_ne!(shallow_task.id, first_id);
        assert!(
            shallow_task.age < Duration::from_secs(5),
            "age from the new task's creation"
        );
    })
    .join()
    .unwrap();
}

/// Tasks of two shapes start, wait and end on two threads while a third takes
/// snapshots: every task a snapshot shows must be one whole task (its name,
/// frames and arguments agree), never a mix of a record's old and new task.
#[test]
fn snapshots_during_churn_see_whole_tasks() {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for lane in 0..2u64 {
            let stop = &stop;
            scope.spawn(move || {
                let mut round = 0u64;
                let mut parked: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let wait = (round % 3) as u32;
                    let mut task: Pin<Box<dyn Future<Output = ()>>> = if round % 2 == 0 {
                        Box::pin(churn_deep(lane, wait))
                    } else {
                        Box::pin(churn_shallow(lane + 100, wait))
                    };
                    if poll_once(task.as_mut()).is_pending() {
                        parked.push(task);
                    }
                    if parked.len() > 16 {
                        // Finish some, drop the others unfinished.
                        for mut task in parked.drain(..8) {
                            while poll_once(task.as_mut()).is_pending() {}
                        }
                        parked.drain(..4);
                    }
                }
            });
        }
        let _stop = StopOnDrop(&stop);
        let deadline = Instant::now() + Duration::from_millis(1500);
        let mut checked = 0usize;
        while Instant::now() < deadline {
            let snapshot = shadow_snapshot();
            for task in routines(&snapshot, |n| n.starts_with("churn_")) {
                if task.state != webstack::State::Idle {
                    continue;
                }
                checked += 1;
                let Some(root) = task.frames.last() else {
                    panic!("an idle task without frames: {task:?}");
                };
                let seed = root.args[0].value.to_string();
                match &*task.name {
                    "churn_deep" => {
                        assert_eq!(task.frames.len(), 3, "{task:?}");
                        assert!(root.function.ends_with("::churn_deep"), "{task:?}");
                        assert!(seed == "0" || seed == "1", "{task:?}");
                        assert_eq!(task.frames[0].args[0].value.to_string(), "2");
                    }
                    "churn_shallow" => {
                        assert_eq!(task.frames.len(), 1, "{task:?}");
                        assert!(root.function.ends_with("::churn_shallow"), "{task:?}");
                        assert!(seed == "100" || seed == "101", "{task:?}");
                    }
                    other => panic!("unexpected task {other}"),
                }
                assert!(task.polls.is_some_and(|p| p >= 1), "{task:?}");
            }
        }
        assert!(checked > 100, "only {checked} idle tasks seen");
    });
}
