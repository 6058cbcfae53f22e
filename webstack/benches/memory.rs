//! Peak extra heap memory of one snapshot of 100,000 idle tasks (five
//! instrumented frames each) and 64 blocked threads, for several `maxmem`
//! bounds; the target is a peak under `maxmem` + 1 MiB. Also the resident
//! memory a registered thread parked 8 instrumented frames deep adds over an
//! unregistered one (300 threads per group, measured as in the
//! `thread_memory` test); the target is at most 8 KiB.
//!
//! A counting global allocator tracks the bytes currently allocated and the
//! peak; the peak is reset to the current figure right before the measured
//! work, and the table shows `peak - baseline`. Prints a table; no criterion.
//!
//! Run with `cargo bench -p webstack --bench memory`; with `-- --test` it
//! runs once with 1,000 tasks (CI smoke mode).

mod util;

#[path = "../../tests/support/thread_cost.rs"]
mod thread_cost;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use util::workload::{Tasks, Threads};
use webstack::render::{self, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The peak if every `realloc` grew or shrank in place (glibc's `mremap` of
/// large blocks does), as opposed to `PEAK`, which counts the old and new
/// blocks of a `realloc` as both live.
static PEAK_IN_PLACE: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn add(bytes: usize) {
        let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
        PEAK_IN_PLACE.fetch_max(now, Ordering::Relaxed);
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
        // `PEAK` counts a fresh allocation followed by a free (while a block
        // is copied both exist); `PEAK_IN_PLACE` only the size change.
        let old = layout.size();
        let before = CURRENT.load(Ordering::Relaxed);
        PEAK.fetch_max(before + new_size, Ordering::Relaxed);
        PEAK_IN_PLACE.fetch_max(before - old.min(before) + new_size, Ordering::Relaxed);
        // SAFETY: forwarded; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= old {
                Counting::add(new_size - old);
            } else {
                Counting::sub(old - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated above what was live when the work started.
#[derive(Clone, Copy)]
struct Peak {
    /// `realloc` counted as allocate + copy + free.
    copied: usize,
    /// `realloc` counted as resizing in place.
    in_place: usize,
}

/// Runs `work` and returns its result and its peak extra bytes.
fn peak_extra<T>(work: impl FnOnce() -> T) -> (T, Peak) {
    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    PEAK_IN_PLACE.store(baseline, Ordering::Relaxed);
    let result = work();
    let peak = Peak {
        copied: PEAK.load(Ordering::Relaxed).saturating_sub(baseline),
        in_place: PEAK_IN_PLACE
            .load(Ordering::Relaxed)
            .saturating_sub(baseline),
    };
    (result, peak)
}

/// Heap bytes still live after `work`, per item.
fn resident_per(items: usize, work: impl FnOnce()) -> f64 {
    let before = CURRENT.load(Ordering::Relaxed);
    work();
    let after = CURRENT.load(Ordering::Relaxed);
    after.saturating_sub(before) as f64 / items as f64
}

const MIB: usize = 1 << 20;

fn mib(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / MIB as f64)
}

struct Row {
    what: String,
    maxmem: usize,
    snapshot: Snapshot,
    peak: Peak,
    checked: bool,
    /// Bytes of the page it wrote, which the target allows beside maxmem.
    output: usize,
}

fn main() {
    let quick = util::quick();
    let n_tasks = if quick { 1_000 } else { 100_000 };
    let n_threads = if quick { 8 } else { 64 };
    // First, while no other thread runs: the figure compares two groups of
    // fresh threads.
    let thread_cost = if quick {
        thread_cost::measure(64, 16)
    } else {
        thread_cost::measure(300, 100)
    };
    webstack::init();
    let mut tasks = Tasks::new();
    // Resident heap per idle task, each library's own workload (futures
    // boxed by the workload: 5 frames, pending).
    let per_task = [
        resident_per(n_tasks, || tasks.grow_webstack(n_tasks)),
        resident_per(n_tasks, || tasks.grow_async_backtrace(n_tasks)),
        resident_per(n_tasks, || tasks.grow_await_tree(n_tasks)),
    ];
    tasks.grow_peers(0);
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
            output: 0,
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
        output: 0,
    });
    let options = Options::default().augment(false).maxmem(usize::MAX);
    let (snapshot, peak) = peak_extra(|| Snapshot::capture(&options));
    rows.push(Row {
        what: "capture, augment=0, unbounded".into(),
        maxmem: usize::MAX,
        snapshot,
        peak,
        checked: false,
        output: 0,
    });
    for maxmem in [8 * MIB, 64 * MIB] {
        let options = Options::default().augment(false).maxmem(maxmem);
        let ((snapshot, html_len), peak) = peak_extra(|| {
            let snapshot = Snapshot::capture(&options);
            let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
            let html = render::render(&snapshot, &buckets, &View::default().format(Format::Html))
                .expect("render");
            (snapshot, html.len())
        });
        rows.push(Row {
            what: format!("capture + aggregate + HTML ({} MiB page)", mib(html_len)),
            maxmem,
            snapshot,
            peak,
            checked: false,
            output: html_len,
        });
    }
    tasks.grow_webstack(0);
    // A million idle tasks in 8 shapes (issue 24): the whole page at the
    // default maxmem, whose target is maxmem + 1 MiB + the page itself.
    let n_shapes = if quick { 10_000 } else { 1_000_000 };
    let mut shapes = util::workload::Shapes::new();
    shapes.grow(n_shapes);
    drop(Snapshot::capture(&Options::default().augment(false)));
    let options = Options::default().augment(false);
    let (snapshot, peak) = peak_extra(|| Snapshot::capture(&options));
    rows.push(Row {
        what: format!("{n_shapes} tasks in 8 shapes: capture"),
        maxmem: 64 * MIB,
        snapshot,
        peak,
        checked: true,
        output: 0,
    });
    for format in [Format::Html, Format::Text] {
        let ((snapshot, len), peak) = peak_extra(|| {
            let snapshot = Snapshot::capture(&options);
            let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
            let page = render::render(&snapshot, &buckets, &View::default().format(format))
                .expect("render");
            (snapshot, page.len())
        });
        rows.push(Row {
            what: format!(
                "{n_shapes} tasks in 8 shapes: capture + aggregate + {format} ({} MiB page)",
                mib(len)
            ),
            maxmem: 64 * MIB,
            snapshot,
            peak,
            checked: true,
            output: len,
        });
    }
    drop(shapes);

    println!(
        "\nPeak extra heap of one snapshot: {n_tasks} idle tasks (5 frames) + {n_threads} blocked threads\n"
    );
    println!(
        "| what | maxmem MiB | routines captured | left out | bytes_used MiB | peak extra MiB | (realloc in place) | target < maxmem+1 MiB (+ page) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut missed = 0;
    for row in &rows {
        let bound = if row.maxmem == usize::MAX {
            "unbounded".to_string()
        } else {
            (row.maxmem / MIB).to_string()
        };
        let verdict = if !row.checked {
            "n/a".to_string()
        } else if row.peak.copied < row.maxmem + MIB + row.output {
            "met".to_string()
        } else {
            missed += 1;
            format!(
                "MISSED by {} MiB",
                mib(row.peak.copied - row.maxmem - MIB - row.output)
            )
        };
        let left = row.snapshot.left_out;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.what,
            bound,
            row.snapshot.routines().len(),
            left.threads + left.tasks,
            mib(row.snapshot.bytes_used),
            mib(row.peak.copied),
            mib(row.peak.in_place),
            verdict
        );
    }
    println!();
    println!(
        "Resident heap per idle task (5 frames, pending, boxed future included): \
         webstack {:.0} B, async-backtrace {:.0} B, await-tree {:.0} B\n",
        per_task[0], per_task[1], per_task[2]
    );
    let sizes = util::workload::future_sizes();
    println!(
        "Of which the future itself: webstack {} B, async-backtrace {} B, await-tree {} B\n",
        sizes[0], sizes[1], sizes[2]
    );
    const THREAD_LIMIT: f64 = 8.0 * 1024.0;
    match thread_cost {
        Some(cost) => {
            let verdict = if cost.added() <= THREAD_LIMIT {
                "met".to_string()
            } else {
                missed += 1;
                format!(
                    "MISSED by {:.1} KiB",
                    (cost.added() - THREAD_LIMIT) / 1024.0
                )
            };
            println!(
                "Resident memory per thread parked {} frames deep: unregistered {:.1} KiB, \
                 registered {:.1} KiB, added by webstack {:.1} KiB (target <= 8 KiB: {verdict})\n",
                thread_cost::DEPTH,
                cost.unregistered / 1024.0,
                cost.registered / 1024.0,
                cost.added() / 1024.0
            );
        }
        None => println!("Resident memory per thread: not measured (no /proc/self/smaps_rollup)\n"),
    }
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
