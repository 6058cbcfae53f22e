//! Hand-built snapshots for the bucket and render tests: frames, tasks and
//! threads with fixed values, and a small sample program.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use webstack::native::Origin;
use webstack::{Arg, CreatedBy, Frame, Kind, LeftOut, Routine, Snapshot, State, Value};

pub fn arg(name: &'static str, ty: &'static str, value: Value) -> Arg {
    Arg { name, ty, value }
}

/// An instrumented frame of the application.
pub fn frame(function: &'static str, line: u32, args: Vec<Arg>) -> Frame {
    Frame {
        function: Cow::Borrowed(function),
        file: Cow::Borrowed("src/app.rs"),
        line,
        instrumented: true,
        args: args.into(),
        task: None,
        address: None,
        source: None,
        origin: webstack::native::classify(function),
    }
}

/// A native frame (no arguments) with the given origin.
pub fn native(function: &'static str, file: &'static str, line: u32, origin: Origin) -> Frame {
    Frame {
        function: Cow::Borrowed(function),
        file: Cow::Borrowed(file),
        line,
        instrumented: false,
        args: Default::default(),
        task: None,
        address: None,
        source: None,
        origin,
    }
}

pub const CREATOR: CreatedBy = CreatedBy {
    function: "app::main",
    file: "src/main.rs",
    line: 40,
};

/// An idle task that has waited `waited`.
pub fn task(id: u64, name: &'static str, waited: Duration, frames: Vec<Frame>) -> Routine {
    Routine {
        id,
        kind: Kind::Task,
        name: Cow::Borrowed(name),
        state: State::Idle,
        created_by: Some(CREATOR),
        age: waited + Duration::from_secs(1),
        waiting: Some(waited),
        polls: Some(1),
        running_on: None,
        tid: None,
        elided: 0,
        torn: false,
        frames,
    }
}

/// A live thread of age `age`.
pub fn thread(id: u64, name: &str, tid: i64, age: Duration, frames: Vec<Frame>) -> Routine {
    Routine {
        id,
        kind: Kind::Thread,
        name: Cow::Owned(name.to_owned()),
        state: State::Alive,
        created_by: None,
        age,
        waiting: None,
        polls: None,
        running_on: None,
        tid: Some(tid),
        elided: 0,
        torn: false,
        frames,
    }
}

/// A snapshot taken at a fixed instant by the thread with kernel id 100.
pub fn snapshot(routines: Vec<Routine>) -> Snapshot {
    Snapshot {
        version: webstack::JSON_VERSION,
        captured_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_092_511_123),
        capture_time: Duration::from_micros(1234),
        maxmem: webstack::DEFAULT_MAXMEM,
        bytes_used: 10 * 1024,
        augmented: false,
        left_out: LeftOut::default(),
        captured_by_tid: Some(100),
        native_error: None,
        routines,
    }
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
