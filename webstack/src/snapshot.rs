//! Capturing every registered thread and task into a [`Snapshot`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use crate::bucket::FxBuild;
use crate::record::meta::FrameMeta;
use crate::record::registry::{self, Entry};
use crate::record::slot::FrameWords;
use crate::record::stack::{CreatedBy, ThreadStack, MAX_DEPTH};
use crate::record::task::{SavedChain, TaskShared};
use crate::record::value::Value;

/// Version of the JSON form of a [`Snapshot`]; bumped on any incompatible
/// change.
pub const JSON_VERSION: u32 = 1;

/// Default memory bound of one snapshot: 64 MiB.
pub const DEFAULT_MAXMEM: usize = 64 << 20;

/// Smallest memory bound accepted; lower values are raised to it: 1 MiB.
pub const MIN_MAXMEM: usize = 1 << 20;

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

/// Whether a routine is an OS thread or an async task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An OS thread.
    Thread,
    /// An async task (an instrumented future polled as a root).
    Task,
}

/// What a thread or task is doing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum State {
    /// A task being polled right now; its frames are on its thread's stack.
    Running,
    /// A task waiting to be polled again.
    Idle,
    /// A thread without native information (`augment=0`, or not Linux).
    Alive,
    /// A thread's kernel state and wait channel, e.g. `sleeping in futex_wait`.
    Native(String),
}

impl State {
    /// The text shown for the state.
    pub fn as_str(&self) -> &str {
        match self {
            State::Running => "running",
            State::Idle => "idle",
            State::Alive => "alive",
            State::Native(text) => text,
        }
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One recorded argument of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arg {
    /// Parameter name (or pattern, for destructured parameters).
    pub name: &'static str,
    /// Declared type as written.
    pub ty: &'static str,
    /// The recorded value.
    pub value: Value,
}

impl Serialize for Arg {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Arg", 4)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("type", self.ty)?;
        st.serialize_field("value", &self.value.to_string())?;
        if let Some(address) = self.value.address() {
            st.serialize_field("address", &format!("{address:#x}"))?;
        }
        st.end()
    }
}

/// Arguments kept in a [`Frame`] itself, without an allocation of their own.
const INLINE_ARGS: usize = 2;

/// The recorded arguments of a [`Frame`]: a slice of [`Arg`] (it derefs to
/// `[Arg]`). Most frames have one or two arguments; those are kept inside the
/// frame, so capturing a frame allocates nothing for them.
#[derive(Clone)]
pub struct Args(ArgsRepr);

#[derive(Clone)]
enum ArgsRepr {
    Inline(u8, [Arg; INLINE_ARGS]),
    Heap(Box<[Arg]>),
}

/// Fills unused inline room; never shown.
const NO_ARG: Arg = Arg {
    name: "",
    ty: "",
    value: Value::unit(),
};

impl Args {
    /// No arguments.
    pub const fn new() -> Self {
        Args(ArgsRepr::Inline(0, [NO_ARG; INLINE_ARGS]))
    }

    /// Heap bytes `len` arguments take beside their frame (0 for up to two).
    pub(crate) fn heap_bytes(len: usize) -> usize {
        if len <= INLINE_ARGS {
            0
        } else {
            len * std::mem::size_of::<Arg>()
        }
    }
}

impl Default for Args {
    fn default() -> Self {
        Args::new()
    }
}

impl std::ops::Deref for Args {
    type Target = [Arg];

    fn deref(&self) -> &[Arg] {
        match &self.0 {
            ArgsRepr::Inline(len, args) => &args[..usize::from(*len)],
            ArgsRepr::Heap(args) => args,
        }
    }
}

impl std::ops::DerefMut for Args {
    fn deref_mut(&mut self) -> &mut [Arg] {
        match &mut self.0 {
            ArgsRepr::Inline(len, args) => &mut args[..usize::from(*len)],
            ArgsRepr::Heap(args) => args,
        }
    }
}

impl FromIterator<Arg> for Args {
    fn from_iter<I: IntoIterator<Item = Arg>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let mut inline = [NO_ARG; INLINE_ARGS];
        let mut len = 0;
        for arg in iter.by_ref() {
            if len == INLINE_ARGS {
                let mut heap = Vec::with_capacity(len + 1 + iter.size_hint().0);
                heap.extend_from_slice(&inline);
                heap.push(arg);
                heap.extend(iter);
                return Args(ArgsRepr::Heap(heap.into_boxed_slice()));
            }
            inline[len] = arg;
            len += 1;
        }
        Args(ArgsRepr::Inline(len as u8, inline))
    }
}

impl From<Vec<Arg>> for Args {
    fn from(args: Vec<Arg>) -> Self {
        if args.len() <= INLINE_ARGS {
            args.into_iter().collect()
        } else {
            Args(ArgsRepr::Heap(args.into_boxed_slice()))
        }
    }
}

impl<'a> IntoIterator for &'a Args {
    type Item = &'a Arg;
    type IntoIter = std::slice::Iter<'a, Arg>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Args {
    fn eq(&self, other: &Args) -> bool {
        **self == **other
    }
}

impl Eq for Args {}

impl std::hash::Hash for Args {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// One frame of a routine's stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    /// Function path, `crate::module::function` (methods: `crate::Type::method`).
    pub function: Cow<'static, str>,
    /// Source file.
    pub file: Cow<'static, str>,
    /// Source line (the function's definition for instrumented frames).
    pub line: u32,
    /// Whether the frame comes from `#[webstack::instrument]` (it has
    /// arguments); `false` for native-only frames.
    pub instrumented: bool,
    /// Recorded arguments.
    pub args: Args,
    /// For the root frame of a task being polled on a thread: the task's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<u64>,
    /// Instruction address of a native frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<u64>,
    /// The source line's text, when `augment` is on and the file is readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Where the frame's code comes from (app, dependency, std, runtime,
    /// webstack), so a page can fold what is not the application's.
    pub origin: crate::native::Origin,
}

/// A thread or task in a snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct Routine {
    /// Webstack id (threads and tasks share one id space).
    pub id: u64,
    /// Thread or task.
    pub kind: Kind,
    /// Thread name, or the task's name.
    pub name: Cow<'static, str>,
    /// What it is doing.
    pub state: State,
    /// Where it was created, when known.
    pub created_by: Option<CreatedBy>,
    /// Time since the thread registered or the task was created.
    #[serde(serialize_with = "ser_millis")]
    pub age: Duration,
    /// For an idle task: time since its last poll ended (coarse clock,
    /// milliseconds). `None` for threads and running tasks.
    #[serde(
        serialize_with = "ser_opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub waiting: Option<Duration>,
    /// Polls of a task so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polls: Option<u64>,
    /// For a running task, the id of the thread polling it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_on: Option<u64>,
    /// Kernel thread id of a thread (Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    /// Frames beyond the shadow-stack bound that were not recorded.
    pub elided: usize,
    /// The stack changed while it was read; frames are each valid but may not
    /// all belong to one instant.
    pub torn: bool,
    /// Frames, innermost first.
    pub frames: Vec<Frame>,
}

/// Threads and tasks not captured because [`Options::maxmem`] was reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeftOut {
    /// Threads left out.
    pub threads: usize,
    /// Tasks left out.
    pub tasks: usize,
}

/// Everything webstack knows about the program at one instant.
///
/// Its JSON form (via `serde`) is versioned by [`JSON_VERSION`] and documented
/// in the README.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// Wall-clock time of the capture.
    #[serde(serialize_with = "ser_system_time")]
    pub captured_at: SystemTime,
    /// How long the capture took.
    #[serde(serialize_with = "ser_micros")]
    pub capture_time: Duration,
    /// The effective memory bound.
    pub maxmem: usize,
    /// Bytes the captured routines use (estimated from their sizes).
    pub bytes_used: usize,
    /// Whether native stacks were captured.
    pub augmented: bool,
    /// Routines left out by `maxmem`.
    pub left_out: LeftOut,
    /// Kernel thread id of the thread serving the request (see
    /// [`Options::serving_thread`]), else of the thread that captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_by_tid: Option<i64>,
    /// Why native stacks could not be taken although `augment` was on
    /// (e.g. the application owns the signal); the snapshot then shows shadow
    /// stacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_error: Option<String>,
    /// Threads and tasks, threads first, each kind by id.
    pub routines: Vec<Routine>,
}

fn ser_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn ser_opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

fn ser_micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

fn ser_system_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let millis = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    s.serialize_u64(millis)
}

/// The longest one snapshot waits, over all its tasks, for task locks that
/// no poll holds (another snapshot copying a chain); a task whose lock is
/// still held after that is reported as running.
const MAX_LOCK_WAIT: Duration = Duration::from_millis(1);

/// Accounts for the memory a snapshot's routines take.
struct Budget {
    max: usize,
    used: usize,
}

impl Budget {
    /// What a routine costs: itself, its frames and the arguments that do
    /// not fit in a frame, and what grouping it into a bucket may copy (a
    /// bucket frame and argument per frame and argument when every stack
    /// differs, and a member id and name). So `maxmem` bounds the capture and
    /// its grouping together.
    fn cost(name_len: usize, frames: usize, args_per_frame: impl Iterator<Item = usize>) -> usize {
        use crate::bucket::{BucketArg, BucketFrame};
        let (heap, args) = args_per_frame.fold((0, 0), |(heap, args), n| {
            (heap + Args::heap_bytes(n), args + n)
        });
        std::mem::size_of::<Routine>()
            + name_len
            + frames * std::mem::size_of::<Frame>()
            + heap
            + frames * std::mem::size_of::<BucketFrame>()
            + args * std::mem::size_of::<BucketArg>()
            + std::mem::size_of::<u64>()
            + std::mem::size_of::<Cow<'static, str>>()
    }

    fn take(&mut self, bytes: usize) -> bool {
        if self.used + bytes > self.max {
            return false;
        }
        self.used += bytes;
        true
    }
}

impl Snapshot {
    /// Captures every registered thread and task.
    ///
    /// Never waits for the program: a task being polled is reported as
    /// running (its frames are on the polling thread's stack), and a thread's
    /// stack is read without stopping it. It waits only for a task record
    /// that another snapshot is copying (at most 1 ms per snapshot in all),
    /// and, while another thread is inside `fork()`, starts once the fork
    /// returns.
    pub fn capture(options: &Options) -> Snapshot {
        let _gate = crate::fork::capturing();
        let started = Instant::now();
        let captured_at = SystemTime::now();
        let maxmem = options.effective_maxmem();
        let (threads, tasks) = registry::counts();
        let mut routines: Vec<Routine> =
            Vec::with_capacity((threads + tasks).min(maxmem / std::mem::size_of::<Routine>() / 4));
        let mut budget = Budget {
            max: maxmem,
            used: 0,
        };
        let mut left_out = LeftOut::default();
        let mut words = Vec::with_capacity(MAX_DEPTH);
        let mut chain = SavedChain::default();
        let mut entries = Vec::new();
        let mut cache = FrameCache::default();
        let now = Instant::now();
        let now_ns = crate::clock::now_ns();
        let mut wait = MAX_LOCK_WAIT;
        registry::for_each_shard(&mut entries, |entries| {
            for entry in entries.iter() {
                let captured = match entry {
                    Entry::Thread(thread) => {
                        read_thread(thread, now, &mut words, &mut budget, &mut cache)
                    }
                    Entry::Task(task) => {
                        match read_task(
                            task,
                            now_ns,
                            &mut wait,
                            &mut chain,
                            &mut budget,
                            &mut cache,
                        ) {
                            Ok(routine) => routine,
                            Err(Finished) => continue,
                        }
                    }
                };
                match (captured, entry) {
                    (Some(routine), _) => routines.push(routine),
                    (None, Entry::Thread(_)) => left_out.threads += 1,
                    (None, Entry::Task(_)) => left_out.tasks += 1,
                }
            }
        });
        sort_routines(&mut routines);
        let mut snapshot = Snapshot {
            version: JSON_VERSION,
            captured_at,
            capture_time: Duration::ZERO,
            maxmem,
            bytes_used: budget.used,
            augmented: false,
            left_out,
            captured_by_tid: options
                .serving_tid
                .or_else(crate::record::stack::current_tid),
            native_error: None,
            routines,
        };
        if options.augment {
            crate::native::augment(&mut snapshot);
        }
        snapshot.capture_time = started.elapsed();
        snapshot
    }

    /// Number of captured threads.
    pub fn threads(&self) -> usize {
        self.routines
            .iter()
            .filter(|r| r.kind == Kind::Thread)
            .count()
    }

    /// Number of captured tasks.
    pub fn tasks(&self) -> usize {
        self.routines
            .iter()
            .filter(|r| r.kind == Kind::Task)
            .count()
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
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
    let cost = Budget::cost(
        thread.name.len(),
        words.len(),
        words.iter().map(|w| w.nargs),
    );
    if !budget.take(cost) {
        return None;
    }
    Some(Routine {
        id: thread.id,
        kind: Kind::Thread,
        name: Cow::Owned(thread.name.to_string()),
        state: State::Alive,
        created_by: thread.created_by.map(tidy_creator),
        age: now.saturating_duration_since(thread.registered),
        waiting: None,
        polls: None,
        running_on: None,
        tid: Some(thread.tid()).filter(|&tid| tid != 0),
        elided: depth.saturating_sub(MAX_DEPTH),
        torn: !consistent,
        frames: words
            .iter()
            .rev()
            .map(|w| cache.frame(w.meta, w.owner, w.task, &w.args[..w.nargs]))
            .collect(),
    })
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
        if !budget.take(Budget::cost(0, 0, std::iter::empty())) {
            return Ok(None);
        }
        let running_on = task.running_on.load(std::sync::atomic::Ordering::Relaxed);
        return Ok(Some(Routine {
            id: task.id,
            kind: Kind::Task,
            name: Cow::Borrowed(task.name),
            state: State::Running,
            created_by: task.created_by.map(tidy_creator),
            age,
            waiting: None,
            polls: None,
            running_on: (running_on != 0).then_some(running_on),
            tid: None,
            elided: 0,
            torn: false,
            frames: Vec::new(),
        }));
    };
    if !task.is_registered() {
        return Err(Finished);
    }
    state.chain.copy_into(chain);
    let (elided, polls, last_poll_end_ns) = (state.elided, state.polls, state.last_poll_end_ns);
    drop(state);
    let cost = Budget::cost(
        0,
        chain.counts().0,
        chain.frames().map(|(_, _, _, args)| args.len()),
    );
    if !budget.take(cost) {
        return Ok(None);
    }
    Ok(Some(Routine {
        id: task.id,
        kind: Kind::Task,
        name: Cow::Borrowed(task.name),
        state: State::Idle,
        created_by: task.created_by.map(tidy_creator),
        age,
        waiting: Some(crate::clock::between(last_poll_end_ns, now_ns)),
        polls: Some(polls),
        running_on: None,
        tid: None,
        elided,
        torn: false,
        frames: chain
            .frames()
            .rev()
            .map(|(meta, owner, task, args)| cache.frame(meta, owner, task, args))
            .collect(),
    }))
}

/// What a frame's metadata resolves to, worked out once per function and
/// `Self` type in a snapshot: the displayed path, the tidied file and the
/// origin (classifying a path is most of the cost of a frame otherwise).
pub(crate) struct FrameCache {
    /// The last resolution per hash of `(meta, owner)`, in front of
    /// `resolved`: a program's frames come from few functions, and the same
    /// few repeat in every task.
    recent: Box<[(usize, usize, Resolved); RECENT]>,
    resolved: HashMap<(usize, usize), Resolved, FxBuild>,
}

type Resolved = (&'static str, &'static str, crate::native::Origin);

const RECENT: usize = 64;

impl Default for FrameCache {
    fn default() -> Self {
        FrameCache {
            recent: Box::new([(0, 0, ("", "", crate::native::Origin::Unknown)); RECENT]),
            resolved: HashMap::default(),
        }
    }
}

impl FrameCache {
    fn resolve(&mut self, meta: &'static FrameMeta, owner: usize) -> Resolved {
        let key = (meta.addr(), owner);
        let hash =
            (key.0 as u64 ^ (key.1 as u64).rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let recent = &mut self.recent[(hash >> (u64::BITS - RECENT.trailing_zeros())) as usize];
        if (recent.0, recent.1) == key {
            return recent.2;
        }
        let resolved = *self.resolved.entry(key).or_insert_with(|| {
            let function = function_name(meta, owner);
            (
                function,
                tidy_path(meta.file),
                crate::native::classify(function),
            )
        });
        *recent = (key.0, key.1, resolved);
        resolved
    }

    /// The frame recorded with metadata word `meta`, owner word `owner`, task
    /// word `task` and arguments `values`.
    pub(crate) fn frame(
        &mut self,
        meta: usize,
        owner: usize,
        task: u64,
        values: &[Value],
    ) -> Frame {
        // SAFETY: frame words come from slots (or chains copied from slots)
        // whose meta word is only written from a `&'static FrameMeta`, read
        // after the slot's sequence check.
        let meta = unsafe { FrameMeta::from_addr(meta) };
        let (function, file, origin) = self.resolve(meta, owner);
        Frame {
            function: Cow::Borrowed(function),
            file: Cow::Borrowed(file),
            line: meta.line,
            instrumented: true,
            args: meta
                .args
                .iter()
                .zip(values)
                .map(|(arg, value)| Arg {
                    name: arg.name,
                    ty: arg.ty,
                    value: *value,
                })
                .collect(),
            task: (task != 0).then_some(task),
            address: None,
            source: None,
            origin,
        }
    }
}

fn tidy_creator(created_by: CreatedBy) -> CreatedBy {
    CreatedBy {
        file: tidy_path(created_by.file),
        ..created_by
    }
}

/// `file!()` paths of targets that live outside their package directory read
/// `pkg/../examples/demo.rs`; shown as `examples/demo.rs`. Cleaned once per
/// path and kept.
fn tidy_path(path: &'static str) -> &'static str {
    if !path.contains("/../") {
        return path;
    }
    static PATHS: LazyLock<Mutex<HashMap<usize, &'static str>>> = LazyLock::new(Default::default);
    let mut paths = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    paths.entry(path.as_ptr() as usize).or_insert_with(|| {
        let mut parts: Vec<&str> = Vec::new();
        for part in path.split('/') {
            match part {
                ".." if parts.last().is_some_and(|p| *p != "..") => {
                    parts.pop();
                }
                _ => parts.push(part),
            }
        }
        Box::leak(parts.join("/").into_boxed_str())
    })
}

/// `Type::method` names for methods, built once per (type, method) and kept.
fn function_name(meta: &'static FrameMeta, owner: usize) -> &'static str {
    if owner == 0 {
        return meta.function;
    }
    static NAMES: LazyLock<Mutex<HashMap<(usize, usize), &'static str>>> =
        LazyLock::new(Default::default);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    names.entry((meta.addr(), owner)).or_insert_with(|| {
        // SAFETY: a nonzero owner word is only written from `Owner::addr`,
        // a sealed trait whose one nonzero impl (`OwnerOf<T>`) returns
        // `std::any::type_name::<T> as fn() -> &'static str`.
        let type_name: fn() -> &'static str =
            unsafe { std::mem::transmute::<usize, fn() -> &'static str>(owner) };
        Box::leak(format!("{}::{}", type_name(), meta.name).into_boxed_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routine(kind: Kind, id: u64) -> Routine {
        Routine {
            id,
            kind,
            name: Cow::Owned(format!("r{id}")),
            state: State::Idle,
            created_by: None,
            age: Duration::ZERO,
            waiting: None,
            polls: None,
            running_on: None,
            tid: None,
            elided: 0,
            torn: false,
            frames: Vec::new(),
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
        let mut budget = Budget {
            max: DEFAULT_MAXMEM,
            used: 0,
        };
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
