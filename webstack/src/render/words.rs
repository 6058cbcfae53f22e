//! Text helpers shared by the HTML, text, JSON and pprof forms: locations,
//! values, sizes, times, bounded names and bucket members.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::group::{Bucket, BucketArg, Buckets, Merged};
use crate::record::stack::UNINSTRUMENTED;
use crate::snapshot::resolve::short_path;
use crate::snapshot::value_text::Labelled;
use crate::snapshot::{CreatedBy, Kind, Origin, Snapshot};

/// A frame's location as a person reads it: its file shortened (see
/// [`short_path`]; `?` when unknown), with the line when there is one.
/// Displays without allocating.
pub(super) struct Location<'a> {
    file: &'a str,
    line: u32,
}

impl<'a> Location<'a> {
    pub(super) fn new(file: &'a str, line: u32, snapshot: &Snapshot) -> Self {
        let file = if file.is_empty() {
            "?"
        } else {
            short_path(file, snapshot.process.source_root.as_deref())
        };
        Location { file, line }
    }

    /// Whether the file is shown shortened from `file`.
    pub(super) fn shortens(&self, file: &str) -> bool {
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
pub(super) fn crate_docs(name: &str, origin: Origin) -> Option<String> {
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
pub(super) fn arg_value(arg: &BucketArg, buckets: &Buckets<'_>) -> String {
    match arg.value {
        Merged::Differs => "*".to_owned(),
        Merged::Same(value) => {
            Labelled(value, value.address().and_then(|a| buckets.label(a))).to_string()
        }
    }
}

/// `3~7 min`: both ends in the unit that suits the longer one; one number
/// when they are equal in that unit.
pub(super) fn duration_range((min, max): (Duration, Duration)) -> String {
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
pub(super) fn bytes(n: usize) -> String {
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
pub(super) fn timestamp(t: SystemTime) -> String {
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
pub(super) fn elapsed(d: Duration) -> String {
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
pub(super) fn bounded(name: &str, max: usize) -> Cow<'_, str> {
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
pub(super) fn truncated(name: &str, max: usize) -> Cow<'_, str> {
    match name.char_indices().nth(max) {
        None => Cow::Borrowed(name),
        Some((end, _)) => Cow::Owned(format!("{}…", &name[..end])),
    }
}

/// Longest thread or task name shown, in characters.
pub(super) const NAME_CHARS: usize = 200;

/// Longest function name shown, in characters.
pub(super) const FUNCTION_CHARS: usize = 1000;

/// Longest note about the capture shown (the task traces'), in characters.
pub(super) const NOTE_CHARS: usize = 400;

/// Most member ids listed per bucket in HTML and text (JSON lists all).
pub(super) const SHOWN_IDS: usize = 64;

/// A member name and the ids of the members that have it.
pub(super) type NameGroup<'a> = (Cow<'a, str>, Vec<u64>);

/// The members of a bucket grouped by name, in order of first appearance,
/// with at most [`SHOWN_IDS`] ids in all; and how many ids were left out.
pub(super) fn members<'s>(bucket: &Bucket<'s>) -> (Vec<NameGroup<'s>>, usize) {
    let mut groups: Vec<NameGroup<'s>> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut shown = 0;
    for member in &bucket.members {
        if shown == SHOWN_IDS {
            break;
        }
        let i = *index.entry(member.name).or_insert_with(|| {
            groups.push((bounded(member.name, NAME_CHARS), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(member.id);
        shown += 1;
    }
    (groups, bucket.members.len() - shown)
}

/// How the page names where a bucket's routines were started: `spawned`
/// for tasks, `created` for threads; and the function that started them,
/// `None` when no instrumented function was running there (tokio's spawn
/// location alone).
pub(super) fn creation(kind: Kind, created: &CreatedBy) -> (&'static str, Option<&'static str>) {
    let verb = match kind {
        Kind::Task => "spawned",
        Kind::Thread => "created",
    };
    let function = (created.function != UNINSTRUMENTED).then_some(created.function);
    (verb, function)
}

/// What the page says of a task bucket's members beyond their ids, when
/// tokio or a worker thread knows them: `tokio id 5, 7; polls 1~12; running
/// on thread 3`. `None` for threads and tasks without a tokio id or a
/// worker.
pub(super) fn task_line(bucket: &Bucket<'_>) -> Option<String> {
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
pub(super) fn flags(bucket: &Bucket<'_>) -> String {
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
}
