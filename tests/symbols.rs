//! Symbols: what symbolisation adds to the heap of a process built with
//! debug information (this test binary: the test profile has full debug
//! information), bounded by the symbol budget; the debug information index
//! loaded in the background after `webstack::init()`, by a thread that
//! exits once done and is not started again in a forked child. Each test
//! runs in a fresh child process, so that its memory and threads are its
//! own.
#![cfg(target_os = "linux")]

use std::sync::mpsc;
use std::time::Duration;

use support::child::run_in_child;
use support::wait::{wait_until, watchdog};
use webstack::{Options, Snapshot};

/// Above the 120 s each test gives its child process.
const LIMIT: Duration = Duration::from_secs(180);

/// Anonymous resident memory of this process, in KiB.
fn anonymous_kib() -> u64 {
    let bytes = support::thread_cost::anonymous_resident().expect("/proc/self/smaps_rollup");
    bytes as u64 / 1024
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("task")
        .filter_map(|entry| {
            let comm = entry.ok()?.path().join("comm");
            Some(std::fs::read_to_string(comm).ok()?.trim().to_owned())
        })
        .collect()
}

fn park(threads: usize) -> Vec<mpsc::Sender<()>> {
    (0..threads)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<()>();
            std::thread::spawn(move || {
                let _ = rx.recv();
            });
            tx
        })
        .collect()
}

/// Frames of `snapshot` resolved to a Rust source file and line.
fn with_file_and_line(snapshot: &Snapshot) -> usize {
    snapshot
        .routines
        .iter()
        .flat_map(|r| &r.frames)
        .filter(|f| f.file.ends_with(".rs") && f.line > 0)
        .count()
}

/// The first `augment=1` snapshot of a process resolves every thread's
/// stack: it reads the symbol table and the debug information of this test
/// binary (hundreds of MB, mapped from the file) and parses the units it
/// needs. The anonymous memory this adds stays within the default 16 MiB
/// symbol budget plus what the snapshot itself holds (the `backtrace`
/// crate added 300 MiB here).
#[test]
fn the_first_augmented_snapshot_adds_at_most_the_budget_of_anonymous_memory() {
    let _watchdog = watchdog(
        "symbols::the_first_augmented_snapshot_adds_at_most_the_budget_of_anonymous_memory",
        LIMIT,
    );
    run_in_child(
        "the_first_augmented_snapshot_adds_at_most_the_budget_of_anonymous_memory",
        Duration::from_secs(120),
        || {
            let _parked = park(16);
            let options = Options::default().augment(true);
            let before = anonymous_kib();
            let snapshot = Snapshot::capture(&options);
            let after = anonymous_kib();
            assert!(snapshot.augmented, "{:?}", snapshot.native_error);
            let frames: usize = snapshot.routines.iter().map(|r| r.frames.len()).sum();
            let named = with_file_and_line(&snapshot);
            println!(
                "anonymous {before} KiB -> {after} KiB (+{} KiB), {frames} frames, {named} with file and line",
                after as i64 - before as i64
            );
            assert!(named > 16, "symbols with files and lines: {snapshot:#?}");
            let budget = webstack::native::symbol_budget() as u64 / 1024;
            assert!(
                after.saturating_sub(before) <= budget + 8 * 1024,
                "symbolisation added {} KiB of anonymous memory, more than the \
                 {budget} KiB budget plus 8 MiB for the snapshot",
                after - before
            );
        },
    );
}

/// A smaller budget keeps less: the parsed units and caches are dropped
/// when their estimate passes it, and the snapshots still resolve.
#[test]
fn a_smaller_symbol_budget_keeps_less_and_still_resolves() {
    let _watchdog = watchdog(
        "symbols::a_smaller_symbol_budget_keeps_less_and_still_resolves",
        LIMIT,
    );
    run_in_child(
        "a_smaller_symbol_budget_keeps_less_and_still_resolves",
        Duration::from_secs(120),
        || {
            webstack::native::set_symbol_budget(1 << 20);
            assert_eq!(webstack::native::symbol_budget(), 1 << 20);
            let _parked = park(16);
            let options = Options::default().augment(true);
            for _ in 0..3 {
                let snapshot = Snapshot::capture(&options);
                assert!(snapshot.augmented, "{:?}", snapshot.native_error);
                let named = with_file_and_line(&snapshot);
                assert!(named > 16, "symbols with files and lines: {snapshot:#?}");
                let kept = webstack::__private::native::symbol_bytes();
                assert!(kept <= 1 << 20, "{kept} bytes kept, budget 1 MiB");
            }
        },
    );
}

/// `init()` starts a low-priority `webstack-symbols` thread that loads the
/// program's symbols before any snapshot asks, then exits.
#[test]
fn init_loads_symbols_in_the_background_and_the_thread_exits() {
    let _watchdog = watchdog(
        "symbols::init_loads_symbols_in_the_background_and_the_thread_exits",
        LIMIT,
    );
    run_in_child(
        "init_loads_symbols_in_the_background_and_the_thread_exits",
        Duration::from_secs(120),
        || {
            assert!(!webstack::__private::native::symbols_loaded());
            webstack::init();
            assert!(
                wait_until(Duration::from_secs(60), || {
                    webstack::__private::native::symbols_loaded()
                }),
                "symbols not loaded in the background"
            );
            assert!(
                wait_until(Duration::from_secs(10), || {
                    !thread_names().iter().any(|n| n == "webstack-symbols")
                }),
                "the warm-up thread did not exit: {:?}",
                thread_names()
            );
        },
    );
}

/// A child forked after `init()` does not start the warm-up again: it
/// inherits what the parent loaded.
#[test]
fn a_forked_child_does_not_warm_up_again() {
    let _watchdog = watchdog("symbols::a_forked_child_does_not_warm_up_again", LIMIT);
    run_in_child(
        "a_forked_child_does_not_warm_up_again",
        Duration::from_secs(120),
        || {
            webstack::init();
            assert!(wait_until(Duration::from_secs(60), || {
                webstack::__private::native::symbols_loaded()
                    && !thread_names().iter().any(|n| n == "webstack-symbols")
            }));
            // SAFETY: the child only calls async-signal-safe-enough code of
            // its own (webstack's fork handlers made the state consistent)
            // and exits with `_exit`.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                webstack::init();
                std::thread::sleep(Duration::from_millis(200));
                let code = if thread_names().len() == 1 { 0 } else { 1 };
                // SAFETY: ends the child without running the parent's
                // destructors or atexit handlers.
                unsafe { libc::_exit(code) };
            }
            let mut status = 0;
            // SAFETY: `status` is writable; `pid` is our child.
            let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(rc, pid);
            assert!(
                libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                "the forked child started threads: status {status}"
            );
        },
    );
}
