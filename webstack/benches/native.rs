//! Cost of native stacks: the signalling phase (signal + unwind, with the
//! `/proc` reads) per thread at 8, 64 and 256 threads, every thread at once
//! (`parallel`, the default) beside one thread at a time (`serial`, as the
//! libgcc unwinder does and as every capture did before) in the same run;
//! a full snapshot with `augment` on and off; and what `augment=1` adds to
//! a page of 64 parked threads, end to end and phase by phase.
//!
//! Run with `cargo bench -p webstack --bench native -- --quick`; the
//! per-thread figures and the phase table are printed on stderr.
//! Symbolisation alone, cold and warm, is in the `symbols` bench.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use webstack::render::{self, Format, Links};
use webstack::{Buckets, Options, Similarity, Snapshot};

type Gate = Arc<(Mutex<bool>, Condvar)>;

struct Parked {
    gate: Gate,
    handles: Vec<JoinHandle<()>>,
}

/// Three instrumented frames deep, like a handler calling a service
/// calling a client.
#[webstack::instrument]
fn parked(index: usize, gate: &(Mutex<bool>, Condvar)) {
    parked_service(index, gate);
}

#[webstack::instrument]
fn parked_service(index: usize, gate: &(Mutex<bool>, Condvar)) {
    parked_wait(index, gate);
}

#[webstack::instrument]
fn parked_wait(index: usize, gate: &(Mutex<bool>, Condvar)) {
    std::hint::black_box(index);
    let mut open = gate.0.lock().unwrap();
    while !*open {
        open = gate.1.wait(open).unwrap();
    }
}

/// `n` threads in total (counting those already running) blocked in a
/// Condvar wait under one instrumented frame.
fn park(n: usize) -> Parked {
    let gate: Gate = Arc::new((Mutex::new(false), Condvar::new()));
    let existing = std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count());
    let handles = (0..n.saturating_sub(existing))
        .map(|index| {
            let gate = gate.clone();
            std::thread::spawn(move || parked(index, &gate))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    Parked { gate, handles }
}

impl Drop for Parked {
    fn drop(&mut self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
        for handle in self.handles.drain(..) {
            handle.join().unwrap();
        }
    }
}

fn capture_per_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("native/capture");
    for threads in [8usize, 64, 256] {
        let parked = park(threads);
        print_per_thread(threads);
        group.throughput(Throughput::Elements(threads as u64));
        for (mode, parallel) in [("parallel", true), ("serial", false)] {
            webstack::__private::native::set_parallel(parallel);
            group.bench_with_input(BenchmarkId::new(mode, threads), &threads, |b, _| {
                b.iter(|| webstack::__private::native::stacks_only().unwrap())
            });
        }
        webstack::__private::native::set_parallel(true);
        drop(parked);
    }
    group.finish();
}

/// Prints the signalling phase's cost per thread, parallel beside serial,
/// alternating the two: the median and the mean (which counts the slow
/// captures, as criterion's estimate does) of 50 captures each.
fn print_per_thread(threads: usize) {
    let mut parallel = Vec::new();
    let mut serial = Vec::new();
    for _ in 0..10 {
        for (parallel_mode, out) in [(true, &mut parallel), (false, &mut serial)] {
            webstack::__private::native::set_parallel(parallel_mode);
            for _ in 0..5 {
                let started = Instant::now();
                webstack::__private::native::stacks_only().unwrap();
                out.push(started.elapsed());
            }
        }
    }
    webstack::__private::native::set_parallel(true);
    let line = |times: &mut Vec<Duration>| {
        times.sort();
        let median = times[times.len() / 2].as_secs_f64() * 1e6;
        let mean = times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e6 / times.len() as f64;
        let max = times[times.len() - 1].as_secs_f64() * 1e6;
        format!(
            "{:.1} µs/thread (median {median:.0} µs, mean {mean:.0} µs, max {max:.0} µs)",
            median / threads as f64
        )
    };
    eprintln!(
        "native/capture {threads} threads: parallel {}; serial {}",
        line(&mut parallel),
        line(&mut serial)
    );
}

fn full_snapshot(c: &mut Criterion) {
    let parked = park(64);
    let mut group = c.benchmark_group("native/snapshot_64_threads");
    for augment in [false, true] {
        let options = Options::default().augment(augment);
        group.bench_function(if augment { "augment=1" } else { "augment=0" }, |b| {
            b.iter(|| Snapshot::capture(&options))
        });
    }
    group.finish();
    drop(parked);
}

/// One page: capture, aggregate, render.
fn page(augment: bool, format: Format) -> String {
    let snapshot = Snapshot::capture(&Options::default().augment(augment));
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    render::render(&snapshot, &buckets, format, &Links::default()).expect("render")
}

/// The phases of one `augment=1` page; the native ones from the hook, then
/// aggregate and render, each also on the same capture without augment.
const PHASES: [&str; 11] = [
    "shadow capture",
    "signal+unwind",
    "symbolise",
    "merge",
    "add_sources",
    "show_workers",
    "aggregate",
    "render html",
    "render json",
    "aggregate (augment=0)",
    "render html (augment=0)",
];

/// Runs one page with every phase timed; returns the times in [`PHASES`]
/// order and the number of frames with and without augment.
fn timed_page() -> ([Duration; 11], usize, usize) {
    let mut times = [Duration::ZERO; 11];
    let started = Instant::now();
    let mut snapshot = Snapshot::capture(&Options::default().augment(false));
    times[0] = started.elapsed();
    let plain = snapshot.clone();
    for (name, time) in webstack::__private::native::augment_phases(&mut snapshot) {
        let index = PHASES
            .iter()
            .position(|p| *p == name)
            .expect("a known phase");
        times[index] = time;
    }
    let started = Instant::now();
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    times[6] = started.elapsed();
    let started = Instant::now();
    let html = render::render(&snapshot, &buckets, Format::Html, &Links::default()).unwrap();
    times[7] = started.elapsed();
    let started = Instant::now();
    let json = render::render(&snapshot, &buckets, Format::Json, &Links::default()).unwrap();
    times[8] = started.elapsed();
    let started = Instant::now();
    let plain_buckets = Buckets::aggregate(&plain, Similarity::AnyPointer);
    times[9] = started.elapsed();
    let started = Instant::now();
    let plain_html =
        render::render(&plain, &plain_buckets, Format::Html, &Links::default()).unwrap();
    times[10] = started.elapsed();
    std::hint::black_box((html, json, plain_html));
    let frames = |s: &Snapshot| s.routines.iter().map(|r| r.frames.len()).sum::<usize>();
    (times, frames(&snapshot), frames(&plain))
}

/// What `augment=1` adds to a page of 64 parked threads (three
/// instrumented frames deep), warm: the page end to end with and without
/// it, then its phases, each measured alone (criterion) and as a table of
/// medians per thread (stderr).
fn augment_profile(c: &mut Criterion) {
    const THREADS: usize = 64;
    let parked = park(THREADS);
    // Warm the symbol and source caches.
    for _ in 0..3 {
        page(true, Format::Html);
    }
    let runs: Vec<_> = (0..41).map(|_| timed_page()).collect();
    let threads = Snapshot::capture(&Options::default().augment(true))
        .routines
        .iter()
        .filter(|r| r.kind == webstack::Kind::Thread)
        .count();
    let (_, augmented_frames, plain_frames) = runs[0];
    eprintln!(
        "native/page_64_threads phases (median of {} pages, {threads} threads, \
         {augmented_frames} frames augmented, {plain_frames} without):",
        runs.len()
    );
    for (index, phase) in PHASES.iter().enumerate() {
        let mut times: Vec<Duration> = runs.iter().map(|r| r.0[index]).collect();
        times.sort();
        let t = times[times.len() / 2];
        eprintln!(
            "  {phase:<24} {:>8.0} µs {:>7.2} µs/thread",
            t.as_secs_f64() * 1e6,
            t.as_secs_f64() * 1e6 / threads as f64
        );
    }
    let mut html_extra: Vec<f64> = runs
        .iter()
        .map(|r| (r.0[7].as_secs_f64() - r.0[10].as_secs_f64()) * 1e6)
        .collect();
    html_extra.sort_by(f64::total_cmp);
    eprintln!(
        "  render html per native frame added: {:.2} µs",
        html_extra[html_extra.len() / 2] / (augmented_frames - plain_frames).max(1) as f64
    );

    let mut group = c.benchmark_group("native/page_64_threads");
    group.throughput(Throughput::Elements(THREADS as u64));
    for format in [Format::Html, Format::Json] {
        for augment in [false, true] {
            let name = format!(
                "{}/augment={}",
                if format == Format::Html {
                    "html"
                } else {
                    "json"
                },
                augment as u8
            );
            group.bench_function(name, |b| b.iter(|| page(augment, format)));
        }
    }
    for (index, phase) in PHASES.iter().enumerate() {
        group.bench_function(format!("phase/{phase}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| timed_page().0[index]).sum())
        });
    }
    group.finish();
    drop(parked);
}

criterion_group!(benches, capture_per_thread, full_snapshot, augment_profile);
criterion_main!(benches);
