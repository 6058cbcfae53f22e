//! Hand-built snapshots for the bucket and render tests: frames, tasks and
//! threads with fixed values, and a small sample program.

use std::time::{Duration, SystemTime};

use webstack::{Arg, CreatedBy, Frame, Origin, Process, Routine, Snapshot, Value};

pub fn arg(name: &'static str, ty: &'static str, value: Value) -> Arg {
    Arg::new(name, ty, value)
}

/// An instrumented frame of the application.
pub fn frame(function: &'static str, line: u32, args: Vec<Arg>) -> Frame {
    Frame::new(function, "src/app.rs", line).instrumented(args)
}

/// A native frame (no arguments) with the given origin.
pub fn native(function: &'static str, file: &'static str, line: u32, origin: Origin) -> Frame {
    let mut frame = Frame::new(function, file, line);
    frame.origin = origin;
    frame
}

pub fn creator() -> CreatedBy {
    CreatedBy::new("app::main", "src/main.rs", 40)
}

/// An idle task that has waited `waited`.
pub fn task(id: u64, name: &'static str, waited: Duration, frames: Vec<Frame>) -> Routine {
    let mut task = Routine::task(id, name);
    task.created_by = Some(creator());
    task.age = waited + Duration::from_secs(1);
    task.waiting = Some(waited);
    task.polls = Some(1);
    task.frames = frames.into();
    task
}

/// A live thread of age `age`.
pub fn thread(id: u64, name: &str, tid: i64, age: Duration, frames: Vec<Frame>) -> Routine {
    let mut thread = Routine::thread(id, name.to_owned());
    thread.age = age;
    thread.tid = Some(tid);
    thread.frames = frames.into();
    thread
}

/// A snapshot taken at a fixed instant by the thread with kernel id 100.
pub fn snapshot(routines: Vec<Routine>) -> Snapshot {
    let mut snapshot = Snapshot::new(routines);
    snapshot.captured_at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_092_511_123);
    snapshot.capture_time = Duration::from_micros(1234);
    snapshot.bytes_used = 10 * 1024;
    snapshot.captured_by_tid = Some(100);
    snapshot
}

/// Another machine's process, to show that a snapshot renders the process
/// it was taken in, not the one rendering it.
pub fn elsewhere() -> Process {
    let mut process = Process::default();
    process.pid = 4242;
    process.exe = "/srv/app/bin/app".to_owned();
    process.host = "web-1".to_owned();
    process.uptime = Duration::from_secs(3600);
    process.webstack = "0.0.9".into();
    process.platform = "linux aarch64".into();
    process.source_root = Some("/srv/app".to_owned());
    process
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A small program: the serving thread (with runtime frames below the
/// handler), a worker thread holding a shared queue, and three idle
/// connection tasks that also hold it.
pub fn sample(queue: &u8) -> Snapshot {
    let conn = |id: u64, n: u64, waited: u64| {
        task(
            id,
            "conn",
            secs(waited),
            vec![
                frame(
                    "app::leaf",
                    17,
                    vec![
                        arg("n", "u32", Value::u64(n)),
                        arg("rx", "&Receiver<()>", Value::pointer(queue)),
                    ],
                ),
                frame(
                    "app::root",
                    22,
                    vec![arg("name", "&str", Value::str("alice"))],
                ),
            ],
        )
    };
    let mut server = thread(
        1,
        "main",
        100,
        secs(60),
        vec![
            frame("app::handler", 12, vec![arg("id", "u32", Value::u64(7))]),
            native(
                "serde_json::de::from_str",
                "/home/u/.cargo/registry/src/serde_json-1.0/src/de.rs",
                2687,
                Origin::Dependency,
            ),
            native(
                "tokio::runtime::task::raw::poll",
                "/home/u/.cargo/registry/src/tokio-1/src/runtime/task/raw.rs",
                255,
                Origin::Runtime,
            ),
            native(
                "tokio::runtime::scheduler::multi_thread::worker::run",
                "/home/u/.cargo/registry/src/tokio-1/src/runtime/scheduler/multi_thread/worker.rs",
                500,
                Origin::Runtime,
            ),
            native(
                "std::thread::local::LocalKey<T>::with",
                "/rustc/abc/library/std/src/thread/local.rs",
                283,
                Origin::Std,
            ),
        ],
    );
    server.frames[2].address = Some(0x1234);
    let worker = thread(
        2,
        "worker",
        101,
        secs(60),
        vec![frame(
            "app::work",
            30,
            vec![arg("q", "&Queue", Value::pointer(queue))],
        )],
    );
    snapshot(vec![
        server,
        worker,
        conn(5, 6, 2),
        conn(6, 7, 5),
        conn(7, 8, 3),
    ])
}
