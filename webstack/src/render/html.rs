//! The HTML page: a view model built here, laid out by the tera templates in
//! `webstack/templates/` (embedded in the binary). The templates' names end
//! in `.html`, so tera escapes every value printed into them; nothing is
//! marked `safe`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::LazyLock;

use serde::Serialize;
use tera::{Context, Tera};

use super::{
    arg_value, bounded, bytes, crate_docs, duration_range, elapsed, flags, folded_summary, members,
    recursion_location, recursion_summary, runs, task_line, timestamp, Detail, Format, Links,
    Location, Origin, RenderError, Run, FUNCTION_CHARS, NAME_CHARS,
};
use crate::group::{Bucket, BucketFrame, Buckets, Merged, Similarity};
use crate::snapshot::resolve::crate_name;
use crate::snapshot::{Kind, Snapshot, State};

static TEMPLATES: LazyLock<Result<Tera, String>> = LazyLock::new(|| {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html"]);
    tera.add_raw_templates([
        ("style.css", include_str!("../../templates/style.css")),
        ("head.html", include_str!("../../templates/head.html")),
        ("bucket.html", include_str!("../../templates/bucket.html")),
        ("foot.html", include_str!("../../templates/foot.html")),
    ])
    .map_err(|e| RenderError::new("templates", e).to_string())?;
    Ok(tera)
});

/// What `head.html` and `foot.html` show; buckets are rendered one at a
/// time with `bucket.html`, so the page is streamed and never held whole.
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

#[derive(Serialize)]
struct BucketView<'a> {
    number: usize,
    count: usize,
    kind: &'static str,
    state: Cow<'a, str>,
    duration: String,
    members: Vec<MemberGroup<'a>>,
    more: usize,
    flags: String,
    /// Tokio ids, poll counts and worker threads of task members.
    task: Option<String>,
    serving: bool,
    created_by: Option<CreatedView<'a>>,
    groups: Vec<FrameGroup<'a>>,
    empty: Option<EmptyView>,
}

/// What a bucket without frames says instead of an empty table.
#[derive(Serialize)]
struct EmptyView {
    text: &'static str,
    link: Option<NavLink>,
}

#[derive(Serialize)]
struct MemberGroup<'a> {
    name: Cow<'a, str>,
    ids: String,
}

#[derive(Serialize)]
struct CreatedView<'a> {
    function: &'a str,
    origin: &'static str,
    location: String,
    /// The full path, when the location shows a shorter one.
    path: Option<&'a str>,
}

/// Frames shown one per row, or folded into a closed section whose summary
/// says what they are: std and runtime frames, or a recursion (then with
/// its location).
#[derive(Serialize)]
struct FrameGroup<'a> {
    folded: bool,
    recursion: bool,
    summary: String,
    location: String,
    frames: Vec<FrameView<'a>>,
}

#[derive(Serialize)]
struct FrameView<'a> {
    index: usize,
    krate: &'a str,
    crate_url: Option<String>,
    location: String,
    /// The full path, when the location shows a shorter one.
    path: Option<&'a str>,
    function: Cow<'a, str>,
    origin: &'static str,
    marker: &'static str,
    instrumented: bool,
    /// The location is the `.await` the frame is suspended at.
    awaiting: bool,
    definition_line: Option<u32>,
    args: Vec<ArgView>,
    task: Option<u64>,
    address: Option<String>,
    source: Option<&'a str>,
}

#[derive(Serialize)]
struct ArgView {
    name: &'static str,
    ty: &'static str,
    value: String,
    differs: bool,
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
    buckets: &Buckets,
    links: &Links,
    detail: Detail,
) -> Result<(), RenderError> {
    let tera = TEMPLATES
        .as_ref()
        .map_err(|e| RenderError::new("templates", Message(e.clone())))?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, w);
    let page = page(snapshot, buckets, links, detail);
    let context = Context::from_serialize(&page).map_err(|e| RenderError::new("html", e))?;
    tera.render_to("head.html", &context, &mut w)
        .map_err(|e| RenderError::new("html", e))?;
    let mut context = Context::new();
    for (i, b) in buckets.buckets.iter().take(MAX_BUCKETS).enumerate() {
        context.insert("b", &bucket(i + 1, b, snapshot, buckets, links, detail));
        tera.render_to("bucket.html", &context, &mut w)
            .map_err(|e| RenderError::new("html", e))?;
    }
    let context = Context::from_serialize(&page).map_err(|e| RenderError::new("html", e))?;
    tera.render_to("foot.html", &context, &mut w)
        .map_err(|e| RenderError::new("html", e))?;
    w.flush()?;
    Ok(())
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
/// JSON forms list them all. Rendering a bucket through the templates costs
/// on the order of 0.1 ms, so this bounds a page to a fraction of a second
/// and a few megabytes even when every routine is unique.
pub(crate) const MAX_BUCKETS: usize = 1000;

fn page<'a>(snapshot: &'a Snapshot, buckets: &Buckets, links: &Links, detail: Detail) -> Page<'a> {
    let href =
        |augment, similarity, format| links.href(augment, similarity, format) + detail.query();
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
        similarity: buckets.similarity.as_str(),
        augmented: snapshot.augmented,
        similarity_links: Similarity::ALL
            .iter()
            .map(|&s| NavLink {
                label: s.as_str(),
                href: href(links.augment, s, Format::Html),
                current: s == buckets.similarity,
            })
            .collect(),
        augment_link: NavLink {
            label: if links.augment {
                "without native stacks"
            } else {
                "with native stacks"
            },
            href: href(!links.augment, links.similarity, Format::Html),
            current: false,
        },
        format_links: [Format::Json, Format::Text]
            .iter()
            .map(|&f| NavLink {
                label: f.as_str(),
                href: href(links.augment, links.similarity, f),
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

fn bucket<'a>(
    number: usize,
    b: &'a Bucket,
    snapshot: &Snapshot,
    buckets: &Buckets,
    links: &Links,
    detail: Detail,
) -> BucketView<'a> {
    let (groups, more) = members(b);
    let members = groups
        .into_iter()
        .map(|(name, ids)| MemberGroup {
            name,
            ids: ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let views: Vec<FrameView<'a>> = b
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| frame(i, f, b.kind, snapshot, buckets))
        .collect();
    let mut views = views.into_iter();
    let groups = runs(&b.frames, detail.fold)
        .into_iter()
        .map(|(range, run)| {
            let frames = &b.frames[range.clone()];
            let (summary, location) = match run {
                Run::Shown => (String::new(), String::new()),
                Run::Folded => (folded_summary(range.len()), String::new()),
                Run::Recursion { period } => (
                    recursion_summary(frames, period, buckets),
                    recursion_location(frames, period, snapshot),
                ),
            };
            FrameGroup {
                folded: run != Run::Shown,
                recursion: matches!(run, Run::Recursion { .. }),
                summary,
                location,
                frames: views.by_ref().take(range.len()).collect(),
            }
        })
        .collect();
    // A thread without frames: with augment=0, one that ran nothing
    // instrumented yet (the serving thread, a runtime's workers).
    let empty = b.frames.is_empty().then(|| EmptyView {
        text: match (b.kind, &b.state, links.augment) {
            (Kind::Thread, _, true) => "no frames were captured for this thread",
            (Kind::Thread, _, false) => "this thread has no instrumented frames",
            (Kind::Task, State::Running, _) => {
                "running; its frames are on the stack of the thread polling it"
            }
            (Kind::Task, _, _) => "no instrumented frame is pending in this task",
        },
        link: (!links.augment).then(|| NavLink {
            label: "show native stacks",
            href: links.href(true, links.similarity, Format::Html) + detail.query(),
            current: false,
        }),
    });
    BucketView {
        number,
        count: b.count,
        kind: match b.kind {
            Kind::Thread => "thread",
            Kind::Task => "task",
        },
        state: bounded(b.state.as_str(), NAME_CHARS),
        duration: duration_range(b.waiting),
        members,
        more,
        flags: flags(b),
        task: task_line(b),
        serving: b.serving,
        created_by: b.created_by.as_ref().map(|c| {
            let location = Location::new(c.file, c.line, snapshot);
            CreatedView {
                function: c.function,
                origin: c.origin.as_str(),
                path: location.shortens(c.file).then_some(c.file),
                location: location.to_string(),
            }
        }),
        groups,
        empty,
    }
}

fn frame<'a>(
    index: usize,
    f: &'a BucketFrame,
    kind: Kind,
    snapshot: &Snapshot,
    buckets: &Buckets,
) -> FrameView<'a> {
    let origin = f.origin;
    let krate = crate_name(&f.function).unwrap_or("");
    let location = Location::new(&f.file, f.line, snapshot);
    FrameView {
        index,
        krate,
        crate_url: (!krate.is_empty())
            .then(|| crate_docs(krate, origin))
            .flatten(),
        path: location.shortens(&f.file).then_some(&*f.file),
        location: location.to_string(),
        function: bounded(&f.function, FUNCTION_CHARS),
        origin: origin.as_str(),
        marker: marker(origin),
        instrumented: f.instrumented,
        awaiting: f.awaiting,
        definition_line: f.definition_line,
        args: f
            .args
            .iter()
            .map(|arg| ArgView {
                name: arg.name,
                ty: arg.ty,
                value: arg_value(arg, buckets),
                differs: arg.value == Merged::Differs,
            })
            .collect(),
        // A task's own frames name it in the header already.
        task: f.task.filter(|_| kind == Kind::Thread),
        address: f.address.map(|a| format!("{a:#x}")),
        source: f.source.as_deref(),
    }
}
