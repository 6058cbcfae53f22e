//! Per-call cost of instrumentation, side by side with peer crates, in one
//! run so the ratios compare like with like.
//!
//! - `sync`: a plain `#[inline(never)]` call against `#[webstack::instrument]`
//!   (0, 2 and 4 integer arguments, a `&str`) and `#[tracing::instrument]`
//!   without a subscriber and with a `tracing_subscriber::registry()`.
//! - `sync_user_types`: one argument, a `u64` against a user's type holding
//!   one: a newtype and an enum with hand-written `Capture` impls recording
//!   the field alone, the same two with `#[derive(Capture)]`, and a unit
//!   variant.
//! - `sync_added`: the added cost of the two-argument call alone, plain and
//!   instrumented batches alternating (see [`sync_added`]).
//! - `async_nested`: create + poll to ready + drop of an async fn called
//!   inside an already-running instrumented task (how real code calls them):
//!   plain, webstack, async-backtrace `#[framed]`, await-tree
//!   `instrument_await`.
//! - `async_awaits`: the same, for an instrumented async fn whose body
//!   awaits two futures that are ready at once: `.await`s rewritten to record
//!   their line when pending (what `#[webstack::instrument]` generates)
//!   against the same `.await`s hidden from the rewrite in a macro (what it
//!   generated before await lines). Their difference is the ready-path cost
//!   of two await-point lines.
//! - `async_root`: the same future polled at top level, so each call is a new
//!   task root (registration and removal included), on one thread.
//! - `register_2threads`: two threads creating, first-polling and dropping
//!   task roots at the same time; the figure is the time per registration
//!   seen by each thread (the slower thread's elapsed time / its count).
//! - `spawn`: spawn + completion of a trivial task on a current-thread
//!   tokio runtime (the spawner awaits each `JoinHandle`), with
//!   `tokio::spawn` and with `webstack::task::spawn`, which registers the
//!   task at spawn and acts as its root.
//! - `hooks_poll` (only with `RUSTFLAGS="--cfg tokio_unstable"`): one poll
//!   of a task that yields, on a current-thread runtime without and with
//!   `webstack::tokio::hooks`; the difference is the hooks' cost per poll.
//!
//! Except in `spawn` and `hooks_poll`, futures are polled by hand with a
//! noop waker: no runtime cost is measured.
//! Run with `cargo bench -p webstack --bench calls`.

mod util;

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use await_tree::InstrumentAwait;
use criterion::{criterion_group, criterion_main, Criterion};
use util::call_fns::*;
use util::run_ready;

// ---- sync -------------------------------------------------------------

fn sync_calls(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync");
    let (a, b, x, y) = (
        black_box(1u64),
        black_box(2u64),
        black_box(3u64),
        black_box(4u64),
    );
    let s = black_box("connection-42");
    group.bench_function("plain/0", |bench| bench.iter(plain0));
    group.bench_function("plain/2", |bench| bench.iter(|| plain2(a, b)));
    group.bench_function("plain/4", |bench| bench.iter(|| plain4(a, b, x, y)));
    group.bench_function("plain/str", |bench| bench.iter(|| plain_str(s)));
    group.bench_function("webstack/0", |bench| bench.iter(ws0));
    group.bench_function("webstack/2", |bench| bench.iter(|| ws2(a, b)));
    group.bench_function("webstack/4", |bench| bench.iter(|| ws4(a, b, x, y)));
    group.bench_function("webstack/str", |bench| bench.iter(|| ws_str(s)));
    // Before any subscriber exists: tracing's callsite cache says "never".
    group.bench_function("tracing/2/no-subscriber", |bench| {
        bench.iter(|| tracing2(a, b))
    });
    let subscriber = tracing_subscriber::registry();
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing/2/registry", |bench| bench.iter(|| tracing2(a, b)));
    });
    group.finish();
}

fn sync_user_types(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_user_types");
    let id = black_box(7u64);
    group.bench_function("plain/u64", |bench| bench.iter(|| plain_u64(id)));
    group.bench_function("webstack/u64", |bench| bench.iter(|| ws_u64(id)));
    group.bench_function("webstack/newtype-hand", |bench| {
        bench.iter(|| ws_newtype_hand(UserIdHand(id)))
    });
    group.bench_function("webstack/newtype-derive", |bench| {
        bench.iter(|| ws_newtype_derive(UserId(id)))
    });
    group.bench_function("webstack/enum-hand", |bench| {
        bench.iter(|| ws_enum_hand(ConnStateHand::Draining(id)))
    });
    group.bench_function("webstack/enum-derive", |bench| {
        bench.iter(|| ws_enum_derive(ConnState::Draining(id)))
    });
    group.bench_function("webstack/unit-variant-derive", |bench| {
        bench.iter(|| ws_enum_derive(black_box(ConnState::Idle)))
    });
    group.finish();
}

/// The added cost of a two-argument call, measured directly: batches of
/// plain and instrumented calls alternate within each sample, so a change in
/// the machine's speed during the run (frequency, a neighbour on the host)
/// falls on both sides alike instead of on one benchmark of the pair. The
/// figure is (instrumented - plain) per call. `sync/plain/2` and
/// `sync/webstack/2` measure the two sides apart, seconds or minutes from
/// each other.
fn sync_added(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_added");
    let (a, b) = (black_box(1u64), black_box(2u64));
    group.bench_function("webstack/2", |bench| {
        bench.iter_custom(|iters| interleaved_difference(iters, || plain2(a, b), || ws2(a, b)))
    });
    group.finish();
}

/// Time of `iters` calls of `measured` minus that of `iters` calls of `base`,
/// the two run in alternating batches. A sample where noise made the
/// difference negative counts as zero, which can only raise the figure.
fn interleaved_difference(
    iters: u64,
    mut base: impl FnMut() -> u64,
    mut measured: impl FnMut() -> u64,
) -> Duration {
    const BATCH: u64 = 1_000;
    let (mut base_time, mut measured_time) = (Duration::ZERO, Duration::ZERO);
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        let start = Instant::now();
        for _ in 0..n {
            black_box(base());
        }
        base_time += start.elapsed();
        let start = Instant::now();
        for _ in 0..n {
            black_box(measured());
        }
        measured_time += start.elapsed();
        left -= n;
    }
    measured_time.saturating_sub(base_time)
}

// ---- async --------------------------------------------------------------

#[webstack::instrument(skip_all)]
async fn ws_root(body: &mut dyn FnMut()) {
    body()
}

/// Whether a webstack task root is being polled on this thread right now.
fn ws_inside_task() -> bool {
    let snapshot = webstack::Snapshot::capture(&webstack::Options::default().augment(false));
    snapshot.routines().any(|r| {
        r.kind == webstack::Kind::Task
            && r.state == webstack::State::Running
            && r.name.ends_with("ws_root")
    })
}

fn async_nested(c: &mut Criterion) {
    let mut group = c.benchmark_group("async_nested");
    let (a, b) = (black_box(1u64), black_box(2u64));
    group.bench_function("plain", |bench| {
        run_ready(async { bench.iter(|| run_ready(plain_leaf(a, b))) })
    });
    group.bench_function("webstack", |bench| {
        run_ready(ws_root(&mut || {
            assert!(ws_inside_task(), "the webstack root is not active");
            bench.iter(|| run_ready(ws_leaf(a, b)))
        }))
    });
    group.bench_function("async-backtrace", |bench| {
        run_ready(async_backtrace::location!().frame(async {
            assert!(
                async_backtrace::backtrace().is_some(),
                "the async-backtrace root is not active"
            );
            bench.iter(|| run_ready(ab_leaf(a, b)))
        }))
    });
    let registry = await_tree::Registry::new(await_tree::Config::default());
    group.bench_function("await-tree", |bench| {
        run_ready(registry.register(0u64, "root").instrument(async {
            assert!(
                await_tree::current_tree().is_some(),
                "the await-tree root is not active"
            );
            bench.iter(|| run_ready(plain_leaf(a, b).instrument_await("leaf")))
        }))
    });
    group.finish();
}

fn async_awaits(c: &mut Criterion) {
    let mut group = c.benchmark_group("async_awaits");
    let (a, b) = (black_box(1u64), black_box(2u64));
    group.bench_function("webstack/rewritten", |bench| {
        run_ready(ws_root(&mut || {
            assert!(ws_inside_task(), "the webstack root is not active");
            bench.iter(|| run_ready(ws_awaits(a, b)))
        }))
    });
    group.bench_function("webstack/unrewritten", |bench| {
        run_ready(ws_root(&mut || {
            assert!(ws_inside_task(), "the webstack root is not active");
            bench.iter(|| run_ready(ws_awaits_unrewritten(a, b)))
        }))
    });
    group.finish();
}

fn async_root(c: &mut Criterion) {
    let mut group = c.benchmark_group("async_root");
    let (a, b) = (black_box(1u64), black_box(2u64));
    group.bench_function("plain", |bench| bench.iter(|| run_ready(plain_leaf(a, b))));
    group.bench_function("webstack", |bench| bench.iter(|| run_ready(ws_leaf(a, b))));
    group.bench_function("async-backtrace", |bench| {
        bench.iter(|| run_ready(async_backtrace::location!().frame(plain_leaf(a, b))))
    });
    let registry = await_tree::Registry::new(await_tree::Config::default());
    let mut key = 0u64;
    group.bench_function("await-tree", |bench| {
        bench.iter(|| {
            key += 1;
            run_ready(registry.register(key, "root").instrument(plain_leaf(a, b)))
        })
    });
    group.finish();
}

// ---- registration under contention ------------------------------------

/// Runs `register(thread, i)` `iters` times on each of two threads started
/// together; returns the slower thread's elapsed time.
fn contended(iters: u64, register: impl Fn(u64, u64) + Sync) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2u64)
            .map(|thread| {
                let (barrier, register) = (&barrier, &register);
                scope.spawn(move || {
                    // Thread registration and per-thread caches are warmed up
                    // outside the measurement.
                    for i in 0..16 {
                        register(thread, u64::MAX - i);
                    }
                    barrier.wait();
                    let started = Instant::now();
                    for i in 0..iters {
                        register(thread, i);
                    }
                    started.elapsed()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn register_2threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("register_2threads");
    group.bench_function("webstack", |bench| {
        bench.iter_custom(|iters| {
            contended(iters, |thread, i| {
                black_box(run_ready(ws_leaf(thread, i)));
            })
        })
    });
    group.bench_function("async-backtrace", |bench| {
        bench.iter_custom(|iters| {
            contended(iters, |thread, i| {
                black_box(run_ready(
                    async_backtrace::location!().frame(plain_leaf(thread, i)),
                ));
            })
        })
    });
    let registry = await_tree::Registry::new(await_tree::Config::default());
    group.bench_function("await-tree", |bench| {
        bench.iter_custom(|iters| {
            contended(iters, |thread, i| {
                let key = (thread, i);
                black_box(run_ready(
                    registry
                        .register(key, "root")
                        .instrument(plain_leaf(thread, i)),
                ));
            })
        })
    });
    group.finish();
}

// ---- spawn wrappers and hooks -----------------------------------------

fn current_thread(builder: &mut tokio::runtime::Builder) -> tokio::runtime::Runtime {
    builder.enable_all().build().unwrap()
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    let rt = current_thread(&mut tokio::runtime::Builder::new_current_thread());
    group.bench_function("tokio", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(tokio::spawn(async move { black_box(i) }).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("webstack", |bench| {
        bench.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(
                        webstack::task::spawn(async move { black_box(i) })
                            .await
                            .unwrap(),
                    );
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Time of `iters` polls of one task that yields each time.
#[cfg(tokio_unstable)]
fn yielding_polls(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        tokio::spawn(async move {
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        start.elapsed()
    })
}

#[cfg(tokio_unstable)]
fn hooks_poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("hooks_poll");
    let plain = current_thread(&mut tokio::runtime::Builder::new_current_thread());
    let hooked = current_thread(webstack::tokio::hooks(
        &mut tokio::runtime::Builder::new_current_thread(),
    ));
    group.bench_function("tokio", |bench| {
        bench.iter_custom(|iters| yielding_polls(&plain, iters))
    });
    group.bench_function("webstack_hooks", |bench| {
        bench.iter_custom(|iters| yielding_polls(&hooked, iters))
    });
    group.finish();
}

#[cfg(not(tokio_unstable))]
fn hooks_poll(_: &mut Criterion) {}

criterion_group!(
    benches,
    sync_calls,
    sync_added,
    sync_user_types,
    async_nested,
    async_awaits,
    async_root,
    register_2threads,
    spawn,
    hooks_poll
);
criterion_main!(benches);
