//! Addresses to functions, files and lines, outside the signal handler, with
//! caches that survive across snapshots: symbols by address, source files
//! by path.
//!
//! # How an address is resolved
//!
//! The loaded objects (the program and its shared libraries) are listed
//! with `dl_iterate_phdr`, each with its load bias and segments. The object
//! holding an address is mapped read-only from its file (`mmap`: file-backed
//! pages, which the kernel can drop and reread) the first time one of its
//! addresses is asked for; then its ELF symbol table is read into a sorted
//! table of function starts (the outer function's name when nothing better
//! is known), and an `addr2line` index of its DWARF compilation units is
//! built (unit headers and address ranges only). A lookup parses the line
//! program and the functions (with their inlined calls) of the one unit that
//! holds the address, and keeps them for later lookups in that unit.
//!
//! # Memory
//!
//! Everything kept here is bounded by the process-wide symbol budget
//! ([`crate::native::set_symbol_budget`], default
//! [`crate::native::DEFAULT_SYMBOL_BUDGET`]): half of it for parsed units
//! (estimated from the size of each unit's debug information; past it every
//! parsed unit is dropped and the index rebuilt), a quarter for the cache of
//! resolved addresses and a quarter for source files. The indexes and the
//! symbol tables are kept for the life of the process (about 1 MiB for a
//! 50 MB binary), as are the interned function and file names of the frames
//! resolved so far. The mapped files are not counted: their pages are the
//! kernel's to drop.
//!
//! Debug sections compressed with zlib (`SHF_COMPRESSED`, as in the
//! separate debug files of Debian's `libc6-dbg`) are decompressed the first
//! time an address of their object is resolved, into anonymous memory
//! charged to the half of the budget for parsed units: all but
//! `.debug_info` are kept (2.6 MiB for glibc 2.36's libc), provided all
//! objects' together take at most a quarter of the budget, and the parsed
//! units get the rest of the half. `.debug_info` (5.5 MiB for that libc) is
//! not kept: the index is built from it one unit at a time, and parsing a
//! unit decompresses it again up to that unit, keeping a copy of the unit
//! only. Sections that do not fit, or are compressed otherwise (zstd), are
//! not read, as is debug information that is missing or split into `.dwo`
//! files: such an object's frames have the symbol table's function names
//! and no file or line. An object with neither debug information nor a
//! symbol table (a stripped system library) is read from its separate
//! debug file under `/usr/lib/debug/.build-id/` when one is installed.

mod object;
mod resolver;
mod scratch;
mod source;
mod warm;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::fork::Mutex;

use self::object::Loaded;
use super::merge::match_key;
use super::Origin;
use crate::snapshot::resolve::{classify_with_file, tidy};
use resolver::Objects;
use source::SOURCES;

pub(super) use source::source_line;
pub(super) use warm::warm_up;

/// One function at an address; inlined calls give several per address.
#[derive(Clone, Debug)]
pub(super) struct SymFrame {
    /// Demangled path without the hash.
    pub(super) function: Option<&'static str>,
    /// The path shadow frames are matched against (see `merge::match_key`).
    pub(super) key: &'static str,
    pub(super) file: Option<&'static str>,
    pub(super) line: u32,
    pub(super) origin: Origin,
}

/// Function and file names, kept for the life of the process so frames can
/// borrow them instead of allocating. Bounded by the names of the frames
/// the program's snapshots showed.
static NAMES: Mutex<HashSet<&'static str>> = Mutex::new(HashSet::new);

fn intern(name: &str) -> &'static str {
    let mut names = NAMES.lock();
    if let Some(&interned) = names.get(name) {
        return interned;
    }
    let interned: &'static str = Box::leak(name.into());
    names.insert(interned);
    interned
}

/// Default process-wide symbol budget: 16 MiB.
pub(crate) const DEFAULT_BUDGET: usize = 16 << 20;
/// The smallest budget accepted: 1 MiB.
const MIN_BUDGET: usize = 1 << 20;

static BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_BUDGET);

pub(crate) fn set_budget(bytes: usize) {
    BUDGET.store(bytes.max(MIN_BUDGET), Ordering::Relaxed);
}

pub(crate) fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// Resolved addresses, with an estimate of their heap bytes.
#[derive(Default)]
struct SymCache {
    by_address: HashMap<usize, Arc<[SymFrame]>>,
    bytes: usize,
}

fn entry_cost(frames: &[SymFrame]) -> usize {
    64 + std::mem::size_of_val(frames)
}

static SYMBOLS: Mutex<SymCache> = Mutex::new(SymCache::default);

/// The loaded objects and what was read of them.
static OBJECTS: Mutex<Objects> = Mutex::new(Objects::new);

/// The functions at `lookup`, innermost inlined call first. `lookup` is a
/// return address (the resolver looks one byte before it); pass an exact
/// instruction address plus one.
pub(super) fn symbolize(lookup: usize) -> Arc<[SymFrame]> {
    if let Some(found) = SYMBOLS.lock().by_address.get(&lookup) {
        return found.clone();
    }
    let mut raw = Vec::new();
    OBJECTS.lock().resolve(lookup, &mut raw);
    let frames: Arc<[SymFrame]> = raw
        .into_iter()
        .map(|raw| {
            let function = raw.function.as_deref().map(intern);
            let file = raw.file.as_deref().map(|path| intern(&tidy(path)));
            let origin = function.map_or(Origin::Unknown, |function| {
                classify_with_file(function, file)
            });
            SymFrame {
                function,
                key: function.map_or("", |function| intern(&match_key(function))),
                file,
                line: raw.line,
                origin,
            }
        })
        .collect();
    let mut cache = SYMBOLS.lock();
    let cost = entry_cost(&frames);
    if cache.bytes + cost > budget() / 4 {
        *cache = SymCache::default();
    }
    cache.bytes += cost;
    cache.by_address.insert(lookup, frames.clone());
    frames
}

/// Empties the cache of resolved addresses (what was parsed of the objects
/// stays).
pub(super) fn clear() {
    *SYMBOLS.lock() = SymCache::default();
}

/// Drops every parsed unit, as the budget does when it is exceeded; the
/// next lookups parse them again. For benchmarks.
pub(super) fn drop_parsed() {
    for loaded in OBJECTS.lock().loaded_mut() {
        loaded.parsed.clear();
    }
}

/// Estimated heap bytes of the parsed units, decompressed sections,
/// resolved addresses and source files that the budget bounds. For tests
/// and benchmarks.
pub(super) fn kept_bytes() -> usize {
    OBJECTS
        .lock()
        .loaded()
        .map(|l| l.parsed_bytes() + l.inflated_bytes())
        .sum::<usize>()
        + SYMBOLS.lock().bytes
        + SOURCES.lock().bytes
}

/// Bytes of the indexes and symbol tables, kept outside the budget. For
/// benchmarks.
pub(super) fn fixed_bytes() -> usize {
    OBJECTS.lock().loaded().map(Loaded::fixed_bytes).sum()
}

/// Whether the symbols of some object are loaded. For tests.
pub(super) fn loaded() -> bool {
    OBJECTS.lock().loaded().next().is_some()
}

/// In the child of a fork, takes back the locks that a thread of the
/// parent held at the fork (a snapshot symbolising, the warm-up thread):
/// what they guarded starts afresh (see [`crate::fork::Mutex`]).
pub(super) fn recover_after_fork() {
    NAMES.recover();
    SYMBOLS.recover();
    OBJECTS.recover();
    SOURCES.recover();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn here() -> usize {
        let mut ip = 0;
        // SAFETY: the unwinder is thread-safe on Linux.
        unsafe {
            backtrace::trace_unsynchronized(|frame| {
                ip = frame.ip() as usize;
                false
            })
        };
        ip
    }

    #[test]
    fn a_return_address_resolves_to_its_function_file_and_line() {
        let frames = symbolize(here());
        eprintln!("{frames:#?}");
        assert!(frames
            .iter()
            .any(|f| f.file.is_some_and(|f| f.ends_with(".rs")) && f.line > 0));
        let frames = symbolize(here as fn() -> usize as usize + 1);
        eprintln!("{frames:#?}");
        assert!(frames
            .iter()
            .any(|f| f.function.is_some_and(|f| f.ends_with("tests::here"))));
    }
}
