//! The collector: lists the threads, asks them for their registers and
//! stack copies in batches that fit the snapshot's memory budget, unwinds
//! each copy as its batch settles (all under the capture lock), then (lock
//! released) symbolises and merges into the snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::fork::Mutex;

use super::merge::{self, merge, NativeFrame};
use super::proc::{self, TaskInfo};
use super::signal::{self, Answer, Contents};
use super::symbols::source_line;
use super::unwind::{Ending, Unwinder};
use super::{DEFAULT_STACK_COPY, DEFAULT_TIMEOUT, MAX_NATIVE_FRAMES};
use crate::snapshot::budget::{self, Budget};
use crate::snapshot::lines::SourceLines;
use crate::snapshot::{Frame, Kind, Routine, Snapshot, State};

static TIMEOUT_NANOS: AtomicU64 = AtomicU64::new(DEFAULT_TIMEOUT.as_nanos() as u64);
static SKIP_BLOCKED_CHECK: AtomicBool = AtomicBool::new(false);
/// Whether every thread is signalled at once (within the budget: the
/// default), or one thread at a time (for benchmarks).
static PARALLEL: AtomicBool = AtomicBool::new(true);
static STACK_COPY: AtomicUsize = AtomicUsize::new(DEFAULT_STACK_COPY);

/// Bounds of the stack copy: a page, and 8 MiB (std's main-thread stack).
const MIN_STACK_COPY: usize = 4 << 10;
const MAX_STACK_COPY: usize = 8 << 20;

pub(super) fn set_stack_copy(bytes: usize) {
    STACK_COPY.store(
        bytes.clamp(MIN_STACK_COPY, MAX_STACK_COPY),
        Ordering::Relaxed,
    );
}

pub(super) fn stack_copy() -> usize {
    STACK_COPY.load(Ordering::Relaxed)
}

pub(super) fn set_timeout(timeout: Duration) {
    TIMEOUT_NANOS.store(
        timeout.as_nanos().min(u64::MAX as u128) as u64,
        Ordering::Relaxed,
    );
}

pub(super) fn timeout() -> Duration {
    Duration::from_nanos(TIMEOUT_NANOS.load(Ordering::Relaxed))
}

pub(super) fn skip_blocked_check(skip: bool) {
    SKIP_BLOCKED_CHECK.store(skip, Ordering::Relaxed);
}

pub(super) fn set_parallel(parallel: bool) {
    PARALLEL.store(parallel, Ordering::Relaxed);
}

/// State kept across snapshots, under the capture lock.
struct Collector {
    /// Set when a handler never finished: the slot is lost for good.
    stuck: bool,
    /// Stable webstack ids of threads that never registered, by tid.
    ids: HashMap<i32, u64>,
    /// Threads that did not answer last time: their signal masks are read
    /// before they are asked again.
    suspects: HashSet<i32>,
    tids: Vec<i32>,
    /// Threads' `/proc` files kept open from one capture to the next.
    files: proc::OpenFiles,
    /// The writable mappings published to the handlers during signalling,
    /// read again only when the threads changed: reading `/proc/self/maps`
    /// took 60 % of the signalling phase of 64 threads. A thread's stack
    /// stays where it is while it lives, and the main thread's grows within
    /// its entry (see [`proc::writable_mappings`]).
    mappings: Vec<[usize; 2]>,
    /// The threads when `mappings` was read.
    mapped_tids: Vec<i32>,
    unwinder: Unwinder,
    buf: String,
}

/// Held for the whole signalling phase, so that the slots have one reader
/// and two captures never signal at once. Outside the fork gate: a child
/// of a fork that found it held starts afresh (see [`crate::fork::Mutex`]).
static CAPTURE: Mutex<Option<Collector>> = Mutex::new(|| None);

/// Forgets the state kept about the parent's threads, in the child of a
/// fork. If a capture of the parent was signalling at the fork, its state
/// is given up, and the copy buffers too (it may have been replacing them).
pub(super) fn forget_threads() {
    if CAPTURE.recover() {
        signal::forget_copies();
    } else {
        *CAPTURE.lock() = None;
    }
}

/// The answer of one thread.
enum Outcome {
    /// The interrupted instruction, then return addresses; how the walk
    /// ended.
    Stack(Vec<usize>, Ending),
    /// Asked, but no stack; the reason.
    NoAnswer(&'static str),
    /// The handler ran, but the stack it ran on had no room to unwind.
    NoRoom,
    /// Not asked (native stacks unavailable).
    NotAsked,
    /// The thread exited before it answered: left out.
    Exited,
}

struct Captured {
    info: TaskInfo,
    outcome: Outcome,
    /// Id for a thread that is not registered.
    id: u64,
}

impl Captured {
    /// The symbolised native stack, if the thread answered with one.
    fn symbolize(&self) -> Option<Vec<NativeFrame>> {
        match &self.outcome {
            Outcome::Stack(ips, _) => Some(native_frames(ips)),
            _ => None,
        }
    }
}

pub(super) fn augment(snapshot: &mut Snapshot) {
    augment_with(snapshot, &mut |_| {});
}

/// [`augment`], calling `mark` with the name of each phase as it ends (for
/// the benchmark's profile).
pub(super) fn augment_with(snapshot: &mut Snapshot, mark: &mut dyn FnMut(&'static str)) {
    let mut native_error = None;
    let mut sig = match signal::ensure_installed() {
        Ok(sig) => Some(sig),
        Err(error) => {
            native_error = Some(error);
            None
        }
    };
    let registered = registered_tids(snapshot);
    let room = snapshot.maxmem.saturating_sub(snapshot.bytes_used);
    let (captured, uptime) = match signal_all(&registered, room, &mut sig, &mut native_error) {
        Ok(found) => found,
        Err(error) => {
            snapshot.native_error = Some(error);
            return;
        }
    };
    mark("signal+copy+unwind");
    let natives = captured.iter().map(|c| c.symbolize()).collect();
    mark("symbolise");
    merge_into(snapshot, &registered, captured, natives, uptime);
    mark("merge");
    add_sources(snapshot);
    mark("add_sources");
    snapshot.augmented = sig.is_some();
    snapshot.native_error = native_error;
}

/// The functions a capture runs on the collecting thread, whose own stack
/// the capture shows: the warm-up resolves them, so that the first page
/// does not parse their debug information (2 to 7 ms in a release build).
pub(super) fn capture_path() -> [usize; 4] {
    [
        augment as *const () as usize,
        augment_with as *const () as usize,
        signal_all as *const () as usize,
        signal::send as *const () as usize,
    ]
}

/// Only the signalling phase, for benchmarks: every thread's return
/// addresses, unsymbolised. Returns the number of threads that answered.
pub(super) fn stacks_only() -> Result<usize, String> {
    let mut native_error = None;
    let mut sig = Some(signal::ensure_installed()?);
    let room = crate::snapshot::DEFAULT_MAXMEM;
    let (captured, _) = signal_all(&HashMap::new(), room, &mut sig, &mut native_error)?;
    Ok(captured
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Stack(..)))
        .count())
}

/// Lists the threads and asks each for its stack, under the capture lock,
/// in batches whose copies fit in `room` bytes (at least one thread a
/// batch). `sig` becomes `None` if native stacks had to be given up.
fn signal_all(
    registered: &HashMap<i64, usize>,
    room: usize,
    sig: &mut Option<i32>,
    native_error: &mut Option<String>,
) -> Result<(Vec<Captured>, Option<Duration>), String> {
    let timeout = timeout();
    let skip_blocked_check = SKIP_BLOCKED_CHECK.load(Ordering::Relaxed);
    let mut guard = CAPTURE.lock();
    let collector = guard.get_or_insert_with(|| Collector {
        stuck: false,
        ids: HashMap::new(),
        suspects: HashSet::new(),
        tids: Vec::new(),
        files: proc::OpenFiles::new(),
        mappings: Vec::new(),
        mapped_tids: Vec::new(),
        unwinder: Unwinder::new(),
        buf: String::new(),
    });
    if collector.stuck {
        *native_error = Some(STUCK.to_owned());
        *sig = None;
    }
    proc::list_tids(&mut collector.tids)
        .map_err(|error| format!("cannot list /proc/self/task: {error}"))?;
    let dir =
        proc::TaskDir::open().map_err(|error| format!("cannot open /proc/self/task: {error}"))?;
    let uptime = proc::uptime();
    let copy = stack_copy();
    if sig.is_some() {
        collector.unwinder.refresh();
        signal::prepare(copy);
        // Without the table each copy runs to the copy bound. A table read
        // before a thread's stack was unmapped, or mapped again by the C
        // library for a new thread of the same tid, still bounds it: the
        // thread's descriptor marks where its stack ends, and a copy that
        // fails is tried shorter (see `copy::take`).
        if collector.mappings.is_empty() || collector.mapped_tids != collector.tids {
            collector.mapped_tids.clone_from(&collector.tids);
            if proc::writable_mappings(&mut collector.buf, &mut collector.mappings).is_err() {
                collector.mappings.clear();
            }
        }
        // SAFETY: `collector.mappings` is not touched again until it is
        // withdrawn below, after the last answer, or leaked if a handler
        // never finished.
        unsafe { super::copy::publish_mappings(&collector.mappings) };
    }
    // SAFETY: `getpid` and `getuid` have no preconditions.
    let pid = unsafe { (libc::getpid(), libc::getuid()) };
    // The copies of one batch are in memory at once, and count against the
    // snapshot's budget.
    let batch = if PARALLEL.load(Ordering::Relaxed) {
        (room / copy).max(1)
    } else {
        1
    };
    let tids = std::mem::take(&mut collector.tids);
    let mut round = Round {
        captured: Vec::with_capacity(tids.len()),
        sent: Vec::new(),
        asked: Vec::new(),
        answers: Vec::new(),
        ips: Vec::with_capacity(super::MAX_NATIVE_FRAMES),
        cursor: 0,
    };
    let mut upcoming = tids.iter();
    let mut next = read_next(&mut upcoming, &dir, &mut collector.files);
    while let Some(mut info) = next.take() {
        let tid = info.tid;
        let mut outcome = Outcome::NotAsked;
        let mut sent = None;
        if let Some(signo) = *sig {
            match refusal(&mut info, signo, collector, skip_blocked_check) {
                Some(reason) => outcome = Outcome::NoAnswer(reason),
                None => {
                    if round.sent.len() >= batch {
                        round.settle(timeout, &dir, collector, sig, native_error);
                    }
                    let mut slot = signal::next_slot(&mut round.cursor);
                    if slot.is_none() && !round.sent.is_empty() {
                        // The pool is full: collect this batch first.
                        round.settle(timeout, &dir, collector, sig, native_error);
                        slot = signal::next_slot(&mut round.cursor);
                    }
                    match (*sig, slot) {
                        (None, _) => {}
                        (Some(_), None) => outcome = Outcome::NoAnswer("no free slot"),
                        (Some(signo), Some(slot)) => match signal::send(signo, pid, tid, slot) {
                            Ok(request) => sent = Some(request),
                            Err(Answer::Exited) => {
                                next = read_next(&mut upcoming, &dir, &mut collector.files);
                                continue;
                            }
                            Err(_) => outcome = Outcome::NoAnswer("signal not queued"),
                        },
                    }
                }
            }
        }
        // Read the next thread's /proc files while this one wakes up and
        // unwinds.
        next = read_next(&mut upcoming, &dir, &mut collector.files);
        let id = if registered.contains_key(&(tid as i64)) {
            0
        } else {
            *collector
                .ids
                .entry(tid)
                .or_insert_with(|| crate::record::registry::next_ids(1))
        };
        if let Some(request) = sent {
            round.asked.push(round.captured.len());
            round.sent.push(request);
        }
        round.captured.push(Captured { info, outcome, id });
    }
    round.settle(timeout, &dir, collector, sig, native_error);
    signal::release_copies();
    // SAFETY: an empty table; no handler reads the old one any more (each
    // request was answered, abandoned, or leaked its table in `settle`).
    unsafe { super::copy::publish_mappings(&[]) };
    collector
        .ids
        .retain(|tid, _| tids.binary_search(tid).is_ok());
    collector
        .suspects
        .retain(|tid| tids.binary_search(tid).is_ok());
    collector.files.retain(&tids);
    collector.tids = tids;
    let mut captured = round.captured;
    captured.retain(|c| !matches!(c.outcome, Outcome::Exited));
    Ok((captured, uptime))
}

/// The threads of one capture, and the requests sent and not yet waited for.
struct Round {
    captured: Vec<Captured>,
    /// Requests of the current batch...
    sent: Vec<signal::Sent>,
    /// ... and the index in `captured` of the thread each one asked.
    asked: Vec<usize>,
    answers: Vec<Answer>,
    ips: Vec<usize>,
    /// Where [`signal::next_slot`] looks for the next free slot.
    cursor: usize,
}

impl Round {
    /// Waits for the current batch against one deadline and records each
    /// thread's outcome; the batch's slots are free again afterwards.
    fn settle(
        &mut self,
        timeout: Duration,
        dir: &proc::TaskDir,
        collector: &mut Collector,
        sig: &mut Option<i32>,
        native_error: &mut Option<String>,
    ) {
        signal::wait_all(&self.sent, timeout, &mut self.answers);
        for ((request, answer), &index) in self.sent.iter().zip(&self.answers).zip(&self.asked) {
            let captured = &mut self.captured[index];
            let tid = captured.info.tid;
            captured.outcome = match answer {
                Answer::Done => {
                    collector.suspects.remove(&tid);
                    let (unwinder, ips) = (&mut collector.unwinder, &mut self.ips);
                    let method = super::unwind::effective_method();
                    signal::read_slot(request.slot(), |contents| match contents {
                        Contents::Copy { regs, stack, cut } => {
                            let ending = unwinder.unwind(method, &regs, stack, cut, ips);
                            Outcome::Stack(ips.clone(), ending)
                        }
                        Contents::NoRoom => Outcome::NoRoom,
                        Contents::NoContext => Outcome::NoAnswer("no register context"),
                    })
                    .unwrap_or(Outcome::NoAnswer("no copy buffer"))
                }
                Answer::Exited => Outcome::Exited,
                Answer::TimedOut if !dir.exists(tid) => Outcome::Exited,
                Answer::TimedOut => {
                    collector.suspects.insert(tid);
                    Outcome::NoAnswer("timed out")
                }
                Answer::SendFailed => Outcome::NoAnswer("signal not queued"),
                Answer::Stuck => {
                    if !collector.stuck {
                        // The stuck handler may still read the table.
                        std::mem::forget(std::mem::take(&mut collector.mappings));
                    }
                    collector.stuck = true;
                    *native_error = Some(STUCK.to_owned());
                    *sig = None;
                    Outcome::NoAnswer("handler did not finish")
                }
            };
        }
        self.sent.clear();
        self.asked.clear();
        self.cursor = 0;
    }
}

/// The next listed thread that still exists, read from /proc.
fn read_next(
    tids: &mut std::slice::Iter<'_, i32>,
    dir: &proc::TaskDir,
    files: &mut proc::OpenFiles,
) -> Option<TaskInfo> {
    tids.find_map(|&tid| proc::read_task(dir, files, tid))
}

/// Second looks at a runnable thread that blocks the signal.
const RECHECKS: usize = 3;
const RECHECK_PAUSE: Duration = Duration::from_micros(200);

/// Why a thread that did not answer last time should not be asked now: it
/// blocks the signal, or the last one is still pending. Nothing is read for
/// other threads: a thread that blocks the signal costs one timeout, once.
fn refusal(
    info: &mut TaskInfo,
    signo: i32,
    collector: &mut Collector,
    skip: bool,
) -> Option<&'static str> {
    if skip || !collector.suspects.contains(&info.tid) {
        return None;
    }
    for attempt in 0..=RECHECKS {
        let state = proc::read_masks(info, &mut collector.buf)?;
        let reason = info.cannot_take(signo)?;
        // A runnable thread may be returning from the handler, where the
        // signal is blocked: look again.
        if state != 'R' || attempt == RECHECKS {
            return Some(reason);
        }
        std::thread::sleep(RECHECK_PAUSE);
    }
    None
}

/// The state of a thread whose handler had no room to unwind.
const NO_ROOM: &str = "no room to unwind (stack nearly full)";

const STUCK: &str = "a thread's signal handler did not finish within its timeout; \
                     native stacks are disabled for the rest of the process";

/// The registered threads' indices by tid: they come first in a snapshot,
/// so these are also their indices among its threads.
fn registered_tids(snapshot: &Snapshot) -> HashMap<i64, usize> {
    snapshot
        .table
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind() == Kind::Thread)
        .filter_map(|(index, r)| Some((r.tid()?, index)))
        .collect()
}

/// Symbolises `ips`: the interrupted instruction (looked up as is), then
/// return addresses (looked up one byte before, in the call).
fn native_frames(ips: &[usize]) -> Vec<NativeFrame> {
    let mut out = Vec::with_capacity(ips.len() * 2);
    for (i, &ip) in ips.iter().enumerate() {
        let lookup = if i == 0 { ip + 1 } else { ip };
        NativeFrame::symbolized(lookup, ip, &mut out);
    }
    out
}

/// Merges the answers into `snapshot`, whose registered threads are at
/// the indices `registered` gives by tid (routines are only appended here).
fn merge_into(
    snapshot: &mut Snapshot,
    registered: &HashMap<i64, usize>,
    captured: Vec<Captured>,
    natives: Vec<Option<Vec<NativeFrame>>>,
    uptime: Option<Duration>,
) {
    let mut budget = Budget::of(snapshot);
    let mut threads = snapshot.table.take_threads();
    let mut keys = merge::Keys::default();
    for (Captured { info, outcome, id }, native) in captured.into_iter().zip(natives) {
        let kernel = info.state_text();
        let (state, native) = match &outcome {
            Outcome::Stack(_, Ending::Whole) => (kernel, native),
            Outcome::Stack(_, Ending::Deep) => (
                format!(
                    "{kernel}; stack deeper than {} KiB: the outermost frames are not shown",
                    stack_copy() >> 10
                ),
                native,
            ),
            Outcome::Stack(_, Ending::TooManyFrames) => (
                format!(
                    "{kernel}; more than {MAX_NATIVE_FRAMES} native frames: \
                     the outermost are not shown"
                ),
                native,
            ),
            Outcome::NoAnswer(reason) => (format!("no answer ({reason}), {kernel}"), None),
            Outcome::NoRoom => (format!("{NO_ROOM}, {kernel}"), None),
            Outcome::NotAsked | Outcome::Exited => (kernel, None),
        };
        if let Some(&index) = registered.get(&(info.tid as i64)) {
            let routine = &mut threads[index];
            routine.state = State::Native(state);
            if let Some(native) = native {
                let before = budget::frames_cost(&routine.frames);
                let merged = merge(routine.frames.to_vec(), &native, &mut keys);
                let added = budget::frames_cost(&merged).saturating_sub(before);
                if budget.take(added) {
                    routine.frames = merged.into();
                }
            }
            continue;
        }
        let frames: Vec<Frame> = native
            .map(|native| merge(Vec::new(), &native, &mut keys))
            .unwrap_or_default();
        let cost = budget::routine_cost(info.name.len(), frames.iter().map(|f| f.args.len()));
        if !budget.take(cost) {
            snapshot.left_out.threads += 1;
            continue;
        }
        let mut routine = Routine::thread(id, info.name.clone());
        routine.state = State::Native(state);
        routine.age = proc::age(&info, uptime).unwrap_or_default();
        routine.tid = Some(info.tid as i64);
        routine.frames = frames.into();
        threads.push(routine);
    }
    budget.store(snapshot);
    snapshot.table.put_threads(threads);
}

/// Lets the snapshot look its frames' source lines up when a page shows
/// them (see [`crate::snapshot::lines`]), in what its budget leaves.
fn add_sources(snapshot: &mut Snapshot) {
    let room = snapshot.maxmem.saturating_sub(snapshot.bytes_used);
    let root = snapshot.process.source_root.as_deref();
    snapshot.table.lines = SourceLines::on(source_line, room, root);
}
