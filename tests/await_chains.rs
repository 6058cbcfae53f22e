//! The await chain of an idle task ends at its innermost pending
//! instrumented frame, whatever its siblings under `join!`, `select!`,
//! `FuturesUnordered` or `join_all` did during the same poll, and never at a
//! frame that was dropped.

use std::future::{pending, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use pretty_assertions::assert_eq;
use support::poll::poll_once;
use support::snapshot::{describe_all, shadow_snapshot};

#[webstack::instrument]
async fn stuck(id: u32) {
    pending::<()>().await
}

#[webstack::instrument]
async fn quick(id: u32) -> u32 {
    id
}

/// Polls `root` once (it must stay pending) and describes the task named
/// `name` as a snapshot shows it.
fn chain_after_one_poll(name: &str, root: impl Future<Output = ()>) -> String {
    let mut root = Box::pin(root);
    assert!(poll_once(root.as_mut()).is_pending());
    let text = describe_all(&shadow_snapshot(), |n| n == name);
    drop(root);
    text
}

#[webstack::instrument]
async fn join_with_quick(tag: u32) {
    futures::join!(stuck(1), quick(2));
}

#[test]
fn join_with_a_quick_sibling_keeps_the_stuck_branch() {
    assert_eq!(
        chain_after_one_poll("join_with_quick", join_with_quick(0)),
        "Task \"join_with_quick\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::join_with_quick(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn quick_first_join(tag: u32) {
    futures::join!(quick(2), stuck(1), quick(3));
}

#[test]
fn join_with_quick_siblings_on_both_sides_keeps_the_stuck_branch() {
    assert_eq!(
        chain_after_one_poll("quick_first_join", quick_first_join(0)),
        "Task \"quick_first_join\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::quick_first_join(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn select_after_quick(tag: u32) {
    let stuck_branch = stuck(1).fuse();
    let other = async {
        quick(2).await;
        pending::<()>().await
    }
    .fuse();
    futures::pin_mut!(stuck_branch, other);
    futures::select_biased! {
        () = stuck_branch => {},
        () = other => {},
    }
}

#[test]
fn select_whose_other_branch_completed_a_call_keeps_the_stuck_branch() {
    assert_eq!(
        chain_after_one_poll("select_after_quick", select_after_quick(0)),
        "Task \"select_after_quick\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::select_after_quick(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn select_then_wait(tag: u32) {
    futures::select_biased! {
        () = stuck(1).fuse() => {},
        _ = quick(2).fuse() => {},
    }
    // `stuck(1)` was dropped when `quick` won: the task now waits here,
    // in no instrumented frame below this one.
    pending::<()>().await
}

#[test]
fn a_branch_dropped_by_select_is_not_shown() {
    assert_eq!(
        chain_after_one_poll("select_then_wait", select_then_wait(0)),
        "Task \"select_then_wait\" idle\n\
         \x20 await_chains::select_then_wait(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn unordered(tag: u32) {
    let mut set: FuturesUnordered<Pin<Box<dyn Future<Output = u32>>>> = FuturesUnordered::new();
    set.push(Box::pin(quick(2)));
    set.push(Box::pin(async {
        stuck(1).await;
        0
    }));
    set.push(Box::pin(quick(3)));
    while set.next().await.is_some() {}
}

#[test]
fn futures_unordered_with_finished_members_keeps_the_stuck_one() {
    assert_eq!(
        chain_after_one_poll("unordered", unordered(0)),
        "Task \"unordered\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::unordered(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn joined_all(tag: u32) {
    let quick_one = Box::pin(async {
        quick(2).await;
    }) as Pin<Box<dyn Future<Output = ()>>>;
    let stuck_one = Box::pin(stuck(1)) as Pin<Box<dyn Future<Output = ()>>>;
    let quick_two = Box::pin(async {
        quick(3).await;
    }) as Pin<Box<dyn Future<Output = ()>>>;
    futures::future::join_all([quick_one, stuck_one, quick_two]).await;
}

#[test]
fn join_all_with_finished_members_keeps_the_stuck_one() {
    assert_eq!(
        chain_after_one_poll("joined_all", joined_all(0)),
        "Task \"joined_all\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::joined_all(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn inner_join(depth: u32) {
    futures::join!(stuck(depth), quick(depth + 1));
}

#[webstack::instrument]
async fn nested_joins(tag: u32) {
    futures::join!(quick(7), inner_join(5), quick(8));
}

#[test]
fn nested_joins_keep_the_innermost_stuck_branch() {
    assert_eq!(
        chain_after_one_poll("nested_joins", nested_joins(0)),
        "Task \"nested_joins\" idle\n\
         \x20 await_chains::stuck(id: u32 = 5) await_chains.rs:LINE\n\
         \x20 await_chains::inner_join(depth: u32 = 5) await_chains.rs:LINE\n\
         \x20 await_chains::nested_joins(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

/// A future that finishes on its second poll, waking itself on the first.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[webstack::instrument]
async fn yields_then_returns(id: u32) -> u32 {
    YieldOnce(false).await;
    id
}

#[webstack::instrument]
async fn later_poll(tag: u32) {
    futures::join!(stuck(1), yields_then_returns(2));
}

#[test]
fn a_sibling_finishing_on_a_later_poll_keeps_the_stuck_branch() {
    let mut root = Box::pin(later_poll(0));
    assert!(poll_once(root.as_mut()).is_pending());
    assert!(poll_once(root.as_mut()).is_pending());
    assert_eq!(
        describe_all(&shadow_snapshot(), |n| n == "later_poll"),
        "Task \"later_poll\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::later_poll(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

/// Polls `root` `polls` times (it must stay pending each time) and describes
/// the task named `name`.
fn chain_after_polls(name: &str, polls: usize, root: impl Future<Output = ()>) -> String {
    let mut root = Box::pin(root);
    for _ in 0..polls {
        assert!(poll_once(root.as_mut()).is_pending());
    }
    let text = describe_all(&shadow_snapshot(), |n| n == name);
    drop(root);
    text
}

#[webstack::instrument]
async fn unordered_later(tag: u32) {
    let mut set: FuturesUnordered<Pin<Box<dyn Future<Output = u32>>>> = FuturesUnordered::new();
    set.push(Box::pin(async {
        stuck(1).await;
        0
    }));
    set.push(Box::pin(yields_then_returns(2)));
    while set.next().await.is_some() {}
}

#[test]
fn futures_unordered_member_finishing_on_a_later_poll_keeps_the_stuck_one() {
    // The second poll polls only the woken member, which finishes: nothing
    // in it saves a chain.
    assert_eq!(
        chain_after_polls("unordered_later", 2, unordered_later(0)),
        "Task \"unordered_later\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::unordered_later(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn group(id: u32) {
    let mut set: FuturesUnordered<Pin<Box<dyn Future<Output = u32>>>> = FuturesUnordered::new();
    set.push(Box::pin(async {
        stuck(1).await;
        0
    }));
    set.push(Box::pin(yields_then_returns(2)));
    while set.next().await.is_some() {}
}

#[webstack::instrument]
async fn nested_unordered_later(tag: u32) {
    group(5).await;
}

#[test]
fn a_nested_futures_unordered_keeps_its_stuck_member_on_a_later_poll() {
    // `group` is pending on the second poll with nothing saved below it:
    // its own chain must not hide the member still stuck below it.
    assert_eq!(
        chain_after_polls("nested_unordered_later", 2, nested_unordered_later(0)),
        "Task \"nested_unordered_later\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::group(id: u32 = 5) await_chains.rs:LINE\n\
         \x20 await_chains::nested_unordered_later(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn member(id: u32) -> u32 {
    if id == 1 {
        stuck(1).await;
    } else {
        yields_then_returns(id).await;
    }
    id
}

#[webstack::instrument]
async fn joined_all_later(tag: u32) {
    // More than 30 futures: `join_all` runs them in a `FuturesOrdered`,
    // which returns after two members wake themselves: 100 polls finish all
    // but the stuck one.
    futures::future::join_all((1..=40).map(member)).await;
}

#[test]
fn join_all_over_thirty_futures_keeps_the_stuck_one_on_a_later_poll() {
    assert_eq!(
        chain_after_polls("joined_all_later", 100, joined_all_later(0)),
        "Task \"joined_all_later\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::member(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::joined_all_later(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn buffered_later(tag: u32) {
    let _: Vec<u32> = futures::stream::iter((1..=6).map(member))
        .buffer_unordered(3)
        .collect()
        .await;
}

#[test]
fn buffer_unordered_keeps_the_stuck_one_on_later_polls() {
    // Members finish on later polls, which start the next ones; 20 polls
    // finish all but the stuck one.
    assert_eq!(
        chain_after_polls("buffered_later", 20, buffered_later(0)),
        "Task \"buffered_later\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::member(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::buffered_later(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn unordered_then_dropped(tag: u32) {
    let mut set: FuturesUnordered<Pin<Box<dyn Future<Output = u32>>>> = FuturesUnordered::new();
    set.push(Box::pin(async {
        stuck(1).await;
        0
    }));
    set.push(Box::pin(yields_then_returns(2)));
    set.next().await;
    // The stuck member goes with the set: the task now waits here.
    drop(set);
    pending::<()>().await
}

#[test]
fn a_member_dropped_on_a_later_poll_is_not_shown() {
    assert_eq!(
        chain_after_polls("unordered_then_dropped", 2, unordered_then_dropped(0)),
        "Task \"unordered_then_dropped\" idle\n\
         \x20 await_chains::unordered_then_dropped(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn racer(id: u32) {
    futures::select_biased! {
        () = stuck(id).fuse() => {},
        _ = quick(id).fuse() => {},
    }
}

#[webstack::instrument]
async fn join_with_racer(tag: u32) {
    futures::join!(stuck(1), racer(2));
}

#[test]
fn a_sibling_whose_select_saved_then_dropped_keeps_the_stuck_branch() {
    // `racer`'s `stuck(2)` saves its chain, then `quick(2)` wins and
    // `select!` drops it, all in the poll that saved `stuck(1)`.
    assert_eq!(
        chain_after_polls("join_with_racer", 1, join_with_racer(0)),
        "Task \"join_with_racer\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::join_with_racer(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}

#[webstack::instrument]
async fn timed(id: u32) {
    let _ = tokio::time::timeout(std::time::Duration::from_millis(1), stuck(id)).await;
}

#[webstack::instrument]
async fn join_with_timeout(tag: u32) {
    futures::join!(stuck(1), timed(2));
}

#[test]
fn a_timeout_firing_inside_a_join_branch_keeps_the_stuck_branch() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let text = runtime.block_on(async {
        let mut root = Box::pin(join_with_timeout(0));
        assert!(poll_once(root.as_mut()).is_pending());
        // The runtime's timer fires the 1 ms deadline while this sleeps.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // `stuck(2)` saves, then the deadline fires and `timeout` drops it.
        assert!(poll_once(root.as_mut()).is_pending());
        describe_all(&shadow_snapshot(), |n| n == "join_with_timeout")
    });
    assert_eq!(
        text,
        "Task \"join_with_timeout\" idle\n\
         \x20 await_chains::stuck(id: u32 = 1) await_chains.rs:LINE\n\
         \x20 await_chains::join_with_timeout(tag: u32 = 0) await_chains.rs:LINE [task root]\n"
    );
}
