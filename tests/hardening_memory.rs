//! `maxmem` bounds what a snapshot costs, measured, not estimated.
//!
//! Sizes: 100,000 idle tasks (each parked two instrumented frames deep) and
//! `maxmem` = 1 MiB ([`webstack::MIN_MAXMEM`]).
//!
//! 1. A counting global allocator tracks the bytes live at any moment and
//!    their peak. With the rest of the process quiet, the peak extra bytes
//!    allocated from before `Snapshot::capture` to after `render` (the
//!    snapshot still alive, as a server holds it while rendering) must stay
//!    under `maxmem + 1 MiB + the rendered output's size`, for each format
//!    and each similarity, with `augment` off and on.
//! 2. A real server answers `maxmem=1048576` with 200 in every format, and
//!    the page says how many routines were left out.
//!
//! `harness = false`: one process, one measuring thread, so other tests'
//! allocations cannot pollute the peak. A watchdog aborts after 120 s.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::checks::{check_html, check_json, check_text};
use support::poll::poll_once;
use support::server::{get, start_server};
use support::wait::watchdog;
use webstack::actix::Webstack;
use webstack::render::{render_chunks, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot, MIN_MAXMEM};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // Count the growth first so a peak during the move is seen.
            grew(new_size);
            shrank(layout.size());
        }
        new
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TASKS: usize = 100_000;

#[webstack::instrument]
async fn memory_leaf(id: u64) {
    std::future::pending::<()>().await;
}

#[webstack::instrument]
async fn memory_idle(id: u64, group: u32) {
    memory_leaf(id).await;
}

struct Measure {
    format: Format,
    similarity: Similarity,
    augment: bool,
    peak: usize,
    output: usize,
    captured: usize,
    left_out: usize,
    millis: f64,
    phases: String,
}

fn measure(format: Format, similarity: Similarity, augment: bool) -> Measure {
    let options = Options::default().maxmem(MIN_MAXMEM).augment(augment);
    let started = Instant::now();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let snapshot = Snapshot::capture(&options);
    let capture_peak = PEAK.load(Ordering::Relaxed) - base;
    let capture_live = LIVE.load(Ordering::Relaxed) - base;
    let buckets = Buckets::aggregate(&snapshot, similarity);
    let aggregate_peak = PEAK.load(Ordering::Relaxed) - base;
    let aggregate_live = LIVE.load(Ordering::Relaxed) - base;
    // The handler's path: pieces streamed as they are, never joined.
    let chunks =
        render_chunks(&snapshot, &buckets, &View::default().format(format)).expect("renders");
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let page = String::from_utf8(chunks.concat()).expect("utf-8");
    let phases = format!(
        "capture peak {} live {}; aggregate peak {} live {}",
        mib(capture_peak),
        mib(capture_live),
        mib(aggregate_peak),
        mib(aggregate_live)
    );
    let millis = started.elapsed().as_secs_f64() * 1e3;
    let checked = match format {
        Format::Html => check_html(&page),
        Format::Json => check_json(&page).map(drop),
        Format::Text => check_text(&page),
    };
    if let Err(problem) = checked {
        panic!("{format} {similarity:?}: {problem}");
    }
    Measure {
        format,
        similarity,
        augment,
        peak,
        output: page.len(),
        captured: snapshot.routines().len(),
        left_out: snapshot.left_out.threads + snapshot.left_out.tasks,
        millis,
        phases,
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
}

fn main() {
    let _watchdog = watchdog("hardening_memory", Duration::from_secs(120));
    let started = Instant::now();
    let before_tasks = LIVE.load(Ordering::Relaxed);
    let mut tasks = Vec::with_capacity(TASKS);
    for id in 0..TASKS as u64 {
        let mut task = Box::pin(memory_idle(id, (id % 7) as u32));
        assert!(poll_once(task.as_mut()).is_pending());
        tasks.push(task);
    }
    println!(
        "{TASKS} idle tasks take {} of heap",
        mib(LIVE.load(Ordering::Relaxed) - before_tasks)
    );

    // Warm up once-per-process state (native signal slots, symbol cache,
    // template engine) so that it is not counted against one snapshot.
    for augment in [false, true] {
        measure(Format::Html, Similarity::AnyPointer, augment);
    }

    let mut failures = Vec::new();
    // Every similarity without native stacks; with them, the one that makes
    // the most buckets.
    let cases = Similarity::ALL
        .map(|s| (false, s))
        .into_iter()
        .chain([(true, Similarity::ExactFlags)]);
    for (augment, similarity) in cases {
        {
            for format in Format::ALL {
                let m = measure(format, similarity, augment);
                let bound = MIN_MAXMEM + (1 << 20) + m.output;
                println!(
                    "augment={} {:<10} {:<4}: peak {:>10} (bound {:>10}), output {:>9}, \
                     {} captured, {} left out, {:.0} ms; {}",
                    u8::from(m.augment),
                    m.similarity.as_str(),
                    m.format.as_str(),
                    mib(m.peak),
                    mib(bound),
                    mib(m.output),
                    m.captured,
                    m.left_out,
                    m.millis,
                    m.phases
                );
                assert!(m.left_out > 0, "100,000 tasks do not fit in 1 MiB");
                if m.peak >= bound {
                    failures.push(format!(
                        "augment={} {} {}: peak {} >= bound {} ({})",
                        u8::from(augment),
                        similarity.as_str(),
                        format,
                        m.peak,
                        bound,
                        m.phases
                    ));
                }
            }
        }
    }

    // Over HTTP: 200, and the page says how many were left out.
    let addr = start_server(1, || Webstack::new("/debug/webstack"));
    for format in Format::ALL {
        let path = format!("/debug/webstack?maxmem=1048576&augment=0&format={format}");
        let response = get(addr, &path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(response.status, 200, "{path}");
        let body = response.text();
        match format {
            Format::Html => {
                check_html(body).unwrap();
                let said = left_out_in(body, "<strong class=\"warn\">", " left out by maxmem");
                assert!(said >= TASKS / 2, "html says {said} left out");
            }
            Format::Text => {
                check_text(body).unwrap();
                let first = body.lines().next().unwrap();
                let said = left_out_in(first, "buckets (", " left out");
                assert!(said >= TASKS / 2, "text says {said} left out: {first}");
            }
            Format::Json => {
                let summary = check_json(body).unwrap();
                assert!(summary.left_out as usize >= TASKS / 2);
                assert!(summary.tasks > 0, "some tasks still fit");
            }
        }
        println!("http {format}: 200, {} bytes", body.len());
    }
    drop(tasks);
    println!("hardening_memory: {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "peak memory over the bound:\n{}",
        failures.join("\n")
    );
}

/// The number just before `after`, searching after `from`.
fn left_out_in(text: &str, from: &str, after: &str) -> usize {
    let start = text.find(from).map_or(0, |i| i + from.len());
    let rest = &text[start..];
    let end = rest
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in {:?}", &rest[..rest.len().min(300)]));
    let digits: String = rest[..end]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number before {after:?}"))
}
