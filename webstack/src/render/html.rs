//! The HTML page: a view model built here, laid out by the tera templates in
//! `webstack/templates/` (embedded in the binary). The templates' names end
//! in `.html`, so tera escapes every value printed into them; nothing is
//! marked `safe`.
//!
//! Every byte of the page is written by a template; this module only moves
//! the templates' output around. The view is formatted here (strings, with
//! frames and smaller lists as arrays), so a template only looks a value up
//! and prints it. Buckets are rendered a chunk at a time (`bucket.html`),
//! and their frame rows separately (`rows.html`), once per distinct row on
//! the page: buckets repeat most rows (the runtime's and std's frames below
//! every parked thread), and tera costs about a microsecond per value
//! looked up. `bucket.html` writes a marker where a group's rows go and
//! the rows are copied in there; neither the marker nor the end of a row
//! can come from a value, since tera escapes `<` and `/`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::ops::Range;

use serde::Serialize;
use serde_json::{json, Value};
use tera::{Context, Tera};

use super::fold::{folded_summary, recursion_location, recursion_summary, runs, Run};
use super::words::{
    arg_value, bounded, bytes, crate_docs, creation, duration_range, elapsed, flags, members,
    task_line, timestamp, Location, FUNCTION_CHARS, NAME_CHARS, NOTE_CHARS,
};
use super::{Format, RenderError};
use crate::group::{Bucket, BucketFrame, Buckets, Merged, Similarity};
use crate::hash::FxBuild;
use crate::snapshot::resolve::crate_name;
use crate::snapshot::{Kind, Origin, Snapshot, State};
use crate::view::View;

/// Parses the templates if no page did yet.
pub(super) fn warm_up() {
    TEMPLATES.get();
}

/// Parsed by the warm-up thread, outside the fork gate: see
/// [`crate::fork::Lazy`].
static TEMPLATES: crate::fork::Lazy<Result<Tera, String>> = crate::fork::Lazy::new(|| {
    crate::fork::hooks::parsing_templates();
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.set_escape_fn(escape);
    tera.add_raw_templates([
        ("style.css", include_str!("../../templates/style.css")),
        ("head.html", include_str!("../../templates/head.html")),
        ("bucket.html", include_str!("../../templates/bucket.html")),
        ("rows.html", include_str!("../../templates/rows.html")),
        ("foot.html", include_str!("../../templates/foot.html")),
    ])
    .map_err(|e| RenderError::new("templates", e).to_string())?;
    Ok(tera)
});

/// What `head.html` and `foot.html` show; buckets are rendered a
/// chunk at a time with `bucket.html` (and their distinct frame rows with
/// `rows.html`), so the page is streamed and never held whole: what is held
/// is a chunk and the rows rendered so far.
#[derive(Serialize)]
struct Page<'a> {
    version: &'a str,
    captured_at: String,
    capture_time: String,
    threads: usize,
    tasks: usize,
    buckets_total: usize,
    bytes_used: String,
    maxmem: String,
    left_out: usize,
    left_out_threads: usize,
    left_out_tasks: usize,
    untracked_tasks: usize,
    task_traces: Option<String>,
    similarity: &'static str,
    augmented: bool,
    similarity_links: Vec<NavLink>,
    augment_link: NavLink,
    format_links: Vec<NavLink>,
    hidden_buckets: usize,
    hidden_routines: usize,
    legend: Vec<LegendItem>,
    meta: Vec<MetaItem>,
}

#[derive(Serialize)]
struct NavLink {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Serialize)]
struct LegendItem {
    origin: &'static str,
    marker: &'static str,
    text: &'static str,
}

#[derive(Serialize)]
struct MetaItem {
    name: &'static str,
    value: String,
}

fn marker(origin: Origin) -> &'static str {
    match origin {
        Origin::App => "app",
        Origin::Dependency => "dep",
        Origin::Std => "std",
        Origin::Runtime => "rt",
        Origin::Webstack => "ws",
        Origin::Unknown => "?",
    }
}

const LEGEND: [(Origin, &str); 6] = [
    (Origin::App, "the application's own crates"),
    (Origin::Dependency, "dependencies (linked to docs.rs)"),
    (
        Origin::Std,
        "std, core, alloc and C libraries (linked to doc.rust-lang.org)",
    ),
    (Origin::Runtime, "async runtime: tokio, actix, futures, …"),
    (Origin::Webstack, "webstack itself"),
    (Origin::Unknown, "addresses without a symbol"),
];

pub(super) fn render<W: Write>(
    w: W,
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
    view: &View,
) -> Result<(), RenderError> {
    let tera = TEMPLATES
        .as_ref()
        .map_err(|e| RenderError::new("templates", Message(e.clone())))?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, w);
    let page = page(snapshot, buckets, view);
    let context = Context::from_serialize(&page).map_err(|e| RenderError::new("html", e))?;
    tera.render_to("head.html", &context, &mut w)
        .map_err(|e| RenderError::new("html", e))?;
    let mut rows = Rows {
        html: Vec::with_capacity(32 * 1024),
        ..Rows::default()
    };
    let mut chunk = Chunk {
        out: Vec::with_capacity(32 * 1024),
        ..Chunk::default()
    };
    let input = Input {
        snapshot,
        buckets,
        view,
    };
    let shown = &buckets.buckets[..buckets.buckets.len().min(MAX_BUCKETS)];
    for (i, b) in shown.iter().enumerate() {
        let shown_bucket = bucket(i + 1, b, &input, &mut rows, &mut chunk);
        chunk.buckets.push(shown_bucket);
        if chunk.frames >= CHUNK_FRAMES || i + 1 == shown.len() {
            render_chunk(tera, &mut chunk, &mut rows, &mut w)?;
            rows.forget_past(MAX_CACHED_ROW_BYTES);
        }
    }
    let context = Context::from_serialize(&page).map_err(|e| RenderError::new("html", e))?;
    tera.render_to("foot.html", &context, &mut w)
        .map_err(|e| RenderError::new("html", e))?;
    w.flush()?;
    Ok(())
}

/// What the page is rendered from, as [`render`] was given it.
#[derive(Clone, Copy)]
struct Input<'s> {
    snapshot: &'s Snapshot,
    buckets: &'s Buckets<'s>,
    view: &'s View,
}

#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

/// Most buckets shown on one page. Buckets come largest first, so what is
/// left out are the rarest stacks; the page says how many, and the text and
/// JSON forms list them all. A bucket of distinct frames costs tens of
/// microseconds through the templates (several times its JSON form), so
/// this bounds a page to tens of milliseconds and a few megabytes even when
/// every routine is unique.
pub(crate) const MAX_BUCKETS: usize = 1000;

fn page<'a>(snapshot: &'a Snapshot, buckets: &Buckets<'_>, view: &View) -> Page<'a> {
    // The page's links: this view with one value changed.
    let href = |augment, similarity, format| {
        View {
            augment,
            similarity,
            format,
            ..*view
        }
        .query()
    };
    let process = &snapshot.process;
    Page {
        version: &process.webstack,
        captured_at: timestamp(snapshot.captured_at),
        capture_time: elapsed(snapshot.capture_time),
        threads: snapshot.threads(),
        tasks: snapshot.tasks(),
        buckets_total: buckets.buckets.len(),
        bytes_used: bytes(snapshot.bytes_used),
        maxmem: bytes(snapshot.maxmem),
        left_out: snapshot.left_out.threads + snapshot.left_out.tasks,
        left_out_threads: snapshot.left_out.threads,
        left_out_tasks: snapshot.left_out.tasks,
        untracked_tasks: snapshot.left_out.untracked_tasks,
        task_traces: snapshot
            .task_traces
            .as_deref()
            .map(|note| bounded(note, NOTE_CHARS).into_owned()),
        similarity: buckets.similarity.as_str(),
        augmented: snapshot.augmented,
        similarity_links: Similarity::ALL
            .iter()
            .map(|&s| NavLink {
                label: s.as_str(),
                href: href(view.augment, s, Format::Html),
                current: s == buckets.similarity,
            })
            .collect(),
        augment_link: NavLink {
            label: if view.augment {
                "without native stacks"
            } else {
                "with native stacks"
            },
            href: href(!view.augment, view.similarity, Format::Html),
            current: false,
        },
        format_links: [Format::Json, Format::Text]
            .iter()
            .map(|&f| NavLink {
                label: f.as_str(),
                href: href(view.augment, view.similarity, f),
                current: false,
            })
            .collect(),
        hidden_buckets: buckets.buckets.len().saturating_sub(MAX_BUCKETS),
        hidden_routines: buckets
            .buckets
            .iter()
            .skip(MAX_BUCKETS)
            .map(|b| b.count)
            .sum(),
        legend: LEGEND
            .iter()
            .map(|&(origin, text)| LegendItem {
                origin: origin.as_str(),
                marker: marker(origin),
                text,
            })
            .collect(),
        meta: vec![
            MetaItem {
                name: "pid",
                value: process.pid.to_string(),
            },
            MetaItem {
                name: "executable",
                value: bounded(&process.exe, FUNCTION_CHARS).into_owned(),
            },
            MetaItem {
                name: "host",
                value: bounded(&process.host, NAME_CHARS).into_owned(),
            },
            MetaItem {
                name: "uptime",
                value: format!("{:.1} s", process.uptime.as_secs_f64()),
            },
            MetaItem {
                name: "webstack",
                value: process.webstack.to_string(),
            },
            MetaItem {
                name: "platform",
                value: process.platform.to_string(),
            },
            MetaItem {
                name: "captured at",
                value: timestamp(snapshot.captured_at),
            },
            MetaItem {
                name: "native stacks",
                value: if snapshot.augmented { "yes" } else { "no" }.to_owned(),
            },
        ],
    }
}

/// Where a group's rows go in the output of `bucket.html`. It cannot come
/// from a value: tera escapes `<` in every value.
const ROWS_MARKER: &[u8] = b"<!--rows-->";

/// The end of every row `rows.html` writes (no value can contain it: `<`
/// and `/` are escaped).
const ROW_END: &[u8] = b"</tr>\n";

/// Frame rows rendered so far on this page, by frame. Buckets share most of
/// their frames (every thread parked in the runtime has the same native
/// frames below its own code), so each distinct row goes through
/// `rows.html` once and is copied where it repeats.
#[derive(Default)]
struct Rows<'a> {
    /// The rows as `rows.html` wrote them, one after another.
    html: Vec<u8>,
    /// Where each row is in `html`, by row id.
    spans: Vec<Range<usize>>,
    /// Row id by what the row shows; ids of rows not rendered yet are at
    /// or past `spans.len()`.
    ids: HashMap<RowKey<'a>, usize, FxBuild>,
}

/// What a row shows: the frame, its position, and whether a polled task
/// is named in it (only in threads' buckets). Rows with equal keys render
/// the same bytes.
#[derive(PartialEq, Eq)]
struct RowKey<'a> {
    index: usize,
    thread: bool,
    frame: &'a BucketFrame,
}

impl Hash for RowKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let f = self.frame;
        self.index.hash(state);
        self.thread.hash(state);
        f.function.hash(state);
        f.file.hash(state);
        f.line.hash(state);
        f.args.hash(state);
        f.address.hash(state);
        f.task.hash(state);
    }
}

/// HTML of rendered rows kept for reuse by later chunks. Past it the cache
/// starts again from empty, so that a page of mostly distinct rows does not
/// hold a second copy of itself: a page's memory is bounded by `maxmem`,
/// 1 MiB and its output (tests/hardening_memory.rs).
const MAX_CACHED_ROW_BYTES: usize = 128 * 1024;

impl<'a> Rows<'a> {
    /// Forgets every rendered row once their HTML exceeds `max` bytes (rows
    /// seen again are rendered again). Only between chunks: a chunk's
    /// groups refer to rows by id until it is written.
    fn forget_past(&mut self, max: usize) {
        if self.html.len() > max {
            self.html.clear();
            self.html.shrink_to(max);
            self.spans.clear();
            self.ids.clear();
        }
    }

    /// The id of the row for `frame`, the `index`th of a bucket of `kind`;
    /// a row not seen before is queued in `chunk` for `rows.html`.
    fn id(
        &mut self,
        index: usize,
        frame: &'a BucketFrame,
        kind: Kind,
        snapshot: &Snapshot,
        buckets: &Buckets<'_>,
        chunk: &mut Chunk,
    ) -> usize {
        let key = RowKey {
            index,
            thread: kind == Kind::Thread,
            frame,
        };
        let next = self.spans.len() + chunk.rows.len();
        *self.ids.entry(key).or_insert_with(|| {
            chunk
                .rows
                .push(self::frame(index, frame, kind, snapshot, buckets));
            next
        })
    }
}

/// Buckets waiting for one call of `bucket.html`, with the rows they need
/// that are not rendered yet.
#[derive(Default)]
struct Chunk {
    buckets: Vec<Value>,
    /// Row ids of each frame group, in the order the groups are written.
    groups: Vec<Vec<usize>>,
    /// New rows for `rows.html`, in id order.
    rows: Vec<Value>,
    frames: usize,
    /// What `bucket.html` wrote, kept from chunk to chunk rather than grown
    /// anew for each (large allocations make glibc consolidate the many
    /// small blocks tera frees).
    out: Vec<u8>,
}

/// Renders the chunk's new rows with `rows.html`, then its buckets with
/// `bucket.html`, writing each group's rows where `bucket.html` marks them.
fn render_chunk<W: Write>(
    tera: &Tera,
    chunk: &mut Chunk,
    rows: &mut Rows<'_>,
    w: &mut W,
) -> Result<(), RenderError> {
    let broken = |what: &str| RenderError::new("html", Message(format!("{what} do not match")));
    if !chunk.rows.is_empty() {
        let count = chunk.rows.len();
        let start = rows.html.len();
        let context = Context::from_value(json!({ "rows": std::mem::take(&mut chunk.rows) }))
            .map_err(|e| RenderError::new("html", e))?;
        tera.render_to("rows.html", &context, &mut rows.html)
            .map_err(|e| RenderError::new("html", e))?;
        let mut at = start;
        for _ in 0..count {
            let end = find(&rows.html[at..], ROW_END)
                .map(|i| at + i + ROW_END.len())
                .ok_or_else(|| broken("rows"))?;
            rows.spans.push(at..end);
            at = end;
        }
        if at != rows.html.len() {
            return Err(broken("rows"));
        }
    }
    let context = Context::from_value(json!({ "buckets": std::mem::take(&mut chunk.buckets) }))
        .map_err(|e| RenderError::new("html", e))?;
    chunk.out.clear();
    tera.render_to("bucket.html", &context, &mut chunk.out)
        .map_err(|e| RenderError::new("html", e))?;
    let mut rest = &chunk.out[..];
    for group in chunk.groups.drain(..) {
        let at = find(rest, ROWS_MARKER).ok_or_else(|| broken("frame groups"))?;
        w.write_all(&rest[..at])?;
        for id in group {
            w.write_all(&rows.html[rows.spans[id].clone()])?;
        }
        rest = &rest[at + ROWS_MARKER.len()..];
    }
    if find(rest, ROWS_MARKER).is_some() {
        return Err(broken("frame groups"));
    }
    w.write_all(rest)?;
    chunk.frames = 0;
    Ok(())
}

/// Where `needle` (which starts with `<`) first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = haystack[from..].iter().position(|&b| b == needle[0]) {
        if haystack[from + i..].starts_with(needle) {
            return Some(from + i);
        }
        from += i + 1;
    }
    None
}

/// Frames (plus one per bucket) rendered by one call of `bucket.html`: few
/// enough that the view of a chunk stays small, enough that setting up a
/// template call is paid rarely.
const CHUNK_FRAMES: usize = 256;

/// HTML escaping for tera's autoescape: the characters and entities of
/// `tera::escape_html` (`& < > " ' /`), copying the runs between them
/// whole instead of character by character.
fn escape(input: &str) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 8);
    let mut last = 0;
    for (i, byte) in input.bytes().enumerate() {
        let entity = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            b'/' => "&#x2F;",
            _ => continue,
        };
        // `byte` is ASCII, so `i` and `i + 1` are character boundaries.
        out.push_str(&input[last..i]);
        out.push_str(entity);
        last = i + 1;
    }
    out.push_str(&input[last..]);
    out
}

/// `0x1f2e`, as `{:#x}` writes it, without the formatting machinery (a
/// page of native stacks has thousands of addresses).
fn hex(address: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 18];
    let mut at = buf.len();
    let mut rest = address;
    loop {
        at -= 1;
        buf[at] = DIGITS[(rest & 0xf) as usize];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(2 + buf.len() - at);
    out.push_str("0x");
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
    out
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn optional(s: Option<impl Into<String>>) -> Value {
    s.map_or(Value::Null, string)
}

/// A bucket's view for `bucket.html`: strings formatted here, so the
/// template only looks values up and prints them (escaped). Frames, their
/// arguments, member groups and frame groups are arrays whose positions
/// the template's header lists; the bucket itself is an object.
fn bucket<'a>(
    number: usize,
    b: &'a Bucket<'_>,
    input: &Input<'_>,
    rows: &mut Rows<'a>,
    chunk: &mut Chunk,
) -> Value {
    let Input {
        snapshot,
        buckets,
        view,
    } = *input;
    let (groups, more) = members(b);
    let members: Vec<Value> = groups
        .into_iter()
        .map(|(name, ids)| {
            let mut list = String::with_capacity(ids.len() * 6);
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    list.push_str(", ");
                }
                let _ = write!(list, "{id}");
            }
            Value::Array(vec![string(name), Value::String(list)])
        })
        .collect();
    chunk.frames += b.frames.len() + 1;
    let groups: Vec<Value> = runs(&b.frames, view.fold)
        .into_iter()
        .map(|(range, run)| {
            let ids = range
                .clone()
                .map(|i| rows.id(i, &b.frames[i], b.kind, snapshot, buckets, chunk))
                .collect();
            chunk.groups.push(ids);
            let frames = &b.frames[range.clone()];
            let (summary, location) = match run {
                Run::Shown => (String::new(), String::new()),
                Run::Folded => (folded_summary(range.len()), String::new()),
                Run::Recursion { period } => (
                    recursion_summary(frames, period, buckets),
                    recursion_location(frames, period, snapshot),
                ),
            };
            Value::Array(vec![
                Value::Bool(run != Run::Shown),
                Value::Bool(matches!(run, Run::Recursion { .. })),
                Value::String(summary),
                Value::String(location),
            ])
        })
        .collect();
    // A thread without frames: with augment=0, one that ran nothing
    // instrumented yet (the serving thread, a runtime's workers).
    let empty = b.frames.is_empty().then(|| {
        let text = match (b.kind, &b.state, view.augment) {
            (Kind::Thread, _, true) => "no frames were captured for this thread",
            (Kind::Thread, _, false) => "this thread has no instrumented frames",
            (Kind::Task, State::Running, _) => {
                "running; its frames are on the stack of the thread polling it"
            }
            (Kind::Task, _, _) => "no instrumented frame is pending in this task",
        };
        let href = (!view.augment).then(|| {
            View {
                augment: true,
                format: Format::Html,
                ..*view
            }
            .query()
        });
        Value::Array(vec![
            string(text),
            optional(href),
            string("show native stacks"),
        ])
    });
    let created_by = b.created_by.as_ref().map(|c| {
        let location = Location::new(c.file, c.line, snapshot);
        let (verb, function) = creation(b.kind, c);
        Value::Array(vec![
            string(verb),
            optional(function),
            string(c.origin.as_str()),
            Value::String(location.to_string()),
            optional(location.shortens(c.file).then_some(c.file)),
        ])
    });
    json!({
        "number": number,
        "count": b.count,
        "kind": match b.kind {
            Kind::Thread => "thread",
            Kind::Task => "task",
        },
        "state": bounded(b.state.as_str(), NAME_CHARS),
        "duration": duration_range(b.waiting),
        "members": members,
        "more": more,
        "flags": flags(b),
        "task": task_line(b),
        "serving": b.serving,
        "created_by": created_by,
        "groups": groups,
        "empty": empty,
    })
}

/// One frame as an array, in the order `bucket.html` lists.
fn frame(
    index: usize,
    f: &BucketFrame,
    kind: Kind,
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
) -> Value {
    let origin = f.origin;
    let krate = crate_name(&f.function).unwrap_or("");
    let location = Location::new(&f.file, f.line, snapshot);
    let args = f
        .args
        .iter()
        .map(|arg| {
            Value::Array(vec![
                string(arg.name),
                string(arg.ty),
                Value::String(arg_value(arg, buckets)),
                Value::Bool(arg.value == Merged::Differs),
            ])
        })
        .collect();
    Value::Array(vec![
        string(origin.as_str()),
        Value::from(index),
        string(krate),
        optional(
            (!krate.is_empty())
                .then(|| crate_docs(krate, origin))
                .flatten(),
        ),
        Value::String(location.to_string()),
        optional(location.shortens(&f.file).then_some(&*f.file)),
        string(marker(origin)),
        string(bounded(&f.function, FUNCTION_CHARS)),
        optional(f.address.map(hex)),
        optional(f.source.as_deref()),
        Value::Bool(f.awaiting),
        f.definition_line.map_or(Value::Null, Value::from),
        Value::Bool(f.instrumented),
        Value::Array(args),
        // A task's own frames name it in the header already.
        f.task
            .filter(|_| kind == Kind::Thread)
            .map_or(Value::Null, Value::from),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_writes_what_tera_escape_html_writes() {
        for input in [
            "",
            "plain",
            "<script>alert('x')</script>",
            "a&b\"c'd/e<f>g",
            "zoë → <ü> & ‘quotes’ \u{7}",
            "&&&&",
            "/",
        ] {
            assert_eq!(escape(input), tera::escape_html(input), "{input:?}");
        }
    }

    #[test]
    fn hex_writes_what_format_writes() {
        for address in [0, 1, 0xf, 0x10, 0x1234, 0x5555_5555_0040, u64::MAX] {
            assert_eq!(hex(address), format!("{address:#x}"));
        }
    }
}
