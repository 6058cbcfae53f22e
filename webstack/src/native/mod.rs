//! Native stacks of every thread of the process, merged with the shadow
//! stacks of instrumented frames (`augment=1`).
//!
//! # How a capture works (Linux)
//!
//! The threads are listed from `/proc/self/task`; each one's name, kernel
//! state and wait channel are read there (`sleeping in futex_wait_queue`),
//! just before it is asked. The collector queues a real-time signal to every
//! thread at once (`rt_tgsigqueueinfo`), each request carrying the index of
//! its own preallocated slot and a sequence number. Each handler checks that
//! the signal came from this process (`si_pid`, `si_code == SI_QUEUE`) with
//! the expected sequence number, claims its slot, saves the registers of the
//! interrupted context (pc, sp, fp and the callee-saved ones) and copies the
//! top of the thread's stack into the slot's buffer with one
//! `process_vm_readv` (from the stack pointer to the end of the thread's
//! stack mapping, at most [`stack_copy`], 64 KiB by default), publishes,
//! and counts itself off a shared futex word; the last answer wakes the
//! collector. It does not unwind, allocate, lock or format, needs a few
//! hundred bytes of stack, and saves and restores `errno`.
//! The collector waits for all the answers against one deadline, [`timeout`]
//! after the last request was sent: threads that do not answer (they block
//! the signal, or are stuck in the kernel) are shown as `no answer (timed
//! out)` with their shadow frames, their requests are abandoned (a late
//! handler finds nothing to claim), and the snapshot goes on; however many
//! threads do not answer, they cost one timeout together. A handler that
//! claimed its slot but does not finish within a further second retires
//! the slot for good and disables native stacks for the rest of the process.
//! Such a thread's signal mask is read before it is asked again, so a thread
//! that keeps the signal blocked costs one timeout, once (`no answer (signal
//! blocked)` afterwards). The slots are allocated outside the handler (64 at a
//! time, never freed) as the number of threads grows; their copy buffers
//! are anonymous memory whose pages are only backed as far as a copy goes,
//! and that the kernel may take back after each capture (`MADV_FREE`:
//! reclaimed when memory runs short). The copies of the
//! threads asked at once count against the snapshot's `maxmem`: a capture
//! asks at most `room left / stack_copy` threads at a time, and unwinds a
//! batch's copies (see [Unwinding](self#unwinding)) before it asks the next.
//! Threads that exit meanwhile are left out. Blocking system calls resume
//! after the handler (`SA_RESTART`), except those the kernel never restarts
//! after a handler (see `signal(7)`: `poll`, `epoll_wait`, `select`,
//! `nanosleep`, socket calls with a timeout, …), which return `EINTR` as they
//! would for any signal: std's `sleep` and condition variables retry, and
//! event loops (tokio, actix) treat it as a spurious wake-up; code that calls
//! such functions directly must retry on `EINTR`, or use `augment=0`.
//!
//! Every thread ends up as one routine: a registered thread (matched by its
//! kernel tid) gets its shadow frames merged into its native stack, each
//! instrumented frame at the place of the native frame of the same function,
//! with its arguments; a thread webstack never saw (a C library's, a runtime
//! worker that ran nothing instrumented yet) is added with its native frames.
//! A task being polled shows inside its worker thread's stack. Frames carry
//! an [`Origin`] so the page can fold the standard library, runtimes and
//! webstack itself.
//!
//! Addresses are symbolised afterwards, outside the handler, and cached by
//! address across snapshots, so a warm snapshot costs a few microseconds
//! per thread. See [Symbols](self#symbols).
//!
//! # Unwinding
//!
//! The collector unwinds each copy after its thread answered, outside any
//! handler. By default ([`Method::Auto`], which is [`Method::Dwarf`]) it
//! reads DWARF call-frame information, the `.eh_frame` tables every Rust
//! and C object carries for panics and exceptions, with the `framehop`
//! crate: complete stacks for code built with Rust's defaults (no frame
//! pointers, debug or release), whatever the size of the thread's
//! alternate signal stack. The objects are listed with `dl_iterate_phdr`
//! (again only when the C library's load or unload counters changed) and
//! mapped read-only from their files, sharing their pages with the
//! symboliser's mappings through the page cache; the vDSO is read in
//! memory. Code without unwind information (generated at run time by a JIT
//! compiler, which cannot hang anything here: no lock is taken and the
//! copy is plain memory) is walked by its frame pointers where it keeps
//! them. [`Method::FramePointers`] walks only the frame-pointer chain in the
//! copy, and sees every function only in code built with
//! `-C force-frame-pointers=yes`.
//!
//! A stack deeper than the copy shows its innermost frames, and the
//! thread's state ends with `stack deeper than 64 KiB: the outermost frames
//! are not shown`; raise [`set_stack_copy`] for deeper stacks (each
//! thread asked costs that much memory while the capture runs). Likewise
//! past [`MAX_NATIVE_FRAMES`] frames. Signal handler frames of the thread
//! itself (a thread interrupted inside its own signal handler) end the walk.
//!
//! The handler runs on the thread's alternate signal stack where it has one
//! (`SA_ONSTACK`; std gives one to every thread it starts, 8 KiB on x86_64
//! CPUs without AMX, about 4.5 KiB of it left below an AVX-512 signal
//! frame), and copies only if the stack it runs on has 2 KiB of room below
//! its frame; a thread without that room is shown as `no room to unwind`
//! with its shadow frames. A thread created without an alternate stack (by
//! C code) that is within a signal frame (up to 4 KiB on x86_64 with
//! AVX-512) plus about 1 KiB of its stack's end when the signal arrives
//! cannot be protected: the kernel or the handler's first frames overflow
//! it before any check can run.
//!
//! For the best stacks build with debug information (`debug = 1` in the
//! profile: file and line numbers, inlined frames).
//!
//! # Symbols
//!
//! The object holding an address (the program or a shared library, listed
//! with `dl_iterate_phdr`) is mapped read-only from its file the first time
//! one of its addresses is asked for. Its ELF symbol table gives function
//! names, and its DWARF debug information (through `addr2line`) files,
//! lines and inlined calls: an index of the compilation units is built
//! once, and the line program and functions of a unit are parsed the first
//! time an address falls in it.
//!
//! [`init`](crate::init) (and so `#[webstack::main]`) starts a thread named
//! `webstack-symbols`, once per process (not again in a forked child), at
//! the lowest priority (nice 19): it maps the program, builds the index,
//! parses the units of the standard library's thread start and blocking
//! calls, parses the page's templates, and about a second later resolves
//! the words on every thread's stack that point into code (read with
//! `process_vm_readv` from the stack pointer `/proc/self/task/*/syscall`
//! shows: no signal is sent and no handler installed), hands what it loaded
//! over, reads those frames' source files and exits, so the first snapshot
//! costs about what later ones do. A snapshot that comes first does not
//! wait for it: it loads what it needs itself, and the thread's work is
//! dropped.
//!
//! Memory: what symbols keep on the heap is bounded by a process-wide
//! budget, [`set_symbol_budget`] (default [`DEFAULT_SYMBOL_BUDGET`],
//! 16 MiB), separate from a snapshot's `maxmem` (which bounds one
//! snapshot's own data and is given back when the snapshot is dropped).
//! Half of the budget holds parsed units, estimated from the size of their
//! debug information, and the debug sections that were decompressed: past
//! it, the least recently used units are dropped (and parsed again when an
//! address falls in them). A quarter holds the resolved addresses and a
//! quarter the source files read for `source` lines; each cache is emptied
//! when full. Outside the budget: the index and the symbol table (16 bytes
//! per function symbol; together about 1 MiB for a 50 MB binary), and the
//! interned names of the functions and files shown so far. The mapped files
//! are file-backed memory (`RssFile`), not heap: the kernel drops their
//! pages under pressure and rereads them when needed. A stripped library is
//! read from its separate debug file (`/usr/lib/debug/.build-id/…`) when
//! one is installed. Debug sections compressed with zlib (`SHF_COMPRESSED`,
//! as in Debian's `libc6-dbg`) are decompressed the first time an address
//! of their object is resolved, into memory charged to the parsed units'
//! half of the budget: all but `.debug_info` are kept (2.6 MiB for glibc
//! 2.36's libc), provided all objects' together take at most a quarter of
//! the budget; `.debug_info` (5.5 MiB for that libc) is not kept but
//! decompressed again, up to the unit wanted, each time a unit is parsed.
//! In a release build the first libc address takes about 100 ms and each
//! later unit 8–30 ms (the `webstack-symbols` thread pays the first).
//! Debug information that does not fit, that is compressed otherwise
//! (zstd) or that is split into `.dwo` files is not read: frames then have
//! the symbol table's function names, without file or line.
//!
//! # Signal
//!
//! The signal is `SIGRTMIN+3` unless [`set_signal`] chose another real-time
//! signal before the first capture. `SIGPROF`, `SIGUSR1` and `SIGUSR2` are
//! never used. If the application already installed a handler on the signal,
//! webstack does not replace it: the snapshot records why in
//! [`Snapshot::native_error`](crate::Snapshot::native_error) and shows shadow
//! stacks only.
//!
//! On other platforms `augment` is a documented no-op: snapshots show shadow
//! stacks, and [`Snapshot::augmented`](crate::Snapshot::augmented) is `false`.

use std::fmt;
use std::time::Duration;

use crate::fork::{ForkHandlers, Rank};
use crate::snapshot::Origin;
use crate::snapshot::Snapshot;

#[cfg(any(target_os = "linux", webstack_loom))]
pub(crate) mod protocol;
#[cfg(target_os = "linux")]
#[path = "linux/mod.rs"]
mod sys;
#[cfg(not(target_os = "linux"))]
#[path = "unsupported.rs"]
mod sys;

/// Where the code of `function` comes from; see [`Origin::of`].
pub fn classify(function: &str) -> Origin {
    Origin::of(function)
}

/// The native pass's fork handlers ([`Rank::Native`]: after the registry,
/// before the snapshot's resolution; see [`crate::fork`]).
static FORK: ForkHandlers = ForkHandlers {
    before_gate: None,
    prepare: prepare_fork,
    after: after_fork,
};

/// Registers [`FORK`]; one atomic load after the first call.
///
/// Called before every call into `sys` from this module (but those to
/// `in_handler` and `handler_runs`, which read an atomic and a
/// thread-local, and the fork handlers'), and `sys` is private to this
/// module: so every native lock
/// (the signal's configuration) and every piece of state the child resets
/// (the collector's, the request slots, the symbols' mutexes) is first
/// used after a registration, the warm-up thread's included (spawned by
/// [`warm_up`]). The callers are outside the native pass, so they hold none
/// of its locks, nor a shard lock or the crate-origin set's.
#[inline]
fn register_fork() {
    crate::fork::register(Rank::Native, &FORK);
}

/// Takes the native locks that code outside a capture may hold, before a
/// fork (see [`crate::fork`]).
///
/// # Safety
/// Only as [`FORK`]'s *prepare* (see [`ForkHandlers`]).
unsafe fn prepare_fork() {
    // SAFETY: guaranteed by the caller.
    unsafe { sys::prepare_fork() };
}

/// Releases what [`prepare_fork`] took; in the child, first forgets the
/// parent's threads.
///
/// # Safety
/// Only as [`FORK`]'s *after* (see [`ForkHandlers`]).
unsafe fn after_fork(child: bool) {
    // SAFETY: guaranteed by the caller.
    unsafe { sys::after_fork(child) };
}

/// Default process-wide budget for symbols: 16 MiB. See
/// [`set_symbol_budget`].
pub const DEFAULT_SYMBOL_BUDGET: usize = 16 << 20;

/// Bounds the heap memory that symbols keep across snapshots (parsed debug
/// information, resolved addresses, source files), process-wide; at least
/// 1 MiB (smaller values are raised to it). Default:
/// [`DEFAULT_SYMBOL_BUDGET`] (16 MiB). A smaller budget makes snapshots
/// reparse debug information more often; what stays outside the budget is
/// described in the [module docs](self#symbols). Independent of a
/// snapshot's `maxmem`.
pub fn set_symbol_budget(bytes: usize) {
    register_fork();
    sys::set_symbol_budget(bytes);
}

/// The process-wide symbol budget in bytes; see [`set_symbol_budget`].
pub fn symbol_budget() -> usize {
    register_fork();
    sys::symbol_budget()
}

/// Starts loading symbols in the background, once per process; see
/// [Symbols](self#symbols). Called by [`crate::init`], which passes in
/// `also` what else the first page needs ready (later stages' warm-ups);
/// the thread runs it at its low priority. Without native stacks, `also`
/// runs on a thread of its own. `code`: functions of earlier stages that a
/// capture runs on the collecting thread (their debug information is read
/// too, as is this module's own).
pub(crate) fn warm_up(also: fn(), mut code: Vec<usize>) {
    code.push(augment as *const () as usize);
    register_fork();
    sys::warm_up(also, code);
}

/// Native frames kept per thread (the interrupted instruction and return
/// addresses); deeper ones are dropped, and the thread's state says so.
pub const MAX_NATIVE_FRAMES: usize = 128;

/// Default time to wait for the threads' answers: 100 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// How the collector unwinds the stack copies the signal handler took.
/// Either way the handler does the same: it saves the registers and copies
/// the top of the stack; unwinding runs afterwards, outside any handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// The best method available: today [`Method::Dwarf`]. The default.
    Auto,
    /// DWARF call-frame information (`.eh_frame`, through the `framehop`
    /// crate): complete stacks for code built with Rust's defaults, without
    /// frame pointers, debug or release. Falls back to frame pointers for
    /// code without unwind information (generated at run time).
    Dwarf,
    /// The frame-pointer chain alone (x86_64 and aarch64). Complete only
    /// for code built with `-C force-frame-pointers=yes`: a function that
    /// keeps no frame pointer hides its caller.
    FramePointers,
}

/// Default bound of the stack copied per thread: 64 KiB. See
/// [`set_stack_copy`].
pub const DEFAULT_STACK_COPY: usize = 64 << 10;

/// Sets how much of each thread's stack the signal handler copies, from
/// the interrupted stack pointer up (at most to the end of the thread's
/// stack): between 4 KiB and 8 MiB, other values are brought into that
/// range. Default: [`DEFAULT_STACK_COPY`] (64 KiB), which holds hundreds of
/// ordinary frames. A thread whose stack is deeper shows its innermost
/// frames, and its state says `stack deeper than 64 KiB: the outermost
/// frames are not shown`. The copies of the threads asked at once count
/// against the snapshot's `maxmem`: a capture asks at most
/// `room left / stack_copy` threads at a time (at least one). Takes effect
/// at the next capture.
pub fn set_stack_copy(bytes: usize) {
    register_fork();
    sys::set_stack_copy(bytes);
}

/// The bound of the stack copied per thread; see [`set_stack_copy`].
pub fn stack_copy() -> usize {
    register_fork();
    sys::stack_copy()
}

/// Why a native-stack setting was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The signal is not a real-time signal (`SIGRTMIN..=SIGRTMAX`).
    NotRealTime(i32),
    /// The handler is already installed on another signal; the signal can
    /// only be chosen before the first capture.
    AlreadyInstalled(i32),
    /// Native stacks are not supported on this platform.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRealTime(n) => write!(
                f,
                "signal {n} is not a real-time signal; choose one in SIGRTMIN..=SIGRTMAX"
            ),
            Error::AlreadyInstalled(n) => write!(
                f,
                "the native-stack handler is already installed on signal {n}; \
                 call set_signal before the first snapshot"
            ),
            Error::Unsupported => f.write_str("native stacks are only supported on Linux"),
        }
    }
}

impl std::error::Error for Error {}

/// Chooses the real-time signal used to interrupt threads. Must be called
/// before the first snapshot with `augment` on. Default: `SIGRTMIN+3`.
///
/// Refused for a signal outside `SIGRTMIN..=SIGRTMAX` (so never `SIGPROF`,
/// `SIGUSR1` or `SIGUSR2`), and once the handler is installed on another
/// signal.
pub fn set_signal(signal: i32) -> Result<(), Error> {
    register_fork();
    sys::set_signal(signal)
}

/// The signal used to interrupt threads (Linux), or `None` elsewhere.
pub fn current_signal() -> Option<i32> {
    register_fork();
    sys::current_signal()
}

/// Sets how long a capture waits, all runtimes together, for tokio's task
/// dumps (feature `taskdump`, with `--cfg tokio_unstable`; see
/// `webstack::tokio`): past it the page shows the tasks without their await
/// backtraces, grouped by spawn site, and names the threads polling a task
/// (a worker stuck in a poll keeps tokio's dump from finishing). Default:
/// [`DEFAULT_TRACE_DEADLINE`] (100 ms). Without the feature, does nothing.
pub fn set_trace_deadline(deadline: Duration) {
    sys::set_trace_deadline(deadline);
}

/// Turns tokio's task traces on or off (feature `taskdump`, with `--cfg
/// tokio_unstable`; Linux, x86_64 or aarch64): with them on, an `augment`
/// capture dumps every runtime built with `webstack::tokio::hooks`, and
/// every idle task shows the await backtrace it waits in. Off by default,
/// also with the feature: tokio's dump (1.54) can leave a runtime frozen,
/// its woken tasks queued while every worker sleeps for good (about 1 dump
/// in 50 in webstack's `traces` benchmark, also with tokio's own
/// `Handle::dump` and no webstack). Turn them on for a debugging session,
/// not in a service that must keep running. Without the feature, does
/// nothing.
pub fn set_task_traces(on: bool) {
    sys::set_task_traces(on);
}

/// The default of [`set_trace_deadline`].
pub const DEFAULT_TRACE_DEADLINE: Duration = Duration::from_millis(100);

/// Sets how long a capture waits for the threads to answer before it reports
/// those that did not as `no answer`: one deadline for all the threads asked
/// together. Default: [`DEFAULT_TIMEOUT`] (100 ms).
pub fn set_timeout(timeout: Duration) {
    register_fork();
    sys::set_timeout(timeout);
}

/// How long a capture waits for the threads' answers.
pub fn timeout() -> Duration {
    register_fork();
    sys::timeout()
}

/// Chooses the unwinding method for the following captures. Default:
/// [`Method::Auto`].
pub fn set_method(method: Method) {
    register_fork();
    sys::set_method(method);
}

/// The method the next capture uses, with [`Method::Auto`] resolved.
pub fn method() -> Method {
    register_fork();
    sys::method()
}

/// The native pass: adds native stacks and thread states to a snapshot of
/// shadow stacks, charging the snapshot's memory budget. The one way in to
/// this module from the capture.
pub(crate) fn augment(snapshot: &mut Snapshot) {
    register_fork();
    sys::augment(snapshot);
    if snapshot.augmented {
        show_workers(snapshot);
    }
}

/// Gives a running task that shows no frame of its own (its instrumented
/// frames, if any, are on its worker's stack) the stack of the thread
/// polling it, shared with the thread: what it is running now, at native
/// depth.
fn show_workers(snapshot: &mut Snapshot) {
    use crate::snapshot::table::StateIndex;
    use crate::snapshot::Kind;

    let table = &mut snapshot.table;
    let workers: std::collections::HashMap<u64, u32> = table
        .records()
        .iter()
        .filter(|r| r.kind() == Kind::Thread)
        .map(|r| (r.id, r.chain))
        .collect();
    for index in 0..table.len() {
        let routine = &table.records()[index];
        if routine.kind() != Kind::Task
            || routine.state() != StateIndex::Running
            || !table.chain(routine.chain).frames.is_empty()
        {
            continue;
        }
        if let Some(&chain) = routine.running_on().and_then(|id| workers.get(&id)) {
            table.set_chain(index, chain);
        }
    }
}

/// Hooks for tests and benchmarks, reached through
/// `webstack::__test_hooks::native`.
pub(crate) mod hooks {
    use super::sys;

    /// Whether the calling thread is running the signal handler right now.
    /// For tests that check the handler does not allocate.
    pub fn in_handler() -> bool {
        sys::in_handler()
    }

    /// Number of times the handler captured a stack since the process
    /// started.
    pub fn handler_runs() -> u64 {
        sys::handler_runs()
    }

    /// Skips the `/proc` check for a blocked signal, so that tests reach the
    /// timeout path.
    pub fn skip_blocked_check(skip: bool) {
        super::register_fork();
        sys::skip_blocked_check(skip);
    }

    /// Whether a capture signals every thread at once (`true`, the default,
    /// within the budget) or one thread at a time. For benchmarks that
    /// compare the two.
    pub fn set_parallel(parallel: bool) {
        super::register_fork();
        sys::set_parallel(parallel);
    }

    /// The least time between the end of a runtime's task dump and the
    /// start of the next (a second by default), for benchmarks that wait
    /// for the traced tasks' wakes to drain between dumps themselves.
    pub fn set_trace_interval(interval: std::time::Duration) {
        sys::set_trace_interval(interval);
    }

    /// Takes every thread's native stack without symbolising or merging;
    /// returns how many threads answered. For benchmarks.
    pub fn stacks_only() -> Result<usize, String> {
        super::register_fork();
        sys::stacks_only()
    }

    /// Symbolises one return address, through the cache; returns the number
    /// of (inlined) functions found. For benchmarks.
    pub fn symbolize(address: usize) -> usize {
        super::register_fork();
        sys::symbolize(address)
    }

    /// The native pass of [`Snapshot::capture`](crate::Snapshot::capture)
    /// on `snapshot` (a capture with `augment` off), timed phase by phase:
    /// signal and unwind (with the `/proc` reads), symbolise, merge, source
    /// lines, workers. For the benchmark's profile of `augment=1`.
    pub fn augment_phases(
        snapshot: &mut crate::snapshot::Snapshot,
    ) -> Vec<(&'static str, std::time::Duration)> {
        let mut phases = Vec::new();
        let mut last = std::time::Instant::now();
        let mut mark = |name: &'static str| {
            let now = std::time::Instant::now();
            phases.push((name, now - last));
            last = now;
        };
        super::register_fork();
        sys::augment_with(snapshot, &mut mark);
        if snapshot.augmented {
            super::show_workers(snapshot);
        }
        mark("show_workers");
        phases
    }

    /// Empties the cache of resolved addresses. For benchmarks.
    pub fn clear_symbol_cache() {
        super::register_fork();
        sys::clear_symbol_cache();
    }

    /// Drops the parsed debug information, as an exceeded symbol budget
    /// does. For benchmarks.
    pub fn drop_parsed_symbols() {
        super::register_fork();
        sys::drop_parsed_symbols();
    }

    /// Estimated bytes held within the symbol budget. For tests.
    pub fn symbol_bytes() -> usize {
        super::register_fork();
        sys::symbol_bytes()
    }

    /// Bytes of the symbol indexes and tables, kept outside the budget.
    /// For benchmarks.
    pub fn symbol_index_bytes() -> usize {
        super::register_fork();
        sys::symbol_index_bytes()
    }

    /// Whether symbols of some object are loaded (by a snapshot or the
    /// background warm-up). For tests.
    pub fn symbols_loaded() -> bool {
        super::register_fork();
        sys::symbols_loaded()
    }
}
