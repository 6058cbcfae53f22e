//! Helpers for the pass cases in `tests/ui/pass/`: they look at the frames
//! that `#[webstack::instrument]` records, from inside the instrumented code.
//!
//! The trybuild cases themselves are listed in `tests/ui.rs`; see the README.
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

use webstack::{Frame, Kind, Options, Routine, Snapshot};

fn snapshot() -> Snapshot {
    Snapshot::capture(&Options::default().augment(false))
}

/// The frames of the calling thread, outermost first.
pub fn thread_frames() -> Vec<Frame> {
    let snapshot = snapshot();
    snapshot
        .routines()
        .into_iter()
        .find(|r| r.kind == Kind::Thread && r.tid.is_some() && r.tid == snapshot.captured_by_tid)
        .expect("the calling thread is registered")
        .frames
        .to_vec()
}

/// The innermost frame of the calling thread whose function path is
/// `path_suffix` or ends with `::path_suffix`.
///
/// Panics with the thread's frames when there is none, so a failing case says
/// what was recorded instead.
pub fn frame(path_suffix: &str) -> Frame {
    let frames = thread_frames();
    let wanted = format!("::{path_suffix}");
    frames
        .iter()
        .rev()
        .find(|f| f.function == path_suffix || f.function.ends_with(&wanted))
        .cloned()
        .unwrap_or_else(|| {
            let names: Vec<&str> = frames.iter().map(|f| &*f.function).collect();
            panic!("no frame `{path_suffix}` on this thread; frames: {names:?}")
        })
}

/// The task routine whose root frame, being polled on the calling thread, is
/// `path_suffix` (as for [`frame`]).
pub fn task(path_suffix: &str) -> Routine {
    let root = frame(path_suffix);
    let id = root
        .task
        .unwrap_or_else(|| panic!("`{path_suffix}` is not the root frame of a task"));
    snapshot()
        .routines()
        .into_iter()
        .find(|r| r.kind == Kind::Task && r.id == id)
        .unwrap_or_else(|| panic!("no task routine with id {id}"))
}

/// `(name, type, value)` of each recorded argument of `frame`, values as
/// displayed.
pub fn args(frame: &Frame) -> Vec<(&'static str, &'static str, String)> {
    frame
        .args
        .iter()
        .map(|a| (a.name, a.ty, a.value.to_string()))
        .collect()
}

/// Returns `future` unchanged, failing to compile unless it is `Send`: an
/// instrumented function's future must stay `Send` where the plain one is.
pub fn assert_send<F: std::future::Future + Send>(future: F) -> F {
    future
}
