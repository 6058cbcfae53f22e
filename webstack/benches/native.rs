//! Cost of native stacks: the signalling phase per thread at 8, 64 and 256
//! threads; symbolisation of one address, cold (cache miss) and warm; and a
//! full snapshot with `augment` on and off.
//!
//! Run with `cargo bench -p webstack --bench native -- --quick`.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use webstack::{Options, Snapshot};

type Gate = Arc<(Mutex<bool>, Condvar)>;

struct Parked {
    gate: Gate,
    handles: Vec<JoinHandle<()>>,
}

#[webstack::instrument]
fn parked(index: usize, gate: &(Mutex<bool>, Condvar)) {
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
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| webstack::__private::native::stacks_only().unwrap())
        });
        drop(parked);
    }
    group.finish();
}

fn symbolisation(c: &mut Criterion) {
    // Return addresses of this very call chain.
    let mut addresses = Vec::new();
    backtrace::trace(|frame| {
        addresses.push(frame.ip() as usize);
        addresses.len() < 16
    });
    let first_use = Instant::now();
    webstack::__private::native::symbolize(addresses[0]);
    eprintln!(
        "native/symbolize first use (loads debug info): {:?}",
        first_use.elapsed()
    );

    let mut group = c.benchmark_group("native/symbolize");
    group.throughput(Throughput::Elements(addresses.len() as u64));
    group.bench_function("cold", |b| {
        b.iter(|| {
            webstack::__private::native::clear_symbol_cache();
            addresses
                .iter()
                .map(|&a| webstack::__private::native::symbolize(a))
                .sum::<usize>()
        })
    });
    group.bench_function("warm", |b| {
        b.iter(|| {
            addresses
                .iter()
                .map(|&a| webstack::__private::native::symbolize(a))
                .sum::<usize>()
        })
    });
    group.finish();
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

criterion_group!(benches, capture_per_thread, symbolisation, full_snapshot);
criterion_main!(benches);
