//! The source-line cache: the `source` lines of frames, read from the
//! source files their debug information names.

use std::collections::HashMap;
use std::sync::Arc;

use crate::fork::Mutex;

use super::budget;

/// Larger source files are not read.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Longer source lines are cut.
const MAX_LINE_CHARS: usize = 240;

/// Source files by path (`None` for files that cannot be read), with their
/// total size.
#[derive(Default)]
pub(super) struct SourceCache {
    files: HashMap<Arc<str>, Option<Arc<SourceFile>>>,
    pub(super) bytes: usize,
}

struct SourceFile {
    text: String,
    /// Byte offset where each line starts.
    starts: Vec<usize>,
}

pub(super) static SOURCES: Mutex<SourceCache> = Mutex::new(SourceCache::default);

/// The text of line `line` (1-based) of `file`, trimmed, when the file is
/// readable; files are read once and kept while they fit a quarter of the
/// symbol budget.
pub(in crate::native::sys) fn source_line(file: &str, line: u32) -> Option<String> {
    if file.is_empty() || line == 0 {
        return None;
    }
    let source = {
        let cached = SOURCES.lock().files.get(file).cloned();
        match cached {
            Some(source) => source,
            None => {
                let source = read_source(file).map(Arc::new);
                let cost = 64
                    + file.len()
                    + source.as_ref().map_or(0, |s| {
                        s.text.len() + s.starts.len() * std::mem::size_of::<usize>()
                    });
                let mut sources = SOURCES.lock();
                if sources.bytes + cost > budget() / 4 {
                    *sources = SourceCache::default();
                }
                sources.bytes += cost;
                sources.files.insert(file.into(), source.clone());
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
