//! The observed program keeps working while snapshots are taken.
//!
//! Sizes: as many workload threads as CPUs, each calling an instrumented
//! function (about a microsecond of arithmetic per call in a debug build) in
//! a loop; beside them 16 threads parked in instrumented frames and 1,000
//! idle tasks, so that each snapshot has real work: first tasks that differ
//! only in an address (a handful of buckets), then tasks with distinct ids
//! (1,000 buckets on the page). Three modes — no snapshots, one HTML
//! snapshot per 100 ms with `augment=0`, and with `augment=1`, requested
//! over HTTP from a real server — run in turn for 1 s each, 2 rounds, after
//! a warm-up snapshot of each kind. The throughput
//! of each mode is the sum of its rounds; the slowdown is printed
//! (`-- --nocapture`) together with the load average.
//!
//! Timing assertions are flaky on shared machines: the only bound asserted
//! is a very loose sanity one (each mode keeps more than half the quiet
//! throughput in a release build, a tenth in a debug build, see [`KEPT`]).
//! The recorded figures live in BENCHMARKS.md, "Slowdown under snapshots".
//! A watchdog aborts the process after 120 s.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use support::server::{get, start_server};
use support::slowdown::{idle_tasks, park_threads, slowdown_work, Background};
use support::wait::watchdog;
use webstack::actix::Webstack;

const PHASE: Duration = Duration::from_secs(1);
const ROUNDS: usize = 2;
const PERIOD: Duration = Duration::from_millis(100);

/// The sanity bound: the share of the quiet throughput each mode must keep.
/// A debug build renders a page in about half a second, so there one
/// snapshot per 100 ms keeps a CPU busy; only a stalled program fails.
const KEPT: f64 = if cfg!(debug_assertions) { 0.1 } else { 0.5 };

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Quiet,
    Augment0,
    Augment1,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Quiet, Mode::Augment0, Mode::Augment1];

    fn label(self) -> &'static str {
        match self {
            Mode::Quiet => "no snapshots",
            Mode::Augment0 => "1 snapshot / 100 ms, augment=0",
            Mode::Augment1 => "1 snapshot / 100 ms, augment=1",
        }
    }
}

/// Runs the workload on `threads` threads for [`PHASE`]; returns calls.
fn run_workload(threads: usize) -> u64 {
    let start = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (start, stop) = (start.clone(), stop.clone());
            webstack::thread::Builder::new()
                .name(format!("slowdown-worker-{t}"))
                .spawn(move || {
                    start.wait();
                    let mut calls = 0u64;
                    let mut acc = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        acc = acc.wrapping_add(slowdown_work(calls, "request"));
                        calls += 1;
                    }
                    std::hint::black_box(acc);
                    calls
                })
                .unwrap()
        })
        .collect();
    start.wait();
    std::thread::sleep(PHASE);
    stop.store(true, Ordering::Relaxed);
    handles.into_iter().map(|h| h.join().unwrap()).sum()
}

/// Requests a snapshot every [`PERIOD`] until stopped; returns how many
/// were served and their total latency.
fn run_snapshots(
    addr: std::net::SocketAddr,
    augment: u8,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    micros: Arc<AtomicU64>,
) {
    let path = format!("/debug/webstack?augment={augment}");
    let mut next = Instant::now();
    // Bounded by count as well as by `stop`.
    for _ in 0..1_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let started = Instant::now();
        let response = get(addr, &path).unwrap();
        assert_eq!(response.status, 200);
        micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        served.fetch_add(1, Ordering::Relaxed);
        next += PERIOD;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn start_background() -> std::net::SocketAddr {
    park_threads();
    let addr = start_server(1, || {
        Webstack::new("/debug/webstack").min_interval(Duration::ZERO)
    });
    // Warm-up: templates, signal setup, symbol cache.
    for augment in [0, 1] {
        assert_eq!(
            get(addr, &format!("/debug/webstack?augment={augment}"))
                .unwrap()
                .status,
            200
        );
    }
    addr
}

/// One snapshot's latency per format with the workload stopped.
fn snapshot_alone(addr: std::net::SocketAddr) -> String {
    let mut alone = Vec::new();
    for augment in [0, 1] {
        for format in ["html", "json", "text"] {
            let path = format!("/debug/webstack?augment={augment}&format={format}");
            let started = Instant::now();
            for _ in 0..3 {
                assert_eq!(get(addr, &path).unwrap().status, 200);
            }
            alone.push(format!(
                "{format}/augment={augment} {:.1} ms",
                started.elapsed().as_secs_f64() * 1e3 / 3.0
            ));
        }
    }
    alone.join(", ")
}

fn measure(addr: std::net::SocketAddr, background: Background, cpus: usize) {
    let tasks = idle_tasks(background);
    let alone = snapshot_alone(addr);
    let load_before = loadavg();
    let mut calls = [0u64; 3];
    let mut snapshots = [0u64; 3];
    let mut latency = [0u64; 3];
    for _ in 0..ROUNDS {
        for (i, mode) in Mode::ALL.into_iter().enumerate() {
            let stop = Arc::new(AtomicBool::new(false));
            let served = Arc::new(AtomicU64::new(0));
            let micros = Arc::new(AtomicU64::new(0));
            let snapshotter = (mode != Mode::Quiet).then(|| {
                let augment = u8::from(mode == Mode::Augment1);
                let (stop, served, micros) = (stop.clone(), served.clone(), micros.clone());
                std::thread::spawn(move || run_snapshots(addr, augment, stop, served, micros))
            });
            calls[i] += run_workload(cpus);
            stop.store(true, Ordering::Relaxed);
            if let Some(s) = snapshotter {
                s.join().unwrap();
            }
            snapshots[i] += served.load(Ordering::Relaxed);
            latency[i] += micros.load(Ordering::Relaxed);
        }
    }
    let load_after = loadavg();
    drop(tasks);

    println!(
        "slowdown, background {background:?} (16 parked threads, 1,000 idle tasks): \
         {cpus} workload threads, {ROUNDS} rounds of {PHASE:?} per mode; \
         load average before {load_before}, after {load_after}"
    );
    println!("  one snapshot, workload stopped: {alone}");
    let base = calls[0] as f64;
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        let slowdown = 100.0 * (1.0 - calls[i] as f64 / base);
        let mean_ms = if snapshots[i] > 0 {
            latency[i] as f64 / snapshots[i] as f64 / 1e3
        } else {
            0.0
        };
        println!(
            "  {:<32} {:>12} calls ({:>6.2} M/s), {:>3} snapshots (mean {mean_ms:.1} ms), slowdown {slowdown:+.2}%",
            mode.label(),
            calls[i],
            calls[i] as f64 / (ROUNDS as f64 * PHASE.as_secs_f64()) / 1e6,
            snapshots[i],
        );
        if mode != Mode::Quiet {
            assert!(snapshots[i] > 0, "{}: no snapshot served", mode.label());
            assert!(
                calls[i] as f64 > base * KEPT,
                "{background:?}, {}: throughput fell to {:.0}% ({slowdown:.1}% slowdown)",
                mode.label(),
                100.0 * calls[i] as f64 / base
            );
        }
    }
}

#[test]
fn throughput_under_snapshots() {
    let _watchdog = watchdog("slowdown", Duration::from_secs(120));
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let addr = start_background();
    measure(addr, Background::Grouped, cpus);
    measure(addr, Background::Distinct, cpus);
}
