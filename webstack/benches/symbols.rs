//! The cold start of native stacks, and the memory symbols take (issue 16,
//! target 3).
//!
//! Each sample of the `symbols/first_page` group runs this bench binary
//! again as a fresh child process (built with debug information: the bench
//! profile has `debug = 1`) with 16 parked threads, which waits 2 s and then
//! takes one `augment=1` snapshot and renders it as HTML (the default
//! page):
//!
//! - `after_init_2s`: the child called `webstack::init()` first, which
//!   loads the debug information index in the background;
//! - `no_warm_up`: the child never called `init()`, so its first page loads
//!   everything itself (today's cold start).
//!
//! `symbols/warm_page` is the same page in this process once everything is
//! cached. The target: `after_init_2s` ≤ 2× `warm_page`.
//!
//! Every child also reports, on stderr, its own second page (right after
//! the first, same process), a third page after another 2 s of idleness
//! (caches warm, threads asleep as long as before the first: a thread
//! asleep for seconds answers the signal slower than one that just ran, so
//! this is the warm page comparable with the first), and its anonymous
//! resident memory (`/proc/self/smaps_rollup`) at start, after the 2 s wait
//! and after its first page: what symbolisation adds (target ≤ 16 MiB),
//! printed as a summary after the group.
//!
//! `symbols/resolve` measures 16 return addresses of one call chain:
//! `cold_unit` (the address cache emptied and every parsed unit dropped, as
//! the budget does: the units are parsed again), `cold` (the address cache
//! emptied, units parsed) and `warm` (cached by address). Before it, the
//! first use in the process (symbol table and index) is printed, with the
//! bytes the index and symbol table keep outside the budget.

use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot};

// Only its reader of the anonymous resident memory is used here.
#[allow(dead_code)]
#[path = "../../tests/support/thread_cost.rs"]
mod thread_cost;

const CHILD: &str = "WEBSTACK_BENCH_SYMBOLS_CHILD";
const THREADS: usize = 16;
const WAIT: Duration = Duration::from_secs(2);

/// Anonymous resident memory of this process, in KiB (0 where
/// `/proc/self/smaps_rollup` is missing).
fn anonymous_kib() -> u64 {
    thread_cost::anonymous_resident().map_or(0, |bytes| bytes as u64 / 1024)
}

fn park(threads: usize) -> Vec<mpsc::Sender<()>> {
    (0..threads)
        .map(|i| {
            let (tx, rx) = mpsc::channel::<()>();
            std::thread::Builder::new()
                .name(format!("parked-{i}"))
                .spawn(move || {
                    let _ = rx.recv();
                })
                .expect("spawn");
            tx
        })
        .collect()
}

/// One default page: an `augment=1` snapshot, grouped and rendered as HTML.
fn page() -> usize {
    let snapshot = Snapshot::capture(&Options::default().augment(true));
    assert!(snapshot.augmented, "{:?}", snapshot.native_error);
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    render(&snapshot, &buckets, &View::default().format(Format::Html))
        .expect("render")
        .len()
}

/// The child: prints `first_ns warm_ns idle_ns anon_start anon_before
/// anon_after`: its first page, its second page right after, and a third
/// page after the same 2 s of idleness the first one followed (threads
/// asleep for seconds answer the signal slower than threads that just ran,
/// whatever webstack has loaded).
fn child(mode: &str) {
    let anon_start = anonymous_kib();
    if mode == "after_init_2s" {
        webstack::init();
    }
    let _parked = park(THREADS);
    std::thread::sleep(WAIT);
    let anon_before = anonymous_kib();
    let start = Instant::now();
    std::hint::black_box(page());
    let first = start.elapsed();
    let anon_after = anonymous_kib();
    let start = Instant::now();
    std::hint::black_box(page());
    let warm = start.elapsed();
    std::thread::sleep(WAIT);
    let start = Instant::now();
    std::hint::black_box(page());
    let idle = start.elapsed();
    println!(
        "{} {} {} {anon_start} {anon_before} {anon_after}",
        first.as_nanos(),
        warm.as_nanos(),
        idle.as_nanos()
    );
}

/// What one child reported.
struct Run {
    first: Duration,
    warm: Duration,
    /// A page after 2 s idle, the caches warm.
    idle: Duration,
    anon_start: u64,
    anon_before: u64,
    anon_after: u64,
}

fn run_child(mode: &str) -> Run {
    let exe = std::env::current_exe().expect("current_exe");
    let output = Command::new(exe)
        .env(CHILD, mode)
        .output()
        .expect("spawn the child");
    assert!(output.status.success(), "child {mode}: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|f| f.parse().expect("a number"))
        .collect();
    assert_eq!(fields.len(), 6, "child {mode} printed {text:?}");
    Run {
        first: Duration::from_nanos(fields[0]),
        warm: Duration::from_nanos(fields[1]),
        idle: Duration::from_nanos(fields[2]),
        anon_start: fields[3],
        anon_before: fields[4],
        anon_after: fields[5],
    }
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
    values.sort();
    values[values.len() / 2]
}

fn first_page(c: &mut Criterion) {
    let mut group = c.benchmark_group("symbols/first_page");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    let mut runs: Vec<(&str, Run)> = Vec::new();
    for mode in ["after_init_2s", "no_warm_up"] {
        group.bench_function(mode, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = run_child(mode);
                    total += run.first;
                    runs.push((mode, run));
                }
                total
            })
        });
    }
    group.finish();

    let _parked = park(THREADS);
    page();
    let mut group = c.benchmark_group("symbols");
    group.bench_function("warm_page", |b| b.iter(page));
    group.finish();

    for mode in ["after_init_2s", "no_warm_up"] {
        let mine: Vec<&Run> = runs.iter().filter(|r| r.0 == mode).map(|r| &r.1).collect();
        if mine.is_empty() {
            continue;
        }
        let first = median(mine.iter().map(|r| r.first).collect());
        let warm = median(mine.iter().map(|r| r.warm).collect());
        let idle = median(mine.iter().map(|r| r.idle).collect());
        let ratio = |to: fn(&Run) -> Duration| {
            median(
                mine.iter()
                    .map(|r| (r.first.as_secs_f64() / to(r).as_secs_f64() * 100.0) as u64)
                    .collect(),
            ) as f64
                / 100.0
        };
        let wait = median(
            mine.iter()
                .map(|r| r.anon_before as i64 - r.anon_start as i64)
                .collect(),
        );
        let page = median(
            mine.iter()
                .map(|r| r.anon_after as i64 - r.anon_before as i64)
                .collect(),
        );
        eprintln!(
            "symbols/first_page/{mode}: {} children, median first page {first:?}, \
             same child's second page right after {warm:?} (first/second {:.2}x), \
             its third page after 2 s idle {idle:?} (first/third {:.2}x; target <= 2x); \
             anonymous memory added during the 2 s wait {wait} KiB, by the first page {page} KiB, \
             together {} KiB (target <= 16384 KiB)",
            mine.len(),
            ratio(|r| r.warm),
            ratio(|r| r.idle),
            wait + page,
        );
    }
}

fn resolve(c: &mut Criterion) {
    use webstack::__test_hooks::native;
    // Return addresses of this very call chain.
    let mut addresses = Vec::new();
    backtrace::trace(|frame| {
        addresses.push(frame.ip() as usize);
        addresses.len() < 16
    });
    let first_use = Instant::now();
    native::symbolize(addresses[0]);
    eprintln!(
        "symbols/resolve first use (reads the symbol table and the debug \
         information index): {:?}; index and symbol table: {} KiB, within \
         the budget: {} KiB",
        first_use.elapsed(),
        native::symbol_index_bytes() / 1024,
        native::symbol_bytes() / 1024,
    );
    let mut group = c.benchmark_group("symbols/resolve");
    group.throughput(Throughput::Elements(addresses.len() as u64));
    for case in ["cold_unit", "cold", "warm"] {
        group.bench_with_input(BenchmarkId::from_parameter(case), &case, |b, &case| {
            b.iter(|| {
                match case {
                    "cold_unit" => {
                        native::clear_symbol_cache();
                        native::drop_parsed_symbols();
                    }
                    "cold" => native::clear_symbol_cache(),
                    _ => {}
                }
                addresses
                    .iter()
                    .map(|&a| native::symbolize(a))
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, first_page, resolve);

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
