//! The plain-text form of grouped buckets ([`Format::Text`](super::Format::Text)),
//! in the spirit of Go's `debug=2` goroutine dump: greppable, one block per
//! bucket.
//!
//! ```text
//! webstack 0.1.0 at 2026-11-25T17:41:51.123Z: 2 threads, 3 tasks, 2 buckets (anypointer), 0 left out, captured in 0.412 ms, 3.1 KiB of 64.0 MiB
//!
//! 3: task idle [2~5 s] conn 12, 14, 15
//!     app::leaf(n: u32 = *, rx: &Receiver<()> = #1)
//!         src/main.rs:17
//!     app::root(n: u32 = *)
//!         src/main.rs:22
//!     spawned by app::main at src/main.rs:40
//! ```
//!
//! The first line of a block is `count: kind state [idle range] members`;
//! members are listed as a name followed by the ids holding it (at most 64
//! ids, then `… and N more`). The bucket holding the thread that captured is
//! marked `(serving this request)`. Instrumented frames show their arguments
//! in parentheses, `*` where members differ, `#n` for an address seen more
//! than once. Recursion, three or more levels of the same function in a
//! row, is folded into one line naming it, how many levels there are and,
//! per argument, its one value or its values at the innermost → outermost
//! level shown, then the location of its levels:
//!
//! ```text
//!     ... demo::descend × 256 (level = 255 → 0, limit = 300)
//!         examples/demo.rs:125
//! ```
//!
//! Two or more std, runtime or webstack frames in a row (outside a folded
//! recursion) are folded into one line, `... 5 runtime and std frames`.
//! [`View::fold`](crate::View::fold) off (`fold=0`) shows every frame
//! instead. Paths are shown as
//! a person reads them: the program's own relative to its workspace,
//! `tokio-1.54.1/src/…` for registry crates, `std/src/…` for the standard
//! library (the JSON keeps them whole). Names are cut at 200 characters and
//! their control characters escaped.

use std::io::Write;

use super::fold::{folded_summary, recursion_location, recursion_summary, runs, Run};
use super::words::{
    arg_value, bounded, bytes, creation, duration_range, elapsed, flags, members, task_line,
    timestamp, Location, FUNCTION_CHARS, NAME_CHARS, NOTE_CHARS,
};
use super::RenderError;
use crate::group::{Bucket, Buckets};
use crate::snapshot::{Kind, Snapshot};

pub(super) fn render<W: Write>(
    w: W,
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
    fold: bool,
) -> Result<(), RenderError> {
    let mut w = std::io::BufWriter::new(w);
    let left_out = snapshot.left_out.total();
    writeln!(
        w,
        "webstack {} at {}: {} threads, {} tasks, {} buckets ({}), {} left out, captured in {}, {} of {}",
        snapshot.process.webstack,
        timestamp(snapshot.captured_at),
        snapshot.threads(),
        snapshot.tasks(),
        buckets.buckets.len(),
        buckets.similarity,
        left_out,
        elapsed(snapshot.capture_time),
        bytes(snapshot.bytes_used),
        bytes(snapshot.maxmem),
    )?;
    if let Some(note) = &snapshot.task_traces {
        writeln!(w, "{}", bounded(note, NOTE_CHARS))?;
    }
    for b in &buckets.buckets {
        writeln!(w)?;
        bucket(&mut w, b, snapshot, buckets, fold)?;
    }
    w.flush()?;
    Ok(())
}

fn bucket<W: Write>(
    w: &mut W,
    b: &Bucket<'_>,
    snapshot: &Snapshot,
    buckets: &Buckets<'_>,
    fold: bool,
) -> Result<(), RenderError> {
    write!(
        w,
        "{}: {} {} [{}]",
        b.count,
        match b.kind {
            Kind::Thread => "thread",
            Kind::Task => "task",
        },
        bounded(b.state.as_str(), NAME_CHARS),
        duration_range(b.waiting)
    )?;
    let (groups, more) = members(b);
    for (i, (name, ids)) in groups.iter().enumerate() {
        w.write_all(if i == 0 { b" " } else { b"; " })?;
        if !name.is_empty() {
            write!(w, "{name} ")?;
        }
        for (j, id) in ids.iter().enumerate() {
            if j > 0 {
                w.write_all(b", ")?;
            }
            write!(w, "{id}")?;
        }
    }
    if more > 0 {
        write!(w, " … and {more} more")?;
    }
    if let Some(task) = task_line(b) {
        write!(w, " ({task})")?;
    }
    let flags = flags(b);
    if !flags.is_empty() {
        write!(w, " ({flags})")?;
    }
    if b.serving {
        w.write_all(b" (serving this request)")?;
    }
    writeln!(w)?;
    if b.elided > 0 {
        // The shadow stack keeps the outermost frames; deeper calls are lost.
        writeln!(w, "    ...{} deeper frames elided", b.elided)?;
    }
    for (run, kind) in runs(&b.frames, fold) {
        match kind {
            Run::Folded => {
                writeln!(w, "    ... {}", folded_summary(run.len()))?;
                continue;
            }
            Run::Recursion { period } => {
                let frames = &b.frames[run];
                writeln!(
                    w,
                    "    ... {}\n        {}",
                    recursion_summary(frames, period, buckets),
                    recursion_location(frames, period, snapshot)
                )?;
                continue;
            }
            Run::Shown => {}
        }
        for frame in &b.frames[run] {
            write!(w, "    {}", bounded(&frame.function, FUNCTION_CHARS))?;
            if frame.instrumented {
                w.write_all(b"(")?;
                for (i, arg) in frame.args.iter().enumerate() {
                    if i > 0 {
                        w.write_all(b", ")?;
                    }
                    write!(w, "{}: {} = {}", arg.name, arg.ty, arg_value(arg, buckets))?;
                }
                w.write_all(b")")?;
            }
            // A task's own frames name it in the header already.
            if let Some(task) = frame.task.filter(|_| b.kind == Kind::Thread) {
                write!(w, " [task {task}]")?;
            }
            writeln!(w)?;
            write!(
                w,
                "        {}{}",
                if frame.awaiting { "awaiting at " } else { "" },
                Location::new(&frame.file, frame.line, snapshot)
            )?;
            if let Some(address) = frame.address {
                write!(w, " {address:#x}")?;
            }
            writeln!(w)?;
        }
    }
    if let Some(created) = &b.created_by {
        let location = Location::new(created.file, created.line, snapshot);
        match creation(b.kind, created) {
            (verb, Some(function)) => writeln!(w, "    {verb} by {function} at {location}")?,
            (verb, None) => writeln!(w, "    {verb} at {location}")?,
        }
    }
    Ok(())
}
