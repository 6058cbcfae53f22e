//! Addresses to functions, files and lines, outside the signal handler, with
//! caches that survive across snapshots: symbols by address, source files
//! by path. Both caches are bounded; when full they are emptied and refilled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use super::merge::match_key;
use super::Origin;
use crate::snapshot::resolve::{classify_with_file, tidy};

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
/// borrow them instead of allocating. Bounded by the program's own symbols.
static NAMES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);

fn intern(name: &str) -> &'static str {
    let mut names = NAMES.lock();
    if let Some(&interned) = names.get(name) {
        return interned;
    }
    let interned: &'static str = Box::leak(name.into());
    names.insert(interned);
    interned
}

/// Addresses kept in the symbol cache.
const MAX_CACHED_ADDRESSES: usize = 1 << 16;
/// Source files kept in the source cache.
const MAX_CACHED_FILES: usize = 512;
/// Larger source files are not read.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Longer source lines are cut.
const MAX_LINE_CHARS: usize = 240;

type SymCache = HashMap<usize, Arc<[SymFrame]>>;

static SYMBOLS: LazyLock<Mutex<SymCache>> = LazyLock::new(Default::default);

/// The functions at `lookup`, innermost inlined call first. `lookup` is a
/// return address (the resolver looks one byte before it); pass an exact
/// instruction address plus one.
pub(super) fn symbolize(lookup: usize) -> Arc<[SymFrame]> {
    if let Some(found) = SYMBOLS.lock().get(&lookup) {
        return found.clone();
    }
    let mut frames = Vec::new();
    backtrace::resolve(lookup as *mut std::ffi::c_void, |symbol| {
        let function = symbol.name().map(|name| intern(&format!("{name:#}")));
        let file = symbol
            .filename()
            .map(|path| intern(&tidy(&path.to_string_lossy())));
        let origin = function.map_or(Origin::Unknown, |function| {
            classify_with_file(function, file)
        });
        frames.push(SymFrame {
            function,
            key: function.map_or("", |function| intern(&match_key(function))),
            file,
            line: symbol.lineno().unwrap_or(0),
            origin,
        });
    });
    let frames: Arc<[SymFrame]> = frames.into();
    let mut cache = SYMBOLS.lock();
    if cache.len() >= MAX_CACHED_ADDRESSES {
        cache.clear();
    }
    cache.insert(lookup, frames.clone());
    frames
}

struct SourceFile {
    text: String,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

/// Source files by path; `None` for files that cannot be read.
type SourceCache = HashMap<Arc<str>, Option<Arc<SourceFile>>>;

static SOURCES: LazyLock<Mutex<SourceCache>> = LazyLock::new(Default::default);

/// The text of line `line` (1-based) of `file`, trimmed, when the file is
/// readable; files are read once and kept.
pub(super) fn source_line(file: &str, line: u32) -> Option<String> {
    if file.is_empty() || line == 0 {
        return None;
    }
    let source = {
        let cached = SOURCES.lock().get(file).cloned();
        match cached {
            Some(source) => source,
            None => {
                let source = read_source(file).map(Arc::new);
                let mut sources = SOURCES.lock();
                if sources.len() >= MAX_CACHED_FILES {
                    sources.clear();
                }
                sources.insert(file.into(), source.clone());
                source
            }
        }
    }?;
    let index = line as usize - 1;
    let start = *source.starts.get(index)?;
    let end = source
        .starts
        .get(index + 1)
        .copied()
        .unwrap_or(source.text.len());
    let text = source.text[start..end].trim();
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(MAX_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    })
}

fn read_source(file: &str) -> Option<SourceFile> {
    let metadata = std::fs::metadata(file).ok()?;
    if !metadata.is_file() || metadata.len() > MAX_FILE_BYTES {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let mut starts = vec![0];
    starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    Some(SourceFile { text, starts })
}

/// Empties the symbol cache (the `backtrace` crate keeps its own caches of
/// loaded debug information).
pub(super) fn clear() {
    SYMBOLS.lock().clear();
}
