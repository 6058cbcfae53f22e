//! Cost of native stacks: the signalling phase (signal, register save and
//! stack copy in the handler, then the unwind of every copy, with the
//! `/proc` reads) per thread at 8, 64 and 256 threads, every thread at
//! once, with the DWARF unwinder (the default) beside the frame-pointer
//! walk of the same copies in the same run; a full snapshot with `augment`
//! on and off; what `augment=1` adds to a page of 64 parked threads, phase
//! by phase; and what a user pays for it: the JSON page through the serving
//! core (the handler every adapter calls) with 64 parked instrumented
//! threads and 10,000 idle instrumented tasks, `augment=1` minus
//! `augment=0`, per thread.
//!
//! Run with `cargo bench -p webstack --bench native -- --quick`; the
//! per-thread figures and the phase tables are printed on stderr.
//! Symbolisation alone, cold and warm, is in the `symbols` bench.

mod util;

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use util::workload::{Tasks, Threads};
use webstack::native::{self, Method};
use webstack::render::{self, Format};
use webstack::serve::{Request, Service, Tokio};
use webstack::View;
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
        for (mode, method) in METHODS {
            native::set_method(method);
            group.bench_with_input(BenchmarkId::new(mode, threads), &threads, |b, _| {
                b.iter(|| webstack::__test_hooks::native::stacks_only().unwrap())
            });
        }
        native::set_method(Method::Auto);
        drop(parked);
    }
    group.finish();
}

/// The unwinders compared: DWARF (the default) and the frame-pointer walk,
/// both on the same kind of copy.
const METHODS: [(&str, Method); 2] = [
    ("dwarf", Method::Dwarf),
    ("frame_pointers", Method::FramePointers),
];

/// Prints the signalling phase's cost per thread, DWARF beside frame
/// pointers, alternating the two: the median and the mean (which counts the
/// slow captures, as criterion's estimate does) of 50 captures each.
fn print_per_thread(threads: usize) {
    let mut dwarf = Vec::new();
    let mut frame_pointers = Vec::new();
    for _ in 0..10 {
        for ((_, method), out) in METHODS.into_iter().zip([&mut dwarf, &mut frame_pointers]) {
            native::set_method(method);
            for _ in 0..5 {
                let started = Instant::now();
                webstack::__test_hooks::native::stacks_only().unwrap();
                out.push(started.elapsed());
            }
        }
    }
    native::set_method(Method::Auto);
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
        "native/capture {threads} threads: dwarf {}; frame pointers {}",
        line(&mut dwarf),
        line(&mut frame_pointers)
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
    render::render(&snapshot, &buckets, &View::default().format(format)).expect("render")
}

/// The phases of one `augment=1` page; the native ones from the hook, then
/// aggregate and render, each also on the same capture without augment.
const PHASES: [&str; 11] = [
    "shadow capture",
    "signal+copy+unwind",
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
    for (name, time) in webstack::__test_hooks::native::augment_phases(&mut snapshot) {
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
    let html = render::render(&snapshot, &buckets, &View::default().format(Format::Html)).unwrap();
    times[7] = started.elapsed();
    let started = Instant::now();
    let json = render::render(&snapshot, &buckets, &View::default().format(Format::Json)).unwrap();
    times[8] = started.elapsed();
    let started = Instant::now();
    let plain_buckets = Buckets::aggregate(&plain, Similarity::AnyPointer);
    times[9] = started.elapsed();
    let started = Instant::now();
    let plain_html = render::render(
        &plain,
        &plain_buckets,
        &View::default().format(Format::Html),
    )
    .unwrap();
    times[10] = started.elapsed();
    std::hint::black_box((html, json, plain_html));
    let frames = |s: &Snapshot| s.routines().map(|r| r.frames.len()).sum::<usize>();
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
        .routines()
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

/// One JSON page through the serving core, as an adapter asks for it; its
/// length.
fn served(runtime: &tokio::runtime::Runtime, service: &Service, query: &str) -> usize {
    let request = Request::new("GET", query).peer(Some(std::net::Ipv4Addr::LOCALHOST.into()));
    let response = runtime.block_on(service.respond(request, &Tokio));
    assert_eq!(response.status, 200, "{query}: {:?}", response.body);
    match response.body {
        webstack::serve::Body::Chunks(chunks) => chunks.iter().map(Vec::len).sum(),
        webstack::serve::Body::None => 0,
    }
}

/// What a user pays for `augment=1`: the JSON page through the serving
/// core with 64 parked instrumented threads and 10,000 idle instrumented
/// tasks, with and without it (release build, warm caches). The page
/// without it takes about 17 ms, most of it the 10,000 tasks, and varies
/// by more than the difference: so the pages come in pairs, one of each in
/// alternating order, and the figure is the median of the pairs'
/// differences per thread. Prints it, and the phases of the native pass on
/// the same process, whose sum should agree.
fn end_to_end(c: &mut Criterion) {
    let (threads, tasks) = if util::quick() {
        (8, 500)
    } else {
        (64, 10_000)
    };
    let mut parked = Threads::new();
    parked.grow(threads);
    let mut idle = Tasks::new();
    idle.grow_webstack(tasks);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let service = Service::new("/debug/webstack").min_interval(Duration::ZERO);
    for _ in 0..3 {
        served(&runtime, &service, "augment=1&format=json");
    }
    let page = |query: &str| {
        let started = Instant::now();
        served(&runtime, &service, query);
        started.elapsed().as_secs_f64() * 1e6
    };
    let pairs = if util::quick() { 11 } else { 101 };
    let (mut on, mut off, mut differences) = (Vec::new(), Vec::new(), Vec::new());
    for pair in 0..pairs {
        let (with, without) = if pair % 2 == 0 {
            let with = page("augment=1&format=json");
            (with, page("augment=0&format=json"))
        } else {
            let without = page("augment=0&format=json");
            (page("augment=1&format=json"), without)
        };
        on.push(with);
        off.push(without);
        differences.push(with - without);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off, difference) = (median(on), median(off), median(differences));
    let all = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    eprintln!(
        "native/end_to_end json, {threads} parked threads + {tasks} idle tasks \
         ({all} threads in the process), {pairs} pairs: augment=1 {on:.0} µs, \
         augment=0 {off:.0} µs (medians); median difference {difference:.0} µs \
         = {:.1} µs per thread",
        difference / all as f64
    );
    let mut runs: Vec<_> = (0..41).map(|_| timed_page()).collect();
    let mut sum = Duration::ZERO;
    for (index, phase) in PHASES.iter().enumerate().take(6).skip(1) {
        runs.sort_by_key(|r| r.0[index]);
        let t = runs[runs.len() / 2].0[index];
        sum += t;
        eprintln!(
            "  {phase:<24} {:>8.0} µs {:>7.2} µs/thread",
            t.as_secs_f64() * 1e6,
            t.as_secs_f64() * 1e6 / all as f64
        );
    }
    eprintln!(
        "  {:<24} {:>8.0} µs {:>7.2} µs/thread",
        "native pass (sum)",
        sum.as_secs_f64() * 1e6,
        sum.as_secs_f64() * 1e6 / all as f64
    );

    let mut group = c.benchmark_group("native/end_to_end");
    group.throughput(Throughput::Elements(all as u64));
    for augment in [0, 1] {
        let query = format!("augment={augment}&format=json");
        group.bench_function(format!("json/augment={augment}"), |b| {
            b.iter(|| served(&runtime, &service, &query))
        });
    }
    group.finish();
    drop(parked);
}

criterion_group!(
    benches,
    capture_per_thread,
    full_snapshot,
    augment_profile,
    end_to_end
);
criterion_main!(benches);
