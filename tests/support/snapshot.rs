//! Capture a snapshot and print the routines a test cares about in a stable
//! text form (line numbers and addresses normalised) to compare as a whole.

use std::fmt::Write;
use std::time::{Duration, Instant};

use webstack::{Options, Routine, Snapshot};

/// A snapshot of shadow stacks only.
pub fn shadow_snapshot() -> Snapshot {
    Snapshot::capture(&Options::default().augment(false))
}

/// Shadow snapshots, every 10 ms, until `ready` holds for one or `timeout`
/// passes; the last one either way (the test's assertions then say what
/// was missing).
pub fn shadow_snapshot_until(timeout: Duration, ready: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshot = shadow_snapshot();
        if ready(&snapshot) || Instant::now() > deadline {
            return snapshot;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The routines whose name satisfies `keep`, in id order.
pub fn routines(snapshot: &Snapshot, keep: impl Fn(&str) -> bool) -> Vec<Routine> {
    snapshot.routines().filter(|r| keep(&r.name)).collect()
}

/// One routine as text: header line, then frames innermost first.
pub fn describe(routine: &Routine) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:?} {:?} {}",
        routine.kind,
        routine.name,
        routine.state.as_str()
    );
    if routine.elided > 0 {
        let _ = write!(out, " elided={}", routine.elided);
    }
    if let Some(created) = &routine.created_by {
        let _ = write!(
            out,
            " created_by={} at {}:LINE",
            created.function,
            short(created.file)
        );
    }
    out.push('\n');
    for frame in &routine.frames {
        let args: Vec<String> = frame
            .args
            .iter()
            .map(|a| {
                let value = if a.value.is_pointer() {
                    "ADDR".to_owned()
                } else {
                    a.value.to_string()
                };
                format!("{}: {} = {}", a.name, a.ty, value)
            })
            .collect();
        let task = frame.task.map(|_| " [task root]").unwrap_or("");
        let _ = writeln!(
            out,
            "  {}({}) {}:LINE{}",
            frame.function,
            args.join(", "),
            short(&frame.file),
            task
        );
    }
    out
}

/// All matching routines described, sorted so the order is stable.
pub fn describe_all(snapshot: &Snapshot, keep: impl Fn(&str) -> bool) -> String {
    let mut items: Vec<String> = routines(snapshot, keep).iter().map(describe).collect();
    items.sort();
    items.concat()
}

fn short(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}
