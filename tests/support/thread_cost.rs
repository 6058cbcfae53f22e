//! Resident memory a registered thread parked a few instrumented frames deep
//! costs, above a thread that is not registered: shared by the
//! `thread_memory` test and the `memory` bench.
//!
//! Measured from inside with the anonymous resident memory of the process
//! (`/proc/self/smaps_rollup`, exact, unlike the approximate counters of
//! `/proc/self/status`): a control group of threads that run the same
//! nesting uninstrumented, then the same number of threads that register
//! with webstack and park [`DEPTH`] instrumented frames deep. A thread's own
//! cost (its stack pages, TLS, its share of malloc arenas) is in both
//! groups; the difference per thread is webstack's. Each thread first writes
//! the top `STACK_TOUCHED` bytes of its stack, so the stack pages are
//! committed alike in both groups: without optimisation an instrumented
//! call's own stack frame is ~3 KiB larger than a plain one's, a cost of the
//! build, not of the registration measured here.
//!
//! Before the measured groups, a smaller group of registered threads comes
//! and goes, so that the slot arrays of a thread pool's short-lived threads
//! are freed before the measured ones register: memory a general-purpose
//! allocator hands out again is dirty, and zeroing it commits its pages.
//! Then both groups alternate for a few rounds, and each keeps its least
//! figure: the process's own one-off growth only ever adds to a round.

use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

/// Instrumented frames each parked thread keeps.
pub const DEPTH: u32 = 8;
/// Alternating rounds of both groups; each group's least figure counts.
const ROUNDS: usize = 6;
/// Room for the threads' own stacks, generous even without optimisation.
const STACK: usize = 256 * 1024;
/// Stack bytes each thread writes before nesting: more than either nesting
/// uses.
const STACK_TOUCHED: usize = 96 * 1024;

/// Resident bytes per thread of each group.
#[derive(Clone, Copy, Debug)]
pub struct ThreadCost {
    /// A thread that is not registered.
    pub unregistered: f64,
    /// A registered thread.
    pub registered: f64,
}

impl ThreadCost {
    /// What registration adds per thread.
    pub fn added(&self) -> f64 {
        self.registered - self.unregistered
    }
}

/// Measures groups of `threads` threads, after `churn` registered threads
/// came and went: the least of `ROUNDS` alternating rounds per group.
/// `None` where `/proc/self/smaps_rollup` is missing.
/// Call it while no other thread of the process allocates much.
pub fn measure(threads: usize, churn: usize) -> Option<ThreadCost> {
    anonymous_resident()?;
    // Load code, build the registry's and std's lazily made state, and create
    // the malloc arenas, outside the measured groups.
    webstack::init();
    // `init` starts the thread that loads symbols in the background, which
    // allocates megabytes for a second or two: measure after it is gone.
    wait_for_warm_up();
    parked_cost(8, plain);
    parked_cost(8, instrumented);
    parked_cost(churn, instrumented);
    // The process's one-off growth (the allocator's arenas or the C
    // library's cache of thread stacks, not told apart; it settles only
    // after a few full-size groups) lands in whichever group runs while it
    // happens, by up to ~25 KiB per thread of 64. It only ever adds: the
    // groups alternate for a few rounds and each keeps its least figure,
    // which is what a thread costs once the process is settled.
    let mut cost = ThreadCost {
        unregistered: f64::INFINITY,
        registered: f64::INFINITY,
    };
    for _ in 0..ROUNDS {
        cost.unregistered = cost.unregistered.min(parked_cost(threads, plain)?);
        cost.registered = cost.registered.min(parked_cost(threads, instrumented)?);
    }
    Some(cost)
}

#[webstack::instrument]
fn instrumented(level: u32, parked: &Barrier, release: &Barrier) -> u32 {
    if level > 1 {
        return instrumented(level - 1, parked, release) + 1;
    }
    parked.wait();
    release.wait();
    1
}

/// The same nesting as [`instrumented`], without webstack.
#[inline(never)]
fn plain(level: u32, parked: &Barrier, release: &Barrier) -> u32 {
    if level > 1 {
        return std::hint::black_box(plain(level - 1, parked, release)) + 1;
    }
    parked.wait();
    release.wait();
    1
}

/// Commits the top [`STACK_TOUCHED`] bytes of the calling thread's stack.
#[inline(never)]
fn touch_stack() {
    let mut bytes = [1u8; STACK_TOUCHED];
    std::hint::black_box(&mut bytes);
}

/// What every thread allocates besides webstack's registration, so that
/// both groups attach to malloc arenas alike.
fn allocate_like_a_worker() -> Vec<String> {
    (0..4).map(|i| format!("worker scratch {i}")).collect()
}

/// Waits (at most 60 s) until no thread of the process is named
/// `webstack-symbols`, the warm-up thread [`webstack::init`] starts.
fn wait_for_warm_up() {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        let warming = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.trim_end() == "webstack-symbols")
            });
        if !warming {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Anonymous resident bytes of this process, from
/// `/proc/self/smaps_rollup` (exact, unlike `RssAnon` in
/// `/proc/self/status`); `None` where it is missing. Also used by the
/// `symbols` test and bench.
pub fn anonymous_resident() -> Option<usize> {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = rollup.lines().find(|line| line.starts_with("Anonymous:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Spawns `count` threads running `body` to its barrier, measures the
/// anonymous resident memory they added while all are parked, then lets
/// them finish. Returns bytes per thread.
fn parked_cost(count: usize, body: fn(u32, &Barrier, &Barrier) -> u32) -> Option<f64> {
    let parked = Arc::new(Barrier::new(count + 1));
    let release = Arc::new(Barrier::new(count + 1));
    let before = anonymous_resident();
    let threads: Vec<JoinHandle<()>> = (0..count)
        .map(|_| {
            let parked = parked.clone();
            let release = release.clone();
            std::thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || {
                    touch_stack();
                    let scratch = allocate_like_a_worker();
                    assert_eq!(body(DEPTH, &parked, &release), DEPTH);
                    drop(scratch);
                })
                .expect("spawn")
        })
        .collect();
    parked.wait();
    let after = anonymous_resident();
    release.wait();
    for thread in threads {
        thread.join().expect("thread");
    }
    Some(after?.saturating_sub(before?) as f64 / count.max(1) as f64)
}
