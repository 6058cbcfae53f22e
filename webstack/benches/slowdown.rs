//! How much slower the observed program runs while snapshots are taken.
//!
//! The workload: as many threads as CPUs calling an instrumented function
//! (64 rounds of xorshift, a few nanoseconds of work beside the frame push
//! and pop) in a loop; the figure is the wall time per call across all of
//! them, so a snapshot stealing CPU shows as a longer time. Beside them:
//! 16 threads parked in instrumented frames and 1,000 idle tasks, either
//! differing only in an address (`grouped`: a handful of buckets) or with
//! distinct ids (`distinct`: 1,000 buckets on the page).
//!
//! Each mode takes one snapshot every 100 ms on another thread, the work of
//! one page request (`Snapshot::capture` + `Buckets::aggregate` + `render`
//! as HTML), with `augment=0` and with `augment=1` (the default page).
//! Quiet and watched batches alternate inside every criterion sample: the
//! same number of calls is timed first with the snapshot thread paused,
//! then with it running (its 100 ms clock keeps ticking while paused, so a
//! watched batch sees its fair share of snapshots), and criterion records
//! the watched batch. At the end of each mode the bench prints the quiet
//! and watched time per call summed over all samples, the slowdown
//! (watched / quiet − 1), and the snapshot thread's wall and CPU time per
//! snapshot: on a shared, noisy machine `10 × CPU per snapshot / CPUs` is
//! the steadier estimate of the CPU share taken from a CPU-bound program
//! (signal handlers running on the workload threads come on top).
//! Run with `cargo bench -p webstack --bench slowdown`; the recorded figures
//! are in BENCHMARKS.md, "Slowdown under snapshots".

#[path = "../../tests/support/slowdown.rs"]
mod slowdown_workload;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use slowdown_workload::{idle_tasks, park_threads, slowdown_work, Background};
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot};

const PERIOD: Duration = Duration::from_millis(100);

/// Takes one page's worth of snapshot every [`PERIOD`] until dropped.
struct Snapshotter {
    stop: Arc<AtomicBool>,
    /// While set, the snapshot thread skips its turns.
    paused: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
    busy_micros: Arc<AtomicU64>,
    cpu_micros: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Snapshotter {
    fn start(augment: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(true));
        let taken = Arc::new(AtomicU64::new(0));
        let busy_micros = Arc::new(AtomicU64::new(0));
        let cpu_micros = Arc::new(AtomicU64::new(0));
        let handle = {
            let (stop, paused, taken, busy, cpu) = (
                stop.clone(),
                paused.clone(),
                taken.clone(),
                busy_micros.clone(),
                cpu_micros.clone(),
            );
            std::thread::spawn(move || {
                let options = Options::default().augment(augment);
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if paused.load(Ordering::Relaxed) {
                        next += PERIOD;
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        continue;
                    }
                    let started = Instant::now();
                    let cpu_started = thread_cpu();
                    let snapshot = Snapshot::capture(&options);
                    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
                    let page = render(&snapshot, &buckets, &View::default().format(Format::Html))
                        .expect("renders");
                    black_box(page);
                    busy.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    cpu.fetch_add(
                        (thread_cpu() - cpu_started).as_micros() as u64,
                        Ordering::Relaxed,
                    );
                    taken.fetch_add(1, Ordering::Relaxed);
                    next += PERIOD;
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            })
        };
        Snapshotter {
            stop,
            paused,
            taken,
            busy_micros,
            cpu_micros,
            handle: Some(handle),
        }
    }
}

impl Snapshotter {
    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Stops the thread; prints the figures of the mode given the quiet and
    /// watched time of the same number of calls.
    fn finish(mut self, mode: &str, calls: u64, quiet: Duration, watched: Duration) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        let taken = self.taken.load(Ordering::Relaxed);
        if taken == 0 || calls == 0 {
            return;
        }
        let each = |total: &AtomicU64| total.load(Ordering::Relaxed) as f64 / taken as f64 / 1e3;
        let per_call = |total: Duration| total.as_nanos() as f64 / calls as f64;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
        let cpu_ms = each(&self.cpu_micros);
        eprintln!(
            "  {mode}: quiet {:.1} ns/call, watched {:.1} ns/call, slowdown {:+.2}%; \
             {taken} snapshots, {:.2} ms wall and {cpu_ms:.2} ms CPU each \
             (CPU share at 10/s on {cpus} CPUs: {:.2}%)",
            per_call(quiet),
            per_call(watched),
            (watched.as_secs_f64() / quiet.as_secs_f64() - 1.0) * 100.0,
            each(&self.busy_micros),
            cpu_ms * 10.0 / (1000.0 * cpus) * 100.0,
        );
    }
}

impl Drop for Snapshotter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `iters` calls split over `threads` threads; the wall time of the lot.
fn run_calls(threads: usize, iters: u64) -> Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let start = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                start.wait();
                let mut acc = 0u64;
                for i in 0..per_thread {
                    acc = acc.wrapping_add(slowdown_work(i, "request"));
                }
                black_box(acc);
            });
        }
        start.wait();
        let started = Instant::now();
        // The scope joins the workers before returning.
        started
    })
    .elapsed()
}

fn slowdown(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    park_threads();
    // Warm up once-per-process state (templates, signal, symbol cache).
    for augment in [false, true] {
        black_box(Snapshot::capture(&Options::default().augment(augment)));
    }
    let mut group = c.benchmark_group("slowdown");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    for (name, background) in [
        ("grouped", Background::Grouped),
        ("distinct", Background::Distinct),
    ] {
        let tasks = idle_tasks(background);
        for augment in [false, true] {
            let mode = format!("{name}/augment={}", u8::from(augment));
            let snapshotter = Snapshotter::start(augment);
            let (mut calls, mut quiet, mut watched) = (0, Duration::ZERO, Duration::ZERO);
            group.bench_function(mode.as_str(), |b| {
                b.iter_custom(|iters| {
                    snapshotter.pause(true);
                    let calm = run_calls(threads, iters);
                    snapshotter.pause(false);
                    let busy = run_calls(threads, iters);
                    snapshotter.pause(true);
                    calls += iters;
                    quiet += calm;
                    watched += busy;
                    busy
                })
            });
            snapshotter.finish(&mode, calls, quiet, watched);
        }
        drop(tasks);
    }
    group.finish();
}

criterion_group!(benches, slowdown);
criterion_main!(benches);
