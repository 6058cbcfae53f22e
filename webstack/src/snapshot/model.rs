//! The snapshot model: what a capture produces and every later stage reads.
//!
//! [`Snapshot`] holds [`Routine`]s (threads and tasks), each with its
//! [`Frame`]s, their [`Arg`]s, where the routine was [`CreatedBy`] and what
//! [`Origin`] each frame's code has, plus the [`Process`] it was taken from.
//! Everything a page shows comes from here, so a snapshot rendered on
//! another machine shows the machine it was taken on.
//!
//! A snapshot keeps its routines compactly (see the `table` module) and
//! hands them out as [`Routine`]s, built as [`Snapshot::routines`] iterates.
//!
//! The types can grow: they are `#[non_exhaustive]`, so build them with
//! their constructors ([`Routine::thread`], [`Routine::task`],
//! [`Frame::new`], [`Arg::new`], [`Snapshot::new`]) and set the public
//! fields.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::table::Table;
use crate::record::value::Value;

/// Version of the JSON form of a [`Snapshot`] (`"schema": "snapshot"`);
/// bumped on any incompatible change. The grouped page has its own,
/// [`render::json::VERSION`](crate::render::json::VERSION).
pub const JSON_VERSION: u32 = 1;

/// Default memory bound of one snapshot: 64 MiB.
pub const DEFAULT_MAXMEM: usize = 64 << 20;

/// Smallest memory bound accepted; lower values are raised to it: 1 MiB.
pub const MIN_MAXMEM: usize = 1 << 20;

/// Where a frame's code comes from, so a page can fold what is not the
/// application's. Decided once, at capture (see [`Origin::of`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Origin {
    /// The application's own code.
    App,
    /// A crate from a registry or git dependency.
    Dependency,
    /// The standard library, the C library and the loader.
    Std,
    /// An async runtime or server framework (tokio, actix, ...).
    Runtime,
    /// webstack itself.
    Webstack,
    /// An address without a symbol.
    #[default]
    Unknown,
}

impl Origin {
    /// Where the code of `function` comes from, judged from its path:
    /// `std::…`, `core::…` and C-library entry points are [`Origin::Std`];
    /// tokio, mio and actix crates are [`Origin::Runtime`]; `webstack::…` is
    /// [`Origin::Webstack`]; crates whose sources were seen in a Cargo
    /// registry during an earlier symbolisation are [`Origin::Dependency`];
    /// other Rust paths are [`Origin::App`].
    pub fn of(function: &str) -> Origin {
        super::resolve::classify(function)
    }

    /// The lowercase name used in JSON and CSS classes: `app`,
    /// `dependency`, `std`, `runtime`, `webstack` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::App => "app",
            Origin::Dependency => "dependency",
            Origin::Std => "std",
            Origin::Runtime => "runtime",
            Origin::Webstack => "webstack",
            Origin::Unknown => "unknown",
        }
    }

    /// Whether a page folds runs of such frames by default: everything but
    /// the application's code and its dependencies.
    pub fn folds(self) -> bool {
        !matches!(self, Origin::App | Origin::Dependency)
    }
}

/// Where a thread or task was created: the instrumented function that was
/// running, and the source location of the spawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct CreatedBy {
    /// Path of the instrumented function that created it.
    pub function: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// Where the creating function's code comes from.
    pub origin: Origin,
}

impl CreatedBy {
    /// A creation site; its origin is classified from `function`.
    pub fn new(function: &'static str, file: &'static str, line: u32) -> Self {
        CreatedBy {
            origin: Origin::of(function),
            function,
            file,
            line,
        }
    }
}

/// The process a snapshot was taken in, captured with it so that the
/// snapshot renders the same anywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Path of the executable (`"?"` when it cannot be read).
    pub exe: String,
    /// Host name (`""` when it cannot be read).
    pub host: String,
    /// Time since [`crate::init`] was first called (or the first snapshot).
    #[serde(serialize_with = "ser_millis", rename = "uptime_ms")]
    pub uptime: Duration,
    /// Version of webstack that took the snapshot.
    pub webstack: Cow<'static, str>,
    /// Operating system and architecture, e.g. `linux x86_64`.
    pub platform: Cow<'static, str>,
    /// The directory the program's own source paths are shown relative to:
    /// the one holding Cargo's `target/` when the executable lives there,
    /// else the working directory at the first snapshot. `None` when
    /// neither is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_root: Option<String>,
}

/// Whether a routine is an OS thread or an async task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An OS thread.
    Thread,
    /// An async task: an instrumented future polled as a root, a task
    /// spawned through `webstack::task` (`tokio` feature), or a task of a
    /// runtime built with `webstack::tokio::hooks` (`tokio_unstable`).
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
#[non_exhaustive]
pub struct Arg {
    /// Parameter name (or pattern, for destructured parameters).
    pub name: &'static str,
    /// Declared type as written.
    pub ty: &'static str,
    /// The recorded value.
    pub value: Value,
}

impl Arg {
    /// An argument `name: ty = value`.
    pub const fn new(name: &'static str, ty: &'static str, value: Value) -> Self {
        Arg { name, ty, value }
    }
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
const NO_ARG: Arg = Arg::new("", "", Value::unit());

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
#[non_exhaustive]
pub struct Frame {
    /// Function path, `crate::module::function` (methods: `crate::Type::method`).
    pub function: Cow<'static, str>,
    /// Source file.
    pub file: Cow<'static, str>,
    /// Source line: for a frame of an idle task, the `.await` it is
    /// suspended at when known ([`Frame::awaiting`]); for other instrumented
    /// frames the function's definition, or the call when native stacks
    /// were merged in; for native frames the call.
    pub line: u32,
    /// Whether [`Frame::line`] is the line of the `.await` this frame of an
    /// idle task is suspended at. Serialised only when `true`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub awaiting: bool,
    /// When [`Frame::line`] shows the `.await` the frame is suspended at
    /// ([`Frame::awaiting`]): the line of the function's definition, which
    /// `line` shows otherwise. `None` for every other frame.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub definition_line: Option<u32>,
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
    /// The source line's text, set by hand. A captured snapshot leaves it
    /// `None` and looks each line up when it is shown (with `augment`, when
    /// the file is readable): see [`Snapshot::source_line`]. The JSON form
    /// of a snapshot shows either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Arc<str>>,
    /// Where the frame's code comes from (app, dependency, std, runtime,
    /// webstack), so a page can fold what is not the application's.
    pub origin: Origin,
}

impl Frame {
    /// A frame of `function` at `file:line` without arguments, address or
    /// source, not instrumented; its origin is classified from `function`.
    pub fn new(
        function: impl Into<Cow<'static, str>>,
        file: impl Into<Cow<'static, str>>,
        line: u32,
    ) -> Self {
        let function = function.into();
        let origin = Origin::of(&function);
        Frame::classified(function, file.into(), line, origin)
    }

    /// [`Frame::new`] with an origin already known.
    pub(crate) fn classified(
        function: Cow<'static, str>,
        file: Cow<'static, str>,
        line: u32,
        origin: Origin,
    ) -> Self {
        Frame {
            origin,
            function,
            file,
            line,
            awaiting: false,
            definition_line: None,
            instrumented: false,
            args: Args::new(),
            task: None,
            address: None,
            source: None,
        }
    }

    /// An instrumented frame as capture reads it, built in place: the
    /// capture of a large snapshot builds hundreds of thousands.
    #[inline]
    pub(crate) fn recorded(
        function: &'static str,
        file: &'static str,
        line: u32,
        origin: Origin,
        args: Args,
        task: Option<u64>,
    ) -> Self {
        Frame {
            function: Cow::Borrowed(function),
            file: Cow::Borrowed(file),
            line,
            awaiting: false,
            definition_line: None,
            instrumented: true,
            args,
            task,
            address: None,
            source: None,
            origin,
        }
    }

    /// The frame of an instrumented call, with its arguments.
    pub fn instrumented(mut self, args: impl Into<Args>) -> Self {
        self.instrumented = true;
        self.args = args.into();
        self
    }

    /// The frame suspended at the `.await` on `line`: sets [`Frame::line`]
    /// and [`Frame::awaiting`], and keeps the line it had (the function's
    /// definition) as [`Frame::definition_line`].
    pub fn awaiting_at(mut self, line: u32) -> Self {
        if !self.awaiting {
            self.definition_line = Some(self.line);
        }
        self.line = line;
        self.awaiting = true;
        self
    }
}

/// The frames of a [`Routine`], innermost first: a slice of [`Frame`] (it
/// derefs to `[Frame]`), shared with the snapshot it came from, so handing
/// a routine out copies no frame. Build it from a `Vec<Frame>`
/// (`vec![…].into()`) or an iterator of frames.
#[derive(Clone, Default)]
pub struct Frames {
    /// A snapshot's frames, or a routine's own.
    all: Arc<Vec<Frame>>,
    start: usize,
    len: usize,
}

impl Frames {
    /// The `len` frames of `all` from `start`.
    pub(crate) fn shared(all: &Arc<Vec<Frame>>, start: usize, len: usize) -> Frames {
        Frames {
            all: all.clone(),
            start,
            len,
        }
    }

    /// The frames as a vector: moved out when they are a routine's own,
    /// else copied.
    pub(crate) fn into_vec(self) -> Vec<Frame> {
        if self.start == 0 && self.len == self.all.len() {
            match Arc::try_unwrap(self.all) {
                Ok(all) => all,
                Err(all) => all.to_vec(),
            }
        } else {
            self.to_vec()
        }
    }
}

impl std::ops::Deref for Frames {
    type Target = [Frame];

    fn deref(&self) -> &[Frame] {
        &self.all[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Frames {
    /// The frames, to edit: copied first if they are shared.
    fn deref_mut(&mut self) -> &mut [Frame] {
        if Arc::get_mut(&mut self.all).is_none() || self.len != self.all.len() {
            *self = Frames::from(self.to_vec());
        }
        let all = Arc::get_mut(&mut self.all).expect("frames of their own");
        all.as_mut_slice()
    }
}

impl From<Vec<Frame>> for Frames {
    fn from(frames: Vec<Frame>) -> Self {
        Frames {
            len: frames.len(),
            all: Arc::new(frames),
            start: 0,
        }
    }
}

impl FromIterator<Frame> for Frames {
    fn from_iter<I: IntoIterator<Item = Frame>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<Frame>>().into()
    }
}

impl<'a> IntoIterator for &'a Frames {
    type Item = &'a Frame;
    type IntoIter = std::slice::Iter<'a, Frame>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Frames {
    fn eq(&self, other: &Frames) -> bool {
        **self == **other
    }
}

impl Eq for Frames {}

impl std::hash::Hash for Frames {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl std::fmt::Debug for Frames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Frames {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A thread or task in a snapshot.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
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
    /// The tokio task id of a task, when known: tasks spawned through
    /// `webstack::task`, tasks seen by tokio's hooks, and instrumented task
    /// roots polled by a tokio task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokio_id: Option<u64>,
    /// Kernel thread id of a thread (Linux).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tid: Option<i64>,
    /// Frames beyond the shadow-stack bound that were not recorded.
    pub elided: usize,
    /// The stack changed while it was read; frames are each valid but may not
    /// all belong to one instant.
    pub torn: bool,
    /// Frames, innermost first.
    pub frames: Frames,
}

impl Routine {
    /// A thread: alive, no frames, no creator, age zero.
    pub fn thread(id: u64, name: impl Into<Cow<'static, str>>) -> Self {
        Routine::new(id, Kind::Thread, name.into(), State::Alive)
    }

    /// A task: idle, no frames, no creator, age zero.
    pub fn task(id: u64, name: impl Into<Cow<'static, str>>) -> Self {
        Routine::new(id, Kind::Task, name.into(), State::Idle)
    }

    fn new(id: u64, kind: Kind, name: Cow<'static, str>, state: State) -> Self {
        Routine {
            id,
            kind,
            name,
            state,
            created_by: None,
            age: Duration::ZERO,
            waiting: None,
            polls: None,
            running_on: None,
            tokio_id: None,
            tid: None,
            elided: 0,
            torn: false,
            frames: Frames::default(),
        }
    }
}

/// Threads and tasks not captured: because [`Options::maxmem`] was
/// reached, or because the table of the tokio hooks had no room for them.
///
/// [`Options::maxmem`]: crate::Options::maxmem
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeftOut {
    /// Threads left out by `maxmem`.
    pub threads: usize,
    /// Tasks left out by `maxmem`.
    pub tasks: usize,
    /// Live tasks of runtimes with webstack's tokio hooks that are not
    /// listed: they found no free slot in the hooks' table of 65,536 tasks
    /// near their tokio id (`webstack::tokio` under `--cfg tokio_unstable`).
    pub untracked_tasks: usize,
}

impl LeftOut {
    /// All routines left out, whatever the cause.
    pub fn total(&self) -> usize {
        self.threads + self.tasks + self.untracked_tasks
    }
}

/// Everything webstack knows about the program at one instant.
///
/// Its JSON form (via `serde`, [`Snapshot::to_json`]) names itself
/// `"schema": "snapshot"`, is versioned by [`JSON_VERSION`] and documented
/// in `docs/json.md`.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// Always `"snapshot"` in JSON: tells this form from the grouped page.
    schema: Schema,
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
    /// Routines left out, by `maxmem` or untracked by the tokio hooks.
    pub left_out: LeftOut,
    /// Kernel thread id of the thread serving the request (see
    /// [`Options::serving_thread`](crate::Options::serving_thread)), else of
    /// the thread that captured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_by_tid: Option<i64>,
    /// Why native stacks could not be taken although `augment` was on
    /// (e.g. the application owns the signal); the snapshot then shows shadow
    /// stacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native_error: Option<String>,
    /// With `augment`, what became of tokio's task traces (feature
    /// `taskdump`, see `webstack::tokio`): how many tasks were traced and in
    /// how long, why none were (a worker stuck in a poll past the
    /// deadline), or how to turn them on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_traces: Option<String>,
    /// The process the snapshot was taken in.
    pub process: Process,
    /// Threads and tasks, threads first, each kind by id: see
    /// [`Snapshot::routines`].
    #[serde(rename = "routines")]
    pub(crate) table: Table,
}

impl Snapshot {
    /// A snapshot of `routines`, taken now in this process
    /// ([`Process::current`]), with `maxmem` at its default: for building
    /// snapshots by hand; [`Snapshot::capture`] takes real ones. Set
    /// [`Snapshot::process`] to render one as another process's.
    pub fn new(routines: Vec<Routine>) -> Snapshot {
        Snapshot {
            schema: Schema,
            version: JSON_VERSION,
            captured_at: SystemTime::now(),
            capture_time: Duration::ZERO,
            maxmem: DEFAULT_MAXMEM,
            bytes_used: 0,
            augmented: false,
            left_out: LeftOut::default(),
            captured_by_tid: None,
            native_error: None,
            task_traces: None,
            process: Process::current(),
            table: Table::of(routines),
        }
    }

    /// Its threads and tasks: threads first, each kind by id, in a captured
    /// snapshot (one built with [`Snapshot::new`] keeps its order).
    ///
    /// A snapshot stores each distinct stack once and each routine as a
    /// small record; the routines are built as they are iterated. A
    /// thread's frames are shared with the snapshot; a task's are copied,
    /// as its root frame names the task ([`Frame::task`]), which the shared
    /// stack leaves out. The grouped page reads the shared stacks.
    pub fn routines(&self) -> Routines<'_> {
        Routines {
            table: &self.table,
            range: 0..self.table.len(),
        }
    }

    /// The source line of `frame` (one of this snapshot's, or any frame):
    /// the one set on it ([`Frame::source`]), else, in a snapshot captured
    /// with `augment`, the text of its line when the file is readable. Each
    /// line is read once a snapshot, and the lines kept count against what
    /// `maxmem` leaves after the capture: past it, `None`.
    pub fn source_line(&self, frame: &Frame) -> Option<Arc<str>> {
        self.table.lines.line(frame)
    }

    /// The routine at `index` in [`Snapshot::routines`].
    pub fn routine(&self, index: usize) -> Option<Routine> {
        (index < self.table.len()).then(|| self.table.routine(index))
    }

    /// Keeps only the routines for which `keep` returns `true`, in their
    /// order: to show part of a snapshot.
    pub fn retain(&mut self, mut keep: impl FnMut(&Routine) -> bool) {
        let kept: Vec<bool> = self.routines().map(|r| keep(&r)).collect();
        let mut kept = kept.into_iter();
        self.table
            .records_mut()
            .retain(|_| kept.next().unwrap_or(false));
    }

    /// Every distinct stack of the snapshot, to edit in place (to redact an
    /// argument's value, say). A stack is shared by every routine that has
    /// it, so an edit shows in all of them.
    pub fn stacks_mut(&mut self) -> impl Iterator<Item = &mut [Frame]> {
        self.table.frames_mut().into_iter()
    }

    /// Number of captured threads.
    pub fn threads(&self) -> usize {
        self.table
            .records()
            .iter()
            .filter(|r| r.kind() == Kind::Thread)
            .count()
    }

    /// Number of captured tasks.
    pub fn tasks(&self) -> usize {
        self.table
            .records()
            .iter()
            .filter(|r| r.kind() == Kind::Task)
            .count()
    }

    /// The snapshot as JSON (see `docs/json.md`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

impl Default for Process {
    /// Nothing known but the version of webstack building it; see
    /// [`Process::current`] for the running process.
    fn default() -> Self {
        Process {
            pid: 0,
            exe: String::new(),
            host: String::new(),
            uptime: Duration::ZERO,
            webstack: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            platform: Cow::Borrowed(""),
            source_root: None,
        }
    }
}

/// The routines of a [`Snapshot`], built as they are iterated: see
/// [`Snapshot::routines`].
#[derive(Clone, Debug)]
pub struct Routines<'a> {
    table: &'a Table,
    range: std::ops::Range<usize>,
}

impl Iterator for Routines<'_> {
    type Item = Routine;

    fn next(&mut self) -> Option<Routine> {
        self.range.next().map(|i| self.table.routine(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }

    fn nth(&mut self, n: usize) -> Option<Routine> {
        self.range.nth(n).map(|i| self.table.routine(i))
    }
}

impl DoubleEndedIterator for Routines<'_> {
    fn next_back(&mut self) -> Option<Routine> {
        self.range.next_back().map(|i| self.table.routine(i))
    }
}

impl ExactSizeIterator for Routines<'_> {}

impl std::iter::FusedIterator for Routines<'_> {}

impl Serialize for Table {
    /// Every routine, each frame with its source line.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((0..self.len()).map(|i| {
            let mut routine = self.routine(i);
            if self.lines.is_on() {
                let lines: Vec<Option<Arc<str>>> =
                    routine.frames.iter().map(|f| self.lines.line(f)).collect();
                if lines
                    .iter()
                    .zip(routine.frames.iter())
                    .any(|(l, f)| *l != f.source)
                {
                    for (frame, line) in routine.frames.iter_mut().zip(lines) {
                        frame.source = line;
                    }
                }
            }
            routine
        }))
    }
}

/// The name of the raw snapshot's JSON schema.
#[derive(Clone, Copy, Debug)]
struct Schema;

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("snapshot")
    }
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
