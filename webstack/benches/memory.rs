//! Peak extra heap memory of one snapshot of 100,000 idle tasks (five
//! instrumented frames each) and 64 blocked threads, for several `maxmem`
//! bounds; the target is a peak under `maxmem` + 1 MiB.
//!
//! A counting global allocator tracks the bytes currently allocated and the
//! peak; the peak is reset to the current figure right before the measured
//! work, and the table shows `peak - baseline`. Prints a table; no criterion.
//!
//! Run with `cargo bench -p webstack --bench memory`; with `-- --test` it
//! runs once with 1,000 tasks (CI smoke mode).

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use util::workload::{Tasks, Threads};
use webstack::render::{self, Format, Links};
use webstack::{Buckets, Options, Similarity, Snapshot};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn add(bytes: usize) {
        let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(bytes: usize) {
        CURRENT.fetch_sub(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            Counting::add(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            Counting::add(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) };
        Counting::sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as a fresh allocation followed by a free: while the block
        // is copied both may exist, which is the honest peak.
        Counting::add(new_size);
        // SAFETY: forwarded; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            Counting::sub(new_size);
        } else {
            Counting::sub(layout.size());
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `work` and returns its result and the peak bytes allocated above
/// what was live when it started.
fn peak_extra<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let result = work();
    let peak = PEAK.load(Ordering::Relaxed);
    (result, peak.saturating_sub(baseline))
}

const MIB: usize = 1 << 20;

fn mib(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / MIB as f64)
}

struct Row {
    what: String,
    maxmem: usize,
    snapshot: Snapshot,
    peak: usize,
    checked: bool,
}

fn main() {
    let quick = util::quick();
    let n_tasks = if quick { 1_000 } else { 100_000 };
    let n_threads = if quick { 8 } else { 64 };
    webstack::init();
    let mut tasks = Tasks::new();
    tasks.grow_webstack(n_tasks);
    let mut threads = Threads::new();
    threads.grow(n_threads);
    // Warm up lazily built state (method names, native symbol cache) so that
    // one-time allocations are not charged to a snapshot.
    drop(Snapshot::capture(&Options::default()));

    let mut rows = Vec::new();
    for maxmem in [MIB, 8 * MIB, 64 * MIB] {
        let options = Options::default().augment(false).maxmem(maxmem);
        let (snapshot, peak) = peak_extra(|| Snapshot::capture(&options));
        rows.push(Row {
            what: "capture, augment=0".into(),
            maxmem,
            snapshot,
            peak,
            checked: true,
        });
    }
    let options = Options::default().augment(true).maxmem(64 * MIB);
    let (snapshot, peak) = peak_extra(|| Snapshot::capture(&options));
    rows.push(Row {
        what: "capture, augment=1".into(),
        maxmem: 64 * MIB,
        snapshot,
        peak,
        checked: true,
    });
    let options = Options::default().augment(false).maxmem(usize::MAX);
    let (snapshot, peak) = peak_extra(|| Snapshot::capture(&options));
    rows.push(Row {
        what: "capture, augment=0, unbounded".into(),
        maxmem: usize::MAX,
        snapshot,
        peak,
        checked: false,
    });
    for maxmem in [8 * MIB, 64 * MIB] {
        let options = Options::default().augment(false).maxmem(maxmem);
        let ((snapshot, html_len), peak) = peak_extra(|| {
            let snapshot = Snapshot::capture(&options);
            let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
            let html = render::render(&snapshot, &buckets, Format::Html, &Links::default())
                .expect("render");
            (snapshot, html.len())
        });
        rows.push(Row {
            what: format!("capture + aggregate + HTML ({} MiB page)", mib(html_len)),
            maxmem,
            snapshot,
            peak,
            checked: false,
        });
    }

    println!(
        "\nPeak extra heap of one snapshot: {n_tasks} idle tasks (5 frames) + {n_threads} blocked threads\n"
    );
    println!(
        "| what | maxmem MiB | routines captured | left out | bytes_used MiB | peak extra MiB | target < maxmem+1 MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    let mut missed = 0;
    for row in &rows {
        let bound = if row.maxmem == usize::MAX {
            "unbounded".to_string()
        } else {
            (row.maxmem / MIB).to_string()
        };
        let verdict = if !row.checked {
            "n/a".to_string()
        } else if row.peak < row.maxmem + MIB {
            "met".to_string()
        } else {
            missed += 1;
            format!("MISSED by {} MiB", mib(row.peak - row.maxmem - MIB))
        };
        let left = row.snapshot.left_out;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            row.what,
            bound,
            row.snapshot.routines.len(),
            left.threads + left.tasks,
            mib(row.snapshot.bytes_used),
            mib(row.peak),
            verdict
        );
    }
    println!();
    // The figures are the report; a missed target is stated, not a failure,
    // except in smoke mode where the sizes are small enough to always fit.
    if quick {
        assert_eq!(missed, 0, "memory target missed at smoke size");
        let full = &rows[4].snapshot;
        assert_eq!(full.tasks(), n_tasks, "unbounded capture saw every task");
    }
    drop(threads);
    drop(tasks);
}
