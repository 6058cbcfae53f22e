//! Grouping the routines of a [`Snapshot`] into [`Buckets`] of similar stacks.
//!
//! Two routines share a bucket only if they have the same kind, state,
//! creator site, number of frames, and per frame the same function, file and
//! line. The [`Similarity`] level then decides how their argument values and
//! flags must compare. A snapshot stores each distinct stack once, so
//! grouping hashes one signature per distinct stack and one small key per
//! routine: linear in the number of routines.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::time::Duration;

use crate::hash::{FxBuild, FxHasher};
use crate::record::value::Value;
use crate::snapshot::lines::SourceLines;
use crate::snapshot::table::{Chain, StateIndex, Table};
use crate::snapshot::{Arg, CreatedBy, Frame, Kind, Origin, Snapshot, State};

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
    fn from_frame(frame: &Frame, lines: &SourceLines) -> Self {
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
            source: lines.line(frame),
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Member<'s> {
    /// The routine's id ([`Routine::id`](crate::Routine::id)).
    pub id: u64,
    /// The routine's name ([`Routine::name`](crate::Routine::name)).
    pub name: &'s str,
    /// A task's tokio id ([`Routine::tokio_id`](crate::Routine::tokio_id)).
    pub tokio_id: Option<u64>,
    /// A task's poll count ([`Routine::polls`](crate::Routine::polls)).
    pub polls: Option<u64>,
    /// For a running task, the id of the thread polling it
    /// ([`Routine::running_on`](crate::Routine::running_on)).
    pub running_on: Option<u64>,
}

/// The members of a [`Bucket`], by ascending id: kept as indices into the
/// snapshot (4 bytes each), and handed out as [`Member`]s as they are
/// iterated.
#[derive(Clone)]
pub struct Members<'s> {
    table: &'s Table,
    indices: Vec<u32>,
}

impl<'s> Members<'s> {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether there is none (never, in a bucket).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The members, by ascending id.
    pub fn iter(
        &self,
    ) -> impl ExactSizeIterator<Item = Member<'s>> + DoubleEndedIterator + Clone + '_ {
        self.indices.iter().map(|&i| self.member(i))
    }

    /// The first member (lowest id).
    pub fn first(&self) -> Option<Member<'s>> {
        self.indices.first().map(|&i| self.member(i))
    }

    /// The members' ids, ascending.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.indices
            .iter()
            .map(|&i| self.table.records()[i as usize].id)
    }

    fn member(&self, index: u32) -> Member<'s> {
        let table: &'s Table = self.table;
        let record = &table.records()[index as usize];
        Member {
            id: record.id,
            name: table.name(record),
            tokio_id: record.tokio_id(),
            polls: table.polls(record),
            running_on: record.running_on(),
        }
    }
}

impl<'a, 's> IntoIterator for &'a Members<'s> {
    type Item = Member<'s>;
    type IntoIter = Box<dyn Iterator<Item = Member<'s>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl fmt::Debug for Members<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A group of similar routines.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Bucket<'s> {
    /// Number of members.
    pub count: usize,
    /// Thread or task.
    pub kind: Kind,
    /// What every member is doing.
    pub state: State,
    /// The members, by ascending id.
    pub members: Members<'s>,
    /// Where every member was created, when known.
    pub created_by: Option<CreatedBy>,
    /// Frames, innermost first; an argument value that differs across
    /// members is [`Merged::Differs`].
    pub frames: Vec<BucketFrame>,
    /// Shortest and longest idle time of the members: [`Routine::waiting`](crate::Routine::waiting),
    /// else [`Routine::age`](crate::Routine::age).
    pub waiting: (Duration, Duration),
    /// Largest number of elided frames among the members.
    pub elided: usize,
    /// Whether any member's stack was torn while read.
    pub torn: bool,
    /// Whether the bucket holds the thread that captured the snapshot.
    pub serving: bool,
}

/// The frames of chains alike at a similarity, merged: the frames of a
/// bucket.
#[derive(Clone, Default)]
struct Merge {
    frames: Vec<BucketFrame>,
    elided: usize,
    /// The first chain's own task root (see `Chain::own_root`).
    own_root: Option<usize>,
    /// Whether a chain was added.
    started: bool,
}

impl Merge {
    fn add(&mut self, chain: Chain<'_>, lines: &SourceLines) {
        if !self.started {
            self.frames = chain
                .frames
                .iter()
                .map(|frame| BucketFrame::from_frame(frame, lines))
                .collect();
            self.elided = chain.elided;
            self.own_root = chain.own_root;
            self.started = true;
            return;
        }
        for (mine, theirs) in self.frames.iter_mut().zip(chain.frames) {
            mine.merge(theirs);
        }
        self.elided = self.elided.max(chain.elided);
    }
}

impl<'s> Bucket<'s> {
    /// The members' ids, ascending.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.members.ids()
    }

    /// A bucket of the routine at `index`; its frames are set once every
    /// routine has its bucket (see [`Buckets::aggregate`]).
    fn new(table: &'s Table, index: u32, serving: bool) -> Self {
        let record = &table.records()[index as usize];
        let waited = record.waited();
        Bucket {
            count: 1,
            kind: record.kind(),
            state: table.state(record),
            members: Members {
                table,
                indices: vec![index],
            },
            created_by: table.creator_of(record).map(|c| table.creator(c)),
            frames: Vec::new(),
            waiting: (waited, waited),
            elided: 0,
            torn: record.torn(),
            serving,
        }
    }

    fn add(&mut self, index: u32, serving: bool) {
        let record = &self.members.table.records()[index as usize];
        self.count += 1;
        self.members.indices.push(index);
        let waited = record.waited();
        self.waiting.0 = self.waiting.0.min(waited);
        self.waiting.1 = self.waiting.1.max(waited);
        self.torn |= record.torn();
        self.serving |= serving;
    }

    /// Sets the frames of a bucket whose class has other buckets too: the
    /// frames of its members' chains, merged.
    fn merge_own_chains(&mut self) {
        let table = self.members.table;
        let mut merged = Merge::default();
        let mut last = u32::MAX;
        for &index in &self.members.indices {
            let chain = table.records()[index as usize].chain;
            if chain != last {
                merged.add(table.chain(chain), &table.lines);
                last = chain;
            }
        }
        self.set_frames(merged);
    }

    /// Takes the merged frames of its chains; a bucket of one task names it
    /// on its own root frame, as its routine does.
    fn set_frames(&mut self, merged: Merge) {
        self.frames = merged.frames;
        self.elided = merged.elided;
        if let ([index], Some(root)) = (&self.members.indices[..], merged.own_root) {
            let record = &self.members.table.records()[*index as usize];
            if let Some(frame) = self.frames.get_mut(root) {
                frame.task = Some(record.id);
            }
        }
    }

    fn order(&self, other: &Bucket<'_>) -> Ordering {
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
            .then_with(|| self.ids().next().cmp(&other.ids().next()))
    }
}

/// Whether two chains' frames group together at `similarity`.
fn chains_match(a: &Chain<'_>, b: &Chain<'_>, similarity: Similarity) -> bool {
    (similarity != Similarity::ExactFlags || a.elided == b.elided)
        && a.frames.len() == b.frames.len()
        && a.frames
            .iter()
            .zip(b.frames.iter())
            .all(|(a, b)| frames_match(a, b, similarity))
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
/// addresses seen more than once. Borrows the snapshot, whose routines the
/// buckets' [`Members`] name by index.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Buckets<'s> {
    /// The level used to group.
    pub similarity: Similarity,
    /// Buckets, in display order (see [`Buckets::aggregate`]).
    pub buckets: Vec<Bucket<'s>>,
    labels: HashMap<u64, usize, FxBuild>,
}

/// What makes two routines share a bucket once their chains are classed:
/// kind, state, creator, chain class, and the torn flag at `exactflags`.
type Key = (Kind, StateIndex, u32, u32, bool);

impl<'s> Buckets<'s> {
    /// Groups the routines of `snapshot` at `similarity`.
    ///
    /// A snapshot stores each distinct stack once. Grouping first sorts
    /// those stacks into classes that are alike at `similarity`, hashing
    /// each once, and then puts each routine in the bucket of its kind,
    /// state, creator and class: linear in the number of routines, and the
    /// frames of a routine are not compared again.
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
    pub fn aggregate(snapshot: &'s Snapshot, similarity: Similarity) -> Buckets<'s> {
        let table = &snapshot.table;
        let mut uses = vec![0u32; table.chain_count()];
        for record in table.records() {
            uses[record.chain as usize] += 1;
        }
        let (classes, mut merges) = classes(table, &uses, similarity);
        let texts = canonical(table.texts().iter().map(String::as_str));
        let creators = canonical(
            table
                .creators()
                .iter()
                .map(|c| (c.function, c.file, c.line)),
        );
        let mut buckets: Vec<Bucket<'s>> = Vec::new();
        let mut by_key: HashMap<Key, u32, FxBuild> = HashMap::default();
        // The buckets of each class, by class: most classes have one.
        let mut class_buckets: Vec<u32> = vec![0; merges.len()];
        let mut bucket_class: Vec<u32> = Vec::new();
        let mut bucket_keys: Vec<Key> = Vec::new();
        let mut last_bucket: Vec<u32> = vec![u32::MAX; merges.len()];
        for (index, record) in table.records().iter().enumerate() {
            let tid = record.tid();
            let serving = tid.is_some() && tid == snapshot.captured_by_tid;
            let state = match record.state() {
                StateIndex::Native(text) => StateIndex::Native(texts[text as usize]),
                state => state,
            };
            let key = (
                record.kind(),
                state,
                table
                    .creator_of(record)
                    .map_or(u32::MAX, |c| creators[c as usize]),
                classes[record.chain as usize],
                similarity == Similarity::ExactFlags && record.torn(),
            );
            let index = index as u32;
            let class = key.3 as usize;
            // Most routines of a class share its last bucket: no hashing.
            let last = last_bucket[class];
            let found = if last != u32::MAX && bucket_keys[last as usize] == key {
                Some(last)
            } else {
                by_key.get(&key).copied()
            };
            match found {
                Some(bucket) => {
                    buckets[bucket as usize].add(index, serving);
                    last_bucket[class] = bucket;
                }
                None => {
                    let bucket = buckets.len() as u32;
                    by_key.insert(key, bucket);
                    buckets.push(Bucket::new(table, index, serving));
                    bucket_keys.push(key);
                    last_bucket[class] = bucket;
                    class_buckets[class] += 1;
                    bucket_class.push(class as u32);
                }
            }
        }
        drop(by_key);
        for (bucket, &class) in buckets.iter_mut().zip(&bucket_class) {
            if class_buckets[class as usize] == 1 {
                bucket.set_frames(std::mem::take(&mut merges[class as usize]));
            } else {
                bucket.merge_own_chains();
            }
        }
        drop(merges);
        for bucket in &mut buckets {
            // Captured snapshots list routines by id already.
            let records = table.records();
            let indices = &mut bucket.members.indices;
            if !indices.is_sorted_by_key(|&i| records[i as usize].id) {
                indices.sort_unstable_by_key(|&i| records[i as usize].id);
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
            for (chain, &uses) in table.chains().zip(&uses) {
                for arg in chain.frames.iter().flat_map(|f| &f.args) {
                    if let Some(count) = arg.value.address().and_then(|a| seen.get_mut(&a)) {
                        *count += uses;
                    }
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

/// For each chain, its class: the first chain in use alike at
/// `similarity` (chains no routine uses are left out of every class); and
/// for each class, its chains' frames merged. Reads each chain once, in the
/// order they are stored.
fn classes(table: &Table, uses: &[u32], similarity: Similarity) -> (Vec<u32>, Vec<Merge>) {
    let mut classes = vec![u32::MAX; table.chain_count()];
    let mut merges: Vec<Merge> = Vec::new();
    let mut by_signature: HashMap<u64, Vec<(u32, u32)>, FxBuild> = HashMap::default();
    for (index, chain) in table.chains().enumerate() {
        if uses[index] == 0 {
            continue;
        }
        let candidates = by_signature
            .entry(signature(&chain, similarity))
            .or_default();
        let class = match candidates
            .iter()
            .find(|&&(first, _)| chains_match(&table.chain(first), &chain, similarity))
        {
            Some(&(_, class)) => class,
            None => {
                let class = merges.len() as u32;
                candidates.push((index as u32, class));
                merges.push(Merge::default());
                class
            }
        };
        merges[class as usize].add(chain, &table.lines);
        classes[index] = class;
    }
    (classes, merges)
}

/// For each item, the index of the first equal one.
fn canonical<T: Eq + Hash>(items: impl Iterator<Item = T>) -> Vec<u32> {
    let mut first: HashMap<T, u32, FxBuild> = HashMap::default();
    items
        .enumerate()
        .map(|(i, item)| *first.entry(item).or_insert(i as u32))
        .collect()
}

/// The addresses buckets show (values every member agrees on), in bucket
/// order.
fn shown_addresses<'a>(buckets: &'a [Bucket<'_>]) -> impl Iterator<Item = u64> + 'a {
    buckets
        .iter()
        .flat_map(|b| &b.frames)
        .flat_map(|f| &f.args)
        .filter_map(|arg| match arg.value {
            Merged::Same(value) => value.address(),
            Merged::Differs => None,
        })
}

/// Hashes part of what [`chains_match`] compares, so that chains that
/// may share a class always have the same signature. Strings are hashed by
/// their length only: stacks that differ only in names of equal length (rare)
/// share a signature and are told apart by `chains_match`.
fn signature(chain: &Chain<'_>, similarity: Similarity) -> u64 {
    let mut h = FxHasher::default();
    if similarity == Similarity::ExactFlags {
        h.add(chain.elided as u64);
    }
    h.add(chain.frames.len() as u64);
    for frame in chain.frames.iter() {
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
        assert!(std::mem::size_of::<u32>() <= budget::GROUP_MEMBER_BYTES);
        assert!(std::mem::size_of::<Bucket<'_>>() <= budget::GROUP_BUCKET_BYTES);
    }
}
