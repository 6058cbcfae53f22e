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
