//! The JSON form of grouped buckets ([`Format::Json`](super::Format::Json)).
//!
//! The schema is versioned by `version` (currently 1, [`JSON_VERSION`]);
//! fields may be added within a version, never removed or changed. Frames
//! are innermost first; an argument value that differs across a bucket's
//! members is `"*"`.
//!
//! ```text
//! {
//!   "version": 1,
//!   "similarity": "anypointer",        // exactflags | exactlines | anypointer | anyvalue
//!   "captured_at": 1764092511123,      // ms since the Unix epoch
//!   "capture_time_us": 412,            // how long the capture took
//!   "maxmem": 67108864,                // the effective memory bound, bytes
//!   "bytes_used": 10240,               // bytes the captured routines took
//!   "augmented": false,                // whether native stacks were captured
//!   "totals": {
//!     "threads": 3, "tasks": 10,       // captured
//!     "buckets": 4,
//!     "left_out": 0,                   // routines left out by maxmem
//!     "left_out_threads": 0, "left_out_tasks": 0
//!   },
//!   "buckets": [{
//!     "count": 3,
//!     "kind": "task",                  // thread | task
//!     "state": "idle",                 // running | idle | alive | a kernel state
//!     "ids": [12, 14, 15],             // every member, ascending
//!     "names": ["conn", "conn", "conn"],   // parallel to ids
//!     "waiting_ms": {"min": 2000, "max": 5000},  // idle time, else age
//!     "elided": 0,                     // most frames elided by a member
//!     "torn": false,                   // a member's stack changed while read
//!     "serving": false,                // holds the thread that captured
//!     "created_by": {"function": "app::main", "file": "src/main.rs", "line": 40},  // or null
//!     "frames": [{
//!       "function": "app::leaf",
//!       "file": "src/main.rs",
//!       "line": 17,
//!       "instrumented": true,
//!       "origin": "app",               // app | dependency | std | runtime | webstack | unknown
//!       "crate": "app",                // or null for C symbols
//!       "task": 12,                    // only on a thread's frame that polls a task
//!       "address": "0x55d0c0ffee00",   // only native frames
//!       "source": "    rx.await",      // only with augment, when readable
//!       "args": [
//!         {"name": "n", "type": "u32", "value": "6"},
//!         {"name": "rx", "type": "&Receiver<()>", "value": "#1", "address": "0x7f..."}
//!       ]
//!     }]
//!   }]
//! }
//! ```
//!
//! An address argument's `value` is its label `#n` when the address is seen
//! more than once in the snapshot, else the address in hex; `address` then
//! holds the hex address (absent when members differ).
//!
//! [`JSON_VERSION`]: crate::JSON_VERSION

use std::io::Write;

use serde::Serialize;

use super::{arg_value, truncated, RenderError, NAME_CHARS};
use crate::group::{Bucket, BucketFrame, Buckets, Member, Merged};
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
struct LazyBuckets<'a>(&'a Buckets);

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
}

#[derive(Serialize)]
struct JsonBucket<'a> {
    count: usize,
    kind: Kind,
    state: &'a State,
    ids: Ids<'a>,
    names: Names<'a>,
    waiting_ms: Range,
    elided: usize,
    torn: bool,
    serving: bool,
    created_by: Option<&'a CreatedBy>,
    frames: Vec<JsonFrame<'a>>,
}

/// Member ids, written as they are read (a bucket may hold every task of
/// the program).
struct Ids<'a>(&'a [Member]);

impl Serialize for Ids<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| m.id))
    }
}

/// Member names, parallel to the ids, each cut to [`NAME_CHARS`] as it is
/// written rather than collected first.
struct Names<'a>(&'a [Member]);

impl Serialize for Names<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|m| truncated(&m.name, NAME_CHARS)))
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
    buckets: &Buckets,
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
        },
        process: &snapshot.process,
        buckets: LazyBuckets(buckets),
    };
    serde_json::to_writer(w, &document).map_err(|e| RenderError::new("json", e))
}

fn bucket<'a>(b: &'a Bucket, buckets: &Buckets) -> JsonBucket<'a> {
    JsonBucket {
        count: b.count,
        kind: b.kind,
        state: &b.state,
        ids: Ids(&b.members),
        names: Names(&b.members),
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

fn frame<'a>(f: &'a BucketFrame, buckets: &Buckets) -> JsonFrame<'a> {
    JsonFrame {
        function: &f.function,
        file: &f.file,
        line: f.line,
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
