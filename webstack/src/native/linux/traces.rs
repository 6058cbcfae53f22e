//! Tokio's task traces (feature `taskdump`, `--cfg tokio_unstable`): where
//! every idle task of every runtime built with `webstack::tokio::hooks`
//! waits, annotated or not.
//!
//! Tokio's task dump (`Handle::dump`) polls each idle task once in a
//! tracing mode in which its leaf futures (sockets, timers, channels)
//! capture a backtrace and return `Pending`. The dump runs on a thread of
//! its own, `webstack-taskdump`, and the capture waits for it at most the
//! deadline ([`crate::native::set_trace_deadline`], 100 ms by default): tokio's dump waits for
//! every worker to come back to its scheduler, and a worker stuck inside a
//! poll never does. Past the deadline the page is rendered without traces
//! and says which thread was polling what; the dump thread is left to
//! finish when the worker comes back, and no other dump of that runtime
//! starts meanwhile, nor within a second of the last one's end (tokio's
//! dumps back to back were seen never to finish), nor while more than 32
//! tasks are queued on its workers (tokio's dump then loops forever with
//! every worker stopped: see `MAX_QUEUED`). The backtraces'
//! instruction pointers are symbolised
//! here, with webstack's own symboliser (inlined `async fn` bodies
//! included), and merged into the task's routine as native frames are into
//! a thread's: an instrumented frame keeps its typed arguments and takes the
//! trace's file and line.
//!
//! Tokio exposes a trace's unresolved addresses only through its `Debug`
//! form (resolving them through `backtrace` would parse the program's debug
//! information a second time); they are read from there.

pub(super) use imp::{add, set_deadline, set_enabled, set_min_interval};

use crate::snapshot::{Kind, Snapshot};

/// Whether some tokio task of `snapshot` shows no frame: the page then
/// says how to see where it waits.
fn untraced_tokio_tasks(snapshot: &Snapshot) -> bool {
    let table = &snapshot.table;
    table.records().iter().any(|r| {
        r.kind() == Kind::Task && r.tokio_id().is_some() && table.chain(r.chain).frames.is_empty()
    })
}

#[cfg(all(
    feature = "taskdump",
    tokio_unstable,
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod imp {
    use std::collections::HashMap;
    use std::future::Future;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use ::tokio::runtime::{Handle, RuntimeFlavor};

    use super::super::merge::{merge, Keys, NativeFrame};
    use super::untraced_tokio_tasks;
    use crate::record::task::spawned::id_u64;
    use crate::record::tokio_hooks::runtimes;
    use crate::snapshot::budget::{self, Budget};
    use crate::snapshot::table::StateIndex;
    use crate::snapshot::{Kind, Snapshot, State};

    use crate::native::DEFAULT_TRACE_DEADLINE as DEFAULT_DEADLINE;

    /// The longest a capture waits for tokio's dumps, all runtimes together, in
    /// nanoseconds.
    static DEADLINE_NS: AtomicU64 = AtomicU64::new(DEFAULT_DEADLINE.as_nanos() as u64);

    /// Whether captures trace tasks: off until the program turns them on
    /// ([`crate::native::set_task_traces`]), since tokio's dump can leave a
    /// runtime frozen.
    static ENABLED: AtomicBool = AtomicBool::new(false);

    pub(in super::super) fn set_enabled(on: bool) {
        ENABLED.store(on, Ordering::Relaxed);
    }

    pub(in super::super) fn set_deadline(deadline: Duration) {
        let ns = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
        DEADLINE_NS.store(ns, Ordering::Relaxed);
    }

    fn deadline() -> Duration {
        Duration::from_nanos(DEADLINE_NS.load(Ordering::Relaxed))
    }

    /// [`MIN_INTERVAL`], or what a benchmark set instead, in nanoseconds.
    static MIN_INTERVAL_NS: AtomicU64 = AtomicU64::new(MIN_INTERVAL.as_nanos() as u64);

    pub(in super::super) fn set_min_interval(interval: Duration) {
        let ns = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        MIN_INTERVAL_NS.store(ns, Ordering::Relaxed);
    }

    fn min_interval() -> Duration {
        Duration::from_nanos(MIN_INTERVAL_NS.load(Ordering::Relaxed))
    }

    /// Every runtime dumped so far, by runtime id: when its last dump
    /// started, and when it ended (`None` while it runs, past a capture's
    /// deadline too). No second dump of a runtime starts while one runs.
    static DUMPS: Mutex<Vec<(String, Instant, Option<Instant>)>> = Mutex::new(Vec::new());

    /// The least time between the end of a runtime's dump and the start of
    /// the next: dumps in quick succession were seen to keep tokio's
    /// workers busy re-polling the traced tasks (a benchmark dumping back
    /// to back never finished its second dump).
    const MIN_INTERVAL: Duration = Duration::from_secs(1);

    /// The most tasks queued on a runtime's workers for it to be dumped.
    /// Tokio's dump gathers every worker's run queue into one queue of 256
    /// (`Shared::steal_all`) and loops until the others are empty: with
    /// more than about 128 runnable tasks queued the loop never ends, and
    /// every worker of the runtime stays stopped (seen: a dump right after
    /// a dump, whose traced tasks tokio had all woken). Below this bound the
    /// workers, which stop taking new tasks to join the dump, can hardly
    /// queue that many meanwhile.
    const MAX_QUEUED: usize = 32;

    /// What one task's trace gave: its tokio id and the instruction pointers of
    /// one of its backtraces (see [`addresses`]), innermost first.
    type Traced = Vec<(u64, Vec<usize>)>;

    /// Adds the await backtraces of every idle task of the remembered runtimes
    /// to `snapshot`, and says in [`Snapshot::task_traces`] what happened.
    pub(in super::super) fn add(snapshot: &mut Snapshot) {
        if !ENABLED.load(Ordering::Relaxed) {
            if untraced_tokio_tasks(snapshot) {
                snapshot.task_traces = Some(
                    "task traces off: webstack::native::set_task_traces(true) turns them on \
                     for a debugging session (tokio's task dump can leave a runtime frozen: \
                     docs/tasks.md)"
                        .to_owned(),
                );
            }
            return;
        }
        let Some(handles) = runtimes::all() else {
            return;
        };
        let handles: Vec<Handle> = handles
            .into_iter()
            .filter(|h| h.metrics().num_alive_tasks() > 0)
            .collect();
        if handles.is_empty() {
            return;
        }
        let started = Instant::now();
        let end = started + deadline();
        let mut traced: Traced = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        for handle in handles {
            if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
                notes.push(format!(
                    "runtime {} is current-thread: tokio traces it only from its own thread",
                    handle.id()
                ));
                continue;
            }
            match dump(&handle, end) {
                Ok(tasks) => traced.extend(tasks),
                Err(note) => notes.push(note),
            }
        }
        let elapsed = started.elapsed();
        let merged = merge_into(snapshot, &traced);
        let mut note = format!(
            "task traces: {merged} tasks traced in {:.1} ms (tokio's task dump)",
            elapsed.as_secs_f64() * 1e3
        );
        for extra in &notes {
            note.push_str("; ");
            note.push_str(extra);
        }
        if !notes.is_empty() {
            note.push_str(&stuck_workers(snapshot));
        }
        snapshot.task_traces = Some(note);
    }

    /// Dumps one runtime on the dump thread, waiting until `end` at most.
    fn dump(handle: &Handle, end: Instant) -> Result<Traced, String> {
        let id = handle.id().to_string();
        let metrics = handle.metrics();
        let queued: usize = (0..metrics.num_workers())
            .map(|worker| metrics.worker_local_queue_depth(worker))
            .sum();
        if queued > MAX_QUEUED {
            return Err(format!(
                "runtime {id}: not dumped, {queued} tasks are queued on its workers (tokio's \
                 dump can stop a busy runtime's workers for good)"
            ));
        }
        {
            let Ok(mut dumps) = DUMPS.try_lock() else {
                return Err(format!("runtime {id}: another capture is dumping it"));
            };
            match dumps.iter().position(|(known, _, _)| *known == id) {
                Some(index) => match dumps[index] {
                    (_, started, None) => {
                        return Err(format!(
                            "runtime {id}: a dump of it started {:.0} ms ago has not finished \
                             (a worker is inside a poll)",
                            started.elapsed().as_secs_f64() * 1e3
                        ))
                    }
                    (_, _, Some(ended)) if ended.elapsed() < min_interval() => {
                        return Err(format!(
                            "runtime {id}: dumped {:.0} ms ago, and at most once a second",
                            ended.elapsed().as_secs_f64() * 1e3
                        ))
                    }
                    _ => dumps[index] = (id.clone(), Instant::now(), None),
                },
                None => dumps.push((id.clone(), Instant::now(), None)),
            }
        }
        let (send, receive) = mpsc::channel();
        let handle = handle.clone();
        let thread_id = id.clone();
        let spawned = std::thread::Builder::new()
            .name("webstack-taskdump".into())
            .spawn(move || {
                let dump = block_on(handle.dump());
                let tasks: Traced = dump
                    .tasks()
                    .iter()
                    .map(|task| (id_u64(task.id()), addresses(task.trace())))
                    .collect();
                let _ = send.send(tasks);
                dump_ended(&thread_id);
            });
        if let Err(e) = spawned {
            dump_ended(&id);
            return Err(format!("runtime {id}: no dump thread: {e}"));
        }
        let wait = end.saturating_duration_since(Instant::now());
        receive.recv_timeout(wait).map_err(|_| {
            format!(
                "runtime {id}: tokio's dump did not finish within {} ms, so tasks are grouped by \
                 spawn site",
                deadline().as_millis()
            )
        })
    }

    fn dump_ended(id: &str) {
        // A dump thread that ends while a capture holds the list (microseconds)
        // retries; it never waits on anything else.
        loop {
            if let Ok(mut dumps) = DUMPS.try_lock() {
                for (known, _, ended) in dumps.iter_mut() {
                    if known == id {
                        *ended = Some(Instant::now());
                    }
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The instruction pointers of one of a trace's backtraces, from its
    /// `Debug` form: `Trace { inner: Trace { backtraces: [[BacktraceFrame { ip:
    /// 0x…, symbol_address: 0x… }, …], …] } }`. A task waiting on several
    /// futures at once (`select!`, `join!`) has one backtrace per leaf, in the
    /// order it polled them, which `select!` draws at random: the one with the
    /// lowest addresses is taken, so that tasks waiting at the same place show
    /// the same one and share a bucket.
    fn addresses(trace: &::tokio::runtime::dump::Trace) -> Vec<usize> {
        let text = format!("{trace:?}");
        parse_addresses(&text)
    }

    fn parse_addresses(text: &str) -> Vec<usize> {
        text.split("], [")
            .map(|backtrace| {
                backtrace
                    .split("ip: 0x")
                    .skip(1)
                    .filter_map(|rest| {
                        let hex: String =
                            rest.chars().take_while(char::is_ascii_hexdigit).collect();
                        usize::from_str_radix(&hex, 16).ok()
                    })
                    .collect::<Vec<usize>>()
            })
            .filter(|ips| !ips.is_empty())
            .min()
            .unwrap_or_default()
    }

    /// Symbolises each trace and merges it into the routine of its task; the
    /// number of tasks that got frames.
    ///
    /// Tasks waiting at the same place, with the same shadow chain, share
    /// one merged chain: each distinct pair is symbolised and merged once.
    fn merge_into(snapshot: &mut Snapshot, traced: &Traced) -> usize {
        let by_tokio_id: HashMap<u64, usize> = snapshot
            .table
            .records()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind() == Kind::Task && r.state() != StateIndex::Running)
            .filter_map(|(index, r)| Some((r.tokio_id()?, index)))
            .collect();
        forgive_wakes(snapshot, &by_tokio_id, traced);
        let mut budget = Budget::of(snapshot);
        let table = &mut snapshot.table;
        let mut chains: HashMap<(u32, &[usize]), Option<u32>> = HashMap::new();
        let mut keys = Keys::default();
        let mut merged = 0;
        for (tokio_id, ips) in traced {
            let Some(&index) = by_tokio_id.get(tokio_id) else {
                continue;
            };
            let shadow = table.records()[index].chain;
            let chain = *chains.entry((shadow, ips)).or_insert_with(|| {
                let natives = native_frames(ips);
                if natives.is_empty() {
                    return None;
                }
                let old = table.chain(shadow);
                let mut frames = old.frames.to_vec();
                // Marks the task's own root to find it after the merge.
                if let Some(root) = old.own_root.and_then(|root| frames.get_mut(root)) {
                    root.task = Some(OWN_ROOT);
                }
                let mut frames = merge(frames, &natives, &mut keys);
                let own_root = frames.iter().position(|f| f.task == Some(OWN_ROOT));
                if let Some(root) = own_root {
                    frames[root].task = None;
                }
                let elided = old.elided;
                // At most maxmem: the rest keep their spawn sites.
                budget
                    .take(budget::chain_cost(frames.iter().map(|f| f.args.len())))
                    .then(|| {
                        let all = table.frames_for(frames.len());
                        let start = all.len();
                        all.append(&mut frames);
                        table.add_chain(start, elided, own_root)
                    })
            });
            if let Some(chain) = chain {
                table.set_chain(index, chain);
                merged += 1;
            }
        }
        budget.store(snapshot);
        merged
    }

    /// Tokio wakes every task whose trace reached a leaf future once the
    /// dump ends, for one real poll: the hooks are told not to count it
    /// (and to leave the idle time), so the next page shows each task's
    /// polls and idle time as a page without traces would.
    fn forgive_wakes(snapshot: &Snapshot, by_tokio_id: &HashMap<u64, usize>, traced: &Traced) {
        let table = &snapshot.table;
        for (tokio_id, ips) in traced {
            let Some(record) = by_tokio_id
                .get(tokio_id)
                .map(|&index| &table.records()[index])
            else {
                continue;
            };
            if ips.is_empty() {
                continue;
            }
            let (Some(polls), Some(waiting)) = (table.polls(record), record.waiting()) else {
                continue;
            };
            let end_ns = table.now_ns.saturating_sub(waiting.as_nanos() as u64);
            crate::record::tokio_hooks::traced(*tokio_id, polls, end_ns);
        }
    }

    /// Stands for a task's own id on its root frame during a merge.
    const OWN_ROOT: u64 = u64::MAX;

    /// Symbolises a trace's return addresses (each looked up one byte before,
    /// in the call), inlined calls included.
    fn native_frames(ips: &[usize]) -> Vec<NativeFrame> {
        let mut out = Vec::with_capacity(ips.len() * 2);
        for &ip in ips {
            NativeFrame::symbolized(ip, ip, &mut out);
        }
        out
    }

    /// `: thread 'tokio-runtime-worker' (tid 1234) polls task 17`, for each
    /// task being polled: the workers that keep a dump from finishing.
    fn stuck_workers(snapshot: &Snapshot) -> String {
        let threads: HashMap<u64, (String, Option<i64>)> = snapshot
            .routines()
            .filter(|r| r.kind == Kind::Thread)
            .map(|r| (r.id, (r.name.into_owned(), r.tid)))
            .collect();
        let mut out = String::new();
        for task in snapshot.routines() {
            if task.kind != Kind::Task || task.state != State::Running {
                continue;
            }
            let Some((name, tid)) = task.running_on.and_then(|id| threads.get(&id)) else {
                continue;
            };
            out.push_str(&format!(
                "; thread '{name}'{} is polling task {}",
                tid.map(|tid| format!(" (tid {tid})")).unwrap_or_default(),
                task.id
            ));
        }
        out
    }

    /// Drives `future` to its end on the calling thread (tokio's dump of a
    /// multi-thread runtime needs no runtime context: it waits on a channel).
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread, AtomicBool);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.1.store(true, Ordering::Release);
                self.0.unpark();
            }
        }
        let unpark = Arc::new(Unpark(std::thread::current(), AtomicBool::new(false)));
        let waker = Waker::from(unpark.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            while !unpark.1.swap(false, Ordering::Acquire) {
                std::thread::park();
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_the_lowest_backtrace_of_the_debug_form() {
            let text = "Trace { inner: Trace { backtraces: [[BacktraceFrame { ip: 0x55f0a1, \
                        symbol_address: 0x55f0a0 }, BacktraceFrame { ip: 0x7f00ff, symbol_address: \
                        0x7f0000 }], [BacktraceFrame { ip: 0x1234, symbol_address: 0x1200 }]] } }";
            assert_eq!(parse_addresses(text), [0x1234]);
            let one = "Trace { inner: Trace { backtraces: [[BacktraceFrame { ip: 0x55f0a1, \
                       symbol_address: 0x55f0a0 }, BacktraceFrame { ip: 0x7f00ff, symbol_address: \
                       0x7f0000 }]] } }";
            assert_eq!(parse_addresses(one), [0x55f0a1, 0x7f00ff]);
            assert!(parse_addresses("Trace { inner: Trace { backtraces: [] } }").is_empty());
        }
    }
}

/// Without the feature (or the cfg, or on another architecture): no
/// traces; the page says how to get them when a tokio task shows no frame.
#[cfg(not(all(
    feature = "taskdump",
    tokio_unstable,
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod imp {
    use std::time::Duration;

    use crate::snapshot::Snapshot;

    use super::untraced_tokio_tasks;

    pub(in super::super) fn add(snapshot: &mut Snapshot) {
        if untraced_tokio_tasks(snapshot) {
            snapshot.task_traces = Some(
                "task traces off: build with --cfg tokio_unstable and webstack's feature \
                 taskdump to see the line each tokio task waits at"
                    .to_owned(),
            );
        }
    }

    pub(in super::super) fn set_deadline(_deadline: Duration) {}

    pub(in super::super) fn set_enabled(_on: bool) {}

    pub(in super::super) fn set_min_interval(_interval: Duration) {}
}
