//! Argument values as recorded by `Capture`: every built-in impl, the
//! fallbacks without one (pointee address, by value), a user's impl, `skip`,
//! `skip_all`, destructured parameters, generic parameters and methods.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::snapshot::shadow_snapshot;
use webstack::{Capture, Value};

/// The innermost frame of the calling thread, as "name: type = value" lines.
fn my_frame() -> Vec<String> {
    let tid = std::thread::current().id();
    let name = format!("{tid:?}");
    let snapshot = shadow_snapshot();
    let me = snapshot
        .routines()
        .find(|r| r.name == name || r.name == std::thread::current().name().unwrap_or("-"))
        .expect("this thread is registered");
    me.frames[0]
        .args
        .iter()
        .map(|a| {
            let value = match a.value.pointee_type() {
                Some(ty) => format!("<{ty} at ADDR>"),
                None => a.value.to_string(),
            };
            format!("{}: {} = {}", a.name, a.ty, value)
        })
        .collect()
}

#[webstack::instrument]
#[allow(clippy::too_many_arguments)]
fn numbers(a: i8, b: u16, c: i64, d: u128, e: f32, f: f64, g: bool, h: char) -> Vec<String> {
    my_frame()
}

#[test]
fn primitives() {
    assert_eq!(
        std::thread::scope(|s| s
            .spawn(|| numbers(-1, 2, -3, u128::MAX, 0.5, 2.25, true, 'é'))
            .join()
            .unwrap()),
        vec![
            "a: i8 = -1",
            "b: u16 = 2",
            "c: i64 = -3",
            "d: u128 = 340282366920938463463374607431768211455",
            "e: f32 = 0.5",
            "f: f64 = 2.25",
            "g: bool = true",
            "h: char = 'é'",
        ]
    );
}

#[webstack::instrument]
fn strings(short: &str, owned: String, long: &String, cut: &str) -> Vec<String> {
    my_frame()
}

#[test]
fn strings_keep_32_bytes_and_the_length() {
    let long = "x".repeat(100);
    let cut = format!("{}é", "a".repeat(31));
    let got = std::thread::scope(|s| {
        s.spawn(|| strings("alice", "bob".into(), &long, &cut))
            .join()
            .unwrap()
    });
    assert_eq!(
        got,
        vec![
            "short: &str = \"alice\"".to_owned(),
            "owned: String = \"bob\"".to_owned(),
            format!("long: &String = \"{}…\" (len 100)", "x".repeat(32)),
            format!("cut: &str = \"{}…\" (len 33)", "a".repeat(31)),
        ]
    );
}

#[webstack::instrument]
#[allow(clippy::too_many_arguments)]
fn collections(
    slice: &[u8],
    array: [u8; 3],
    vec: &Vec<u32>,
    deque: VecDeque<u8>,
    map: &HashMap<u8, u8>,
    tree: BTreeMap<u8, u8>,
    set: &HashSet<u8>,
    nested: &&Vec<u8>,
) -> Vec<String> {
    my_frame()
}

#[test]
fn collections_record_their_length() {
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            collections(
                &[1, 2],
                [0; 3],
                &vec![1, 2, 3, 4],
                VecDeque::from(vec![1]),
                &HashMap::from([(1, 1), (2, 2)]),
                BTreeMap::new(),
                &HashSet::from([9]),
                &&vec![0; 7],
            )
        })
        .join()
        .unwrap()
    });
    assert_eq!(
        got,
        vec![
            "slice: &[u8] = len 2",
            "array: [u8; 3] = len 3",
            "vec: &Vec<u32> = len 4",
            "deque: VecDeque<u8> = len 1",
            "map: &HashMap<u8, u8> = len 2",
            "tree: BTreeMap<u8, u8> = len 0",
            "set: &HashSet<u8> = len 1",
            "nested: &&Vec<u8> = len 7",
        ]
    );
}

#[webstack::instrument]
fn wrappers(
    some: Option<u32>,
    none: Option<&str>,
    ok: Result<u8, String>,
    err: &Result<u8, String>,
    timeout: Duration,
    nz: NonZeroU32,
) -> Vec<String> {
    my_frame()
}

#[test]
fn options_results_durations_nonzero() {
    let err = Err("bad".to_owned());
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            wrappers(
                Some(5),
                None,
                Ok(1),
                &err,
                Duration::from_millis(250),
                NonZeroU32::new(3).unwrap(),
            )
        })
        .join()
        .unwrap()
    });
    assert_eq!(
        got,
        vec![
            "some: Option<u32> = Some(5)",
            "none: Option<&str> = None",
            "ok: Result<u8, String> = Ok(1)",
            "err: &Result<u8, String> = Err(\"bad\")",
            "timeout: Duration = 250ms",
            "nz: NonZeroU32 = 3",
        ]
    );
}

pub struct Queue {
    _jobs: Vec<u32>,
}

pub struct UserId(u64);

impl Capture for UserId {
    fn capture(&self) -> Value {
        Value::u64(self.0)
    }
}

#[webstack::instrument]
fn fallbacks(
    queue: &Mutex<Queue>,
    by_value: Queue,
    shared: std::sync::Arc<Queue>,
    user: &UserId,
    owned_user: UserId,
) -> Vec<String> {
    let frame = my_frame();
    drop((by_value, shared));
    frame
}

/// A reference or smart pointer records the address and type of what it
/// points at; a value taken by value records neither.
#[test]
fn values_without_capture_are_recorded_by_pointee_or_as_by_value() {
    let queue = Mutex::new(Queue { _jobs: vec![] });
    let shared = std::sync::Arc::new(Queue { _jobs: vec![] });
    let got = std::thread::scope(|s| {
        s.spawn(|| {
            fallbacks(
                &queue,
                Queue { _jobs: vec![] },
                shared.clone(),
                &UserId(7),
                UserId(8),
            )
        })
        .join()
        .unwrap()
    });
    assert_eq!(
        got,
        vec![
            "queue: &Mutex<Queue> = <std::sync::poison::mutex::Mutex<capture::Queue> at ADDR>"
                .replace(
                    "std::sync::poison::mutex::Mutex",
                    std::any::type_name::<Mutex<Queue>>()
                        .split('<')
                        .next()
                        .unwrap()
                ),
            "by_value: Queue = <by value>".to_owned(),
            "shared: std::sync::Arc<Queue> = <capture::Queue at ADDR>".to_owned(),
            "user: &UserId = 7".to_owned(),
            "owned_user: UserId = 8".to_owned(),
        ]
    );
}

#[webstack::instrument(skip(password))]
#[allow(unused_variables)]
fn login(user: &str, password: &str) -> Vec<String> {
    my_frame()
}

#[webstack::instrument(skip_all)]
#[allow(unused_variables)]
fn secret(token: &str, pin: u32) -> Vec<String> {
    my_frame()
}

#[test]
fn skipped_parameters_are_never_recorded() {
    let got = std::thread::scope(|s| s.spawn(|| login("alice", "hunter2")).join().unwrap());
    assert_eq!(got, vec!["user: &str = \"alice\""]);
    let got = std::thread::scope(|s| s.spawn(|| secret("t0k3n", 1234)).join().unwrap());
    assert!(got.is_empty());
}

#[webstack::instrument]
fn destructured((x, y): (u32, u32), Point { a, .. }: Point) -> Vec<String> {
    let _ = (x, y, a);
    my_frame()
}

pub struct Point {
    a: u8,
    #[allow(dead_code)]
    b: u8,
}

#[webstack::instrument]
fn generic<T, U: Capture>(opaque: T, known: U) -> Vec<String> {
    my_frame()
}

#[test]
fn destructured_and_generic_parameters() {
    let got = std::thread::scope(|s| {
        s.spawn(|| destructured((1, 2), Point { a: 1, b: 2 }))
            .join()
            .unwrap()
    });
    assert_eq!(
        got,
        vec!["(x, y): (u32, u32) = ?", "Point { a, .. }: Point = ?"]
    );
    let got = std::thread::scope(|s| {
        s.spawn(|| generic(Point { a: 0, b: 0 }, 5u8))
            .join()
            .unwrap()
    });
    assert_eq!(got, vec!["opaque: T = <by value>", "known: U = 5"]);
}

pub struct Server {
    port: u16,
}

impl Capture for Server {
    fn capture(&self) -> Value {
        Value::u64(self.port as u64)
    }
}

impl Server {
    #[webstack::instrument]
    fn handle(&self, request: u32) -> (String, Vec<String>) {
        let snapshot = shadow_snapshot();
        let name = format!("{:?}", std::thread::current().id());
        let me = snapshot.routines().find(|r| r.name == name).unwrap();
        (me.frames[0].function.to_string(), my_frame())
    }
}

#[test]
fn methods_record_self_and_their_type() {
    let server = Server { port: 8080 };
    let (function, args) = std::thread::scope(|s| s.spawn(|| server.handle(3)).join().unwrap());
    assert_eq!(function, "capture::Server::handle");
    assert_eq!(args, vec!["self: &Self = 8080", "request: u32 = 3"]);
}
