//! The JSON form of grouped buckets ([`Format::Json`](super::Format::Json)),
//! as served with `format=json`.
//!
//! One object named `"schema": "page"`: the capture's figures (`version`,
//! `similarity`, `captured_at`, `capture_time_us`, `maxmem`, `bytes_used`,
//! `augmented`), `totals`, the `process` it was taken in, and `buckets` in
//! display order, each with its members' ids and names and its frames,
//! innermost first; an argument value that differs across a bucket's
//! members is `"*"`, an address seen more than once is labelled `#n`. The
//! schema is versioned by `version` ([`VERSION`], currently 1); within a
//! version fields may be added, never removed or changed. It is not the
//! serde form of a [`Snapshot`] (`"schema": "snapshot"`, one entry per
//! routine, [`Snapshot::to_json`], versioned by
//! [`JSON_VERSION`](crate::JSON_VERSION)). Both are described field by field
//! in `docs/json.md` of the webstack source tree.
//!
//! [`Snapshot`]: crate::Snapshot
//! [`Snapshot::to_json`]: crate::Snapshot::to_json

use std::io::Write;

use serde::Serialize;

use super::words::{arg_value, truncated, NAME_CHARS};
use super::RenderError;
use crate::group::{Bucket, BucketFrame, Buckets, Member, Members, Merged};
use crate::snapshot::resolve::crate_name;
use crate::snapshot::{CreatedBy, Kind, Process, Snapshot, State};

/// Version of the grouped page's JSON form (`"schema": "page"`); bumped on
/// any incompatible change. The raw snapshot has its own,
/// [`JSON_VERSION`](crate::JSON_VERSION).
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    version: u32,
    similarity: &'static str,
    captured_at: u64,
    capture_time_us: u64,
    maxmem: usize,
    bytes_used: usize,
    augmented: bool,
    totals: Totals,
    process: &'a Process,
    buckets: LazyBuckets<'a>,
}

/// Serialises the buckets one at a time, so the JSON form of the whole page
/// never exists in memory beside the output.
struct LazyBuckets<'a>(&'a Buckets<'a>);

impl Serialize for LazyBuckets<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.buckets.iter().map(|b| bucket(b, self.0)))
    }
}

#[derive(Serialize)]
struct Totals {
    threads: usize,
    tasks: usize,
    buckets: usize,
    left_out: usize,
    left_out_threads: usize,
    left_out_tasks: usize,
    untracked_tasks: usize,
}

#[derive(Serialize)]
struct JsonBucket<'a> {
    count: usize,
    kind: Kind,
    state: &'a State,
    ids: Ids<'a>,
    names: Names<'a>,
    /// Tokio ids of task members, parallel to `ids` (`null` where unknown);
    /// left out when no member has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    tokio_ids: Option<Field<'a>>,
    /// Poll counts of task members, parallel to `ids`; left out for threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    polls: Option<Field<'a>>,
    /// For running task members, the id of the thread polling each,
    /// parallel to `ids`; left out when no member is running on a thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    running_on: Option<Field<'a>>,
    waiting_ms: Range,
    elided: usize,
    torn: bool,
    serving: bool,
    created_by: Option<&'a CreatedBy>,
    frames: Vec<JsonFrame<'a>>,
}

/// Member ids, written as they are read (a bucket may hold every task of
/// the program).
struct Ids<'a>(&'a Members<'a>);

impl Serialize for Ids<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| m.id))
    }
}

/// Member names, parallel to the ids, each cut to [`NAME_CHARS`] as it is
/// written rather than collected first.
struct Names<'a>(&'a Members<'a>);

impl Serialize for Names<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| truncated(m.name, NAME_CHARS)))
    }
}

/// One optional number per member, parallel to the ids.
struct Field<'a>(&'a Members<'a>, fn(&Member<'_>) -> Option<u64>);

impl<'a> Field<'a> {
    /// The field, if any member has a value.
    fn of(members: &'a Members<'a>, get: fn(&Member<'_>) -> Option<u64>) -> Option<Self> {
        members
            .iter()
            .any(|m| get(&m).is_some())
            .then_some(Field(members, get))
    }
}

impl Serialize for Field<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| (self.1)(&m)))
    }
}

#[derive(Serialize)]
struct Range {
    min: u64,
    max: u64,
}

#[derive(Serialize)]
struct JsonFrame<'a> {
    function: &'a str,
    file: &'a str,
    line: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    awaiting: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    definition_line: Option<u32>,
    instrumented: bool,
    origin: &'static str,
    #[serde(rename = "crate")]
    krate: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    args: Vec<JsonArg<'a>>,
}

#[derive(Serialize)]
struct JsonArg<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

pub(super) fn render<W: Write>(
    w: W,
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
) -> Result<(), RenderError> {
    let left_out = snapshot.left_out;
    let document = Document {
        schema: "page",
        version: VERSION,
        similarity: buckets.similarity.as_str(),
        captured_at: snapshot
            .captured_at
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        capture_time_us: snapshot.capture_time.as_micros() as u64,
        maxmem: snapshot.maxmem,
        bytes_used: snapshot.bytes_used,
        augmented: snapshot.augmented,
        totals: Totals {
            threads: snapshot.threads(),
            tasks: snapshot.tasks(),
            buckets: buckets.buckets.len(),
            left_out: left_out.threads + left_out.tasks,
            left_out_threads: left_out.threads,
            left_out_tasks: left_out.tasks,
            untracked_tasks: left_out.untracked_tasks,
        },
        process: &snapshot.process,
        buckets: LazyBuckets(buckets),
    };
    serde_json::to_writer(w, &document).map_err(|e| RenderError::new("json", e))
}

fn bucket<'a>(b: &'a Bucket<'_>, buckets: &Buckets<'_>) -> JsonBucket<'a> {
    JsonBucket {
        count: b.count,
        kind: b.kind,
        state: &b.state,
        ids: Ids(&b.members),
        names: Names(&b.members),
        tokio_ids: Field::of(&b.members, |m| m.tokio_id),
        polls: Field::of(&b.members, |m| m.polls),
        running_on: Field::of(&b.members, |m| m.running_on),
        waiting_ms: Range {
            min: b.waiting.0.as_millis() as u64,
            max: b.waiting.1.as_millis() as u64,
        },
        elided: b.elided,
        torn: b.torn,
        serving: b.serving,
        created_by: b.created_by.as_ref(),
        frames: b.frames.iter().map(|f| frame(f, buckets)).collect(),
    }
}

fn frame<'a>(f: &'a BucketFrame, buckets: &Buckets<'_>) -> JsonFrame<'a> {
    JsonFrame {
        function: &f.function,
        file: &f.file,
        line: f.line,
        awaiting: f.awaiting,
        definition_line: f.definition_line,
        instrumented: f.instrumented,
        origin: f.origin.as_str(),
        krate: crate_name(&f.function),
        task: f.task,
        address: f.address.map(|a| format!("{a:#x}")),
        source: f.source.as_deref(),
        args: f
            .args
            .iter()
            .map(|arg| JsonArg {
                name: arg.name,
                ty: arg.ty,
                value: arg_value(arg, buckets),
                address: match arg.value {
                    Merged::Same(value) => value.address().map(|a| format!("{a:#x}")),
                    Merged::Differs => None,
                },
            })
            .collect(),
    }
}
