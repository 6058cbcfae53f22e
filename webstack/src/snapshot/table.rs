//! The compact store of a snapshot's routines.
//!
//! A server holds hundreds of thousands of tasks, nearly all idle at one of
//! a few places. So a snapshot stores each distinct stack once, as a
//! [`Chain`] of [`Frame`]s, and each routine as a fixed [`Record`] of
//! 48 bytes that names its chain, name, creator and state by index. A
//! million idle tasks then fit in the default `maxmem` of 64 MiB, and
//! grouping compares chain indices instead of frames.
//!
//! [`Routine`] is the public, owned form of one record: built on demand
//! ([`Table::routine`]), cheap because its frames are the chain's shared
//! [`Frames`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::lines::SourceLines;
use super::model::{CreatedBy, Frame, Frames, Kind, Routine, State};
use crate::hash::FxBuild;

/// One distinct stack of a snapshot, shared by every routine that has it:
/// a run of the table's frames.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    chunk: u32,
    start: u32,
    len: u32,
    elided: usize,
    own_root: Option<usize>,
}

/// Frames of the first chunk of a table's frames.
const FIRST_CHUNK: usize = 32;

/// The most frames of a chunk (72 KiB, below glibc's mmap threshold, so
/// chunks come from the heap and are reused from one capture to the next),
/// unless one chain has more.
const MAX_CHUNK: usize = 256;

/// What a chain costs beside its frames.
pub(crate) const CHAIN_BYTES: usize = std::mem::size_of::<Span>();

/// A chain as the table hands it out.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chain<'a> {
    /// Frames, innermost first.
    pub(crate) frames: &'a [Frame],
    /// Frames beyond the shadow-stack bound that were not recorded.
    pub(crate) elided: usize,
    /// The frame of a task's chain that is the task's own root: it names
    /// the task by id ([`Frame::task`]), which the chain leaves out so that
    /// tasks can share it; [`Table::routine`] puts it back.
    pub(crate) own_root: Option<usize>,
}

/// No index: no creator.
const NONE: u32 = u32::MAX;

// `Record::bits`: the state in bits 0..3, flags above, the index of a
// native state's text from bit 8.
const STATE_MASK: u32 = 0b111;
const RUNNING: u32 = 0;
const IDLE: u32 = 1;
const ALIVE: u32 = 2;
const NATIVE: u32 = 3;
const TASK: u32 = 1 << 3;
const TORN: u32 = 1 << 4;
const HAS_POLLS: u32 = 1 << 5;
const HAS_EXTRA: u32 = 1 << 6;
const HAS_WHEN: u32 = 1 << 7;
const TEXT_SHIFT: u32 = 8;

/// The most distinct native state texts a table holds; more share the last.
const MAX_TEXTS: usize = (u32::MAX >> TEXT_SHIFT) as usize;

/// One routine of a snapshot: fixed size, everything variable by index.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub(crate) id: u64,
    /// A task's tokio id, or a thread's tid (when `HAS_EXTRA`).
    extra: u64,
    age_ns: u64,
    /// An idle task's waiting time in nanoseconds, or a running task's
    /// thread (when `HAS_WHEN`).
    when: u64,
    /// Polls, when `HAS_POLLS`; from `u32::MAX` on, in the table's
    /// `many_polls` by id.
    polls: u32,
    bits: u32,
    pub(crate) chain: u32,
    /// The index of its name and creator, a pair that repeats.
    who: u32,
}

/// What a record holds, unpacked: [`Table::push`] packs it.
#[derive(Clone, Debug)]
pub(crate) struct Fields {
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) state: StateIndex,
    pub(crate) name: u32,
    pub(crate) creator: Option<u32>,
    pub(crate) age: Duration,
    pub(crate) waiting: Option<Duration>,
    pub(crate) polls: Option<u64>,
    pub(crate) running_on: Option<u64>,
    pub(crate) tokio_id: Option<u64>,
    pub(crate) tid: Option<i64>,
    pub(crate) torn: bool,
    pub(crate) chain: u32,
}

/// A record's state: the native ones by the index of their text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum StateIndex {
    Running,
    Idle,
    Alive,
    Native(u32),
}

impl Record {
    pub(crate) fn kind(&self) -> Kind {
        if self.bits & TASK != 0 {
            Kind::Task
        } else {
            Kind::Thread
        }
    }

    pub(crate) fn state(&self) -> StateIndex {
        match self.bits & STATE_MASK {
            RUNNING => StateIndex::Running,
            IDLE => StateIndex::Idle,
            ALIVE => StateIndex::Alive,
            _ => StateIndex::Native(self.bits >> TEXT_SHIFT),
        }
    }

    pub(crate) fn torn(&self) -> bool {
        self.bits & TORN != 0
    }

    pub(crate) fn age(&self) -> Duration {
        Duration::from_nanos(self.age_ns)
    }

    fn extra(&self) -> Option<u64> {
        (self.bits & HAS_EXTRA != 0).then_some(self.extra)
    }

    pub(crate) fn tokio_id(&self) -> Option<u64> {
        self.extra().filter(|_| self.kind() == Kind::Task)
    }

    pub(crate) fn tid(&self) -> Option<i64> {
        self.extra()
            .filter(|_| self.kind() == Kind::Thread)
            .map(|tid| tid as i64)
    }

    fn when(&self) -> Option<u64> {
        (self.bits & HAS_WHEN != 0).then_some(self.when)
    }

    pub(crate) fn running_on(&self) -> Option<u64> {
        self.when().filter(|_| self.state() == StateIndex::Running)
    }

    pub(crate) fn waiting(&self) -> Option<Duration> {
        self.when()
            .filter(|_| self.state() != StateIndex::Running)
            .map(Duration::from_nanos)
    }

    /// [`Routine::waiting`], else [`Routine::age`]: how long the routine
    /// has been idle, for a bucket's range.
    pub(crate) fn waited(&self) -> Duration {
        self.waiting().unwrap_or_else(|| self.age())
    }

    /// Threads first, each kind by id: ids are below 2^63 (a counter).
    fn sort_key(&self) -> u64 {
        (u64::from(self.bits & TASK != 0) << 63) | self.id
    }
}

/// Saturating nanoseconds of a duration.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The routines of a snapshot: records, and what they name by index.
#[derive(Clone, Default)]
pub(crate) struct Table {
    records: Vec<Record>,
    /// Every chain's frames, one after another in chunks that never grow
    /// past their capacity (a chain's frames are never moved, and there is
    /// no allocation per chain). Shared with the [`Frames`] handed out.
    chunks: Vec<Arc<Vec<Frame>>>,
    chains: Vec<Span>,
    names: Vec<Cow<'static, str>>,
    creators: Vec<CreatedBy>,
    /// `(name, creator)` pairs, and their indices.
    whos: Vec<(u32, u32)>,
    who_index: HashMap<(u32, u32), u32, FxBuild>,
    /// The last pair looked up: records read one after another are often
    /// alike.
    last_who: Option<((u32, u32), u32)>,
    texts: Vec<String>,
    /// Polls of the tasks polled `u32::MAX` times or more, by id.
    many_polls: HashMap<u64, u64, FxBuild>,
    /// [`crate::clock::now_ns`] when the capture read the registry, which
    /// the records' waiting times count to.
    pub(crate) now_ns: u64,
    /// How the frames' source lines are found.
    pub(crate) lines: SourceLines,
}

impl Table {
    /// An empty table with room for `records` records.
    pub(crate) fn with_capacity(records: usize) -> Self {
        Table {
            records: Vec::with_capacity(records),
            ..Table::default()
        }
    }

    /// A table of `routines`, in their order; routines whose frames are the
    /// very same (one `Frames` and its clones) share a chain.
    pub(crate) fn of(routines: Vec<Routine>) -> Self {
        let mut table = Table::with_capacity(routines.len());
        let mut shared: HashMap<(usize, usize, usize), u32, FxBuild> = HashMap::default();
        for routine in routines {
            table.push_routine(routine, &mut shared);
        }
        table
    }

    /// Appends `routine`; its frames join the chain `shared` has for frames
    /// at the same address, else a new one.
    pub(crate) fn push_routine(
        &mut self,
        routine: Routine,
        shared: &mut HashMap<(usize, usize, usize), u32, FxBuild>,
    ) {
        let record = self.record_of(routine, shared);
        self.records.push(record);
    }

    /// The record of `routine`, with what it names added to the table.
    fn record_of(
        &mut self,
        routine: Routine,
        shared: &mut HashMap<(usize, usize, usize), u32, FxBuild>,
    ) -> Record {
        let key = (
            routine.frames.as_ptr() as usize,
            routine.frames.len(),
            routine.elided,
        );
        let chain = match shared.get(&key) {
            Some(&chain) => chain,
            None => {
                let frames = self.frames_for(routine.frames.len());
                let start = frames.len();
                frames.extend(routine.frames.into_vec());
                let chain = self.add_chain(start, routine.elided, None);
                shared.insert(key, chain);
                chain
            }
        };
        let name = self.add_name(routine.name);
        let creator = routine.created_by.map(|c| self.add_creator(c));
        let state = self.add_state(routine.state);
        self.pack(Fields {
            id: routine.id,
            kind: routine.kind,
            state,
            name,
            creator,
            age: routine.age,
            waiting: routine.waiting,
            polls: routine.polls,
            running_on: routine.running_on,
            tokio_id: routine.tokio_id,
            tid: routine.tid,
            torn: routine.torn,
            chain,
        })
    }

    /// Appends a record.
    pub(crate) fn push(&mut self, fields: Fields) {
        let record = self.pack(fields);
        self.records.push(record);
    }

    /// Whether one more record fits without growing the records' buffer.
    pub(crate) fn has_room(&self) -> bool {
        self.records.len() < self.records.capacity()
    }

    /// Grows the records' buffer to room for `more` records beyond those
    /// it holds, exactly.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.records.reserve_exact(more);
    }

    /// The frames a new chain of `len` frames goes at the end of (see
    /// [`Table::add_chain`]): the last chunk if it has room, else a new
    /// one, twice the size of the last (up to [`MAX_CHUNK`] frames). A
    /// chunk a routine handed out still shares is copied first (never
    /// during a capture).
    pub(crate) fn frames_for(&mut self, len: usize) -> &mut Vec<Frame> {
        let room = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= len);
        if !room {
            let size = self
                .chunks
                .last()
                .map_or(FIRST_CHUNK, |c| c.capacity() * 2)
                .min(MAX_CHUNK)
                .max(len);
            self.chunks.push(Arc::new(Vec::with_capacity(size)));
        }
        let last = self.chunks.last_mut().expect("a chunk was just made");
        Arc::make_mut(last)
    }

    /// A chain of the frames from `start` to the end of the last chunk
    /// (see [`Table::frames_for`]).
    pub(crate) fn add_chain(
        &mut self,
        start: usize,
        elided: usize,
        own_root: Option<usize>,
    ) -> u32 {
        let chunk = self.chunks.len().saturating_sub(1);
        let len = self.chunks.get(chunk).map_or(0, |c| c.len()) - start;
        self.chains.push(Span {
            chunk: chunk as u32,
            start: start as u32,
            len: len as u32,
            elided,
            own_root,
        });
        (self.chains.len() - 1) as u32
    }

    pub(crate) fn add_name(&mut self, name: Cow<'static, str>) -> u32 {
        self.names.push(name);
        (self.names.len() - 1) as u32
    }

    pub(crate) fn add_creator(&mut self, creator: CreatedBy) -> u32 {
        self.creators.push(creator);
        (self.creators.len() - 1) as u32
    }

    /// The index of `state`, adding its text if it is a native one.
    pub(crate) fn add_state(&mut self, state: State) -> StateIndex {
        match state {
            State::Running => StateIndex::Running,
            State::Idle => StateIndex::Idle,
            State::Alive => StateIndex::Alive,
            State::Native(text) => {
                if self.texts.len() < MAX_TEXTS {
                    self.texts.push(text);
                }
                StateIndex::Native((self.texts.len() - 1) as u32)
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    pub(crate) fn records(&self) -> &[Record] {
        &self.records
    }

    pub(crate) fn records_mut(&mut self) -> &mut Vec<Record> {
        &mut self.records
    }

    /// Number of chains.
    pub(crate) fn chain_count(&self) -> usize {
        self.chains.len()
    }

    /// Every chain, by index.
    pub(crate) fn chains(&self) -> impl ExactSizeIterator<Item = Chain<'_>> {
        self.chains.iter().map(|span| self.view(span))
    }

    pub(crate) fn chain(&self, index: u32) -> Chain<'_> {
        self.view(&self.chains[index as usize])
    }

    fn view(&self, span: &Span) -> Chain<'_> {
        let start = span.start as usize;
        let frames = match self.chunks.get(span.chunk as usize) {
            Some(chunk) => &chunk[start..start + span.len as usize],
            None => &[],
        };
        Chain {
            frames,
            elided: span.elided,
            own_root: span.own_root,
        }
    }

    /// Every chain's frames, for a pass that adds to them (source lines);
    /// copied first if a routine handed out still shares them.
    pub(crate) fn frames_mut(&mut self) -> Vec<&mut [Frame]> {
        // Chains are added one after another, each at the end of the last
        // chunk: by chunk, their runs are in order and do not overlap.
        let mut out = Vec::with_capacity(self.chains.len());
        let mut spans = self.chains.iter().filter(|s| s.len > 0).peekable();
        for (index, chunk) in self.chunks.iter_mut().enumerate() {
            let mut rest = Arc::make_mut(chunk).as_mut_slice();
            let mut at = 0;
            while let Some(span) = spans.next_if(|s| s.chunk as usize == index) {
                let tail = std::mem::take(&mut rest);
                let (_, tail) = tail.split_at_mut(span.start as usize - at);
                let (chain, tail) = tail.split_at_mut(span.len as usize);
                out.push(chain);
                rest = tail;
                at = (span.start + span.len) as usize;
            }
        }
        out
    }

    pub(crate) fn name(&self, record: &Record) -> &Cow<'static, str> {
        &self.names[self.whos[record.who as usize].0 as usize]
    }

    /// The index of a record's creator, if it has one.
    pub(crate) fn creator_of(&self, record: &Record) -> Option<u32> {
        let creator = self.whos[record.who as usize].1;
        (creator != NONE).then_some(creator)
    }

    /// A task's polls.
    pub(crate) fn polls(&self, record: &Record) -> Option<u64> {
        if record.bits & HAS_POLLS == 0 {
            None
        } else if record.polls == u32::MAX {
            self.many_polls.get(&record.id).copied()
        } else {
            Some(record.polls.into())
        }
    }

    /// The index of the pair `(name, creator)`.
    fn who(&mut self, name: u32, creator: Option<u32>) -> u32 {
        let pair = (name, creator.unwrap_or(NONE));
        if let Some((last, index)) = self.last_who {
            if last == pair {
                return index;
            }
        }
        let index = *self.who_index.entry(pair).or_insert_with(|| {
            self.whos.push(pair);
            (self.whos.len() - 1) as u32
        });
        self.last_who = Some((pair, index));
        index
    }

    pub(crate) fn creator(&self, index: u32) -> CreatedBy {
        self.creators[index as usize]
    }

    pub(crate) fn creators(&self) -> &[CreatedBy] {
        &self.creators
    }

    pub(crate) fn text(&self, index: u32) -> &str {
        &self.texts[index as usize]
    }

    pub(crate) fn texts(&self) -> &[String] {
        &self.texts
    }

    /// The state of a record.
    pub(crate) fn state(&self, record: &Record) -> State {
        match record.state() {
            StateIndex::Running => State::Running,
            StateIndex::Idle => State::Idle,
            StateIndex::Alive => State::Alive,
            StateIndex::Native(text) => State::Native(self.text(text).to_owned()),
        }
    }

    /// The public form of record `index`.
    pub(crate) fn routine(&self, index: usize) -> Routine {
        let record = &self.records[index];
        let span = self.chains[record.chain as usize];
        let chain = self.view(&span);
        let mut routine = match record.kind() {
            Kind::Thread => Routine::thread(record.id, self.name(record).clone()),
            Kind::Task => Routine::task(record.id, self.name(record).clone()),
        };
        routine.state = self.state(record);
        routine.created_by = self.creator_of(record).map(|c| self.creator(c));
        routine.age = record.age();
        routine.waiting = record.waiting();
        routine.polls = self.polls(record);
        routine.running_on = record.running_on();
        routine.tokio_id = record.tokio_id();
        routine.tid = record.tid();
        routine.elided = chain.elided;
        routine.torn = record.torn();
        routine.frames = match chain.own_root {
            Some(root) if root < chain.frames.len() => {
                let mut frames = chain.frames.to_vec();
                frames[root].task = Some(record.id);
                frames.into()
            }
            _ => match self.chunks.get(span.chunk as usize) {
                Some(chunk) => Frames::shared(chunk, span.start as usize, span.len as usize),
                None => Frames::default(),
            },
        };
        routine
    }

    /// The threads (they come first), as routines to edit; they replace
    /// their records with [`Table::put_threads`].
    pub(crate) fn take_threads(&mut self) -> Vec<Routine> {
        (0..self.threads()).map(|i| self.routine(i)).collect()
    }

    /// Replaces the threads' records with `threads`, ordered by id. The
    /// old chains stay (a task may share one, in a snapshot built by hand;
    /// a thread's shadow frames are few), and the tasks move only if
    /// threads were added.
    pub(crate) fn put_threads(&mut self, mut threads: Vec<Routine>) {
        threads.sort_by_key(|r| r.id);
        let mut shared = HashMap::default();
        let records: Vec<Record> = threads
            .into_iter()
            .map(|thread| self.record_of(thread, &mut shared))
            .collect();
        let old = self.threads();
        self.records.splice(..old, records);
    }

    /// Number of threads: the records before the first task.
    pub(crate) fn threads(&self) -> usize {
        self.records.partition_point(|r| r.kind() == Kind::Thread)
    }

    /// Orders records threads first, each kind by id.
    pub(crate) fn sort(&mut self) {
        if !self.records.is_sorted_by_key(Record::sort_key) {
            // In place: a stable sort's scratch would be half the records.
            self.records.sort_unstable_by_key(Record::sort_key);
        }
    }

    /// Sets the chain of record `index`.
    pub(crate) fn set_chain(&mut self, index: usize, chain: u32) {
        self.records[index].chain = chain;
    }

    /// Sets the state of record `index` to running on thread `on`, or
    /// leaves it as it is if `on` is `None`.
    pub(crate) fn set_running(&mut self, index: usize, on: Option<u64>) {
        let record = &mut self.records[index];
        record.bits = (record.bits & !STATE_MASK & !HAS_WHEN) | RUNNING;
        if let Some(on) = on {
            record.when = on;
            record.bits |= HAS_WHEN;
        }
    }

    /// Sets what the tokio hooks know better of a task: its creator, age
    /// and polls.
    pub(crate) fn set_hooked(
        &mut self,
        index: usize,
        creator: Option<u32>,
        age: Duration,
        polls: Option<u64>,
    ) {
        let record = self.records[index];
        let who = match creator {
            Some(creator) => self.who(self.whos[record.who as usize].0, Some(creator)),
            None => record.who,
        };
        let polls = polls.map(|polls| self.small_polls(record.id, polls));
        let record = &mut self.records[index];
        record.who = who;
        record.age_ns = nanos(age);
        if let Some(polls) = polls {
            record.polls = polls;
            record.bits |= HAS_POLLS;
        }
    }

    /// `polls` as a record holds them, keeping large counts aside.
    fn small_polls(&mut self, id: u64, polls: u64) -> u32 {
        match u32::try_from(polls) {
            Ok(polls) if polls != u32::MAX => polls,
            _ => {
                self.many_polls.insert(id, polls);
                u32::MAX
            }
        }
    }

    fn pack(&mut self, f: Fields) -> Record {
        let mut bits = match f.state {
            StateIndex::Running => RUNNING,
            StateIndex::Idle => IDLE,
            StateIndex::Alive => ALIVE,
            StateIndex::Native(text) => NATIVE | (text << TEXT_SHIFT),
        };
        if f.kind == Kind::Task {
            bits |= TASK;
        }
        if f.torn {
            bits |= TORN;
        }
        if f.polls.is_some() {
            bits |= HAS_POLLS;
        }
        let extra = match f.kind {
            Kind::Task => f.tokio_id,
            Kind::Thread => f.tid.map(|tid| tid as u64),
        };
        if extra.is_some() {
            bits |= HAS_EXTRA;
        }
        let when = if f.state == StateIndex::Running {
            f.running_on
        } else {
            f.waiting.map(nanos)
        };
        if when.is_some() {
            bits |= HAS_WHEN;
        }
        Record {
            id: f.id,
            extra: extra.unwrap_or(0),
            age_ns: nanos(f.age),
            when: when.unwrap_or(0),
            polls: f.polls.map_or(0, |polls| self.small_polls(f.id, polls)),
            bits,
            chain: f.chain,
            who: self.who(f.name, f.creator),
        }
    }
}

impl std::fmt::Debug for Table {
    /// The routines, as a snapshot's `Debug` shows them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..self.len()).map(|i| self.routine(i)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 48);
    }

    #[test]
    fn polls_past_u32_are_kept() {
        for polls in [0, 7, u64::from(u32::MAX) - 1, u64::from(u32::MAX), u64::MAX] {
            let mut task = Routine::task(3, "t");
            task.polls = Some(polls);
            assert_eq!(Table::of(vec![task]).routine(0).polls, Some(polls));
        }
    }

    #[test]
    fn a_routine_comes_back_as_it_went_in() {
        let frames: Frames = vec![Frame::new("app::f", "src/app.rs", 3)].into();
        let mut task = Routine::task(7, "worker");
        task.created_by = Some(CreatedBy::new("app::main", "src/main.rs", 9));
        task.age = Duration::from_millis(1500);
        task.waiting = Some(Duration::from_millis(20));
        task.polls = Some(3);
        task.tokio_id = Some(11);
        task.elided = 2;
        task.frames = frames.clone();
        let mut running = Routine::task(8, String::from("owned"));
        running.state = State::Running;
        running.running_on = Some(1);
        running.elided = 2;
        running.frames = frames.clone();
        let mut thread = Routine::thread(1, "main");
        thread.state = State::Native("sleeping in futex_wait".into());
        thread.tid = Some(-5);
        thread.torn = true;
        let routines = vec![thread, task, running];
        let table = Table::of(routines.clone());
        for (i, routine) in routines.iter().enumerate() {
            let back = table.routine(i);
            assert_eq!(format!("{back:?}"), format!("{routine:?}"));
        }
        // The two tasks' frames were one `Arc`, with as many frames elided:
        // one chain.
        assert_eq!(table.records()[1].chain, table.records()[2].chain);
    }
}
