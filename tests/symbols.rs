//! Symbols: what symbolisation adds to the heap of a process built with
//! debug information (this test binary: the test profile has full debug
//! information), bounded by the symbol budget; the debug information index
//! loaded in the background after `webstack::init()`, by a thread that
//! exits once done and is not started again in a forked child; the C
//! library's compressed debug information. Each test runs in a fresh child
//! process, so that its memory and threads are its own.
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
        .routines()
        .flat_map(|r| r.frames.to_vec())
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
            let frames: usize = snapshot.routines().map(|r| r.frames.len()).sum();
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
                let kept = webstack::__test_hooks::native::symbol_bytes();
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
            assert!(!webstack::__test_hooks::native::symbols_loaded());
            webstack::init();
            assert!(
                wait_until(Duration::from_secs(60), || {
                    webstack::__test_hooks::native::symbols_loaded()
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
                webstack::__test_hooks::native::symbols_loaded()
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

/// The separate debug file of the C library this process runs (Debian's
/// `libc6-dbg`), found by its build id, or `None` (after a SKIP line) when
/// it is not installed and not required.
fn libc_debug_file() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let libc = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.contains("/libc.so"))
        .expect("libc in /proc/self/maps");
    let id = build_id(&std::fs::read(libc).expect("libc's file")).expect("libc's build id");
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let debug = std::path::PathBuf::from(format!(
        "/usr/lib/debug/.build-id/{}/{}.debug",
        &hex[..2],
        &hex[2..]
    ));
    if debug.is_file() {
        return Some(debug);
    }
    if std::env::var("WEBSTACK_REQUIRE_LIBC_DEBUG").as_deref() == Ok("1") {
        panic!(
            "{} missing and WEBSTACK_REQUIRE_LIBC_DEBUG=1",
            debug.display()
        );
    }
    eprintln!(
        "SKIP libc file and line check: {} missing (Debian: apt-get install libc6-dbg); \
         set WEBSTACK_REQUIRE_LIBC_DEBUG=1 to make this a failure",
        debug.display()
    );
    None
}

/// The GNU build id of a 64-bit little-endian ELF file, from its
/// `PT_NOTE` program headers.
fn build_id(elf: &[u8]) -> Option<Vec<u8>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let (phentsize, phnum) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    for header in (0..phnum).map(|i| phoff + i * phentsize) {
        if u32_at(header)? != 4 {
            continue; // not PT_NOTE
        }
        let mut at = usize::try_from(u64_at(header + 8)?).ok()?;
        let end = at + usize::try_from(u64_at(header + 32)?).ok()?;
        while at + 12 <= end {
            let (name, desc, kind) = (
                u32_at(at)? as usize,
                u32_at(at + 4)? as usize,
                u32_at(at + 8)?,
            );
            let desc_at = at + 12 + name.next_multiple_of(4);
            if kind == 3 && elf.get(at + 12..at + 16)? == b"GNU\0" {
                return Some(elf.get(desc_at..desc_at + desc)?.to_vec());
            }
            at = desc_at + desc.next_multiple_of(4);
        }
    }
    None
}

/// A thread blocked in the C library shows where in it: the separate debug
/// file of Debian's `libc6-dbg` holds compressed (`SHF_COMPRESSED`, zlib)
/// DWARF sections, which give libc's frames a file and line, not only the
/// symbol table's name. The innermost frame (the interrupted instruction)
/// is checked: it is there whatever the unwinder.
#[test]
fn a_thread_blocked_in_libc_shows_its_file_and_line() {
    if libc_debug_file().is_none() {
        return;
    }
    let _watchdog = watchdog(
        "symbols::a_thread_blocked_in_libc_shows_its_file_and_line",
        LIMIT,
    );
    run_in_child(
        "a_thread_blocked_in_libc_shows_its_file_and_line",
        Duration::from_secs(120),
        || {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for the two descriptors.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let (tids, tid) = mpsc::channel();
            std::thread::spawn(move || {
                // SAFETY: `gettid` has no preconditions.
                tids.send(unsafe { libc::gettid() } as i64).unwrap();
                let mut byte = 0u8;
                // SAFETY: reads at most one byte into `byte`.
                unsafe { libc::read(fds[0], (&raw mut byte).cast(), 1) };
            });
            let tid = tid.recv().unwrap();
            let blocked = wait_until(Duration::from_secs(10), || {
                std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
                    .is_ok_and(|s| s.starts_with("0 ")) // read(2)
            });
            assert!(blocked, "the thread did not block in read");
            let snapshot = Snapshot::capture(&Options::default().augment(true));
            assert!(snapshot.augmented, "{:?}", snapshot.native_error);
            let thread = snapshot
                .routines()
                .find(|r| r.tid == Some(tid))
                .expect("the blocked thread");
            let frames: String = thread
                .frames
                .iter()
                .map(|f| format!("  {} {}:{}\n", f.function, f.file, f.line))
                .collect();
            println!("{frames}");
            let read = thread
                .frames
                .iter()
                .find(|f| f.function.ends_with("read") && !f.function.contains("::"))
                .unwrap_or_else(|| panic!("no libc read frame in\n{frames}"));
            assert!(
                !read.file.is_empty() && !read.file.ends_with(".rs") && read.line > 0,
                "libc's frame has no file and line: {} {}:{}",
                read.function,
                read.file,
                read.line
            );
        },
    );
}
