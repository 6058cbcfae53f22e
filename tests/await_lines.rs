//! An idle task's instrumented frames show the line of the `.await` each is
//! suspended at (like a thread's native frames show the line of the call),
//! and the similarity levels tell apart tasks parked at different awaits of
//! one function. Expected lines are found by the `// await:` markers in this
//! file, so the tests do not depend on line numbers.

use std::future::{pending, ready, Future};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::poll::poll_once;
use support::snapshot::{shadow_snapshot, shadow_snapshot_until};
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Frame, Routine, Similarity, Snapshot};

/// The line of this file holding `// await: <marker>` (once).
fn line_of(marker: &str) -> u32 {
    let wanted = format!("// await: {marker}");
    let lines: Vec<usize> = include_str!("await_lines.rs")
        .lines()
        .enumerate()
        .filter(|(_, text)| text.trim_end().ends_with(&wanted))
        .map(|(index, _)| index + 1)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "marker {marker:?} must be on exactly one line"
    );
    lines[0] as u32
}

/// `(function name, line, awaiting, definition line)` of each frame,
/// innermost first.
fn lines(routine: &Routine) -> Vec<(String, u32, bool, Option<u32>)> {
    routine
        .frames
        .iter()
        .map(|f: &Frame| {
            let name = f.function.rsplit("::").next().unwrap_or("").to_owned();
            (name, f.line, f.awaiting, f.definition_line)
        })
        .collect()
}

/// Polls `root` once (it must stay pending) and returns the task named
/// `name` as a snapshot shows it, with `root` still alive.
fn idle_task(name: &str, root: impl Future<Output = ()>) -> Routine {
    let mut root = Box::pin(root);
    assert!(poll_once(root.as_mut()).is_pending());
    let snapshot = shadow_snapshot();
    let found: Vec<Routine> = snapshot.routines().filter(|r| r.name == name).collect();
    assert_eq!(found.len(), 1, "one task named {name}");
    let routine = found[0].clone();
    drop(root);
    routine
}

#[webstack::instrument]
async fn quick(n: u32) -> u32 {
    n
}

#[webstack::instrument] // await: three_steps fn
async fn three_steps(id: u32) {
    quick(1).await; // await: first of three
    pending::<()>().await; // await: second of three
    ready(()).await; // await: third of three
}

#[test]
fn a_task_parked_at_the_second_of_three_awaits_shows_that_line() {
    let task = idle_task("three_steps", three_steps(7));
    assert_eq!(
        lines(&task),
        [(
            "three_steps".to_owned(),
            line_of("second of three"),
            true,
            Some(line_of("three_steps fn") + 1),
        )]
    );
    assert_ne!(line_of("first of three"), line_of("second of three"));
    assert_ne!(line_of("third of three"), line_of("second of three"));
}

static TURN: AtomicU32 = AtomicU32::new(0);

/// Parks the first task that calls it at one await and the second at
/// another, with the same argument: only the await line tells them apart.
#[webstack::instrument]
async fn park_somewhere(kind: u32) {
    if TURN.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
        pending::<()>().await; // await: first park
    } else {
        pending::<()>().await; // await: second park
    }
}

#[test]
fn two_tasks_parked_at_different_awaits_of_one_function_are_two_buckets_at_every_level() {
    let mut first = Box::pin(park_somewhere(3));
    let mut second = Box::pin(park_somewhere(3));
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    let mut snapshot = shadow_snapshot();
    snapshot.retain(|r| r.name == "park_somewhere");
    assert_eq!(snapshot.routines().len(), 2);
    for similarity in [
        Similarity::ExactFlags,
        Similarity::ExactLines,
        Similarity::AnyPointer,
        Similarity::AnyValue,
    ] {
        let buckets = Buckets::aggregate(&snapshot, similarity);
        let mut parked_at: Vec<u32> = buckets
            .buckets
            .iter()
            .map(|b| {
                assert_eq!(b.count, 1, "{similarity:?}");
                assert!(b.frames[0].awaiting);
                b.frames[0].line
            })
            .collect();
        parked_at.sort_unstable();
        assert_eq!(
            parked_at,
            [line_of("first park"), line_of("second park")],
            "{similarity:?}"
        );
    }
    drop((first, second));
}

#[webstack::instrument]
async fn nested_inner(step: u32) {
    tokio::time::sleep(Duration::from_secs(3600)).await; // await: inner sleeps
}

#[webstack::instrument]
async fn nested_outer(step: u32) {
    quick(step).await;
    nested_inner(step + 1).await; // await: outer awaits inner
}

#[test]
fn each_frame_of_a_nested_chain_shows_its_own_await_line() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let _task = runtime.spawn(nested_outer(1));
    let idle_chain = |s: &Snapshot| {
        s.routines()
            .any(|r| r.name == "nested_outer" && r.frames.len() == 2 && r.frames[0].awaiting)
    };
    let snapshot = shadow_snapshot_until(Duration::from_secs(10), idle_chain);
    let task = snapshot
        .routines()
        .find(|r| r.name == "nested_outer")
        .expect("the task is listed");
    assert_eq!(
        lines(&task)
            .into_iter()
            .map(|(name, line, awaiting, _)| (name, line, awaiting))
            .collect::<Vec<_>>(),
        [
            ("nested_inner".to_owned(), line_of("inner sleeps"), true),
            (
                "nested_outer".to_owned(),
                line_of("outer awaits inner"),
                true
            ),
        ]
    );
    runtime.shutdown_background();
}

#[webstack::instrument]
async fn block_awaited_in_body(id: u32) {
    let block = async {
        quick(id).await;
        pending::<()>().await; // await: inside the block
    };
    block.await; // await: the body awaits the block
}

#[webstack::instrument]
async fn block_joined_by_a_macro(id: u32) {
    let block = async {
        quick(id).await;
        pending::<()>().await; // await: inside the joined block
    };
    futures::join!(block, quick(2));
}

#[test]
fn an_await_inside_an_async_block_is_seen() {
    // Awaited directly, the body is suspended at the `.await` of the block.
    let task = idle_task("block_awaited_in_body", block_awaited_in_body(1));
    assert_eq!(lines(&task)[0].1, line_of("the body awaits the block"));
    assert!(lines(&task)[0].2);
    // Awaited by a macro, whose own await cannot be rewritten: the line of
    // the `.await` inside the block, which the rewrite reached.
    let task = idle_task("block_joined_by_a_macro", block_joined_by_a_macro(1));
    assert_eq!(lines(&task)[0].1, line_of("inside the joined block"));
    assert!(lines(&task)[0].2);
}

#[webstack::instrument]
async fn one_select(id: u32) {
    let never = pending::<()>();
    tokio::select! { // await: the select call
        () = never => {}
        () = pending::<()>() => {}
    }
}

#[webstack::instrument] // await: two_joins fn
async fn two_joins(id: u32) {
    futures::join!(ready(()), quick(1));
    futures::join!(pending::<()>(), quick(2));
}

#[test]
fn select_and_join_show_the_macro_call_when_the_body_has_one() {
    let task = idle_task("one_select", one_select(1));
    assert_eq!(lines(&task)[0].1, line_of("the select call"));
    assert!(lines(&task)[0].2, "shown as an await line");
    // Two macro calls that may await: which one is pending is not known,
    // so the frame keeps its definition line and is not marked awaiting.
    let task = idle_task("two_joins", two_joins(1));
    assert_eq!(
        lines(&task),
        [(
            "two_joins".to_owned(),
            line_of("two_joins fn") + 1,
            false,
            None,
        )]
    );
}

#[webstack::instrument]
async fn shown_in_every_format(id: u32) {
    pending::<()>().await; // await: shown in every format
}

#[test]
fn text_html_and_json_say_the_frame_is_awaiting() {
    let mut root = Box::pin(shown_in_every_format(5));
    assert!(poll_once(root.as_mut()).is_pending());
    let mut snapshot = shadow_snapshot();
    snapshot.retain(|r| r.name == "shown_in_every_format");
    drop(root);
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let page = |format| render(&snapshot, &buckets, &View::default().format(format)).unwrap();
    let line = line_of("shown in every format");
    let text = page(Format::Text);
    let location = format!("await_lines.rs:{line}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("        awaiting at ") && l.ends_with(&location)),
        "{text}"
    );
    let html = page(Format::Html);
    assert!(html.contains(">awaiting at</span> "), "{html}");
    let json: serde_json::Value = serde_json::from_str(&page(Format::Json)).unwrap();
    let frame = &json["buckets"][0]["frames"][0];
    assert_eq!(frame["line"], line);
    assert_eq!(frame["awaiting"], true);
    assert_eq!(frame["definition_line"], line - 1);
    let raw: serde_json::Value = serde_json::from_str(&snapshot.to_json()).unwrap();
    let frame = &raw["routines"][0]["frames"][0];
    assert_eq!(frame["line"], line);
    assert_eq!(frame["awaiting"], true);
    assert_eq!(frame["definition_line"], line - 1);
}
