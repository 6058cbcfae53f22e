//! The plain-text form: a whole dump of a hand-built snapshot, and the block
//! of real idle tasks.

use std::time::Duration;

use pretty_assertions::assert_eq;
use support::model;
use support::normalise::normalise;
use support::wait::watchdog;
use webstack::render::{render, render_to, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot};

#[test]
fn whole_dump() {
    let queue = 0u8;
    let snap = model::sample(&queue);
    let buckets = Buckets::aggregate(&snap, Similarity::AnyValue);
    let text = render(&snap, &buckets, &View::default().format(Format::Text)).unwrap();
    let expected = format!(
        "webstack {version} at 2025-11-25T17:41:51.123Z: 2 threads, 3 tasks, 3 buckets (anyvalue), 0 left out, captured in 1.234 ms, 10.0 KiB of 64.0 MiB

1: thread alive [60 s] main 1 (serving this request)
    app::handler(id: u32 = 7)
        src/app.rs:12
    serde_json::de::from_str
        serde_json-1.0/src/de.rs:2687
    ... 3 runtime and std frames

3: task idle [2~5 s] conn 5, 6, 7
    app::leaf(n: u32 = *, rx: &Receiver<()> = #1)
        src/app.rs:17
    app::root(name: &str = \"alice\")
        src/app.rs:22
    spawned by app::main at src/main.rs:40

1: thread alive [60 s] worker 2
    app::work(q: &Queue = #1)
        src/app.rs:30
",
        version = env!("CARGO_PKG_VERSION")
    );
    assert_eq!(text, expected);

    let mut written = Vec::new();
    render_to(
        &mut written,
        &snap,
        &buckets,
        &View::default().format(Format::Text),
    )
    .unwrap();
    assert_eq!(String::from_utf8(written).unwrap(), expected);
}

/// `fold=0` shows every frame; paths stay shortened: a registry crate's
/// from its `name-version/` directory, the standard library's from its
/// crate, the program's own relative to the workspace.
#[test]
fn unfolded_dump_shows_every_frame_with_short_paths() {
    let queue = 0u8;
    let mut routines: Vec<_> = model::sample(&queue).routines().collect();
    routines[0].frames[0].file = "/srv/app/src/app.rs".into();
    routines[0].frames[2].file = "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/runtime/task/raw.rs".into();
    let mut snap = model::snapshot(routines);
    snap.process = model::elsewhere();
    let buckets = Buckets::aggregate(&snap, Similarity::AnyValue);
    let mut text = Vec::new();
    render_to(
        &mut text,
        &snap,
        &buckets,
        &View::default().format(Format::Text).fold(false),
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    let first = &text[text.find("1: thread").unwrap()..text.find("\n\n3: task").unwrap()];
    assert_eq!(
        first,
        "1: thread alive [60 s] main 1 (serving this request)
    app::handler(id: u32 = 7)
        src/app.rs:12
    serde_json::de::from_str
        serde_json-1.0/src/de.rs:2687
    tokio::runtime::task::raw::poll
        tokio-1.54.1/src/runtime/task/raw.rs:255 0x1234
    tokio::runtime::scheduler::multi_thread::worker::run
        tokio-1/src/runtime/scheduler/multi_thread/worker.rs:500
    std::thread::local::LocalKey<T>::with
        std/src/thread/local.rs:283"
    );
    assert!(text.starts_with("webstack 0.0.9 at "), "{text}");
}

#[test]
fn long_member_lists_are_folded() {
    let routines = (1..=100)
        .map(|id| model::task(id, "conn", model::secs(1), vec![]))
        .collect();
    let snap = model::snapshot(routines);
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    let text = render(&snap, &buckets, &View::default().format(Format::Text)).unwrap();
    let ids: Vec<String> = (1..=64).map(|i| i.to_string()).collect();
    let first = text.lines().nth(2).unwrap();
    assert_eq!(
        first,
        format!("100: task idle [1 s] conn {} … and 36 more", ids.join(", "))
    );
}

#[test]
fn names_with_control_characters_are_escaped() {
    let mut routine = model::thread(3, "evil\nname\u{1b}[31m", 5, model::secs(1), vec![]);
    routine.name = format!("{}{}", routine.name, "x".repeat(300)).into();
    let snap = model::snapshot(vec![routine]);
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    let text = render(&snap, &buckets, &View::default().format(Format::Text)).unwrap();
    let line = text.lines().nth(2).unwrap();
    let shown = format!("evil\\nname\\u{{1b}}[31m{}…", "x".repeat(200 - 14));
    assert_eq!(line, format!("1: thread alive [1 s] {shown} 3"));
    assert_eq!(text.lines().count(), 3);
}

struct Lock;

#[webstack::instrument]
fn rt_hold(
    slot: u32,
    lock: &Lock,
    tx: &std::sync::mpsc::Sender<()>,
    rx: &std::sync::mpsc::Receiver<()>,
) {
    tx.send(()).unwrap();
    rx.recv().ok();
}

#[test]
fn real_threads_dump() {
    let _watchdog = watchdog("render_text::real_threads_dump", Duration::from_secs(60));
    let lock = std::sync::Arc::new(Lock);
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for slot in [3, 3] {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        stops.push(stop_tx);
        let (lock, ready_tx) = (lock.clone(), ready_tx.clone());
        handles.push(
            webstack::thread::Builder::new()
                .name("rt-holder".into())
                .spawn(move || rt_hold(slot, &lock, &ready_tx, &stop_rx))
                .unwrap(),
        );
    }
    ready_rx.recv().unwrap();
    ready_rx.recv().unwrap();
    let snap = Snapshot::capture(&Options::default().augment(false));
    for stop in stops {
        stop.send(()).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    let text = render(&snap, &buckets, &View::default().format(Format::Text)).unwrap();
    let ids: Vec<String> = snap
        .routines()
        .filter(|r| r.name == "rt-holder")
        .map(|r| r.id.to_string())
        .collect();
    let block = normalise(
        text.split("\n\n")
            .find(|b| b.contains("rt-holder"))
            .unwrap()
            .trim_end(),
    );
    assert_eq!(
        block,
        format!(
            "2: thread alive [DURATION] rt-holder {}\
             \n    render_text::rt_hold(slot: u32 = 3, lock: &Lock = #1, tx: &std::sync::mpsc::Sender<()> = *, rx: &std::sync::mpsc::Receiver<()> = *)\
             \n        {file}:LINE\
             \n    created at {file}:LINE",
            ids.join(", "),
            file = file!()
        )
    );
}
