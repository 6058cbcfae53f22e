//! Reading the registry into the [model](super::model), without waiting on
//! the code that runs.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use super::budget::{self, Budget};
use super::model::{Kind, LeftOut, Process, Routine, Snapshot, State, DEFAULT_MAXMEM, MIN_MAXMEM};
use super::resolve::FrameCache;
use crate::record::registry::{self, Entry};
use crate::record::slot::FrameWords;
use crate::record::stack::{ThreadStack, MAX_DEPTH};
use crate::record::task::spawned::{self, Source};
use crate::record::task::{SavedChain, TaskShared};

/// How to capture a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Bytes the snapshot's own buffers may use, counting room for grouping
    /// its stacks into buckets; once reached, the remaining threads and tasks
    /// are counted in [`Snapshot::left_out`] instead of captured. Default: [`DEFAULT_MAXMEM`]; values below [`MIN_MAXMEM`] are
    /// raised to it.
    pub maxmem: usize,
    /// Also capture native stacks of every thread of the process, merged
    /// with the instrumented frames, with kernel states and source lines
    /// (Linux; see [`crate::native`]). When off, no signal is sent and no
    /// file is read. A no-op on other platforms. Default: `true`.
    pub augment: bool,
    /// Kernel tid of the thread serving the request, set by
    /// [`Options::serving_thread`]; `None`: the capturing thread.
    serving_tid: Option<i64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            maxmem: DEFAULT_MAXMEM,
            augment: true,
            serving_tid: None,
        }
    }
}

impl Options {
    /// Sets [`Options::maxmem`].
    pub fn maxmem(mut self, bytes: usize) -> Self {
        self.maxmem = bytes;
        self
    }

    /// Sets [`Options::augment`].
    pub fn augment(mut self, augment: bool) -> Self {
        self.augment = augment;
        self
    }

    /// Marks the calling thread as the one serving the snapshot's request,
    /// so that its bucket is listed first ([`Snapshot::captured_by_tid`]).
    /// Call it on the thread that received the request when the capture
    /// itself runs on another (a blocking pool). Registers the thread.
    /// Default: the thread that captures.
    pub fn serving_thread(mut self) -> Self {
        crate::record::stack::current();
        self.serving_tid = crate::record::stack::current_tid();
        self
    }

    fn effective_maxmem(&self) -> usize {
        self.maxmem.max(MIN_MAXMEM)
    }
}

/// The longest one snapshot waits, over all its tasks, for task locks that
/// no poll holds (another snapshot copying a chain); a task whose lock is
/// still held after that is reported as running.
const MAX_LOCK_WAIT: Duration = Duration::from_millis(1);

/// Reads every registered thread and task into a snapshot of shadow stacks:
/// the first stage of [`Snapshot::capture`], which holds the fork gate
/// around it and then runs the native pass.
///
/// Never waits for the program: a task being polled is reported as running
/// (its frames are on the polling thread's stack), and a thread's stack is
/// read without stopping it. It waits only for a task record that another
/// snapshot is copying (at most [`MAX_LOCK_WAIT`] per snapshot in all).
pub(crate) fn shadow(options: &Options) -> Snapshot {
    let captured_at = SystemTime::now();
    let maxmem = options.effective_maxmem();
    let (threads, tasks) = registry::counts();
    let mut routines: Vec<Routine> =
        Vec::with_capacity((threads + tasks).min(maxmem / std::mem::size_of::<Routine>() / 4));
    let mut budget = Budget::new(maxmem);
    let mut left_out = LeftOut {
        untracked_tasks: spawned::hooks_untracked(),
        ..LeftOut::default()
    };
    let mut words = Vec::with_capacity(MAX_DEPTH);
    let mut chain = SavedChain::default();
    let mut entries = Vec::new();
    let mut cache = FrameCache::default();
    let now = Instant::now();
    let now_ns = crate::clock::now_ns();
    let mut wait = MAX_LOCK_WAIT;
    // `(tokio id, index in routines, source)` of every task with a tokio id.
    let mut tokio_tasks: Vec<(u64, usize, Source)> = Vec::new();
    registry::for_each_shard(&mut entries, |entries| {
        for (i, entry) in entries.iter().enumerate() {
            if let Some(Entry::Task(ahead)) = entries.get(i + PREFETCH_AHEAD) {
                prefetch_record(ahead);
            }
            let captured = match entry {
                Entry::Thread(thread) => {
                    read_thread(thread, now, &mut words, &mut budget, &mut cache)
                }
                Entry::Task(task) => {
                    match read_task(task, now_ns, &mut wait, &mut chain, &mut budget, &mut cache) {
                        Ok(routine) => routine,
                        Err(Finished) => continue,
                    }
                }
            };
            match (captured, entry) {
                (Some(routine), Entry::Task(task)) => {
                    if let Some(id) = routine.tokio_id {
                        tokio_tasks.push((id, routines.len(), task.spawn.source));
                    }
                    routines.push(routine);
                }
                (Some(routine), _) => routines.push(routine),
                (None, Entry::Thread(_)) => left_out.threads += 1,
                (None, Entry::Task(_)) => left_out.tasks += 1,
            }
        }
    });
    merge_tokio_tasks(&mut routines, &mut tokio_tasks);
    sort_routines(&mut routines);
    let mut snapshot = Snapshot::new(routines);
    snapshot.captured_at = captured_at;
    snapshot.maxmem = maxmem;
    snapshot.bytes_used = budget.used();
    snapshot.left_out = left_out;
    snapshot.captured_by_tid = options
        .serving_tid
        .or_else(crate::record::stack::current_tid);
    snapshot
}

/// How many entries ahead of the one read [`shadow`] prefetches a task's
/// record.
const PREFETCH_AHEAD: usize = 4;

/// Starts loading the cache lines of a task record that [`read_task`] reads
/// (its lock, chain, ids and spawn information): with many tasks the
/// records are cold, and reading them one after another would wait for
/// each in turn.
#[inline]
fn prefetch_record(task: &std::sync::Arc<TaskShared>) {
    let record = std::sync::Arc::as_ptr(task).cast::<u8>();
    crate::prefetch::bytes(record, std::mem::size_of::<TaskShared>());
}

impl Process {
    /// The running process: what [`Snapshot::capture`] records, and
    /// [`Snapshot::new`] starts with.
    pub fn current() -> Process {
        // Before `FIXED` is first read: see `resolve::register_fork`.
        super::resolve::register_fork();
        let mut process = Process::default();
        process.pid = std::process::id();
        process.exe = FIXED.exe.clone();
        process.host = host_name();
        process.uptime = crate::clock::uptime();
        process.webstack = Cow::Borrowed(env!("CARGO_PKG_VERSION"));
        process.platform = Cow::Owned(FIXED.platform.clone());
        process.source_root = FIXED.source_root.clone();
        process
    }
}

/// What does not change while the process runs.
struct Fixed {
    exe: String,
    platform: String,
    source_root: Option<String>,
}

static FIXED: LazyLock<Fixed> = LazyLock::new(|| {
    let exe = std::env::current_exe().ok();
    let source_root = exe
        .as_deref()
        .and_then(|exe| exe.to_str())
        .and_then(|exe| exe.find("/target/").map(|end| exe[..end].to_owned()))
        .or_else(|| {
            std::env::current_dir()
                .ok()
                .and_then(|dir| dir.to_str().map(str::to_owned))
        })
        .filter(|root| root.len() > 1);
    Fixed {
        exe: exe.map_or_else(|| "?".to_owned(), |exe| exe.display().to_string()),
        platform: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        source_root,
    }
});

/// Forces the one-time reading of [`FIXED`], for the fork handlers (the
/// snapshot's hook before the gate, registered with `resolve`'s): a
/// `LazyLock` left half initialised by another thread would hang a child
/// that captures.
pub(crate) fn init_process_facts() {
    LazyLock::force(&FIXED);
}

#[cfg(unix)]
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its whole length, which is passed.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok {
        String::from_utf8_lossy(&buf[..len]).into_owned()
    } else {
        String::new()
    }
}

#[cfg(not(unix))]
fn host_name() -> String {
    String::new()
}

/// Orders routines threads first, each kind by id. Sorts small keys, then
/// moves each routine (hundreds of bytes) at most once, along the cycles of
/// the permutation, instead of at every step of a sort.
fn sort_routines(routines: &mut [Routine]) {
    if routines.is_sorted_by_key(|r| (r.kind, r.id)) {
        return;
    }
    let mut order: Vec<(Kind, u64, usize)> = routines
        .iter()
        .enumerate()
        .map(|(i, r)| (r.kind, r.id, i))
        .collect();
    order.sort_unstable();
    // Position `j` takes the routine now at `order[j].2`; `usize::MAX` marks
    // a position already filled.
    let mut from: Vec<usize> = order.into_iter().map(|(_, _, i)| i).collect();
    for start in 0..from.len() {
        let mut j = start;
        while from[j] != usize::MAX {
            let source = std::mem::replace(&mut from[j], usize::MAX);
            if source == start {
                break;
            }
            routines.swap(j, source);
            j = source;
        }
    }
}

fn read_thread(
    thread: &ThreadStack,
    now: Instant,
    words: &mut Vec<FrameWords>,
    budget: &mut Budget,
    cache: &mut FrameCache,
) -> Option<Routine> {
    let (depth, consistent) = thread.read(words);
    let cost = budget::routine_cost(thread.name.len(), words.iter().map(|w| w.nargs));
    if !budget.take(cost) {
        return None;
    }
    let mut routine = Routine::thread(thread.id, thread.name.to_string());
    routine.created_by = thread.created_by.map(|site| cache.created_by(site));
    routine.age = now.saturating_duration_since(thread.registered);
    routine.tid = Some(thread.tid()).filter(|&tid| tid != 0);
    routine.elided = depth.saturating_sub(MAX_DEPTH);
    routine.torn = !consistent;
    routine.frames = words
        .iter()
        .rev()
        .map(|w| cache.frame(w.meta, w.owner, w.task, &w.args[..w.nargs]))
        .collect();
    Some(routine)
}

/// A task that finished while a snapshot waited for its lock: not shown, and
/// not counted as left out.
struct Finished;

fn read_task(
    task: &TaskShared,
    now_ns: u64,
    wait: &mut Duration,
    chain: &mut SavedChain,
    budget: &mut Budget,
    cache: &mut FrameCache,
) -> Result<Option<Routine>, Finished> {
    let age = crate::clock::between(task.created_ns, now_ns);
    if task.spawn.source == Source::Hooked {
        return read_hooked(task, age, now_ns, budget, cache);
    }
    // The lock is held by the task's own poll (which sets `running_on`
    // before taking it: reported as running, never waited for) or, for the
    // time it takes to copy a chain, by another snapshot: only then is it
    // worth waiting, and never longer than what is left of `wait`.
    let state = task.state.try_lock().or_else(|| {
        if wait.is_zero() || task.running_on.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            return None;
        }
        let start = Instant::now();
        let state = task.state.try_lock_for(*wait);
        *wait = wait.saturating_sub(start.elapsed());
        state
    });
    let Some(state) = state else {
        if !budget.take(budget::routine_cost(0, std::iter::empty())) {
            return Ok(None);
        }
        let running_on = task.running_on.load(std::sync::atomic::Ordering::Relaxed);
        let mut routine = task_routine(task, age, cache);
        routine.state = State::Running;
        routine.running_on = (running_on != 0).then_some(running_on);
        return Ok(Some(routine));
    };
    if !task.is_registered() {
        return Err(Finished);
    }
    let elided = state.copy_chain_into(chain);
    let (polls, last_poll_end_ns) = (state.polls, state.last_poll_end_ns);
    drop(state);
    let cost = budget::routine_cost(0, chain.frames().map(|(_, _, _, args)| args.len()));
    if !budget.take(cost) {
        return Ok(None);
    }
    let mut routine = task_routine(task, age, cache);
    routine.waiting = Some(crate::clock::between(last_poll_end_ns, now_ns));
    routine.polls = Some(polls);
    routine.elided = elided;
    routine.frames = chain
        .frames()
        .rev()
        .zip(chain.await_lines().rev())
        .map(|((meta, owner, task, args), line)| {
            let frame = cache.frame(meta, owner, task, args);
            if line == 0 {
                frame
            } else {
                frame.awaiting_at(line)
            }
        })
        .collect();
    if routine.name.is_empty() {
        // An unnamed spawned task: named after the outermost instrumented
        // function it awaits, as a task rooted there would be.
        if let Some(Cow::Borrowed(function)) = routine.frames.last().map(|f| &f.function) {
            routine.name = Cow::Borrowed(function.rsplit("::").next().unwrap_or(function));
        }
    }
    Ok(Some(routine))
}

/// A task's routine with what every record has: id, name, creator, age
/// and tokio id.
fn task_routine(task: &TaskShared, age: Duration, cache: &mut FrameCache) -> Routine {
    let mut routine = match &task.spawn.label {
        Some(label) => Routine::task(task.id, label.to_string()),
        None => Routine::task(task.id, task.name),
    };
    routine.created_by = task.created_by.map(|site| cache.created_by(site));
    routine.age = age;
    routine.tokio_id = task.spawn.tokio_id();
    routine
}

/// A task known only from tokio's hooks: no chain and no lock, only what
/// the poll hooks store.
fn read_hooked(
    task: &TaskShared,
    age: Duration,
    now_ns: u64,
    budget: &mut Budget,
    cache: &mut FrameCache,
) -> Result<Option<Routine>, Finished> {
    let Some(hooked) = spawned::hook_state(task) else {
        return Err(Finished);
    };
    if !budget.take(budget::routine_cost(0, std::iter::empty())) {
        return Ok(None);
    }
    let mut routine = task_routine(task, age, cache);
    routine.polls = Some(hooked.polls);
    if hooked.running_on != 0 {
        routine.state = State::Running;
        routine.running_on = Some(hooked.running_on);
    } else {
        routine.waiting = Some(crate::clock::between(hooked.last_poll_end_ns, now_ns));
    }
    Ok(Some(routine))
}

/// Shows a task once although several records know it: the tokio hooks'
/// record of a task merges into the record of its spawn wrapper or of an
/// instrumented root it polls (the first one, by id, when it polls
/// several), which keeps its frames and takes the hooks' spawn site (unless
/// a spawn wrapper recorded one), poll count, age and running state.
fn merge_tokio_tasks(routines: &mut Vec<Routine>, tokio_tasks: &mut [(u64, usize, Source)]) {
    if !tokio_tasks
        .iter()
        .any(|&(_, _, source)| source == Source::Hooked)
    {
        return;
    }
    // By tokio id, the hooks' record last, the others by webstack id.
    tokio_tasks.sort_unstable_by_key(|&(id, index, source)| {
        (id, source == Source::Hooked, routines[index].id)
    });
    let mut merged = vec![false; routines.len()];
    for group in tokio_tasks.chunk_by(|a, b| a.0 == b.0) {
        let (Some(&(_, into, into_source)), Some(&(_, from, Source::Hooked))) =
            (group.first(), group.last())
        else {
            continue;
        };
        if into == from {
            continue;
        }
        let hooked = routines[from].clone();
        let target = &mut routines[into];
        if into_source != Source::Spawned && into_source != Source::Blocking {
            target.created_by = hooked.created_by.or(target.created_by);
        }
        target.age = target.age.max(hooked.age);
        target.polls = hooked.polls.or(target.polls);
        if hooked.state == State::Running {
            target.state = State::Running;
            target.running_on = hooked.running_on;
            target.waiting = None;
        }
        merged[from] = true;
    }
    let mut index = 0;
    routines.retain(|_| {
        let keep = !merged[index];
        index += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::meta::FrameMeta;

    fn routine(kind: Kind, id: u64) -> Routine {
        match kind {
            Kind::Thread => Routine::thread(id, format!("r{id}")),
            Kind::Task => Routine::task(id, format!("r{id}")),
        }
    }

    #[test]
    fn a_snapshot_waits_at_most_its_budget_for_locked_task_records() {
        static META: FrameMeta = FrameMeta {
            name: "held",
            function: "snapshot::tests::held",
            task_name: "held",
            file: file!(),
            line: line!(),
            args: &[],
        };
        // Records whose lock is held by something that is not their poll
        // (`running_on` stays 0), as another snapshot's copy would.
        let records: Vec<_> = (0..100)
            .map(|_| crate::record::task::TaskShared::new_record(&META, None))
            .collect();
        let guards: Vec<_> = records.iter().map(|r| r.state.lock()).collect();
        let mut wait = MAX_LOCK_WAIT;
        let (mut chain, mut cache) = (SavedChain::default(), FrameCache::default());
        let mut budget = Budget::new(DEFAULT_MAXMEM);
        let start = Instant::now();
        for record in &records {
            let routine = read_task(record, 0, &mut wait, &mut chain, &mut budget, &mut cache)
                .ok()
                .flatten()
                .unwrap();
            assert_eq!(routine.state, State::Running);
        }
        let elapsed = start.elapsed();
        drop(guards);
        assert!(wait.is_zero());
        // 100 records, 1 ms in all, not 1 ms each (room for a loaded
        // machine's scheduling).
        assert!(elapsed < Duration::from_millis(50), "{elapsed:?}");
    }

    #[test]
    fn routines_sort_threads_first_then_by_id() {
        // Every permutation of a few routines, and a longer scrambled list
        // with several cycles.
        let mut scrambled: Vec<(Kind, u64)> = (0..200u64)
            .map(|i| {
                let id = (i * 37) % 200;
                (
                    if id % 3 == 0 {
                        Kind::Thread
                    } else {
                        Kind::Task
                    },
                    id,
                )
            })
            .collect();
        let mut cases = vec![scrambled.clone()];
        scrambled.truncate(4);
        for a in 0..4 {
            for b in 0..4 {
                let mut case = scrambled.clone();
                case.swap(0, a);
                case.swap(1, b);
                cases.push(case);
            }
        }
        for case in cases {
            let mut routines: Vec<Routine> = case.iter().map(|&(k, id)| routine(k, id)).collect();
            sort_routines(&mut routines);
            let mut expected = case.clone();
            expected.sort();
            let got: Vec<(Kind, u64)> = routines.iter().map(|r| (r.kind, r.id)).collect();
            assert_eq!(got, expected);
            assert!(routines.iter().all(|r| r.name == format!("r{}", r.id)));
        }
    }
}
