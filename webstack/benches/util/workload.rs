//! The snapshot workload: idle tasks five instrumented frames deep, and
//! threads blocked inside instrumented functions; and the same tasks built
//! with async-backtrace and await-tree.
//!
//! Tasks are polled once by hand (they register at their first poll) and kept
//! alive, pending forever, in a `Vec`. Their arguments vary the way a server's
//! do: a per-task buffer address (merged by `Similarity::AnyPointer`) and a
//! handful of distinct shard, route and stage values, so grouping yields 32
//! buckets rather than one per task or a single one.

// Peer functions keep the webstack signatures (same futures, same sizes) but
// their libraries record no arguments.
#![allow(dead_code, unused_variables)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::mpsc;

use async_backtrace::framed;
use await_tree::InstrumentAwait;
use futures::future::pending;

use super::poll_pending;

/// A type without a `Capture` impl: a `&Buffer` argument is recorded as the
/// address it points at.
pub struct Buffer {
    bytes: [u8; 16],
}

const ROUTES: [&str; 4] = ["/api/users", "/api/orders", "/static", "/health"];

/// Task `conn`'s shard; with its route it makes 32 distinct argument sets.
fn shard(conn: usize) -> u64 {
    (conn % 8) as u64
}

fn route(conn: usize) -> &'static str {
    ROUTES[(conn / 8) % ROUTES.len()]
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

// ---- webstack -----------------------------------------------------------

#[webstack::instrument(name = "connection")]
async fn ws_connection(shard: u64, route: &'static str) {
    ws_handle(route, shard % 3).await
}

#[webstack::instrument]
async fn ws_handle(route: &'static str, stage: u64) {
    let buffer = Buffer { bytes: [0; 16] };
    ws_read_body(&buffer, stage).await;
    black_box(buffer.bytes);
}

#[webstack::instrument]
async fn ws_read_body(buffer: &Buffer, stage: u64) {
    ws_query(stage, 100).await
}

#[webstack::instrument]
async fn ws_query(stage: u64, limit: u32) {
    ws_wait_reply(stage as u32).await
}

#[webstack::instrument]
async fn ws_wait_reply(attempt: u32) {
    pending::<()>().await
}

// ---- async-backtrace ----------------------------------------------------

#[framed]
async fn ab_connection(shard: u64, route: &'static str) {
    ab_handle(route, shard % 3).await
}

#[framed]
async fn ab_handle(route: &'static str, stage: u64) {
    let buffer = Buffer { bytes: [0; 16] };
    ab_read_body(&buffer, stage).await;
    black_box(buffer.bytes);
}

#[framed]
async fn ab_read_body(buffer: &Buffer, stage: u64) {
    ab_query(stage, 100).await
}

#[framed]
async fn ab_query(stage: u64, limit: u32) {
    ab_wait_reply(stage as u32).await
}

#[framed]
async fn ab_wait_reply(attempt: u32) {
    pending::<()>().await
}

// ---- await-tree -----------------------------------------------------------

async fn at_connection(shard: u64, route: &'static str) {
    at_handle(route, shard % 3).instrument_await("handle").await
}

async fn at_handle(route: &'static str, stage: u64) {
    let buffer = Buffer { bytes: [0; 16] };
    at_read_body(&buffer, stage)
        .instrument_await("read_body")
        .await;
    black_box(buffer.bytes);
}

async fn at_read_body(buffer: &Buffer, stage: u64) {
    at_query(stage, 100).instrument_await("query").await
}

async fn at_query(stage: u64, limit: u32) {
    black_box((stage, limit));
    pending::<()>().instrument_await("wait_reply").await
}

// ---- the workload --------------------------------------------------------

/// Size in bytes of one task's future (the five nested frames) for webstack,
/// async-backtrace and await-tree.
pub fn future_sizes() -> [usize; 3] {
    [
        std::mem::size_of_val(&ws_connection(0, ROUTES[0])),
        std::mem::size_of_val(&ab_connection(0, ROUTES[0])),
        std::mem::size_of_val(&at_connection(0, ROUTES[0])),
    ]
}

/// Idle tasks of the three libraries, grown on demand.
pub struct Tasks {
    pub webstack: Vec<Task>,
    pub async_backtrace: Vec<Task>,
    pub await_tree: Vec<Task>,
    pub registry: await_tree::Registry,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks {
            webstack: Vec::new(),
            async_backtrace: Vec::new(),
            await_tree: Vec::new(),
            registry: await_tree::Registry::new(await_tree::Config::default()),
        }
    }

    /// Adds webstack tasks until there are `n`.
    pub fn grow_webstack(&mut self, n: usize) {
        self.webstack.truncate(n);
        self.webstack.reserve_exact(n - self.webstack.len());
        for conn in self.webstack.len()..n {
            let mut task: Task = Box::pin(ws_connection(shard(conn), route(conn)));
            poll_pending(task.as_mut());
            self.webstack.push(task);
        }
    }

    /// Adds async-backtrace and await-tree tasks until there are `n` of each.
    pub fn grow_peers(&mut self, n: usize) {
        self.grow_async_backtrace(n);
        self.grow_await_tree(n);
    }

    pub fn grow_async_backtrace(&mut self, n: usize) {
        self.async_backtrace.truncate(n);
        self.async_backtrace
            .reserve_exact(n - self.async_backtrace.len());
        for conn in self.async_backtrace.len()..n {
            let mut task: Task = Box::pin(ab_connection(shard(conn), route(conn)));
            poll_pending(task.as_mut());
            self.async_backtrace.push(task);
        }
    }

    pub fn grow_await_tree(&mut self, n: usize) {
        self.await_tree.truncate(n);
        self.await_tree.reserve_exact(n - self.await_tree.len());
        for conn in self.await_tree.len()..n {
            let root = self.registry.register(conn as u64, "connection");
            let mut task: Task = Box::pin(root.instrument(at_connection(shard(conn), route(conn))));
            poll_pending(task.as_mut());
            self.await_tree.push(task);
        }
    }
}

// ---- blocked threads ------------------------------------------------------

#[webstack::instrument(skip(ready, rx))]
fn worker_loop(pool: u64, ready: mpsc::Sender<()>, rx: mpsc::Receiver<()>) {
    worker_handle(pool * 2, &ready, &rx)
}

#[webstack::instrument(skip(ready, rx))]
fn worker_handle(job: u64, ready: &mpsc::Sender<()>, rx: &mpsc::Receiver<()>) {
    worker_wait(job as u32, ready, rx)
}

#[webstack::instrument(skip(ready, rx))]
fn worker_wait(attempt: u32, ready: &mpsc::Sender<()>, rx: &mpsc::Receiver<()>) {
    let _ = ready.send(());
    // Blocks until the sender is dropped.
    let _ = rx.recv();
}

/// Threads blocked three instrumented frames deep, grown on demand; they exit
/// when this is dropped.
pub struct Threads {
    stop: Vec<mpsc::Sender<()>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Threads {
    pub fn new() -> Self {
        Threads {
            stop: Vec::new(),
            handles: Vec::new(),
        }
    }

    /// Starts threads until there are `n`, and waits until each is inside
    /// its innermost instrumented frame.
    pub fn grow(&mut self, n: usize) {
        let (ready_tx, ready_rx) = mpsc::channel();
        let start = self.handles.len();
        for worker in start..n {
            let (tx, rx) = mpsc::channel();
            let ready = ready_tx.clone();
            self.stop.push(tx);
            self.handles.push(
                webstack::thread::Builder::new()
                    .name(format!("worker-{worker}"))
                    .stack_size(128 << 10)
                    .spawn(move || worker_loop(worker as u64 % 2, ready, rx))
                    .expect("spawn a worker thread"),
            );
        }
        drop(ready_tx);
        for _ in start..n {
            ready_rx.recv().expect("a worker thread reached its wait");
        }
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.clear();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

// ---- a million tasks ------------------------------------------------------

/// Idle tasks in 8 shapes, three to five instrumented frames deep, whose
/// arguments repeat (a connection's shard and route): what a server holding
/// many connections shows, for the million-task figures.
pub struct Shapes {
    pub tasks: Vec<Task>,
}

#[webstack::instrument(name = "session")]
async fn sh_session(shape: u64) {
    // Three to five frames: session, [route, [route,]] read or write, wait.
    match shape % 8 {
        0 => sh_read(shape).await,
        1 => sh_write(shape).await,
        2 => sh_route("/api", shape, 0).await,
        3 => sh_route("/static", shape, 1).await,
        4 => Box::pin(sh_read(shape)).await,
        5 => Box::pin(sh_write(shape)).await,
        6 => Box::pin(sh_route("/api", shape, 0)).await,
        _ => Box::pin(sh_route("/", shape, 2)).await,
    }
}

#[webstack::instrument]
async fn sh_route(route: &'static str, shape: u64, nested: u32) {
    if nested == 2 {
        Box::pin(sh_route("/api/v2", shape, 0)).await
    } else if nested == 1 {
        sh_write(shape).await
    } else {
        sh_read(shape).await
    }
}

#[webstack::instrument]
async fn sh_read(shape: u64) {
    sh_wait(shape).await
}

#[webstack::instrument]
async fn sh_write(shape: u64) {
    sh_wait(shape).await
}

#[webstack::instrument]
async fn sh_wait(shape: u64) {
    pending::<()>().await
}

impl Shapes {
    pub fn new() -> Self {
        Shapes { tasks: Vec::new() }
    }

    /// Adds tasks until there are `n`.
    pub fn grow(&mut self, n: usize) {
        self.tasks.truncate(n);
        self.tasks.reserve_exact(n - self.tasks.len());
        for i in self.tasks.len()..n {
            let mut task: Task = Box::pin(sh_session(i as u64 % 8));
            poll_pending(task.as_mut());
            self.tasks.push(task);
        }
    }
}
