//! What tokio's task traces add to an `augment=1` capture (feature
//! `taskdump`, `--cfg tokio_unstable`), beside tokio's own dump of the same
//! runtime: a multi-thread runtime built with `webstack::tokio::hooks` and
//! 1,000 or 10,000 idle unannotated tasks waiting at four places (a oneshot,
//! a `Notify`, a timer, an mpsc channel).
//!
//! Three measurements in one run, each on a drained runtime (tokio wakes
//! every traced task after a dump, and a dump while many tasks are queued
//! can stop the runtime: the bench waits until its run queues are empty
//! before each one):
//! - `tokio_dump`: `Handle::dump()` alone, from a thread outside the runtime
//!   (as webstack's dump thread calls it);
//! - `traced`: `Snapshot::capture` with `augment=1` and task traces;
//! - `untraced`: the same capture with task traces off.
//!
//! `traced - untraced` is what a user pays for traces, per task; minus
//! `tokio_dump` it is webstack's own share (reading the addresses,
//! symbolising, merging). Both are printed on stderr.
//!
//! Run with
//! `RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/unstable cargo bench -p webstack --features taskdump --bench traces`.

#[cfg(tokio_unstable)]
mod util;

#[cfg(tokio_unstable)]
mod bench {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use criterion::{BenchmarkId, Criterion, Throughput};
    use tokio::runtime::{Handle, Runtime};
    use tokio::sync::{mpsc, oneshot, Notify};
    use webstack::__test_hooks::native as hooks;
    use webstack::{Options, Snapshot};

    use super::util;

    /// What keeps the idle tasks waiting.
    struct Waiting {
        _oneshots: Vec<oneshot::Sender<()>>,
        _notify: Arc<Notify>,
        _channels: Vec<mpsc::Sender<u8>>,
    }

    async fn read_oneshot(rx: oneshot::Receiver<()>) {
        let _ = rx.await;
    }

    async fn wait_notify(notify: Arc<Notify>) {
        notify.notified().await;
    }

    async fn sleep_long() {
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }

    async fn receive(mut rx: mpsc::Receiver<u8>) {
        let _ = rx.recv().await;
    }

    /// A hooked multi-thread runtime with `n` idle tasks in four shapes.
    fn runtime(n: usize) -> (Runtime, Waiting) {
        let runtime = webstack::tokio::hooks(&mut tokio::runtime::Builder::new_multi_thread())
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let notify = Arc::new(Notify::new());
        let mut oneshots = Vec::new();
        let mut channels = Vec::new();
        for i in 0..n {
            match i % 4 {
                0 => {
                    let (tx, rx) = oneshot::channel();
                    oneshots.push(tx);
                    runtime.spawn(read_oneshot(rx));
                }
                1 => {
                    runtime.spawn(wait_notify(notify.clone()));
                }
                2 => {
                    runtime.spawn(sleep_long());
                }
                _ => {
                    let (tx, rx) = mpsc::channel(1);
                    channels.push(tx);
                    runtime.spawn(receive(rx));
                }
            }
        }
        let waiting = Waiting {
            _oneshots: oneshots,
            _notify: notify,
            _channels: channels,
        };
        drain(runtime.handle());
        (runtime, waiting)
    }

    /// Waits until no task of the runtime is queued: tokio's wakes of the
    /// tasks a dump traced have been polled.
    fn drain(handle: &Handle) {
        let metrics = handle.metrics();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let queued: usize = (0..metrics.num_workers())
                .map(|w| metrics.worker_local_queue_depth(w))
                .sum::<usize>()
                + metrics.global_queue_depth();
            if queued == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the runtime's queues did not drain in 30 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // The workers finish the polls they took off their queues.
        std::thread::sleep(Duration::from_millis(2));
    }

    /// `iters` runs of `f`, each on a drained runtime; the time of `f` only.
    fn drained(handle: &Handle, iters: u64, mut f: impl FnMut()) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            drain(handle);
            let started = Instant::now();
            f();
            total += started.elapsed();
            progress();
        }
        total
    }

    /// Seconds since [`START`] at the last run's end, for the watchdog.
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<Instant> = OnceLock::new();

    fn progress() {
        let start = START.get_or_init(Instant::now);
        PROGRESS.store(start.elapsed().as_secs(), Ordering::Relaxed);
    }

    /// Ends the process if no run ends for [`STALL`]: a dump that never
    /// ends (tokio's loop with tasks queued) fails the bench, never hangs
    /// it.
    fn watchdog() {
        const STALL: u64 = 120;
        progress();
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(5));
            let now = START.get_or_init(Instant::now).elapsed().as_secs();
            if now.saturating_sub(PROGRESS.load(Ordering::Relaxed)) > STALL {
                eprintln!("traces: no run ended for {STALL} s; tokio's dump is stuck");
                std::process::exit(101);
            }
        });
    }

    /// Tokio's dump of the runtime, on a drained runtime only: tokio's dump
    /// with more than about 128 tasks queued never ends (see
    /// `native/linux/traces.rs`), and nothing here would end it.
    fn tokio_dump(handle: &Handle) -> usize {
        handle.block_on(handle.dump()).tasks().iter().count()
    }

    fn capture(traces: bool) -> Snapshot {
        hooks::set_task_traces(traces);
        Snapshot::capture(&Options::default().augment(true))
    }

    /// The median of `f`'s times over `runs` drained runs, in µs.
    fn median(handle: &Handle, runs: usize, mut f: impl FnMut()) -> f64 {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| drained(handle, 1, &mut f).as_secs_f64() * 1e6)
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    pub fn traces(c: &mut Criterion) {
        watchdog();
        webstack::native::set_trace_deadline(Duration::from_secs(30));
        hooks::set_trace_interval(Duration::ZERO);
        let sizes: &[usize] = if util::quick() {
            &[200]
        } else {
            &[1_000, 10_000]
        };
        let mut group = c.benchmark_group("traces");
        group.sample_size(10);
        for &n in sizes {
            let (runtime, waiting) = runtime(n);
            let handle = runtime.handle().clone();
            // Symbols loaded, and every task traced once, before timing.
            let traced = capture(true);
            progress();
            let note = traced.task_traces.clone().unwrap_or_default();
            assert!(
                note.contains(&format!("{n} tasks traced")),
                "not every task was traced: {note}"
            );
            drain(&handle);
            assert_eq!(tokio_dump(&handle), n);

            let runs = if util::quick() { 1 } else { 11 };
            let dump = median(&handle, runs, || {
                std::hint::black_box(tokio_dump(&handle));
            });
            let on = median(&handle, runs, || drop(capture(true)));
            let off = median(&handle, runs, || drop(capture(false)));
            eprintln!(
                "traces/{n} tasks (medians of {runs}): tokio's dump {:.0} µs = {:.2} µs/task; \
                 capture traced {on:.0} µs, untraced {off:.0} µs: traces add {:.2} µs/task, \
                 of which webstack's own (beyond tokio's dump) {:.2} µs/task",
                dump,
                dump / n as f64,
                (on - off) / n as f64,
                (on - off - dump) / n as f64,
            );

            group.throughput(Throughput::Elements(n as u64));
            group.bench_function(BenchmarkId::new("tokio_dump", n), |b| {
                b.iter_custom(|iters| {
                    drained(&handle, iters, || {
                        std::hint::black_box(tokio_dump(&handle));
                    })
                })
            });
            for (name, traces) in [("traced", true), ("untraced", false)] {
                group.bench_function(BenchmarkId::new(name, n), |b| {
                    b.iter_custom(|iters| drained(&handle, iters, || drop(capture(traces))))
                });
            }
            hooks::set_task_traces(true);
            drop(waiting);
            drop(runtime);
        }
        group.finish();
    }
}

#[cfg(tokio_unstable)]
criterion::criterion_group!(benches, bench::traces);
#[cfg(tokio_unstable)]
criterion::criterion_main!(benches);

#[cfg(not(tokio_unstable))]
fn main() {
    eprintln!(
        "traces: skipped, build with RUSTFLAGS=\"--cfg tokio_unstable\" (see the file's docs)"
    );
}
