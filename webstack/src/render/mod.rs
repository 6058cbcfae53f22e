//! Rendering a grouped [`Snapshot`] as an HTML page, JSON or plain text.
//!
//! The pipeline does not depend on a web framework: capture a [`Snapshot`],
//! group it into [`Buckets`], then render to a `String` ([`render`]) or to
//! any [`std::io::Write`] ([`render_to`]), for a web response, a log or a
//! file.
//!
//! ```
//! use webstack::render::{render, render_to, Format};
//! use webstack::{Buckets, Snapshot, View};
//!
//! let view = View::default().augment(false);
//! let snapshot = Snapshot::capture(&view.options());
//! let buckets = Buckets::aggregate(&snapshot, view.similarity);
//!
//! // A page for a browser…
//! let html = render(&snapshot, &buckets, &view)?;
//! assert!(html.starts_with("<!DOCTYPE html>"));
//!
//! // …or text straight into a file or a log.
//! let mut log = Vec::new();
//! render_to(&mut log, &snapshot, &buckets, &view.format(Format::Text))?;
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
//! [`View::fold`] off shows every frame in HTML and text too.

pub mod json;
#[cfg(feature = "pprof")]
pub mod pprof;
pub mod text;

mod fold;
mod html;
mod words;

use std::fmt;
use std::io::Write;

use crate::group::Buckets;
use crate::snapshot::Snapshot;
use crate::view::View;
pub use crate::view::{Format, ParseFormatError};

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

/// Renders `buckets` (grouped from `snapshot`) as a `String`, in the
/// view's format and fold (its `augment`, `maxmem` and `similarity` go into
/// the HTML page's links).
pub fn render(
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
    view: &View,
) -> Result<String, RenderError> {
    // A modest start: growth is amortised, and a large reservation counted
    // against a snapshot's memory for nothing (most buckets are small).
    let mut out = Vec::with_capacity(16 * 1024 + 256 * buckets.buckets.len().min(4096));
    render_to(&mut out, snapshot, buckets, view)?;
    // Every writer below only writes `str` data.
    String::from_utf8(out).map_err(|e| RenderError::new("utf-8", e))
}

/// Renders `buckets` into pieces of about [`CHUNK_BYTES`] each, for
/// streaming (the actix handler sends them as they are): the output is never
/// copied nor held twice, so rendering costs the output plus one piece.
pub fn render_chunks(
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
    view: &View,
) -> Result<Vec<Vec<u8>>, RenderError> {
    let mut out = Chunks::default();
    render_to(&mut out, snapshot, buckets, view)?;
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
    buckets: &Buckets<'_>,
    view: &View,
) -> Result<(), RenderError> {
    match view.format {
        Format::Html => html::render(w, snapshot, buckets, view),
        Format::Json => json::render(w, snapshot, buckets),
        Format::Text => text::render(w, snapshot, buckets, view.fold),
    }
}

/// Parses the HTML templates now, so the first page does not (about 40% of
/// a small program's first page). Called by the warm-up thread
/// [`crate::init`] starts.
pub(crate) fn warm_up() {
    html::warm_up();
}
