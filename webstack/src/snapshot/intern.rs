//! Storing once what repeats across the routines a capture reads: names,
//! creation sites and stacks.
//!
//! A stack is keyed by the words it was recorded as (metadata and owner
//! addresses, task ids, `.await` lines, argument words), before any frame
//! is built: a task whose stack was seen before costs a hash of a few dozen
//! words and a comparison, and its frames are built once per snapshot.

use std::borrow::Cow;
use std::collections::HashMap;

use super::budget::{self, Budget};
use super::model::Frame;
use super::resolve::FrameCache;
use super::table::Table;
use crate::hash::FxBuild;
use crate::record::slot::FrameWords;
use crate::record::stack::Site;
use crate::record::task::SavedChain;

/// Words of a chunk of keys (64 KiB).
const KEY_CHUNK: usize = 8192;

/// No chain with this hash yet, or the end of a list of chains.
const NONE: u32 = u32::MAX;

/// First word of a thread's key; a task's starts with [`TASK_KEY`].
const THREAD_KEY: u64 = 1;
const TASK_KEY: u64 = 2;

/// A task's own id in the key of its chain: tasks at the same place have
/// the same key.
const OWN: u64 = u64::MAX;

/// A creation site: its function's and file's address and length, and its
/// line.
type SiteKey = (usize, usize, usize, usize, u32);

/// What a capture has stored so far, to find it again.
#[derive(Default)]
pub(crate) struct Interner {
    /// Resolved names, paths and origins of frames and creation sites.
    cache: FrameCache,
    /// Static names by address and length, and the last one found: tasks
    /// read one after another are often alike.
    names: HashMap<(usize, usize), u32, FxBuild>,
    last_name: Option<((usize, usize), u32)>,
    /// Creation sites by the addresses of their names and their line, and
    /// the last one found.
    sites: HashMap<SiteKey, u32, FxBuild>,
    last_site: Option<(SiteKey, u32)>,
    /// The newest chain per hash of its key; older ones with the same hash
    /// follow through `next`.
    chains: HashMap<u64, u32, FxBuild>,
    next: Vec<u32>,
    /// Each chain's key, at `spans[chain]`: `(chunk, start, len)` in
    /// `words`, chunks that never grow past their capacity (no copy, and
    /// no large buffer mapped afresh at each capture).
    words: Vec<Vec<u64>>,
    spans: Vec<(u32, u32, u32)>,
    /// The key being looked up.
    key: Vec<u64>,
}

impl Interner {
    /// The index of a routine's name (an owned one's bytes are counted
    /// with its record, see `Reader::admit`).
    pub(crate) fn name(&mut self, name: Cow<'static, str>, table: &mut Table) -> u32 {
        match name {
            Cow::Borrowed(name) => {
                let key = (name.as_ptr() as usize, name.len());
                match self.last_name {
                    Some((last, index)) if last == key => index,
                    _ => {
                        let index = *self
                            .names
                            .entry(key)
                            .or_insert_with(|| table.add_name(Cow::Borrowed(name)));
                        self.last_name = Some((key, index));
                        index
                    }
                }
            }
            Cow::Owned(name) => table.add_name(Cow::Owned(name)),
        }
    }

    /// The index of a creation site.
    pub(crate) fn site(&mut self, site: Site, table: &mut Table) -> u32 {
        let key = (
            site.function.as_ptr() as usize,
            site.function.len(),
            site.file.as_ptr() as usize,
            site.file.len(),
            site.line,
        );
        if let Some((last, index)) = self.last_site {
            if last == key {
                return index;
            }
        }
        let index = *self
            .sites
            .entry(key)
            .or_insert_with(|| table.add_creator(self.cache.created_by(site)));
        self.last_site = Some((key, index));
        index
    }

    /// The chain of the saved await chain of task `own`, with `elided`
    /// frames left out; `None` when a new chain does not fit in `budget`.
    ///
    /// The task's own id on its root frame is left out (it is the
    /// routine's id): tasks waiting at the same place share a chain.
    pub(crate) fn task_chain(
        &mut self,
        chain: &SavedChain,
        own: u64,
        elided: usize,
        table: &mut Table,
        budget: &mut Budget,
    ) -> Option<u32> {
        self.key.clear();
        self.key.extend([TASK_KEY, elided as u64]);
        for ((meta, owner, task, args), line) in chain.frames().zip(chain.await_lines()) {
            self.key.extend([
                meta as u64,
                owner as u64,
                if task == own { OWN } else { task },
                args.len() as u64,
                line.into(),
            ]);
            for value in args {
                value.push_words(&mut self.key);
            }
        }
        let own_root = chain.frames().rev().position(|(_, _, task, _)| task == own);
        let len = chain.len();
        self.find_or_add(table, budget, len, elided, own_root, |cache, frames| {
            frames.extend(chain.frames().rev().zip(chain.await_lines().rev()).map(
                |((meta, owner, task, args), line)| {
                    let task = if task == own { 0 } else { task };
                    let frame = cache.frame(meta, owner, task, args);
                    if line == 0 {
                        frame
                    } else {
                        frame.awaiting_at(line)
                    }
                },
            ));
        })
    }

    /// The chain of a thread's shadow stack, outermost first in `words`,
    /// with `elided` frames left out.
    pub(crate) fn thread_chain(
        &mut self,
        words: &[FrameWords],
        elided: usize,
        table: &mut Table,
        budget: &mut Budget,
    ) -> Option<u32> {
        self.key.clear();
        self.key.extend([THREAD_KEY, elided as u64]);
        for w in words {
            self.key
                .extend([w.meta as u64, w.owner as u64, w.task, w.nargs as u64]);
            for value in &w.args[..w.nargs] {
                value.push_words(&mut self.key);
            }
        }
        self.find_or_add(table, budget, words.len(), elided, None, |cache, frames| {
            frames.extend(
                words
                    .iter()
                    .rev()
                    .map(|w| cache.frame(w.meta, w.owner, w.task, &w.args[..w.nargs])),
            );
        })
    }

    /// The chain whose key is `self.key`, else a new one of the frames
    /// `build` makes, if they fit in `budget`.
    fn find_or_add(
        &mut self,
        table: &mut Table,
        budget: &mut Budget,
        len: usize,
        elided: usize,
        own_root: Option<usize>,
        build: impl FnOnce(&mut FrameCache, &mut Vec<Frame>),
    ) -> Option<u32> {
        let hash = key_hash(&self.key);
        let head = self.chains.get(&hash).copied().unwrap_or(NONE);
        let mut at = head;
        while at != NONE {
            let (chunk, start, len) = self.spans[at as usize];
            if self.words[chunk as usize][start as usize..][..len as usize] == self.key[..] {
                return Some(at);
            }
            at = self.next[at as usize];
        }
        // Built at the end of the table's frames: no allocation per chain.
        let frames = table.frames_for(len);
        let start = frames.len();
        build(&mut self.cache, frames);
        let cost = budget::chain_cost(frames[start..].iter().map(|f| f.args.len()))
            + self.key.len() * std::mem::size_of::<u64>();
        if !budget.take(cost) {
            frames.truncate(start);
            return None;
        }
        let chain = table.add_chain(start, elided, own_root);
        debug_assert_eq!(chain as usize, self.spans.len());
        if self
            .words
            .last()
            .is_none_or(|c| c.capacity() - c.len() < self.key.len())
        {
            self.words
                .push(Vec::with_capacity(KEY_CHUNK.max(self.key.len())));
        }
        let chunk = self.words.len() - 1;
        let words = &mut self.words[chunk];
        self.spans
            .push((chunk as u32, words.len() as u32, self.key.len() as u32));
        words.extend_from_slice(&self.key);
        self.next.push(head);
        self.chains.insert(hash, chain);
        Some(chain)
    }
}

/// A hash of a stack's key: each word mixed by its position and summed, so
/// that the multiplications overlap instead of waiting for one another
/// (the key is compared in full on a match, so a weak hash costs only
/// comparisons).
fn key_hash(words: &[u64]) -> u64 {
    let mut sum = words.len() as u64;
    let mut position = 0u64;
    for &word in words {
        position = position.wrapping_add(0x9e37_79b9_7f4a_7c15);
        sum = sum.wrapping_add((word ^ position).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95));
    }
    (sum ^ (sum >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}
