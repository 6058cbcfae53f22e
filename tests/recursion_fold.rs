//! Recursion folded into one line in HTML and text: a real instrumented
//! recursion 250 levels deep, with and without native stacks, and
//! hand-built stacks for the rules (threshold, mutual recursion, values
//! that vary in the middle). JSON keeps every frame; `fold=0` shows all.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::checks::check_html;
use support::gate::Gate;
use support::model::{self, arg, frame, native};
use support::normalise::normalise;
use support::snapshot::shadow_snapshot_until;
use support::wait::watchdog;
use webstack::render::{render_to, Format};
use webstack::View;
use webstack::{Buckets, Origin, Similarity, Snapshot, Value};

/// Far above any test's time (a few seconds in a debug build).
const LIMIT: Duration = Duration::from_secs(120);

const DEPTH: u32 = 250;
/// The recursing threads, one per test.
const THREAD: &str = "deep-recursion";
const MERGED: &str = "deep-merged";

/// Held by each test with a recursing thread: two at once would share a
/// bucket (their values equal, their gates pointers), `gate` then `*`.
fn one_recursion_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const TAG: &str = "<script>alert(1)</script>";

#[webstack::instrument]
fn descend(level: u32, limit: u32, tag: &str, gate: &Gate) -> u32 {
    if level < limit {
        return descend(level + 1, limit, tag, gate) + 1;
    }
    gate.wait();
    0
}

/// A thread parked 250 levels deep in `descend` (levels 1 to 250), on the
/// smallest alternate signal stack std gives (`support::altstack`), let go
/// and joined when dropped, also when a test fails.
struct Recursion {
    gate: &'static Gate,
    handle: Option<std::thread::JoinHandle<u32>>,
}

impl Recursion {
    fn start(name: &str) -> Self {
        let gate: &'static Gate = Box::leak(Box::new(Gate::new()));
        let handle = std::thread::Builder::new()
            .name(name.into())
            // 250 debug-build levels need more than the default 2 MiB.
            .stack_size(64 << 20)
            .spawn(move || {
                #[cfg(target_os = "linux")]
                let _altstack = support::altstack::install_small();
                descend(1, DEPTH, TAG, gate)
            })
            .unwrap();
        Recursion {
            gate,
            handle: Some(handle),
        }
    }
}

impl Drop for Recursion {
    fn drop(&mut self) {
        self.gate.open();
        if let Some(handle) = self.handle.take() {
            let returned = handle.join();
            if !std::thread::panicking() {
                assert_eq!(returned.unwrap(), DEPTH - 1);
            }
        }
    }
}

fn depth_of(snapshot: &Snapshot, name: &str) -> usize {
    snapshot.routines().find(|r| r.name == name).map_or(0, |r| {
        r.frames
            .iter()
            .filter(|f| f.instrumented && f.function.ends_with("::descend"))
            .count()
    })
}

fn rendered(snapshot: &Snapshot, format: Format, fold: bool) -> String {
    let buckets = Buckets::aggregate(snapshot, Similarity::AnyPointer);
    let mut out = Vec::new();
    let view = View::default().format(format).fold(fold);
    render_to(&mut out, snapshot, &buckets, &view).unwrap();
    String::from_utf8(out).unwrap()
}

/// The text block of the bucket whose header names `name`.
fn text_block<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text
        .find(&format!(" {name} "))
        .map(|i| text[..i].rfind("\n\n").map_or(0, |n| n + 2))
        .unwrap_or_else(|| panic!("no bucket of {name} in:\n{text}"));
    let end = text[start..].find("\n\n").map_or(text.len(), |n| start + n);
    text[start..end].trim_end()
}

/// The HTML section of the bucket whose members name `name`.
fn html_section<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("<span class=\"rname\">{name}</span>"))
        .unwrap_or_else(|| panic!("no bucket of {name}"));
    let start = html[..at].rfind("<section").unwrap();
    let end = at + html[at..].find("</section>").unwrap();
    &html[start..end]
}

const SUMMARY: &str = "recursion_fold::descend × 250 (level = 250 → 1, limit = 250, \
                       tag = \"<script>alert(1)</script>\", gate = #1)";

#[test]
fn deep_recursion_is_one_line_in_text_and_html() {
    let _watchdog = watchdog(
        "recursion_fold::deep_recursion_is_one_line_in_text_and_html",
        LIMIT,
    );
    let _serial = one_recursion_at_a_time();
    let _recursion = Recursion::start(THREAD);
    let snapshot = shadow_snapshot_until(Duration::from_secs(10), |s| {
        depth_of(s, THREAD) == DEPTH as usize
    });
    assert_eq!(depth_of(&snapshot, THREAD), DEPTH as usize);

    // Text: one line naming the function, its levels and how each argument
    // goes from the innermost level to the outermost.
    let text = rendered(&snapshot, Format::Text, true);
    let block = normalise(text_block(&text, THREAD));
    let frames = &block[block.find('\n').unwrap() + 1..];
    assert_eq!(
        frames,
        format!("    ... {SUMMARY}\n        tests/recursion_fold.rs:LINE")
    );

    // fold=0: every level on its own, innermost first.
    let text = rendered(&snapshot, Format::Text, false);
    let block = text_block(&text, THREAD);
    let levels: Vec<&str> = block
        .lines()
        .filter(|l| l.starts_with("    recursion_fold::descend("))
        .collect();
    assert_eq!(levels.len(), DEPTH as usize, "{block}");
    assert!(levels[0].starts_with("    recursion_fold::descend(level: u32 = 250,"));
    assert!(levels[249].starts_with("    recursion_fold::descend(level: u32 = 1,"));
    assert!(!block.contains(" × "), "{block}");

    // HTML: the same summary, escaped, over a closed section that still
    // holds every row.
    let html = rendered(&snapshot, Format::Html, true);
    check_html(&html).unwrap();
    let section = html_section(&html, THREAD);
    let escaped = "recursion_fold::descend × 250 (level = 250 → 1, limit = 250, \
                   tag = &quot;&lt;script&gt;alert(1)&lt;&#x2F;script&gt;&quot;, gate = #1)";
    let summary = format!("<tr class=\"fold rec\"><td colspan=\"4\"><details><summary>{escaped} <span class=\"loc\">at tests&#x2F;recursion_fold.rs:");
    let folded = section
        .find(&summary)
        .unwrap_or_else(|| panic!("no folded summary in:\n{section}"));
    let closed = section.find("</details>").unwrap();
    let rows: Vec<usize> = section
        .match_indices("<span class=\"name\">recursion_fold::descend</span>")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(rows.len(), DEPTH as usize);
    assert!(rows.iter().all(|&i| folded < i && i < closed));
    assert!(!section.contains("<script"));

    // fold=0: rows only, no section.
    let html = rendered(&snapshot, Format::Html, false);
    let section = html_section(&html, THREAD);
    assert!(!section.contains("<details>"), "{section}");
    assert_eq!(
        section
            .matches("<span class=\"name\">recursion_fold::descend</span>")
            .count(),
        DEPTH as usize
    );

    // JSON keeps every frame with its own values.
    let json = rendered(&snapshot, Format::Json, true);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let bucket = json["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["names"].to_string().contains(THREAD))
        .expect("the recursion's bucket");
    let frames = bucket["frames"].as_array().unwrap();
    assert_eq!(frames.len(), DEPTH as usize);
    let levels: Vec<&str> = frames
        .iter()
        .map(|f| f["args"][0]["value"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=DEPTH).rev().map(|l| l.to_string()).collect();
    assert_eq!(levels, expected);
}

/// With native stacks, each level of `descend` is its native frame with
/// the arguments merged in (the default method unwinds this test, built
/// without frame pointers, from the futex call through every level it
/// keeps); the levels still fold into one line, the frames the thread is
/// blocked in stay shown.
#[cfg(target_os = "linux")]
#[test]
fn deep_recursion_folds_on_the_merged_stack() {
    use support::stack::in_order;
    use webstack::native::{self, DEFAULT_STACK_COPY, MAX_NATIVE_FRAMES};
    use webstack::Options;

    let _watchdog = watchdog(
        "recursion_fold::deep_recursion_folds_on_the_merged_stack",
        LIMIT,
    );
    // A level takes about 3 KiB of stack in a debug build: copy enough for
    // every frame webstack keeps, not the default 64 KiB (20 levels).
    native::set_stack_copy(1 << 20);
    let _serial = one_recursion_at_a_time();
    let _recursion = Recursion::start(MERGED);
    let ready = |s: &Snapshot| {
        s.routines().any(|r| {
            r.name == MERGED
                && r.frames.iter().any(|f| f.function.contains("Condvar"))
                && r.frames.iter().filter(|f| f.instrumented).count() == DEPTH as usize
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let snapshot = loop {
        let snapshot = Snapshot::capture(&Options::default().augment(true));
        if ready(&snapshot) || std::time::Instant::now() > deadline {
            break snapshot;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(ready(&snapshot), "the recursion never showed blocked");

    // The native stack goes from the futex call through the wait into the
    // recursion, and each level it keeps (all but the few frames of the
    // wait) is a native frame with the level's arguments merged in.
    let frames = &snapshot
        .routines()
        .find(|r| r.name == MERGED)
        .expect("the recursion's thread")
        .frames;
    let wait = [
        "syscall|futex_wait",
        "Condvar::wait",
        "support::gate::Gate::wait",
        "recursion_fold::descend",
    ];
    if let Err(e) = in_order(frames, &wait) {
        panic!("the native stack is cut: {e}");
    }
    let native_levels = frames
        .iter()
        .filter(|f| f.instrumented && f.address.is_some())
        .count();
    assert!(
        native_levels >= MAX_NATIVE_FRAMES - 16,
        "{native_levels} levels of descend merged into native frames"
    );

    let text = rendered(&snapshot, Format::Text, true);
    let block = normalise(text_block(&text, MERGED));
    let folded: Vec<&str> = block.lines().filter(|l| l.contains(" × ")).collect();
    assert_eq!(folded.len(), 1, "{block}");
    assert!(
        folded[0].starts_with("    ... recursion_fold::descend × "),
        "{block}"
    );
    assert!(folded[0].contains("(level = "), "{block}");
    let shown = block
        .lines()
        .filter(|l| l.starts_with("    recursion_fold::descend("))
        .count();
    // At most the innermost level, which stands on another line of code,
    // may be shown on its own: never the 250 rows.
    assert!(shown <= 1, "{block}");
    // What the thread is blocked in stays folded as before.
    let first = block.lines().nth(1).unwrap();
    assert!(first.ends_with(" runtime and std frames"), "{block}");

    let html = rendered(&snapshot, Format::Html, true);
    check_html(&html).unwrap();
    let section = html_section(&html, MERGED);
    assert_eq!(section.matches("<tr class=\"fold rec\">").count(), 1);

    let json = rendered(&snapshot, Format::Json, true);
    assert_eq!(
        json.matches("\"function\":\"recursion_fold::descend\"")
            .count(),
        DEPTH as usize
    );
    native::set_stack_copy(DEFAULT_STACK_COPY);
}

fn level(function: &'static str, n: u64) -> webstack::Frame {
    frame(function, 10, vec![arg("n", "u64", Value::u64(n))])
}

fn text_of(frames: Vec<webstack::Frame>) -> String {
    let snapshot = model::snapshot(vec![model::thread(1, "t", 1, model::secs(1), frames)]);
    let text = rendered(&snapshot, Format::Text, true);
    text[text.find("\n\n").unwrap() + 2..].to_owned()
}

#[test]
fn two_levels_stay_rows_three_fold() {
    let _watchdog = watchdog("recursion_fold::two_levels_stay_rows_three_fold", LIMIT);
    assert_eq!(
        text_of(vec![level("app::f", 2), level("app::f", 1)]),
        "1: thread alive [1 s] t 1
    app::f(n: u64 = 2)
        src/app.rs:10
    app::f(n: u64 = 1)
        src/app.rs:10
"
    );
    assert_eq!(
        text_of(vec![
            level("app::leaf", 0),
            level("app::f", 3),
            level("app::f", 2),
            level("app::f", 1),
            level("app::main", 0),
        ]),
        "1: thread alive [1 s] t 1
    app::leaf(n: u64 = 0)
        src/app.rs:10
    ... app::f × 3 (n = 3 → 1)
        src/app.rs:10
    app::main(n: u64 = 0)
        src/app.rs:10
"
    );
}

/// A level spanning several frames: mutual recursion names both functions;
/// native frames between the levels are folded with them; a value equal at
/// both ends but not between says so; lines that differ are listed.
#[test]
fn levels_of_several_frames() {
    let _watchdog = watchdog("recursion_fold::levels_of_several_frames", LIMIT);
    let mut frames = Vec::new();
    for n in [4, 3, 2] {
        frames.push(level("app::even", n));
        frames.push(level("app::odd", n * 10));
    }
    assert_eq!(
        text_of(frames),
        "1: thread alive [1 s] t 1
    ... app::even × 3 (n = 4 → 2), app::odd × 3 (n = 40 → 20)
        src/app.rs:10
"
    );

    let mut frames = vec![native(
        "std::thread::park",
        "std/src/thread/mod.rs",
        1,
        Origin::Std,
    )];
    for (n, line) in [(7, 12), (9, 10), (7, 10)] {
        let mut f = level("app::walk", n);
        f.line = line;
        frames.push(f);
        frames.push(native(
            "core::ops::function::FnOnce::call_once",
            "core/src/ops/function.rs",
            250,
            Origin::Std,
        ));
    }
    assert_eq!(
        text_of(frames),
        "1: thread alive [1 s] t 1
    std::thread::park
        std/src/thread/mod.rs:1
    ... app::walk × 3 (n = 7 → … → 7), 2 frames between
        src/app.rs:12, 10
    core::ops::function::FnOnce::call_once
        core/src/ops/function.rs:250
"
    );
}
