//! The program observed by the slowdown measurements, shared by
//! `tests/hardening_slowdown.rs` (over HTTP, with a loose sanity bound) and
//! `webstack/benches/slowdown.rs` (the recorded figures; it includes this
//! file by path): a CPU-bound instrumented call, threads parked in
//! instrumented frames, and 1,000 idle tasks that either share a bucket or
//! each have their own.

#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::Context;

/// The workload's call: 64 rounds of xorshift beside the frame push and pop.
#[webstack::instrument]
pub fn slowdown_work(seed: u64, label: &str) -> u64 {
    let mut x = seed | 1;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x.wrapping_add(label.len() as u64)
}

#[webstack::instrument(skip(release))]
fn slowdown_parked(index: u32, release: mpsc::Receiver<()>) {
    let _ = release.recv();
}

/// A connection: no `Capture` impl, so it is recorded by address and tasks
/// that differ only in it share a bucket at the default similarity.
struct Conn {
    _fd: u64,
}

#[webstack::instrument]
async fn slowdown_grouped(conn: &Conn) {
    std::future::pending::<()>().await;
}

#[webstack::instrument]
async fn slowdown_distinct(id: u64) {
    std::future::pending::<()>().await;
}

/// What the program holds beside its workload threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Background {
    /// 1,000 idle tasks differing only in an address: a handful of buckets.
    Grouped,
    /// 1,000 idle tasks with distinct ids: 1,000 buckets on the page.
    Distinct,
}

/// An idle task, polled once and pending forever.
pub type IdleTask = Pin<Box<dyn Future<Output = ()>>>;

/// 1,000 idle tasks of the `background` kind, registered (polled once).
pub fn idle_tasks(background: Background) -> Vec<IdleTask> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    (0..1_000u64)
        .map(|id| {
            let mut task: IdleTask = match background {
                Background::Grouped => {
                    let conn: &'static Conn = Box::leak(Box::new(Conn { _fd: id }));
                    Box::pin(slowdown_grouped(conn))
                }
                Background::Distinct => Box::pin(slowdown_distinct(id)),
            };
            assert!(task.as_mut().poll(&mut cx).is_pending());
            task
        })
        .collect()
}

/// Starts 16 threads parked in an instrumented frame for the rest of the
/// process.
pub fn park_threads() {
    for index in 0..16 {
        let (tx, rx) = mpsc::channel();
        std::mem::forget(tx);
        webstack::thread::Builder::new()
            .name(format!("slowdown-parked-{index}"))
            .spawn(move || slowdown_parked(index, rx))
            .expect("spawns a parked thread");
    }
}
