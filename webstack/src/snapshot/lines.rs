//! Source lines of a snapshot's frames, looked up when a page shows them.
//!
//! With `augment`, a page shows each frame's source line. A captured
//! snapshot used to write the line into every frame of every stored stack:
//! 50,000 frames for 10,000 distinct task stacks, about 1 ms a capture,
//! while the grouped page shows one stack a bucket. So the native pass only
//! hands the snapshot a way to look lines up ([`SourceLines::on`]), and the
//! stages that show a frame ask for its line ([`SourceLines::line`]):
//! grouping for the frames of each bucket, and the snapshot's own JSON form
//! for every frame. Each distinct line is read once a snapshot, from the
//! process-wide source cache of the native pass, and the lines kept count
//! against what the snapshot's `maxmem` leaves. A relative path (what
//! `file!()` gives an instrumented function: relative to the workspace the
//! program was built in) is read below the snapshot's source root
//! ([`Process::source_root`](super::Process::source_root)), so that lines
//! show whatever the program's working directory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::budget;
use super::model::Frame;
use crate::hash::FxBuild;

/// Reads line `line` (1-based) of `file`, trimmed; `None` when unreadable.
pub(crate) type Lookup = fn(&str, u32) -> Option<String>;

/// How a snapshot finds its frames' source lines, and those found so far.
#[derive(Default)]
pub(crate) struct SourceLines {
    /// `None`: lines are not looked up (no `augment`, or a snapshot built
    /// by hand); frames show only a [`Frame::source`] set on them.
    lookup: Option<Lookup>,
    /// Bytes the lines kept may take.
    room: usize,
    /// Where relative paths are read from.
    root: Option<Box<str>>,
    found: Mutex<Found>,
}

/// The lines looked up in one file, by line (`None`: none there).
type FileLines = HashMap<u32, Option<Arc<str>>, FxBuild>;

/// Lines looked up, by file, and their cost.
#[derive(Clone, Default)]
struct Found {
    lines: HashMap<Box<str>, FileLines, FxBuild>,
    bytes: usize,
}

/// What an entry of [`Found`] costs beside its text.
const ENTRY_BYTES: usize = 48;

impl SourceLines {
    /// Lines looked up with `lookup`, relative paths below `root`, kept
    /// while they fit in `room` bytes.
    pub(crate) fn on(lookup: Lookup, room: usize, root: Option<&str>) -> SourceLines {
        SourceLines {
            lookup: Some(lookup),
            room,
            root: root.map(Box::from),
            found: Mutex::default(),
        }
    }

    /// Whether lines are looked up.
    pub(crate) fn is_on(&self) -> bool {
        self.lookup.is_some()
    }

    /// The source line of `frame`: the one set on it, else the one looked
    /// up when lines are on and the snapshot's budget has room for it.
    pub(crate) fn line(&self, frame: &Frame) -> Option<Arc<str>> {
        if let Some(source) = &frame.source {
            return Some(source.clone());
        }
        let lookup = self.lookup?;
        if frame.line == 0 || frame.file.is_empty() {
            return None;
        }
        let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = found
            .lines
            .get(&*frame.file)
            .and_then(|lines| lines.get(&frame.line))
        {
            return known.clone();
        }
        let text = match &self.root {
            Some(root) if std::path::Path::new(&*frame.file).is_relative() => {
                lookup(&format!("{root}/{}", frame.file), frame.line)
            }
            _ => lookup(&frame.file, frame.line),
        };
        let text: Option<Arc<str>> = text.map(Arc::from);
        let cost = ENTRY_BYTES + text.as_ref().map_or(0, |t| budget::source_cost(t.len()));
        let file_cost = if found.lines.contains_key(&*frame.file) {
            0
        } else {
            ENTRY_BYTES + frame.file.len()
        };
        if found.bytes + cost + file_cost > self.room {
            return None;
        }
        found.bytes += cost + file_cost;
        found
            .lines
            .entry(frame.file.as_ref().into())
            .or_default()
            .insert(frame.line, text.clone());
        text
    }
}

impl Clone for SourceLines {
    fn clone(&self) -> Self {
        SourceLines {
            lookup: self.lookup,
            room: self.room,
            root: self.root.clone(),
            found: Mutex::new(
                self.found
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone(),
            ),
        }
    }
}

impl std::fmt::Debug for SourceLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceLines")
            .field("on", &self.is_on())
            .field("room", &self.room)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// Lookups by this test's thread (tests run in parallel).
        static LOOKUPS: Cell<usize> = const { Cell::new(0) };
    }

    fn numbered(file: &str, line: u32) -> Option<String> {
        LOOKUPS.set(LOOKUPS.get() + 1);
        (file != "missing.rs").then(|| format!("line {line} of {file}"))
    }

    #[test]
    fn each_line_is_looked_up_once_and_a_set_line_wins() {
        let lines = SourceLines::on(numbered, 1 << 20, None);
        let before = LOOKUPS.get();
        let frame = Frame::new("app::f", "src/a.rs", 7);
        assert_eq!(lines.line(&frame).as_deref(), Some("line 7 of src/a.rs"));
        assert_eq!(lines.line(&frame).as_deref(), Some("line 7 of src/a.rs"));
        let missing = Frame::new("app::g", "missing.rs", 1);
        assert_eq!(lines.line(&missing), None);
        assert_eq!(lines.line(&missing), None);
        assert_eq!(LOOKUPS.get() - before, 2);
        let mut set = Frame::new("app::h", "src/a.rs", 7);
        set.source = Some("by hand".into());
        assert_eq!(lines.line(&set).as_deref(), Some("by hand"));
        assert_eq!(
            lines.clone().line(&frame).as_deref(),
            Some("line 7 of src/a.rs")
        );
    }

    #[test]
    fn relative_paths_are_read_below_the_root() {
        let lines = SourceLines::on(numbered, 1 << 20, Some("/srv/app"));
        let relative = Frame::new("app::f", "src/a.rs", 3);
        assert_eq!(
            lines.line(&relative).as_deref(),
            Some("line 3 of /srv/app/src/a.rs")
        );
        let absolute = Frame::new("app::f", "/usr/src/b.rs", 3);
        assert_eq!(
            lines.line(&absolute).as_deref(),
            Some("line 3 of /usr/src/b.rs")
        );
    }

    #[test]
    fn off_shows_only_lines_set_by_hand() {
        let lines = SourceLines::default();
        assert!(!lines.is_on());
        assert_eq!(lines.line(&Frame::new("app::f", "src/a.rs", 7)), None);
        let mut set = Frame::new("app::f", "src/a.rs", 7);
        set.source = Some("by hand".into());
        assert_eq!(lines.line(&set).as_deref(), Some("by hand"));
    }

    #[test]
    fn lines_past_the_room_left_are_not_kept_nor_shown() {
        let one =
            ENTRY_BYTES * 2 + "src/a.rs".len() + budget::source_cost("line 1 of src/a.rs".len());
        let lines = SourceLines::on(numbered, one, None);
        assert!(lines.line(&Frame::new("app::f", "src/a.rs", 1)).is_some());
        assert_eq!(lines.line(&Frame::new("app::f", "src/a.rs", 2)), None);
        let found = lines.found.lock().unwrap();
        assert!(found.bytes <= one, "{} > {one}", found.bytes);
    }
}
