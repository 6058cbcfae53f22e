//! Reading the registry into the [model](super::model), without waiting on
//! the code that runs.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use super::budget::{self, Budget};
use super::intern::Interner;
use super::model::{Kind, LeftOut, Process, Snapshot, DEFAULT_MAXMEM, MIN_MAXMEM};
use super::table::{Fields, StateIndex, Table};
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
    let mut read = Reader {
        table: Table::with_capacity(0),
        expected: threads + tasks,
        interner: Interner::default(),
        budget: Budget::new(maxmem),
        words: Vec::with_capacity(MAX_DEPTH),
        chain: SavedChain::default(),
        wait: MAX_LOCK_WAIT,
        now: Instant::now(),
        now_ns: crate::clock::now_ns(),
        tokio_tasks: Vec::new(),
    };
    read.table.now_ns = read.now_ns;
    let mut left_out = LeftOut {
        untracked_tasks: spawned::hooks_untracked(),
        ..LeftOut::default()
    };
    let mut entries = Vec::new();
    registry::for_each_shard(&mut entries, |entries| {
        for (i, entry) in entries.iter().enumerate() {
            if let Some(Entry::Task(ahead)) = entries.get(i + PREFETCH_AHEAD) {
                prefetch_record(ahead);
            }
            match entry {
                Entry::Thread(thread) => {
                    if !read.thread(thread) {
                        left_out.threads += 1;
                    }
                }
                Entry::Task(task) => match read.task(task) {
                    Ok(true) => {}
                    Ok(false) => left_out.tasks += 1,
                    Err(Finished) => {}
                },
            }
        }
    });
    let Reader {
        mut table,
        mut budget,
        mut tokio_tasks,
        ..
    } = read;
    merge_tokio_tasks(&mut table, &mut tokio_tasks);
    budget.give(tokio_tasks.len() * std::mem::size_of::<TokioTask>());
    drop(tokio_tasks);
    table.sort();
    let mut snapshot = Snapshot::new(Vec::new());
    snapshot.table = table;
    snapshot.captured_at = captured_at;
    snapshot.maxmem = maxmem;
    snapshot.bytes_used = budget.used();
    snapshot.left_out = left_out;
    snapshot.captured_by_tid = options
        .serving_tid
        .or_else(crate::record::stack::current_tid);
    snapshot
}

/// Records beyond those registered at the start that the buffer has room
/// for: routines registered during the capture, and threads the native
/// pass adds.
const SLACK: usize = 64;

/// The fewest records the buffer grows by.
const MIN_RECORDS: usize = 256;

/// `(tokio id, index in the table, source)` of a task with a tokio id.
type TokioTask = (u64, u32, Source);

/// What [`shadow`] carries from one routine to the next.
struct Reader {
    table: Table,
    /// Routines registered when the capture began.
    expected: usize,
    interner: Interner,
    budget: Budget,
    /// A thread's frames, read.
    words: Vec<FrameWords>,
    /// A task's chain, copied.
    chain: SavedChain,
    /// What is left of [`MAX_LOCK_WAIT`].
    wait: Duration,
    now: Instant,
    now_ns: u64,
    tokio_tasks: Vec<TokioTask>,
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

/// A task that finished while a snapshot waited for its lock: not shown, and
/// not counted as left out.
struct Finished;

impl Reader {
    /// Takes room for one more record in the budget and the table.
    fn admit(&mut self, name_len: usize) -> bool {
        if !self.table.has_room() && !self.grow() {
            return false;
        }
        self.budget.take(budget::ROUTINE_BYTES + name_len)
    }

    /// Grows the records' buffer, charging the budget for its room: at
    /// once to every routine registered (and a few more), when the budget
    /// holds all their records, so that a large buffer is never copied;
    /// else by doubling, as far as the budget allows.
    fn grow(&mut self) -> bool {
        let len = self.table.len();
        let rest = self.expected.saturating_sub(len) + SLACK;
        let all = rest * (budget::RECORD_ROOM + budget::ROUTINE_BYTES);
        let more = if all <= self.budget.room() {
            rest
        } else {
            len.max(MIN_RECORDS)
        };
        let more = more.min(self.budget.room() / budget::RECORD_ROOM);
        if more == 0 || !self.budget.take(more * budget::RECORD_ROOM) {
            return false;
        }
        self.table.reserve(more);
        true
    }

    /// Reads a thread; `false` when `maxmem` left it out.
    fn thread(&mut self, thread: &ThreadStack) -> bool {
        let (depth, consistent) = thread.read(&mut self.words);
        if !self.admit(thread.name.len()) {
            return false;
        }
        let elided = depth.saturating_sub(MAX_DEPTH);
        let Some(chain) =
            self.interner
                .thread_chain(&self.words, elided, &mut self.table, &mut self.budget)
        else {
            self.budget.give(budget::ROUTINE_BYTES + thread.name.len());
            return false;
        };
        let name = self.table.add_name(Cow::Owned(thread.name.to_string()));
        let creator = thread
            .created_by
            .map(|site| self.interner.site(site, &mut self.table));
        self.table.push(Fields {
            id: thread.id,
            kind: Kind::Thread,
            state: StateIndex::Alive,
            name,
            creator,
            age: self.now.saturating_duration_since(thread.registered),
            waiting: None,
            polls: None,
            running_on: None,
            tokio_id: None,
            tid: Some(thread.tid()).filter(|&tid| tid != 0),
            torn: !consistent,
            chain,
        });
        true
    }

    /// Reads a task; `Ok(false)` when `maxmem` left it out.
    fn task(&mut self, task: &TaskShared) -> Result<bool, Finished> {
        let age = crate::clock::between(task.created_ns, self.now_ns);
        if task.spawn.source == Source::Hooked {
            return self.hooked(task, age);
        }
        // The lock is held by the task's own poll (which sets `running_on`
        // before taking it: reported as running, never waited for) or, for
        // the time it takes to copy a chain, by another snapshot: only then
        // is it worth waiting, and never longer than what is left of `wait`.
        let state = task.state.try_lock().or_else(|| {
            if self.wait.is_zero() || task.running_on.load(Ordering::Relaxed) != 0 {
                return None;
            }
            let start = Instant::now();
            let state = task.state.try_lock_for(self.wait);
            self.wait = self.wait.saturating_sub(start.elapsed());
            state
        });
        let Some(state) = state else {
            let running_on = task.running_on.load(Ordering::Relaxed);
            return Ok(self.push_task(task, age, None, |fields| {
                fields.state = StateIndex::Running;
                fields.running_on = (running_on != 0).then_some(running_on);
            }));
        };
        if !task.is_registered() {
            return Err(Finished);
        }
        let elided = state.copy_chain_into(&mut self.chain);
        let (polls, last_poll_end_ns) = (state.polls, state.last_poll_end_ns);
        drop(state);
        let waiting = crate::clock::between(last_poll_end_ns, self.now_ns);
        Ok(self.push_task(task, age, Some(elided), |fields| {
            fields.waiting = Some(waiting);
            fields.polls = Some(polls);
        }))
    }

    /// A task known only from tokio's hooks: no chain and no lock, only
    /// what the poll hooks store.
    fn hooked(&mut self, task: &TaskShared, age: Duration) -> Result<bool, Finished> {
        let Some(hooked) = spawned::hook_state(task) else {
            return Err(Finished);
        };
        let now_ns = self.now_ns;
        Ok(self.push_task(task, age, None, |fields| {
            fields.polls = Some(hooked.polls);
            if hooked.running_on != 0 {
                fields.state = StateIndex::Running;
                fields.running_on = Some(hooked.running_on);
            } else {
                fields.waiting = Some(crate::clock::between(hooked.last_poll_end_ns, now_ns));
            }
        }))
    }

    /// Adds a task's record with what every record has (id, name, creator,
    /// age, tokio id) and its chain: the one copied into `self.chain`, with
    /// `elided` frames left out, or none. `set` fills in the rest.
    fn push_task(
        &mut self,
        task: &TaskShared,
        age: Duration,
        elided: Option<usize>,
        set: impl FnOnce(&mut Fields),
    ) -> bool {
        let label = task.spawn.label.as_deref().map_or(0, str::len);
        if !self.admit(label) {
            return false;
        }
        if elided.is_none() {
            self.chain.clear();
        }
        let Some(chain) = self.interner.task_chain(
            &self.chain,
            task.id,
            elided.unwrap_or(0),
            &mut self.table,
            &mut self.budget,
        ) else {
            self.budget.give(budget::ROUTINE_BYTES + label);
            return false;
        };
        let name = match &task.spawn.label {
            Some(label) => Cow::Owned(label.to_string()),
            None if !task.name.is_empty() => Cow::Borrowed(task.name),
            // An unnamed spawned task: named after the outermost
            // instrumented function it awaits, as a task rooted there
            // would be.
            None => match self.table.chain(chain).frames.last().map(|f| &f.function) {
                Some(Cow::Borrowed(function)) => {
                    Cow::Borrowed(function.rsplit("::").next().unwrap_or(function))
                }
                _ => Cow::Borrowed(""),
            },
        };
        let name = self.interner.name(name, &mut self.table);
        let creator = task
            .created_by
            .map(|site| self.interner.site(site, &mut self.table));
        let tokio_id = task.spawn.tokio_id();
        let mut fields = Fields {
            id: task.id,
            kind: Kind::Task,
            state: StateIndex::Idle,
            name,
            creator,
            age,
            waiting: None,
            polls: None,
            running_on: None,
            tokio_id,
            tid: None,
            torn: false,
            chain,
        };
        set(&mut fields);
        if let Some(id) = tokio_id {
            // Given back once the records are merged.
            if self.budget.take(std::mem::size_of::<TokioTask>()) {
                self.tokio_tasks
                    .push((id, self.table.len() as u32, task.spawn.source));
            }
        }
        self.table.push(fields);
        true
    }
}

/// Shows a task once although several records know it: the tokio hooks'
/// record of a task merges into the record of its spawn wrapper or of an
/// instrumented root it polls (the first one, by id, when it polls
/// several), which keeps its frames and takes the hooks' spawn site (unless
/// a spawn wrapper recorded one), poll count, age and running state.
fn merge_tokio_tasks(table: &mut Table, tokio_tasks: &mut [TokioTask]) {
    if !tokio_tasks
        .iter()
        .any(|&(_, _, source)| source == Source::Hooked)
    {
        return;
    }
    // By tokio id, the hooks' record last, the others by webstack id.
    tokio_tasks.sort_unstable_by_key(|&(id, index, source)| {
        (
            id,
            source == Source::Hooked,
            table.records()[index as usize].id,
        )
    });
    let mut merged = false;
    for group in tokio_tasks.chunk_by(|a, b| a.0 == b.0) {
        let (Some(&(_, into, into_source)), Some(&(_, from, Source::Hooked))) =
            (group.first(), group.last())
        else {
            continue;
        };
        if into == from {
            continue;
        }
        let hooked = table.records()[from as usize];
        let target = table.records()[into as usize];
        let creator = if into_source != Source::Spawned && into_source != Source::Blocking {
            table.creator_of(&hooked)
        } else {
            None
        };
        let into = into as usize;
        table.set_hooked(
            into,
            creator,
            target.age().max(hooked.age()),
            table.polls(&hooked),
        );
        if hooked.state() == StateIndex::Running {
            table.set_running(into, hooked.running_on());
        }
        table.records_mut()[from as usize].chain = MERGED;
        merged = true;
    }
    if merged {
        table.records_mut().retain(|r| r.chain != MERGED);
    }
}

/// The chain of a record merged into another, about to be removed.
const MERGED: u32 = u32::MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::meta::FrameMeta;

    fn reader() -> Reader {
        Reader {
            table: Table::with_capacity(0),
            expected: 0,
            interner: Interner::default(),
            budget: Budget::new(DEFAULT_MAXMEM),
            words: Vec::new(),
            chain: SavedChain::default(),
            wait: MAX_LOCK_WAIT,
            now: Instant::now(),
            now_ns: 0,
            tokio_tasks: Vec::new(),
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
        let mut read = reader();
        let start = Instant::now();
        for record in &records {
            assert!(matches!(read.task(record), Ok(true)));
        }
        let elapsed = start.elapsed();
        drop(guards);
        assert!(read.wait.is_zero());
        assert!(read
            .table
            .records()
            .iter()
            .all(|r| r.state() == StateIndex::Running));
        // 100 records, 1 ms in all, not 1 ms each (room for a loaded
        // machine's scheduling).
        assert!(elapsed < Duration::from_millis(50), "{elapsed:?}");
    }
}
