//! The await chains a task record keeps, one per leaf: the innermost pending
//! instrumented future at the end of each chain, named by its address and
//! size ([`Leaf`]; only compared, never followed).
//!
//! A task can wait on several leaves at once (`join!`, `select!`,
//! `FuturesUnordered`, `join_all`, `buffer_unordered`), and a poll reaches
//! only some of them: `FuturesUnordered` polls only the members that were
//! woken. So a chain saved by one poll must stand until its leaf finishes or
//! is dropped, whatever later polls do, and a poll in which nothing saved
//! keeps showing the newest chain that still stands. Each chain is kept under
//! its leaf's address, and the chains are ordered by when they were saved:
//! a snapshot shows the newest one.
//!
//! A chain is removed when its leaf is dropped (the leaf's `Drop`, while its
//! task is being polled), when a poll of its leaf saves a chain through it
//! further down (it is no longer a leaf), or when a frame that it runs
//! through returns `Ready` in the poll that saved it. A leaf moved and
//! dropped outside its task's polls leaves its chain until the task ends.
//!
//! Everything here is touched only under the task's lock, by the poll that
//! holds it or by a snapshot copying the newest chain: no new concurrency.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::SavedChain;
use crate::record::slot::FrameWords;

/// A future's name as the end of a chain: its address and its size. The
/// address alone is not enough: a future can hold another at its own address
/// (an `async fn`'s body holding a call's future at offset 0), but a future
/// holding another is larger than it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Leaf(pub(super) usize, pub(super) usize);

/// No entry: the end of the list, or an empty one.
const NONE: u32 = u32::MAX;

/// With more chains than this, [`Chains::filter`] is not recomputed after a
/// removal (it would be all ones, or nearly).
const FILTER_REBUILD_MAX: usize = 64;

/// The chains of one task, newest first.
#[derive(Default)]
pub(crate) struct Chains {
    /// Entries, live or free; a free entry keeps its buffers for reuse.
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Leaf to index in `entries`.
    index: HashMap<Leaf, u32, BuildHasherDefault<AddrHasher>>,
    newest: Option<u32>,
    /// One bit per leaf ([`bit`]): a future whose bit is clear has no
    /// chain, so its `Drop` does not look it up.
    pub(super) filter: u64,
    /// Chains saved so far (the sequence number of the last one).
    pub(super) seq: u64,
}

struct Entry {
    leaf: Leaf,
    /// When the chain was saved: [`Chains::seq`] then.
    seq: u64,
    /// The next older entry, [`NONE`] for the oldest.
    older: u32,
    /// The next newer entry, [`NONE`] for the newest.
    newer: u32,
    chain: SavedChain,
    /// Frames of the chain beyond [`MAX_DEPTH`](crate::record::stack::MAX_DEPTH).
    elided: usize,
}

/// The filter bit of a leaf: from bits 3 to 8 of its address, which differ
/// between futures allocated or laid out apart (the size is left out: this
/// only has to be cheap, in every `Drop`).
#[inline(always)]
pub(super) fn bit(leaf: Leaf) -> u64 {
    1 << ((leaf.0 >> 3) & 63)
}

impl Chains {
    /// The newest chain and its elided frame count (an empty chain when
    /// there is none).
    pub(crate) fn newest(&self) -> Option<(&SavedChain, usize)> {
        let entry = &self.entries[self.newest? as usize];
        Some((&entry.chain, entry.elided))
    }

    /// The sequence number of the newest chain, 0 when there is none.
    pub(super) fn newest_seq(&self) -> u64 {
        self.newest.map_or(0, |i| self.entries[i as usize].seq)
    }

    /// Whether the newest chain has `words` as its frame `index` (from the
    /// outermost): it runs through that frame, or through one that looks
    /// the same on the page.
    pub(super) fn newest_runs_through(&self, index: usize, words: &FrameWords) -> bool {
        let Some(newest) = self.newest else {
            return false;
        };
        let chain = &self.entries[newest as usize].chain;
        chain
            .frames()
            .nth(index)
            .is_some_and(|(meta, owner, task, args)| {
                meta == words.meta
                    && owner == words.owner
                    && task == words.task
                    && args == &words.args[..words.nargs]
            })
    }

    /// Starts a chain ending at `leaf` (replacing the one it had), as the
    /// newest: the caller pushes its frames into the buffer returned, and
    /// sets its elided count.
    pub(super) fn start(&mut self, leaf: Leaf) -> (&mut SavedChain, &mut usize) {
        self.seq += 1;
        let index = match self.index.get(&leaf) {
            Some(&index) => {
                self.unlink(index);
                index
            }
            None => {
                let index = match self.free.pop() {
                    Some(index) => index,
                    None => {
                        self.entries.push(Entry {
                            leaf,
                            seq: 0,
                            older: NONE,
                            newer: NONE,
                            chain: SavedChain::default(),
                            elided: 0,
                        });
                        (self.entries.len() - 1) as u32
                    }
                };
                self.index.insert(leaf, index);
                self.filter |= bit(leaf);
                index
            }
        };
        let older = self.newest.unwrap_or(NONE);
        if older != NONE {
            self.entries[older as usize].newer = index;
        }
        self.newest = Some(index);
        let entry = &mut self.entries[index as usize];
        entry.leaf = leaf;
        entry.seq = self.seq;
        entry.older = older;
        entry.newer = NONE;
        entry.chain.clear();
        entry.elided = 0;
        (&mut entry.chain, &mut entry.elided)
    }

    /// Removes the chain ending at `leaf`, if there is one.
    pub(super) fn remove(&mut self, leaf: Leaf) {
        if let Some(index) = self.index.remove(&leaf) {
            self.release(index);
        }
    }

    /// Removes the chains saved after `seq`: their frame at the caller's
    /// depth returned `Ready`, so none of them is awaited any more.
    pub(super) fn remove_newer_than(&mut self, seq: u64) {
        while let Some(newest) = self.newest {
            let entry = &self.entries[newest as usize];
            if entry.seq <= seq {
                break;
            }
            self.index.remove(&entry.leaf);
            self.release(newest);
        }
    }

    /// Records the line of the `.await` the frame `index` of its chains is
    /// suspended at, if that frame is `meta`'s: in every chain saved after
    /// `seq` (those run through the caller), else in the newest one.
    pub(super) fn set_await_line(&mut self, seq: u64, index: usize, meta: usize, line: u32) {
        let mut next = self.newest.unwrap_or(NONE);
        while next != NONE {
            let entry = &mut self.entries[next as usize];
            entry.chain.set_await_line(index, meta, line);
            if entry.seq <= seq {
                break;
            }
            next = entry.older;
        }
    }

    /// Forgets every chain, keeping the buffers.
    pub(crate) fn clear(&mut self) {
        self.free.clear();
        for (index, entry) in self.entries.iter_mut().enumerate() {
            entry.chain.clear();
            self.free.push(index as u32);
        }
        self.index.clear();
        self.newest = None;
        self.filter = 0;
    }

    /// Whether the buffers are small enough to keep in a spare record.
    pub(crate) fn is_small(&self, chains: usize, frames: usize, args: usize) -> bool {
        self.entries.len() <= chains
            && self
                .entries
                .iter()
                .all(|e| e.chain.frames.capacity() <= frames && e.chain.args.capacity() <= args)
    }

    fn unlink(&mut self, index: u32) {
        let (older, newer) = {
            let entry = &self.entries[index as usize];
            (entry.older, entry.newer)
        };
        if older != NONE {
            self.entries[older as usize].newer = newer;
        }
        if newer != NONE {
            self.entries[newer as usize].older = older;
        } else {
            self.newest = (older != NONE).then_some(older);
        }
    }

    /// Frees an entry already taken out of `index`.
    fn release(&mut self, index: u32) {
        self.unlink(index);
        let entry = &mut self.entries[index as usize];
        entry.chain.clear();
        entry.leaf = Leaf::default();
        self.free.push(index);
        if self.index.len() <= FILTER_REBUILD_MAX {
            self.filter = self
                .index
                .keys()
                .fold(0, |filter, &leaf| filter | bit(leaf));
        }
    }
}

/// Hashes a future's address: its bits are already spread, only mixed here.
#[derive(Default)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, word: usize) {
        self.0 = (self.0 ^ word as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(26);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain_of(chains: &Chains) -> Option<usize> {
        chains.newest.map(|i| chains.entries[i as usize].leaf.0)
    }

    fn start(chains: &mut Chains, addr: usize) {
        chains.start(Leaf(addr, 64));
    }

    fn remove(chains: &mut Chains, addr: usize) {
        chains.remove(Leaf(addr, 64));
    }

    #[test]
    fn the_newest_standing_chain_is_shown() {
        let mut chains = Chains::default();
        start(&mut chains, 10);
        start(&mut chains, 20);
        start(&mut chains, 30);
        assert_eq!(chain_of(&chains), Some(30));
        remove(&mut chains, 30);
        assert_eq!(chain_of(&chains), Some(20));
        start(&mut chains, 10);
        assert_eq!(chain_of(&chains), Some(10));
        remove(&mut chains, 10);
        assert_eq!(chain_of(&chains), Some(20));
        remove(&mut chains, 20);
        assert_eq!(chain_of(&chains), None);
        assert_eq!(chains.filter, 0);
    }

    #[test]
    fn a_future_and_one_it_holds_at_its_address_are_two_leaves() {
        let mut chains = Chains::default();
        chains.start(Leaf(10, 64));
        chains.start(Leaf(10, 128));
        chains.remove(Leaf(10, 128));
        let newest = chains.newest.map(|i| chains.entries[i as usize].leaf);
        assert_eq!(newest, Some(Leaf(10, 64)));
    }

    #[test]
    fn chains_saved_after_a_point_are_removed_together() {
        let mut chains = Chains::default();
        start(&mut chains, 10);
        let seq = chains.seq;
        start(&mut chains, 20);
        start(&mut chains, 30);
        chains.remove_newer_than(seq);
        assert_eq!(chain_of(&chains), Some(10));
        assert_eq!(chains.index.len(), 1);
        // Freed entries are reused.
        start(&mut chains, 40);
        assert_eq!(chains.entries.len(), 3);
    }
}
