//! A registered thread that stays a few frames deep costs little resident
//! memory in every build: its shadow stack's slots are committed by the pages
//! it writes, not at registration. How it is measured: `support/thread_cost.rs`.
//!
//! `harness = false`: one process, with no other test's threads allocating
//! while the groups are measured. `cargo test` builds without optimisation,
//! which is where writing 256 zeroed slots at registration once cost ~100 KiB
//! per thread.

use support::thread_cost::{self, DEPTH};

/// Threads per measured group: enough for the per-thread figure to rise well
/// above page-granular noise and the process's one-off allocations.
const THREADS: usize = 300;
/// Registered threads that exit before the measured groups start.
const CHURN: usize = 100;
/// The target per registered thread, above an unregistered one.
const LIMIT: f64 = 8.0 * 1024.0;

fn main() {
    let Some(cost) = thread_cost::measure(THREADS, CHURN) else {
        println!("thread_memory: no /proc/self/smaps_rollup here, nothing measured");
        return;
    };
    let added = cost.added();
    println!(
        "thread_memory: resident per thread {DEPTH} frames deep: unregistered {:.1} KiB, \
         registered {:.1} KiB, webstack's share {:.1} KiB (limit {:.1} KiB)",
        cost.unregistered / 1024.0,
        cost.registered / 1024.0,
        added / 1024.0,
        LIMIT / 1024.0
    );
    assert!(
        added <= LIMIT,
        "a registered thread {DEPTH} frames deep costs {:.1} KiB resident more than an \
         unregistered one (limit {:.1} KiB)",
        added / 1024.0,
        LIMIT / 1024.0
    );
}
