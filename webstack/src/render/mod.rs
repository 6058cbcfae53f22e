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

mod fold;
mod html;
mod words;

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use crate::group::{Buckets, Similarity};
use crate::snapshot::{Snapshot, DEFAULT_MAXMEM};

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

/// Parses the HTML templates now, so the first page does not (about 40% of
/// a small program's first page). Called by the warm-up thread
/// [`crate::init`] starts.
pub(crate) fn warm_up() {
    html::warm_up();
}

#[cfg(test)]
mod tests {
    use super::*;

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
