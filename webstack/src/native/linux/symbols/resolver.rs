//! Resolution across the loaded objects: which one holds an address (from
//! the list [`objects`] shares with the unwinder), what was read of each,
//! and the budget over their parsed units.

use std::path::PathBuf;

use super::super::objects;
use super::budget;
use super::object::{Loaded, RawFrame};

/// One loaded object.
pub(super) struct Object {
    /// Absolute address ranges of its loaded segments.
    segments: Vec<(usize, usize)>,
    pub(super) bias: usize,
    pub(super) path: PathBuf,
    /// `None` until first used; `Some(None)` if it could not be read.
    loaded: Option<Option<Loaded>>,
}

impl Object {
    pub(super) fn contains(&self, address: usize) -> bool {
        self.segments
            .iter()
            .any(|&(start, end)| (start..end).contains(&address))
    }
}

/// The objects of the process, listed when an address falls outside all of
/// them.
pub(super) struct Objects {
    pub(super) list: Vec<Object>,
    /// Counts lookups, to find the least recently used parsed unit.
    tick: u64,
}

impl Objects {
    pub(super) const fn new() -> Self {
        Objects {
            list: Vec::new(),
            tick: 0,
        }
    }

    pub(super) fn resolve(&mut self, lookup: usize, out: &mut Vec<RawFrame>) {
        let Some(probe) = lookup.checked_sub(1) else {
            return;
        };
        let index = match self.list.iter().position(|o| o.contains(probe)) {
            Some(index) => index,
            None => {
                self.relist();
                match self.list.iter().position(|o| o.contains(probe)) {
                    Some(index) => index,
                    None => return,
                }
            }
        };
        self.tick += 1;
        let tick = self.tick;
        let room = (budget() / 4).saturating_sub(self.inflated_bytes());
        let object = &mut self.list[index];
        let svma = probe.wrapping_sub(object.bias) as u64;
        let loaded = object
            .loaded
            .get_or_insert_with(|| Loaded::open(&object.path, room));
        if let Some(loaded) = loaded {
            loaded.resolve(svma, tick, out);
        }
        self.keep_within_budget(tick);
    }

    /// Drops the least recently used parsed units while their estimate
    /// exceeds half the budget less the decompressed sections; never the
    /// one just used.
    fn keep_within_budget(&mut self, now: u64) {
        let limit = (budget() / 2).saturating_sub(self.inflated_bytes());
        let mut total: usize = self.loaded().map(Loaded::parsed_bytes).sum();
        while total > limit {
            let oldest = self
                .loaded_mut()
                .enumerate()
                .flat_map(|(object, loaded)| {
                    loaded
                        .parsed
                        .iter()
                        .map(move |(&unit, parsed)| (parsed.used, object, unit))
                })
                .filter(|&(used, _, _)| used != now)
                .min();
            let Some((_, object, unit)) = oldest else {
                break;
            };
            if let Some(loaded) = self.loaded_mut().nth(object) {
                if let Some(parsed) = loaded.parsed.remove(&unit) {
                    total -= parsed.cost;
                }
            }
        }
    }

    fn inflated_bytes(&self) -> usize {
        self.loaded().map(Loaded::inflated_bytes).sum()
    }

    pub(super) fn loaded(&self) -> impl Iterator<Item = &Loaded> {
        self.list.iter().filter_map(|o| o.loaded.as_ref()?.as_ref())
    }

    pub(super) fn loaded_mut(&mut self) -> impl Iterator<Item = &mut Loaded> {
        self.list
            .iter_mut()
            .filter_map(|o| o.loaded.as_mut()?.as_mut())
    }

    /// Lists the loaded objects again, keeping what was read of those still
    /// loaded at the same place.
    pub(super) fn relist(&mut self) {
        // The vDSO has no file to read symbols from.
        let mut fresh: Vec<Object> = objects::list()
            .into_iter()
            .filter_map(|o| {
                Some(Object {
                    segments: o.code,
                    bias: o.bias,
                    path: o.path?,
                    loaded: None,
                })
            })
            .collect();
        for object in &mut fresh {
            if let Some(old) = self
                .list
                .iter_mut()
                .find(|o| o.path == object.path && o.bias == object.bias)
            {
                object.loaded = old.loaded.take();
            }
        }
        self.list = fresh;
    }
}
