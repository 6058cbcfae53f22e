//! Rendering a grouped [`Snapshot`] as an HTML page, JSON or plain text.
//!
//! The pipeline does not depend on a web framework: capture a [`Snapshot`],
//! group it into [`Buckets`], then render to a `String` ([`render`]) or to
//! any [`std::io::Write`] ([`render_to`]), for a web response, a log or a
//! file.
//!
//! ```
//! use webstack::render::{render, render_to, Format, Links};
//! use webstack::{Buckets, Options, Similarity, Snapshot};
//!
//! let snapshot = Snapshot::capture(&Options::default().augment(false));
//! let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
//!
//! // A page for a browser…
//! let html = render(&snapshot, &buckets, Format::Html, &Links::default())?;
//! assert!(html.starts_with("<!DOCTYPE html>"));
//!
//! // …or text straight into a file or a log.
//! let mut log = Vec::new();
//! render_to(&mut log, &snapshot, &buckets, Format::Text, &Links::default())?;
//! assert!(String::from_utf8(log)?.starts_with("webstack "));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Formats
//!
//! - [`Format::Html`]: a self-contained page (inline CSS, no JavaScript)
//!   built from templates embedded in the binary. Every piece of program data
//!   goes through the template engine's HTML escaping; names are cut at 200
//!   characters with control characters escaped, member id lists at 64 ids.
//!   The page is streamed bucket by bucket and shows at most 1,000 buckets
//!   (largest first; it says how many smaller ones it left out).
//! - [`Format::Json`]: a stable, versioned document; see [`json`] for its
//!   schema.
//! - [`Format::Text`]: one block per bucket in the spirit of Go's
//!   `debug=2` goroutine dump, for `curl` and `grep`; see [`text`].
//!
//! Besides these, [`pprof`] (feature `pprof`, on by default) encodes the
//! buckets as Go's goroutine profile for fleet profilers; it is not a
//! [`Format`] (its output is binary, and [`render`] returns a `String`).
//!
//! # Where a frame comes from
//!
//! Frames are coloured and folded by [`Frame::origin`](crate::Frame::origin)
//! (see [`Origin::of`](crate::Origin::of)): the application's own
//! crates and dependencies are shown; std, runtime, webstack and unknown
//! frames are folded when two or more follow each other. Crates link to
//! docs.rs, std/core/alloc to doc.rust-lang.org.
//!
//! # Recursion
//!
//! In HTML and text, three or more levels of one function in a row are
//! folded into one line (HTML: a closed section holding every row):
//! `demo::descend × 256 (level = 255 → 0, limit = 300)`, the count of
//! levels and, per argument, its value when every level holds the same,
//! else its value at the innermost level → at the outermost (the order the
//! stack is shown in). Levels match on the function, not its line, so a
//! function recursing from two call sites, or whose innermost level stands
//! on another line, is one run. A level may span up to eight frames: with
//! native stacks (`augment=1`) frames between two levels (a closure, a
//! `poll` shim) that repeat the same way at every level are folded inside
//! the run (`…, 250 frames between`); mutual recursion (`even`, `odd`,
//! `even`, …) names each function. JSON keeps every frame;
//! [`Detail::fold`] off shows every frame in HTML and text too.

pub mod json;
#[cfg(feature = "pprof")]
pub mod pprof;
pub mod text;

mod html;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::group::{Bucket, BucketArg, BucketFrame, Buckets, Merged, Similarity};
use crate::record::value::Labelled;
use crate::snapshot::resolve::short_path;
use crate::snapshot::{Origin, Snapshot, DEFAULT_MAXMEM};

/// Output format of [`render`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// A self-contained HTML page. The default.
    #[default]
    Html,
    /// JSON, see [`json`].
    Json,
    /// Plain text, see [`text`].
    Text,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 3] = [Format::Html, Format::Json, Format::Text];

    /// The lowercase name used in query strings: `html`, `json` or `text`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Json => "json",
            Format::Text => "text",
        }
    }

    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
            Format::Text => "text/plain; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Format`] from anything but one of its lowercase
/// names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseFormatError;

impl fmt::Display for ParseFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("format must be one of: html, json, text")
    }
}

impl std::error::Error for ParseFormatError {}

impl FromStr for Format {
    type Err = ParseFormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|format| format.as_str() == s)
            .ok_or(ParseFormatError)
    }
}

/// What the page's links that switch similarity, augment or format point
/// at: the same path with the current query values, one of them changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    /// Path of the page, e.g. `/debug/webstack`. Default: `""` (links are
    /// bare query strings, relative to the current page).
    pub base_path: String,
    /// The current `augment` value. Default: `true`.
    pub augment: bool,
    /// The current `maxmem` value. Default: [`DEFAULT_MAXMEM`].
    pub maxmem: usize,
    /// The current similarity. Default: [`Similarity::AnyPointer`].
    pub similarity: Similarity,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            base_path: String::new(),
            augment: true,
            maxmem: DEFAULT_MAXMEM,
            similarity: Similarity::default(),
        }
    }
}

impl Links {
    /// The link to the page with the given values (the format only when it
    /// is not HTML).
    pub fn href(&self, augment: bool, similarity: Similarity, format: Format) -> String {
        let mut href = format!(
            "{}?augment={}&maxmem={}&similarity={}",
            self.base_path,
            u8::from(augment),
            self.maxmem,
            similarity.as_str()
        );
        if format != Format::Html {
            href.push_str("&format=");
            href.push_str(format.as_str());
        }
        href
    }
}

/// How much of each stack the HTML and text forms show; JSON always has
/// every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Detail {
    /// Fold recursion (three or more levels of one function in a row, see
    /// the [module docs](self#recursion)) and two or more std, runtime and
    /// webstack frames in a row into one line (text) or a closed section
    /// (HTML). Default: `true`; the served page's `fold=0` turns it off,
    /// showing every frame.
    pub fold: bool,
}

impl Default for Detail {
    fn default() -> Self {
        Detail { fold: true }
    }
}

impl Detail {
    /// Sets [`Detail::fold`].
    pub fn fold(mut self, fold: bool) -> Self {
        self.fold = fold;
        self
    }

    /// The query suffix that keeps this detail in a link (`&fold=0`).
    fn query(self) -> &'static str {
        if self.fold {
            ""
        } else {
            "&fold=0"
        }
    }
}

/// Rendering failed: a template error or a write error.
#[derive(Debug)]
pub struct RenderError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl RenderError {
    fn new<E: std::error::Error + Send + Sync + 'static>(what: &str, error: E) -> Self {
        let mut message = format!("{what}: {error}");
        let mut cause = error.source();
        while let Some(inner) = cause {
            message.push_str(": ");
            message.push_str(&inner.to_string());
            cause = inner.source();
        }
        RenderError {
            message,
            source: Some(Box::new(error)),
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rendering the snapshot failed: {}", self.message)
    }
}

impl std::error::Error for RenderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for RenderError {
    fn from(error: std::io::Error) -> Self {
        RenderError::new("write", error)
    }
}

/// Renders `buckets` (grouped from `snapshot`) as a `String`.
pub fn render(
    snapshot: &Snapshot,
    buckets: &Buckets,
    format: Format,
    links: &Links,
) -> Result<String, RenderError> {
    // A modest start: growth is amortised, and a large reservation counted
    // against a snapshot's memory for nothing (most buckets are small).
    let mut out = Vec::with_capacity(16 * 1024 + 256 * buckets.buckets.len().min(4096));
    render_to(&mut out, snapshot, buckets, format, links)?;
    // Every writer below only writes `str` data.
    String::from_utf8(out).map_err(|e| RenderError::new("utf-8", e))
}

/// Renders `buckets` into pieces of about [`CHUNK_BYTES`] each, for
/// streaming (the actix handler sends them as they are): the output is never
/// copied nor held twice, so rendering costs the output plus one piece.
pub fn render_chunks(
    snapshot: &Snapshot,
    buckets: &Buckets,
    format: Format,
    links: &Links,
) -> Result<Vec<Vec<u8>>, RenderError> {
    render_chunks_with(snapshot, buckets, format, links, Detail::default())
}

/// [`render_chunks`] with a [`Detail`] other than the default.
pub fn render_chunks_with(
    snapshot: &Snapshot,
    buckets: &Buckets,
    format: Format,
    links: &Links,
    detail: Detail,
) -> Result<Vec<Vec<u8>>, RenderError> {
    let mut out = Chunks::default();
    render_to_with(&mut out, snapshot, buckets, format, links, detail)?;
    Ok(out.finish())
}

/// Size of the pieces [`render_chunks`] produces.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A writer that fills fixed-capacity pieces instead of one growing buffer.
#[derive(Default)]
struct Chunks {
    done: Vec<Vec<u8>>,
    current: Vec<u8>,
}

impl Chunks {
    fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

impl Write for Chunks {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let written = buf.len();
        while !buf.is_empty() {
            if self.current.capacity() == 0 {
                self.current = Vec::with_capacity(CHUNK_BYTES);
            }
            let room = self.current.capacity() - self.current.len();
            let (now, later) = buf.split_at(room.min(buf.len()));
            self.current.extend_from_slice(now);
            buf = later;
            if self.current.len() == self.current.capacity() {
                self.done.push(std::mem::take(&mut self.current));
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `buckets` (grouped from `snapshot`) into `w`. Output is written
/// in many small pieces: give a buffered writer.
pub fn render_to<W: Write>(
    w: W,
    snapshot: &Snapshot,
    buckets: &Buckets,
    format: Format,
    links: &Links,
) -> Result<(), RenderError> {
    render_to_with(w, snapshot, buckets, format, links, Detail::default())
}

/// [`render_to`] with a [`Detail`] other than the default.
pub fn render_to_with<W: Write>(
    w: W,
    snapshot: &Snapshot,
    buckets: &Buckets,
    format: Format,
    links: &Links,
    detail: Detail,
) -> Result<(), RenderError> {
    match format {
        Format::Html => html::render(w, snapshot, buckets, links, detail),
        Format::Json => json::render(w, snapshot, buckets),
        Format::Text => text::render(w, snapshot, buckets, detail),
    }
}

/// How a run of a bucket's frames is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Run {
    /// Every frame on its own row.
    Shown,
    /// Std, runtime, webstack or unknown frames folded into one line that
    /// says how many ([`folded_summary`]).
    Folded,
    /// Recursion: the same `period` frames repeated at least
    /// [`RECURSION_LEVELS`] times, folded into one line naming the repeated
    /// function, how many times it repeats and how its arguments change
    /// ([`recursion_summary`]).
    Recursion {
        /// Frames per level: 1 for a function calling itself, more when
        /// other frames sit between its levels (the native frames of a
        /// merged stack, mutual recursion).
        period: usize,
    },
}

/// Fewest levels a recursion has to be folded: two calls in a row are as
/// easy to read as a line saying so.
pub(crate) const RECURSION_LEVELS: usize = 3;

/// Parses the HTML templates now, so the first page does not (about 40% of
/// a small program's first page). Called by the warm-up thread
/// [`crate::init`] starts.
pub(crate) fn warm_up() {
    html::warm_up();
}

/// Most frames one level of a recursion may span (the recursive function
/// and the frames between it and its next call).
pub(crate) const RECURSION_PERIOD: usize = 8;

/// The frames of a bucket cut into runs, each shown or folded. With `fold`
/// on, recursion is folded first: [`RECURSION_LEVELS`] or more levels of
/// the same function (see [`recursion_at`]). Then, outside recursions, two
/// or more frames in a row whose origin folds (std, runtime, webstack,
/// unknown) make a folded run; a single one is shown rather than hidden
/// behind a one-line fold. Shown runs that follow each other are one run.
/// With `fold` off, every frame is shown.
pub(crate) fn runs(frames: &[BucketFrame], fold: bool) -> Vec<(Range<usize>, Run)> {
    let mut runs: Vec<(Range<usize>, Run)> = Vec::new();
    let mut placed = 0;
    let mut i = 0;
    while fold && i < frames.len() {
        match recursion_at(frames, i) {
            Some((end, period)) => {
                origin_runs(frames, placed..i, &mut runs);
                runs.push((i..end, Run::Recursion { period }));
                placed = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if fold {
        origin_runs(frames, placed..frames.len(), &mut runs);
    } else if !frames.is_empty() {
        runs.push((0..frames.len(), Run::Shown));
    }
    runs
}

/// Cuts `range` of `frames` into shown runs and folded runs of frames whose
/// origin folds, appending them to `runs`.
fn origin_runs(frames: &[BucketFrame], range: Range<usize>, runs: &mut Vec<(Range<usize>, Run)>) {
    let mut start = range.start;
    while start < range.end {
        let folds = frames[start].origin.folds();
        let end = frames[start..range.end]
            .iter()
            .position(|f| f.origin.folds() != folds)
            .map_or(range.end, |n| start + n);
        let folded = folds && end - start > 1;
        match runs.last_mut() {
            Some((last, Run::Shown)) if !folded && last.end == start => last.end = end,
            _ => runs.push((start..end, if folded { Run::Folded } else { Run::Shown })),
        }
        start = end;
    }
}

/// Whether two frames are the same code for recursion: same function,
/// kind and argument count. The line may differ: a function that recurses
/// from two call sites, or whose innermost level stands on another line,
/// is still one recursion. So may the file's spelling: a level merged with
/// its native frame names the file as the debug information does, a level
/// deeper than the native stack was unwound as the shadow stack does.
fn same_code(a: &BucketFrame, b: &BucketFrame) -> bool {
    a.instrumented == b.instrumented && a.args.len() == b.args.len() && a.function == b.function
}

/// The recursion starting at `frames[i]`, as its end and its period: the
/// frame is one whose origin is shown (the application's or a
/// dependency's), the same code comes again within [`RECURSION_PERIOD`]
/// frames, the frames from `i` repeat with that period for at least
/// [`RECURSION_LEVELS`] levels, and the run ends at the last shown frame
/// of the repetition (frames between levels are inside, those after the
/// outermost level are not).
fn recursion_at(frames: &[BucketFrame], i: usize) -> Option<(usize, usize)> {
    let head = &frames[i];
    if head.origin.folds() {
        return None;
    }
    let period = frames[i + 1..]
        .iter()
        .take(RECURSION_PERIOD)
        .position(|f| same_code(head, f))?
        + 1;
    if i + period * (RECURSION_LEVELS - 1) >= frames.len() {
        return None;
    }
    let mut end = i + period;
    while end < frames.len() && same_code(&frames[end], &frames[end - period]) {
        end += 1;
    }
    let end = i + 1 + frames[i..end].iter().rposition(|f| !f.origin.folds())?;
    let levels = (end - i - 1) / period + 1;
    (levels >= RECURSION_LEVELS).then_some((end, period))
}

/// The line shown for a folded run of `n` frames.
pub(crate) fn folded_summary(n: usize) -> String {
    format!("{n} runtime and std frames")
}

/// The line shown for a folded recursion `frames` (a [`Run::Recursion`] of
/// that `period`): `demo::descend × 250 (level = 255 → 6, limit = 300)`.
/// Each repeated function is named with how many times it comes and, per
/// argument, its value when every level holds the same, else its value at
/// the first level shown → at the last (innermost → outermost, the order
/// the stack is shown in). Instrumented functions are named when the
/// period has any, else its frames that are not folded by origin; how many
/// other frames sit between the levels follows.
pub(crate) fn recursion_summary(
    frames: &[BucketFrame],
    period: usize,
    buckets: &Buckets,
) -> String {
    let period = period.clamp(1, frames.len().max(1));
    let level = &frames[..period.min(frames.len())];
    let any_instrumented = level.iter().any(|f| f.instrumented);
    let mut named = 0;
    let mut parts = Vec::new();
    for (k, head) in level.iter().enumerate() {
        let names = if any_instrumented {
            head.instrumented
        } else {
            !head.origin.folds()
        };
        if !names {
            continue;
        }
        let levels: Vec<&BucketFrame> = frames[k..].iter().step_by(period).collect();
        named += levels.len();
        let mut part = format!(
            "{} × {}",
            bounded(&head.function, FUNCTION_CHARS),
            levels.len()
        );
        if head.instrumented && !head.args.is_empty() {
            let args: Vec<String> = head
                .args
                .iter()
                .enumerate()
                .map(|(a, arg)| arg_range(arg.name, &levels, a, buckets))
                .collect();
            part.push_str(" (");
            part.push_str(&args.join(", "));
            part.push(')');
        }
        parts.push(part);
    }
    let mut summary = parts.join(", ");
    let between = frames.len() - named;
    if between > 0 {
        summary.push_str(&format!(", {between} frames between"));
    }
    summary
}

/// `name = v` when every level holds the same value, else `name = first →
/// last` (`first → … → last` when the ends agree but a level between does
/// not).
fn arg_range(name: &str, levels: &[&BucketFrame], a: usize, buckets: &Buckets) -> String {
    let value = |f: &BucketFrame| f.args.get(a).map(|arg| arg_value(arg, buckets));
    let first = levels.first().and_then(|f| value(f)).unwrap_or_default();
    let same = levels
        .windows(2)
        .all(|w| w[0].args.get(a).map(|x| x.value) == w[1].args.get(a).map(|x| x.value));
    if same {
        return format!("{name} = {first}");
    }
    let last = levels.last().and_then(|f| value(f)).unwrap_or_default();
    if first == last {
        format!("{name} = {first} → … → {last}")
    } else {
        format!("{name} = {first} → {last}")
    }
}

/// Where a folded recursion stands: the file of its first frame with the
/// distinct lines its levels are at, in order (`src/tree.rs:40, 44`; at
/// most four, then `…`).
pub(crate) fn recursion_location(
    frames: &[BucketFrame],
    period: usize,
    snapshot: &Snapshot,
) -> String {
    let Some(head) = frames.first() else {
        return String::new();
    };
    let mut lines: Vec<u32> = Vec::new();
    let mut more = false;
    for f in frames.iter().step_by(period.max(1)) {
        if f.line == 0 || lines.contains(&f.line) {
            continue;
        }
        if lines.len() == 4 {
            more = true;
            break;
        }
        lines.push(f.line);
    }
    let mut out =
        Location::new(&head.file, lines.first().copied().unwrap_or(0), snapshot).to_string();
    for line in lines.iter().skip(1) {
        out.push_str(&format!(", {line}"));
    }
    if more {
        out.push_str(", …");
    }
    out
}

/// A frame's location as a person reads it: its file shortened (see
/// [`short_path`]; `?` when unknown), with the line when there is one.
/// Displays without allocating.
pub(crate) struct Location<'a> {
    file: &'a str,
    line: u32,
}

impl<'a> Location<'a> {
    pub(crate) fn new(file: &'a str, line: u32, snapshot: &Snapshot) -> Self {
        let file = if file.is_empty() {
            "?"
        } else {
            short_path(file, snapshot.process.source_root.as_deref())
        };
        Location { file, line }
    }

    /// Whether the file is shown shortened from `file`.
    pub(crate) fn shortens(&self, file: &str) -> bool {
        self.file.len() != file.len() && !file.is_empty()
    }
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        Ok(())
    }
}

/// The documentation link of a crate, for crates that have one.
pub(crate) fn crate_docs(name: &str, origin: Origin) -> Option<String> {
    match origin {
        Origin::App | Origin::Unknown => None,
        Origin::Std => Some(format!("https://doc.rust-lang.org/{name}/")),
        Origin::Dependency | Origin::Runtime | Origin::Webstack => {
            Some(format!("https://docs.rs/{name}"))
        }
    }
}

/// An argument's value as shown: `*` when members differ, `#n` for a
/// labelled address, else the value's own text.
pub(crate) fn arg_value(arg: &BucketArg, buckets: &Buckets) -> String {
    match arg.value {
        Merged::Differs => "*".to_owned(),
        Merged::Same(value) => {
            Labelled(value, value.address().and_then(|a| buckets.label(a))).to_string()
        }
    }
}

/// `3~7 min`: both ends in the unit that suits the longer one; one number
/// when they are equal in that unit.
pub(crate) fn duration_range((min, max): (Duration, Duration)) -> String {
    let (unit, scale) = match max.as_secs() {
        0 => ("ms", 0.001),
        1..120 => ("s", 1.0),
        120..7200 => ("min", 60.0),
        7200..172_800 => ("h", 3600.0),
        _ => ("d", 86_400.0),
    };
    let lo = (min.as_secs_f64() / scale).floor() as u64;
    let hi = (max.as_secs_f64() / scale).floor() as u64;
    if lo == hi {
        format!("{hi} {unit}")
    } else {
        format!("{lo}~{hi} {unit}")
    }
}

/// `1.5 MiB`.
pub(crate) fn bytes(n: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `2026-11-25T17:41:51.123Z`.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// `1.234 ms`.
pub(crate) fn elapsed(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Characters escaped in names besides control characters: the Unicode
/// bidirectional controls, which could make a name read as something else.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// Bounds a name for display: control and bidirectional-control characters
/// escaped, at most `max` characters kept (then `…`).
pub(crate) fn bounded(name: &str, max: usize) -> Cow<'_, str> {
    if name.len() <= max && !name.chars().any(needs_escape) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len().min(max * 4));
    for (i, c) in name.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Cuts a name to at most `max` characters (then `…`), leaving every
/// character as it is: for JSON, whose own escaping keeps it exact.
pub(crate) fn truncated(name: &str, max: usize) -> Cow<'_, str> {
    match name.char_indices().nth(max) {
        None => Cow::Borrowed(name),
        Some((end, _)) => Cow::Owned(format!("{}…", &name[..end])),
    }
}

/// Longest thread or task name shown, in characters.
pub(crate) const NAME_CHARS: usize = 200;

/// Longest function name shown, in characters.
pub(crate) const FUNCTION_CHARS: usize = 1000;

/// Most member ids listed per bucket in HTML and text (JSON lists all).
pub(crate) const SHOWN_IDS: usize = 64;

/// A member name and the ids of the members that have it.
pub(crate) type NameGroup<'a> = (Cow<'a, str>, Vec<u64>);

/// The members of a bucket grouped by name, in order of first appearance,
/// with at most [`SHOWN_IDS`] ids in all; and how many ids were left out.
pub(crate) fn members(bucket: &Bucket) -> (Vec<NameGroup<'_>>, usize) {
    let mut groups: Vec<NameGroup<'_>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut shown = 0;
    for member in &bucket.members {
        if shown == SHOWN_IDS {
            break;
        }
        let i = *index.entry(&member.name).or_insert_with(|| {
            groups.push((bounded(&member.name, NAME_CHARS), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(member.id);
        shown += 1;
    }
    (groups, bucket.members.len() - shown)
}

/// What the page says of a task bucket's members beyond their ids, when
/// tokio or a worker thread knows them: `tokio id 5, 7; polls 1~12; running
/// on thread 3`. `None` for threads and tasks without a tokio id or a
/// worker.
pub(crate) fn task_line(bucket: &Bucket) -> Option<String> {
    let shown = || bucket.members.iter().take(SHOWN_IDS);
    let tokio: Vec<String> = shown()
        .filter_map(|m| m.tokio_id)
        .map(|id| id.to_string())
        .collect();
    let mut workers: Vec<u64> = shown().filter_map(|m| m.running_on).collect();
    workers.sort_unstable();
    workers.dedup();
    if tokio.is_empty() && workers.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !tokio.is_empty() {
        parts.push(format!("tokio id {}", tokio.join(", ")));
    }
    let polls = bucket.members.iter().filter_map(|m| m.polls);
    if let (Some(min), Some(max)) = (polls.clone().min(), polls.max()) {
        parts.push(if min == max {
            format!("polls {min}")
        } else {
            format!("polls {min}~{max}")
        });
    }
    if !workers.is_empty() {
        let workers: Vec<String> = workers.iter().map(u64::to_string).collect();
        parts.push(format!("running on thread {}", workers.join(", ")));
    }
    Some(parts.join("; "))
}

/// `elided 3 frames, torn`, or empty.
pub(crate) fn flags(bucket: &Bucket) -> String {
    let mut flags = Vec::new();
    if bucket.elided > 0 {
        flags.push(format!("{} frames elided", bucket.elided));
    }
    if bucket.torn {
        flags.push("torn read".to_owned());
    }
    flags.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let ms = Duration::from_millis;
        assert_eq!(duration_range((ms(3), ms(7))), "3~7 ms");
        assert_eq!(duration_range((ms(2000), ms(5500))), "2~5 s");
        assert_eq!(duration_range((ms(180_000), ms(420_000))), "3~7 min");
        assert_eq!(duration_range((ms(5000), ms(5900))), "5 s");
    }

    #[test]
    fn timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_092_511_123);
        assert_eq!(timestamp(t), "2025-11-25T17:41:51.123Z");
        assert_eq!(
            timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(bounded("a\u{1b}[31m", 10), "a\\u{1b}[31m");
        assert_eq!(bounded(&"x".repeat(300), 200).chars().count(), 201);
        assert!(matches!(bounded("main", 200), Cow::Borrowed(_)));
    }

    /// Every stack of up to seven frames over two application functions
    /// and a std one: the runs cover the frames once, in order; a folded
    /// recursion has at least three levels; its summary names a function.
    #[test]
    fn runs_partition_every_small_stack() {
        use crate::record::value::Value;
        let frame = |c: u32, level: u64| BucketFrame {
            function: Cow::Borrowed(["app::a", "app::b", "std::s"][c as usize]),
            file: Cow::Borrowed("src/app.rs"),
            line: 10 + c,
            awaiting: false,
            definition_line: None,
            instrumented: c < 2,
            args: if c < 2 {
                vec![BucketArg {
                    name: "n",
                    ty: "u64",
                    value: Merged::Same(Value::u64(level)),
                }]
            } else {
                Vec::new()
            },
            task: None,
            address: None,
            source: None,
            origin: if c < 2 { Origin::App } else { Origin::Std },
        };
        let snapshot = Snapshot::new(Vec::new());
        let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
        let mut recursions = 0;
        for len in 0..=7u32 {
            for code in 0..3u32.pow(len) {
                let frames: Vec<BucketFrame> = (0..len)
                    .map(|i| frame(code / 3u32.pow(i) % 3, u64::from(i)))
                    .collect();
                for fold in [true, false] {
                    let runs = runs(&frames, fold);
                    let mut next = 0;
                    for (range, run) in &runs {
                        assert_eq!(range.start, next, "{runs:?}");
                        assert!(range.end > range.start, "{runs:?}");
                        next = range.end;
                        if let Run::Recursion { period } = *run {
                            assert!(fold);
                            assert!(range.len() > period * (RECURSION_LEVELS - 1));
                            let summary =
                                recursion_summary(&frames[range.clone()], period, &buckets);
                            assert!(summary.starts_with("app::"), "{summary}");
                            recursions += 1;
                        }
                    }
                    assert_eq!(next, frames.len());
                }
            }
        }
        assert!(recursions > 0);
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse(), Ok(Format::Json));
        assert_eq!("JSON".parse::<Format>(), Err(ParseFormatError));
        assert_eq!(
            ParseFormatError.to_string(),
            "format must be one of: html, json, text"
        );
    }
}
