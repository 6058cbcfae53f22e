//! Folding a bucket's frames for HTML and text: recursion
//! ([module docs](super#recursion)) and runs of std, runtime, webstack and
//! unknown frames ([where a frame comes from](super#where-a-frame-comes-from)).

use std::ops::Range;

use super::words::{arg_value, bounded, Location, FUNCTION_CHARS};
use crate::group::{BucketFrame, Buckets};
use crate::snapshot::Snapshot;

/// How a run of a bucket's frames is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Run {
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
pub(super) const RECURSION_LEVELS: usize = 3;

/// Most frames one level of a recursion may span (the recursive function
/// and the frames between it and its next call).
pub(super) const RECURSION_PERIOD: usize = 8;

/// The frames of a bucket cut into runs, each shown or folded. With `fold`
/// on, recursion is folded first: [`RECURSION_LEVELS`] or more levels of
/// the same function (see [`recursion_at`]). Then, outside recursions, two
/// or more frames in a row whose origin folds (std, runtime, webstack,
/// unknown) make a folded run; a single one is shown rather than hidden
/// behind a one-line fold. Shown runs that follow each other are one run.
/// With `fold` off, every frame is shown.
pub(super) fn runs(frames: &[BucketFrame], fold: bool) -> Vec<(Range<usize>, Run)> {
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
pub(super) fn folded_summary(n: usize) -> String {
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
pub(super) fn recursion_summary(
    frames: &[BucketFrame],
    period: usize,
    buckets: &Buckets<'_>,
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
fn arg_range(name: &str, levels: &[&BucketFrame], a: usize, buckets: &Buckets<'_>) -> String {
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
pub(super) fn recursion_location(
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::group::{BucketArg, Merged, Similarity};
    use crate::snapshot::Origin;

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
}
