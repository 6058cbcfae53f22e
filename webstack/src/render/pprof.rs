//! Grouped buckets as Go's goroutine profile (feature `pprof`), for fleet
//! profilers: Grafana Pyroscope (through Grafana Alloy's
//! `pyroscope.scrape`), Parca and `go tool pprof` read it as they read
//! `/debug/pprof/goroutine` of a Go program.
//!
//! Two forms, as Go serves them:
//!
//! - [`encode`] (Go's `debug=0`): a gzip-compressed pprof `Profile`
//!   protobuf (google/pprof `proto/profile.proto`). Sample type and period
//!   type are `goroutine`/`count`, period 1. Each bucket is one sample whose
//!   value is the bucket's member count, so the values add up to the
//!   threads and tasks of the snapshot. Its locations are the bucket's
//!   frames, innermost first, instrumented and native alike: one
//!   `Location` per distinct (function, file, line), each with one
//!   `Line` naming a `Function` (name and system name: the Rust path;
//!   file: the source path as compiled, not shortened). Locations carry no
//!   address and the profile no mapping: every location is already
//!   symbolized. Each sample has the labels `kind` (`thread` or `task`) and
//!   `state` (`idle`, `running`, `alive`, or a thread's kernel state), and
//!   `name` when the bucket's members have at most [`NAME_LABEL_NAMES`]
//!   distinct non-empty names (joined by `, `, each cut at
//!   [`NAME_LABEL_CHARS`] characters): a task named per connection would
//!   otherwise give a fleet profiler one label value per connection.
//!   `time_nanos` is the capture time, `duration_nanos` how long the capture
//!   took, and one comment line says what was captured. Argument values are
//!   not in the profile.
//! - [`write_counts`] (Go's `debug=1`): the same samples as text, `goroutine
//!   profile: total N`, then per sample `count @ addresses`, a `# labels:`
//!   line and one `#` line per frame, `#\t0x…\tfunction\tfile:line`. A
//!   frame without one known address (an instrumented frame without native
//!   stacks, or one whose address differs between the bucket's members)
//!   shows `0x0`, and no `+offset` follows the function, since the model
//!   keeps no symbol start addresses.
//!
//! ```
//! use webstack::render::pprof;
//! use webstack::{Buckets, Options, Similarity, Snapshot};
//!
//! let snapshot = Snapshot::capture(&Options::default().augment(false));
//! let buckets = Buckets::aggregate(&snapshot, Similarity::AnyValue);
//! let gzipped = pprof::encode(&snapshot, &buckets);
//! assert_eq!(&gzipped[..2], b"\x1f\x8b");
//!
//! let mut counts = Vec::new();
//! pprof::write_counts(&mut counts, &buckets)?;
//! let counts = String::from_utf8(counts).unwrap();
//! let total = format!("goroutine profile: total {}\n", snapshot.routines().len());
//! assert!(counts.starts_with(&total));
//! # Ok::<(), webstack::render::RenderError>(())
//! ```
//!
//! The protobuf message types are the crate's own: decode the bytes with
//! any pprof reader (`go tool pprof`, or the google/pprof `profile.proto`
//! compiled by `prost` or another protobuf library).

use std::collections::HashMap;
use std::io::Write;
use std::time::SystemTime;

use super::words::{truncated, FUNCTION_CHARS};
use super::RenderError;
use crate::group::{Bucket, Buckets};
use crate::snapshot::{Kind, Snapshot};

/// Most distinct member names a bucket may have for its sample to get a
/// `name` label.
pub const NAME_LABEL_NAMES: usize = 4;

/// Longest member name kept in a `name` label, in characters.
pub const NAME_LABEL_CHARS: usize = 64;

/// The HTTP `Content-Type` of [`encode`]'s output, as Go serves it (Grafana
/// Alloy refuses a profile served as anything else).
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// The `Content-Disposition` Go sends with the goroutine profile.
pub const CONTENT_DISPOSITION: &str = "attachment; filename=\"goroutine\"";

/// The profile of `buckets` (grouped from `snapshot`), uncompressed; see the
/// [module docs](self).
fn profile(snapshot: &Snapshot, buckets: &Buckets<'_>) -> Profile {
    let mut b = Builder::default();
    b.string(""); // index 0, as the format requires
    let goroutine = b.string("goroutine");
    let count = b.string("count");
    let kind = b.string("kind");
    let state = b.string("state");
    let name = b.string("name");
    let mut samples = Vec::with_capacity(buckets.buckets.len());
    for bucket in &buckets.buckets {
        let location_id = bucket
            .frames
            .iter()
            .map(|f| b.location(&f.function, &f.file, f.line))
            .collect();
        let mut label = vec![
            b.label(kind, kind_str(bucket.kind)),
            b.label(state, bucket.state.as_str()),
        ];
        if let Some(names) = name_label(bucket) {
            label.push(b.label(name, &names));
        }
        samples.push(Sample {
            location_id,
            value: vec![bucket.count as i64],
            label,
        });
    }
    let comment = vec![b.string(&format!(
        "webstack {}: {} threads, {} tasks, {} left out, grouped by {}",
        snapshot.process.webstack,
        snapshot.threads(),
        snapshot.tasks(),
        snapshot.left_out.total(),
        buckets.similarity,
    ))];
    let time_nanos = snapshot
        .captured_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Profile {
        sample_type: vec![ValueType {
            r#type: goroutine,
            unit: count,
        }],
        sample: samples,
        mapping: Vec::new(),
        location: b.locations,
        function: b.functions,
        string_table: b.strings,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos,
        duration_nanos: i64::try_from(snapshot.capture_time.as_nanos()).unwrap_or(i64::MAX),
        period_type: Some(ValueType {
            r#type: goroutine,
            unit: count,
        }),
        period: 1,
        comment,
        default_sample_type: 0,
    }
}

/// The profile of `buckets`, protobuf-encoded and gzip-compressed: what Go's
/// `/debug/pprof/goroutine` serves with `debug=0`.
pub fn encode(snapshot: &Snapshot, buckets: &Buckets<'_>) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(&profile(snapshot, buckets));
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        // Go's runtime/pprof compresses at its fastest level too.
        flate2::Compression::fast(),
    );
    // Writing to a `Vec` does not fail.
    gz.write_all(&raw)
        .and_then(|()| gz.finish())
        .unwrap_or_default()
}

/// Writes `buckets` as Go's `debug=1` goroutine profile text; see the
/// [module docs](self).
pub fn write_counts<W: Write>(w: W, buckets: &Buckets<'_>) -> Result<(), RenderError> {
    let mut w = std::io::BufWriter::new(w);
    let total: usize = buckets.buckets.iter().map(|b| b.count).sum();
    writeln!(w, "goroutine profile: total {total}")?;
    for bucket in &buckets.buckets {
        write!(w, "{} @", bucket.count)?;
        for frame in &bucket.frames {
            write!(w, " {:#x}", frame.address.unwrap_or(0))?;
        }
        if bucket.frames.is_empty() {
            // Go's own readers expect at least one address.
            w.write_all(b" 0x0")?;
        }
        writeln!(w)?;
        let mut labels = vec![
            ("kind", kind_str(bucket.kind).to_owned()),
            ("state", bucket.state.as_str().to_owned()),
        ];
        if let Some(names) = name_label(bucket) {
            labels.push(("name", names));
        }
        labels.sort();
        w.write_all(b"# labels: {")?;
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                w.write_all(b", ")?;
            }
            write!(w, "{key:?}:{value:?}")?;
        }
        w.write_all(b"}\n")?;
        for frame in &bucket.frames {
            let function = truncated(&frame.function, FUNCTION_CHARS);
            let function = function.replace(char::is_control, " ");
            let file = frame.file.replace(char::is_control, " ");
            writeln!(
                w,
                "#\t{:#x}\t{function}\t{file}:{}",
                frame.address.unwrap_or(0),
                frame.line
            )?;
        }
        writeln!(w)?;
    }
    w.flush()?;
    Ok(())
}

fn kind_str(kind: Kind) -> &'static str {
    match kind {
        Kind::Thread => "thread",
        Kind::Task => "task",
    }
}

/// The bucket's distinct non-empty member names, in order of first
/// appearance, when there are at most [`NAME_LABEL_NAMES`].
fn name_label(bucket: &Bucket<'_>) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for member in &bucket.members {
        if member.name.is_empty() || names.contains(&member.name) {
            continue;
        }
        if names.len() == NAME_LABEL_NAMES {
            return None;
        }
        names.push(member.name);
    }
    if names.is_empty() {
        return None;
    }
    let cut: Vec<_> = names
        .iter()
        .map(|n| truncated(n, NAME_LABEL_CHARS))
        .collect();
    Some(cut.join(", "))
}

/// The tables of a profile, each entry once.
#[derive(Default)]
struct Builder {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<(u64, u32), u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    fn label(&mut self, key: i64, value: &str) -> Label {
        Label {
            key,
            str: self.string(value),
            num: 0,
            num_unit: 0,
        }
    }

    fn location(&mut self, function: &str, file: &str, line: u32) -> u64 {
        let name = self.string(&truncated(function, FUNCTION_CHARS));
        let filename = self.string(file);
        let next = self.functions.len() as u64 + 1;
        let function_id = *self.function_ids.entry((name, filename)).or_insert(next);
        if function_id == next {
            self.functions.push(Function {
                id: function_id,
                name,
                system_name: name,
                filename,
                start_line: 0,
            });
        }
        let next = self.locations.len() as u64 + 1;
        let location_id = *self.location_ids.entry((function_id, line)).or_insert(next);
        if location_id == next {
            self.locations.push(Location {
                id: location_id,
                mapping_id: 0,
                address: 0,
                line: vec![Line {
                    function_id,
                    line: i64::from(line),
                    column: 0,
                }],
                is_folded: false,
            });
        }
        location_id
    }
}

/// `Profile` of google/pprof `proto/profile.proto`: the whole profile.
/// Every string field is an index into `string_table`.
#[derive(Clone, PartialEq, prost::Message)]
struct Profile {
    /// What each sample value counts.
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    /// The samples: one per bucket here.
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    /// Mapped binaries; none here (locations are symbolized).
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    /// Locations referenced by samples, ids from 1.
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    /// Functions referenced by locations, ids from 1.
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    /// Every string of the profile; entry 0 is `""`.
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    /// Regexp (string index) of frames to drop; unused here.
    #[prost(int64, tag = "7")]
    drop_frames: i64,
    /// Regexp (string index) of frames to keep; unused here.
    #[prost(int64, tag = "8")]
    keep_frames: i64,
    /// When the profile was collected, in nanoseconds since the Unix epoch.
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    /// How long collecting took, in nanoseconds.
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    /// What one period counts.
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    /// Events per sample: 1 here.
    #[prost(int64, tag = "12")]
    period: i64,
    /// Free-form comments (string indices).
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
    /// Index into `sample_type` of the type shown by default.
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

/// `ValueType`: a type and its unit, both string indices.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct ValueType {
    /// The type, e.g. `goroutine`.
    #[prost(int64, tag = "1")]
    r#type: i64,
    /// The unit, e.g. `count`.
    #[prost(int64, tag = "2")]
    unit: i64,
}

/// `Sample`: a stack and its values.
#[derive(Clone, PartialEq, Eq, prost::Message)]
struct Sample {
    /// Location ids, innermost first.
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    /// One value per sample type.
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    /// Labels.
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

/// `Label`: a key with a string or a numeric value.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct Label {
    /// Key (string index).
    #[prost(int64, tag = "1")]
    key: i64,
    /// String value (string index), or 0.
    #[prost(int64, tag = "2")]
    str: i64,
    /// Numeric value, when `str` is 0.
    #[prost(int64, tag = "3")]
    num: i64,
    /// Unit of `num` (string index).
    #[prost(int64, tag = "4")]
    num_unit: i64,
}

/// `Mapping`: a mapped binary.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct Mapping {
    /// Id, from 1.
    #[prost(uint64, tag = "1")]
    id: u64,
    /// Start address.
    #[prost(uint64, tag = "2")]
    memory_start: u64,
    /// End address.
    #[prost(uint64, tag = "3")]
    memory_limit: u64,
    /// Offset in the file.
    #[prost(uint64, tag = "4")]
    file_offset: u64,
    /// File name (string index).
    #[prost(int64, tag = "5")]
    filename: i64,
    /// Build id (string index).
    #[prost(int64, tag = "6")]
    build_id: i64,
    /// Whether its locations have function names.
    #[prost(bool, tag = "7")]
    has_functions: bool,
    /// Whether they have file names.
    #[prost(bool, tag = "8")]
    has_filenames: bool,
    /// Whether they have line numbers.
    #[prost(bool, tag = "9")]
    has_line_numbers: bool,
    /// Whether they have inlined frames.
    #[prost(bool, tag = "10")]
    has_inline_frames: bool,
}

/// `Location`: a place in the code.
#[derive(Clone, PartialEq, Eq, prost::Message)]
struct Location {
    /// Id, from 1.
    #[prost(uint64, tag = "1")]
    id: u64,
    /// Mapping id, or 0.
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    /// Instruction address, or 0.
    #[prost(uint64, tag = "3")]
    address: u64,
    /// The function and line, inlined callees first.
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
    /// Whether several locations were folded into this one.
    #[prost(bool, tag = "5")]
    is_folded: bool,
}

/// `Line`: a function and a line in it.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct Line {
    /// Function id.
    #[prost(uint64, tag = "1")]
    function_id: u64,
    /// Source line, or 0.
    #[prost(int64, tag = "2")]
    line: i64,
    /// Source column, or 0.
    #[prost(int64, tag = "3")]
    column: i64,
}

/// `Function`: a function's names and file.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
struct Function {
    /// Id, from 1.
    #[prost(uint64, tag = "1")]
    id: u64,
    /// Name as shown (string index).
    #[prost(int64, tag = "2")]
    name: i64,
    /// Name as the system knows it (string index).
    #[prost(int64, tag = "3")]
    system_name: i64,
    /// Source file (string index).
    #[prost(int64, tag = "4")]
    filename: i64,
    /// Line where the function starts, or 0.
    #[prost(int64, tag = "5")]
    start_line: i64,
}
