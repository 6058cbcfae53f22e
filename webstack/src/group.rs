//! Grouping the routines of a [`Snapshot`] into [`Buckets`] of similar stacks.
//!
//! Two routines share a bucket only if they have the same kind, state,
//! creator site, number of frames, and per frame the same function, file and
//! line. The [`Similarity`] level then decides how their argument values and
//! flags must compare. Grouping hashes one signature per routine, so it is
//! linear in the number of routines.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::time::Duration;

use crate::hash::{FxBuild, FxHasher};
use crate::record::value::Value;
use crate::snapshot::{Arg, CreatedBy, Frame, Kind, Origin, Routine, Snapshot, State};

/// How alike two routines must be to share a bucket.
///
/// At every level the kind, state, creator site, number of frames and, per
/// frame, the function, file, line and argument names and types must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Similarity {
    /// Every argument value equal (addresses included) and equal routine
    /// flags: elided frame count and torn read.
    ExactFlags,
    /// Every argument value equal (addresses included); flags may differ.
    ExactLines,
    /// Addresses ([`Value::is_pointer`]) may differ; all other values must be
    /// equal, and so must what wraps an address (`Some(..)`, a variant of a
    /// user's type). The default.
    #[default]
    AnyPointer,
    /// Argument values are ignored.
    AnyValue,
}

impl Similarity {
    /// Every level, strictest first.
    pub const ALL: [Similarity; 4] = [
        Similarity::ExactFlags,
        Similarity::ExactLines,
        Similarity::AnyPointer,
        Similarity::AnyValue,
    ];

    /// The lowercase name used in query strings and JSON: `exactflags`,
    /// `exactlines`, `anypointer` or `anyvalue`.
    pub fn as_str(self) -> &'static str {
        match self {
            Similarity::ExactFlags => "exactflags",
            Similarity::ExactLines => "exactlines",
            Similarity::AnyPointer => "anypointer",
            Similarity::AnyValue => "anyvalue",
        }
    }

    fn values_match(self, a: &Value, b: &Value) -> bool {
        match self {
            Similarity::ExactFlags | Similarity::ExactLines => a == b,
            Similarity::AnyPointer => {
                a == b
                    || (a.is_pointer()
                        && b.is_pointer()
                        && a.without_address() == b.without_address())
            }
            Similarity::AnyValue => true,
        }
    }
}

impl fmt::Display for Similarity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Similarity`] from anything but one of its
/// lowercase names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseSimilarityError;

impl fmt::Display for ParseSimilarityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("similarity must be one of: exactflags, exactlines, anypointer, anyvalue")
    }
}

impl std::error::Error for ParseSimilarityError {}

impl FromStr for Similarity {
    type Err = ParseSimilarityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Similarity::ALL
            .into_iter()
            .find(|level| level.as_str() == s)
            .ok_or(ParseSimilarityError)
    }
}

/// An argument value in a bucket: the same in every member, or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Merged {
    /// Every member holds this value.
    Same(Value),
    /// Members hold different values; shown as `*`.
    Differs,
}

/// An argument of a [`BucketFrame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BucketArg {
    /// Parameter name.
    pub name: &'static str,
    /// Declared type as written.
    pub ty: &'static str,
    /// The value, if all members agree.
    pub value: Merged,
}

/// A frame of a [`Bucket`]: the frame every member has at this depth, with
/// its argument values merged.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketFrame {
    /// Function path, `crate::module::function`.
    pub function: Cow<'static, str>,
    /// Source file.
    pub file: Cow<'static, str>,
    /// Source line ([`Frame::line`]).
    pub line: u32,
    /// Whether `line` is the `.await` the frame is suspended at
    /// ([`Frame::awaiting`]).
    pub awaiting: bool,
    /// The line of the function's definition when `line` shows an `.await`
    /// ([`Frame::definition_line`]).
    pub definition_line: Option<u32>,
    /// Whether the frame comes from `#[webstack::instrument]`.
    pub instrumented: bool,
    /// Arguments, values merged across members.
    pub args: Vec<BucketArg>,
    /// The task polled from this frame, if all members agree.
    pub task: Option<u64>,
    /// Instruction address of a native frame, if all members agree.
    pub address: Option<u64>,
    /// The source line's text, taken from the first member.
    pub source: Option<std::sync::Arc<str>>,
    /// Where the frame's code comes from, taken from the first member.
    pub origin: Origin,
}

impl BucketFrame {
    fn from_frame(frame: &Frame) -> Self {
        BucketFrame {
            function: frame.function.clone(),
            file: frame.file.clone(),
            line: frame.line,
            awaiting: frame.awaiting,
            definition_line: frame.definition_line,
            instrumented: frame.instrumented,
            args: frame
                .args
                .iter()
                .map(|arg| BucketArg {
                    name: arg.name,
                    ty: arg.ty,
                    value: Merged::Same(arg.value),
                })
                .collect(),
            task: frame.task,
            address: frame.address,
            source: frame.source.clone(),
            origin: frame.origin,
        }
    }

    fn merge(&mut self, frame: &Frame) {
        for (mine, theirs) in self.args.iter_mut().zip(&frame.args) {
            if let Merged::Same(value) = mine.value {
                if value != theirs.value {
                    mine.value = Merged::Differs;
                }
            }
        }
        if self.task != frame.task {
            self.task = None;
        }
        if self.address != frame.address {
            self.address = None;
        }
    }
}

/// A routine in a [`Bucket`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member {
    /// The routine's id ([`Routine::id`]).
    pub id: u64,
    /// The routine's name ([`Routine::name`]).
    pub name: Cow<'static, str>,
    /// A task's tokio id ([`Routine::tokio_id`]).
    pub tokio_id: Option<u64>,
    /// A task's poll count ([`Routine::polls`]).
    pub polls: Option<u64>,
    /// For a running task, the id of the thread polling it
    /// ([`Routine::running_on`]).
    pub running_on: Option<u64>,
}

impl Member {
    fn of(routine: &Routine) -> Self {
        Member {
            id: routine.id,
            name: routine.name.clone(),
            tokio_id: routine.tokio_id,
            polls: routine.polls,
            running_on: routine.running_on,
        }
    }
}

/// A group of similar routines.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Bucket {
    /// Number of members.
    pub count: usize,
    /// Thread or task.
    pub kind: Kind,
    /// What every member is doing.
    pub state: State,
    /// The members, by ascending id.
    pub members: Vec<Member>,
    /// Where every member was created, when known.
    pub created_by: Option<CreatedBy>,
    /// Frames, innermost first; an argument value that differs across
    /// members is [`Merged::Differs`].
    pub frames: Vec<BucketFrame>,
    /// Shortest and longest idle time of the members: [`Routine::waiting`],
    /// else [`Routine::age`].
    pub waiting: (Duration, Duration),
    /// Largest number of elided frames among the members.
    pub elided: usize,
    /// Whether any member's stack was torn while read.
    pub torn: bool,
    /// Whether the bucket holds the thread that captured the snapshot.
    pub serving: bool,
}

impl Bucket {
    /// The members' ids, ascending.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.members.iter().map(|m| m.id)
    }

    fn new(routine: &Routine, serving: bool) -> Self {
        let waited = waited(routine);
        Bucket {
            count: 1,
            kind: routine.kind,
            state: routine.state.clone(),
            members: vec![Member::of(routine)],
            created_by: routine.created_by,
            frames: routine.frames.iter().map(BucketFrame::from_frame).collect(),
            waiting: (waited, waited),
            elided: routine.elided,
            torn: routine.torn,
            serving,
        }
    }

    fn add(&mut self, routine: &Routine, serving: bool) {
        self.count += 1;
        self.members.push(Member::of(routine));
        for (mine, theirs) in self.frames.iter_mut().zip(&routine.frames) {
            mine.merge(theirs);
        }
        let waited = waited(routine);
        self.waiting.0 = self.waiting.0.min(waited);
        self.waiting.1 = self.waiting.1.max(waited);
        self.elided = self.elided.max(routine.elided);
        self.torn |= routine.torn;
        self.serving |= serving;
    }

    /// Whether `routine` belongs in this bucket at `similarity`, compared with
    /// the bucket's first member `first`.
    fn accepts(first: &Routine, routine: &Routine, similarity: Similarity) -> bool {
        first.kind == routine.kind
            && first.state == routine.state
            && same_creator(first.created_by.as_ref(), routine.created_by.as_ref())
            && (similarity != Similarity::ExactFlags
                || (first.elided == routine.elided && first.torn == routine.torn))
            && first.frames.len() == routine.frames.len()
            && first
                .frames
                .iter()
                .zip(&routine.frames)
                .all(|(a, b)| frames_match(a, b, similarity))
    }

    fn order(&self, other: &Bucket) -> Ordering {
        other
            .serving
            .cmp(&self.serving)
            .then_with(|| other.count.cmp(&self.count))
            .then_with(|| self.kind.cmp(&other.kind))
            .then_with(|| {
                let mine = self.frames.iter().map(|f| (&f.function, &f.file, f.line));
                let theirs = other.frames.iter().map(|f| (&f.function, &f.file, f.line));
                mine.cmp(theirs)
            })
            .then_with(|| self.state.as_str().cmp(other.state.as_str()))
            .then_with(|| {
                let first = |b: &Bucket| b.members.first().map(|m| m.id);
                first(self).cmp(&first(other))
            })
    }
}

fn waited(routine: &Routine) -> Duration {
    routine.waiting.unwrap_or(routine.age)
}

fn frames_match(a: &Frame, b: &Frame, similarity: Similarity) -> bool {
    a.line == b.line
        && a.awaiting == b.awaiting
        && a.instrumented == b.instrumented
        && same_str(&a.function, &b.function)
        && same_str(&a.file, &b.file)
        && a.args.len() == b.args.len()
        && a.args
            .iter()
            .zip(b.args.iter())
            .all(|(x, y)| args_match(x, y, similarity))
}

fn args_match(a: &Arg, b: &Arg, similarity: Similarity) -> bool {
    same_str(a.name, b.name) && same_str(a.ty, b.ty) && similarity.values_match(&a.value, &b.value)
}

/// The routines of a snapshot grouped into buckets, and the labels of the
/// addresses seen more than once.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Buckets {
    /// The level used to group.
    pub similarity: Similarity,
    /// Buckets, in display order (see [`Buckets::aggregate`]).
    pub buckets: Vec<Bucket>,
    labels: HashMap<u64, usize, FxBuild>,
}

impl Buckets {
    /// Groups the routines of `snapshot` at `similarity`.
    ///
    /// Runs in time linear in the number of routines and frames: each routine
    /// is hashed once into a map of bucket signatures.
    ///
    /// Buckets are ordered: the bucket holding the thread whose tid is
    /// [`Snapshot::captured_by_tid`] (the thread serving the request) first,
    /// then larger buckets first, then threads before tasks, then by the
    /// frames' functions, files and lines (innermost first), then by state,
    /// then by lowest member id.
    ///
    /// An address (a [`Value::is_pointer`] argument) seen more than once in
    /// the snapshot gets a label, numbered from 1 in bucket order; see
    /// [`Buckets::label`].
    pub fn aggregate(snapshot: &Snapshot, similarity: Similarity) -> Buckets {
        let routines = &snapshot.routines;
        let mut buckets: Vec<Bucket> = Vec::new();
        // The first member of each bucket, to compare candidates against.
        let mut firsts: Vec<&Routine> = Vec::new();
        let mut by_signature: HashMap<u64, Vec<usize>, FxBuild> = HashMap::default();
        for (i, routine) in routines.iter().enumerate() {
            if let Some(ahead) = routines.get(i + PREFETCH_AHEAD) {
                prefetch_frames(ahead);
            }
            let serving = routine.kind == Kind::Thread
                && routine.tid.is_some()
                && routine.tid == snapshot.captured_by_tid;
            let candidates = by_signature
                .entry(signature(routine, similarity))
                .or_default();
            match candidates
                .iter()
                .find(|&&i| Bucket::accepts(firsts[i], routine, similarity))
            {
                Some(&i) => buckets[i].add(routine, serving),
                None => {
                    candidates.push(buckets.len());
                    buckets.push(Bucket::new(routine, serving));
                    firsts.push(routine);
                }
            }
        }
        drop(by_signature);
        for bucket in &mut buckets {
            // Captured snapshots list routines by id already.
            if !bucket.members.is_sorted_by_key(|m| m.id) {
                bucket.members.sort_unstable_by_key(|m| m.id);
            }
        }
        buckets.sort_by(Bucket::order);

        // Only an address a bucket shows can get a label: count how often
        // those appear, rather than every address of the snapshot.
        let mut seen: HashMap<u64, u32, FxBuild> = HashMap::default();
        for address in shown_addresses(&buckets) {
            seen.insert(address, 0);
        }
        if !seen.is_empty() {
            for arg in routines
                .iter()
                .flat_map(|r| &r.frames)
                .flat_map(|f| &f.args)
            {
                if let Some(count) = arg.value.address().and_then(|a| seen.get_mut(&a)) {
                    *count += 1;
                }
            }
        }
        let mut labels: HashMap<u64, usize, FxBuild> = HashMap::default();
        for address in shown_addresses(&buckets) {
            if seen.get(&address).is_some_and(|&n| n > 1) {
                let next = labels.len() + 1;
                labels.entry(address).or_insert(next);
            }
        }
        Buckets {
            similarity,
            buckets,
            labels,
        }
    }

    /// The label number `n` (shown `#n`) of an address seen more than once in
    /// the snapshot and shown in at least one bucket.
    pub fn label(&self, address: u64) -> Option<usize> {
        self.labels.get(&address).copied()
    }

    /// Number of labelled addresses.
    pub fn labels(&self) -> usize {
        self.labels.len()
    }
}

/// How many routines ahead of the one grouped [`Buckets::aggregate`]
/// prefetches frames.
const PREFETCH_AHEAD: usize = 4;

/// Starts loading the first cache lines of a routine's frames, which
/// grouping reads next: each routine's frames are an allocation of their
/// own, so the hardware's stride prefetcher cannot see them coming.
#[inline]
fn prefetch_frames(routine: &Routine) {
    let frames = routine.frames.as_ptr().cast::<u8>();
    let bytes = std::mem::size_of_val(routine.frames.as_slice()).min(PREFETCH_BYTES);
    crate::prefetch::bytes(frames, bytes);
}

/// How much of a routine's frames [`prefetch_frames`] asks for.
const PREFETCH_BYTES: usize = 1024;

/// The addresses buckets show (values every member agrees on), in bucket
/// order.
fn shown_addresses(buckets: &[Bucket]) -> impl Iterator<Item = u64> + '_ {
    buckets
        .iter()
        .flat_map(|b| &b.frames)
        .flat_map(|f| &f.args)
        .filter_map(|arg| match arg.value {
            Merged::Same(value) => value.address(),
            Merged::Differs => None,
        })
}

/// Hashes part of what [`Bucket::accepts`] compares, so that routines that
/// may share a bucket always have the same signature. Strings are hashed by
/// their length only: stacks that differ only in names of equal length (rare)
/// share a signature and are told apart by `accepts`, which is cheaper than
/// hashing every name of every frame of every routine.
fn signature(routine: &Routine, similarity: Similarity) -> u64 {
    let mut h = FxHasher::default();
    h.add(routine.kind as u64);
    match &routine.state {
        State::Native(text) => h.add(4 + text.len() as u64),
        state => h.add(state_code(state)),
    }
    match &routine.created_by {
        Some(c) => {
            h.add(c.function.len() as u64);
            h.add(c.file.len() as u64);
            h.add(u64::from(c.line));
        }
        None => h.add(u64::MAX),
    }
    if similarity == Similarity::ExactFlags {
        h.add(routine.elided as u64);
        h.add(u64::from(routine.torn));
    }
    h.add(routine.frames.len() as u64);
    for frame in &routine.frames {
        h.add(frame.function.len() as u64);
        h.add(frame.file.len() as u64);
        h.add(
            (u64::from(frame.line) << 2)
                | (u64::from(frame.awaiting) << 1)
                | u64::from(frame.instrumented),
        );
        h.add(frame.args.len() as u64);
        for arg in frame.args.iter() {
            h.add(arg.name.len() as u64);
            match similarity {
                Similarity::ExactFlags | Similarity::ExactLines => h.add(value_hash(&arg.value)),
                Similarity::AnyPointer if arg.value.is_pointer() => {
                    h.add(value_hash(&arg.value.without_address()))
                }
                Similarity::AnyPointer => h.add(value_hash(&arg.value)),
                Similarity::AnyValue => {}
            }
        }
    }
    h.finish()
}

/// A value's hash for [`signature`]: its words mixed independently of one
/// another, so that the multiplications overlap instead of waiting for each
/// other as they do in [`FxHasher`].
fn value_hash(value: &Value) -> u64 {
    let mut h = WordSum::default();
    value.hash(&mut h);
    h.finish()
}

/// Sums each written word times an odd constant that depends on its
/// position.
#[derive(Default)]
struct WordSum {
    sum: u64,
    position: u64,
}

impl Hasher for WordSum {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.position = self.position.wrapping_add(0x9e37_79b9_7f4a_7c16);
        self.sum = self
            .sum
            .wrapping_add((word ^ self.position).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.sum
    }
}

fn state_code(state: &State) -> u64 {
    match state {
        State::Running => 0,
        State::Idle => 1,
        State::Alive => 2,
        State::Native(_) => 3,
    }
}

fn same_creator(a: Option<&CreatedBy>, b: Option<&CreatedBy>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.line == b.line && same_str(a.function, b.function) && same_str(a.file, b.file)
        }
        (None, None) => true,
        _ => false,
    }
}

/// String equality that skips comparing the bytes of the very same string,
/// the common case for names of instrumented frames.
fn same_str(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::budget;

    /// The snapshot's budget counts room for what grouping copies; these
    /// types must fit in it.
    #[test]
    fn group_types_fit_the_room_the_budget_counts() {
        assert!(std::mem::size_of::<BucketFrame>() <= budget::GROUP_FRAME_BYTES);
        assert!(std::mem::size_of::<BucketArg>() <= budget::GROUP_ARG_BYTES);
        assert!(std::mem::size_of::<Member>() <= budget::GROUP_MEMBER_BYTES);
    }
}
