//! Faults around snapshots: concurrent requests, clients that hang up, and
//! panics in user code and in the handler's capture path.
//!
//! Sizes: 8 concurrent clients × 3 requests against a capture held 40 ms
//! open, on 4 workers; 8 requests within a 60 s `min_interval`, on 4
//! workers; 40 hang-ups of four kinds against a JSON response of 2,000
//! buckets (about 1 MB); 12 requests with every third capture panicking; at
//! least 80 calls whose `Capture` impl panics, from 4 threads, until at least
//! 3 snapshots were served meanwhile (at most 100,000 rounds or 30 s).
//! Every test runs a real actix server on 127.0.0.1:0, at a path of its own
//! (tests run in parallel and must not share one service's turn or
//! interval), and a watchdog that aborts after 120 s.
//!
//! Note: `Capture` impls run when the instrumented function is called, in
//! the caller's thread, never during a snapshot; a panicking impl is the
//! caller's panic. The only hook into the handler's capture path is
//! `Webstack::map_snapshot`, which runs between capture and grouping.

use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use support::checks::check_json;
use support::poll::poll_once;
use support::server::{connect, get, get_within, start_server};
use support::wait::watchdog;
use webstack::actix::Webstack;
use webstack::{Capture, Options, Snapshot, Value};

#[webstack::instrument(skip(release))]
fn faults_long_lived(index: u32, release: mpsc::Receiver<()>) {
    let _ = release.recv();
}

/// A named thread that lives for the whole process, to look for in every
/// snapshot.
fn long_lived() -> &'static str {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::mem::forget(tx);
        webstack::thread::Builder::new()
            .name("faults-long-lived".into())
            .spawn(move || faults_long_lived(7, rx))
            .unwrap();
    });
    "faults-long-lived"
}

#[webstack::instrument]
async fn faults_idle(id: u64) {
    std::future::pending::<()>().await;
}

/// Enough idle tasks that a JSON snapshot grouped by `exactflags` (one
/// bucket per task) is about a megabyte, so a client can hang up in the
/// middle of it.
fn many_tasks() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        for id in 0..TASKS {
            let task = Box::leak(Box::new(Box::pin(faults_idle(id))));
            assert!(poll_once(task.as_mut()).is_pending());
        }
    });
}

const TASKS: u64 = 2_000;

#[test]
fn concurrent_requests_are_served_one_at_a_time() {
    let _watchdog = watchdog("one at a time", Duration::from_secs(120));
    let name = long_lived();
    let inside = Arc::new(AtomicUsize::new(0));
    let most_inside = Arc::new(AtomicUsize::new(0));
    let captures = Arc::new(AtomicUsize::new(0));
    let hook = {
        let (inside, most_inside, captures) =
            (inside.clone(), most_inside.clone(), captures.clone());
        move |_: &mut Snapshot| {
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most_inside.fetch_max(now, Ordering::SeqCst);
            captures.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(40));
            inside.fetch_sub(1, Ordering::SeqCst);
        }
    };
    // Four workers, each building its `App` (and so its `Webstack`) from the
    // factory, as `HttpServer::new(|| App::new().service(Webstack::new(..)))`
    // in the module docs does.
    let addr = start_server(4, move || {
        Webstack::new("/ws/one-at-a-time")
            .min_interval(Duration::ZERO)
            .queue_timeout(Duration::from_secs(60))
            .map_snapshot(hook.clone())
    });
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let augment = i % 2;
                    let response = get(
                        addr,
                        &format!("/ws/one-at-a-time?format=json&augment={augment}"),
                    )
                    .unwrap();
                    assert_eq!(response.status, 200, "{}", response.text());
                    let summary = check_json(response.text()).unwrap();
                    assert!(summary.has_thread(name));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    println!(
        "24 concurrent requests served in {:.1?}, at most {} capture at once",
        started.elapsed(),
        most_inside.load(Ordering::SeqCst)
    );
    assert_eq!(captures.load(Ordering::SeqCst), 24);
    assert_eq!(
        most_inside.load(Ordering::SeqCst),
        1,
        "one capture at a time"
    );
}

#[test]
fn min_interval_holds_across_workers() {
    let _watchdog = watchdog("min interval", Duration::from_secs(120));
    let addr = start_server(4, || {
        Webstack::new("/ws/min-interval").min_interval(Duration::from_secs(60))
    });
    // Sequential requests on fresh connections, spread over the workers.
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            get(addr, "/ws/min-interval?format=text&augment=0")
                .unwrap()
                .status
        })
        .collect();
    println!("8 requests within a 60 s min interval: {statuses:?}");
    assert_eq!(statuses[0], 200);
    assert!(
        statuses[1..].iter().all(|&s| s == 429),
        "more than one snapshot within min_interval: {statuses:?}"
    );
}

/// A client that misbehaves, then goes away.
#[derive(Clone, Copy, Debug)]
enum HangUp {
    /// Connects and closes without a byte.
    Connect,
    /// Sends half a request line.
    HalfRequest,
    /// Sends a whole request and closes before the answer.
    BeforeAnswer,
    /// Reads a few bytes of the answer and closes.
    MidAnswer,
}

fn hang_up(addr: std::net::SocketAddr, how: HangUp) {
    let mut stream = connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request =
        "GET /ws/hang-ups?format=json&augment=0&similarity=exactflags HTTP/1.1\r\nHost: x\r\n\r\n";
    match how {
        HangUp::Connect => {}
        HangUp::HalfRequest => stream.write_all(&request.as_bytes()[..20]).unwrap(),
        HangUp::BeforeAnswer => stream.write_all(request.as_bytes()).unwrap(),
        HangUp::MidAnswer => {
            stream.write_all(request.as_bytes()).unwrap();
            let mut first = [0u8; 64];
            // Snapshots with `augment=1` signal every thread, this one too,
            // and a socket read with a timeout is not restarted (signal(7)).
            let n = loop {
                match stream.read(&mut first) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other.unwrap(),
                }
            };
            assert!(
                n > 0 && first.starts_with(b"HTTP/1.1 200"),
                "{:?}",
                &first[..n]
            );
        }
    }
    drop(stream);
}

#[test]
fn clients_that_hang_up_leave_no_stuck_state() {
    let _watchdog = watchdog("hang-ups", Duration::from_secs(120));
    let name = long_lived();
    many_tasks();
    let addr = start_server(2, || {
        Webstack::new("/ws/hang-ups")
            .min_interval(Duration::ZERO)
            // A stuck turn would show as 503s instead of a hang.
            .queue_timeout(Duration::from_secs(20))
    });
    let kinds = [
        HangUp::Connect,
        HangUp::HalfRequest,
        HangUp::BeforeAnswer,
        HangUp::MidAnswer,
    ];
    let started = Instant::now();
    let mut served = 0;
    for round in 0..10 {
        // Hang-ups of every kind at once, then a well-behaved request.
        let rude: Vec<_> = kinds
            .iter()
            .map(|&how| std::thread::spawn(move || hang_up(addr, how)))
            .collect();
        for r in rude {
            r.join().unwrap();
        }
        let path = if round % 2 == 0 {
            "/ws/hang-ups?format=json&augment=0"
        } else {
            "/ws/hang-ups?format=text&augment=1"
        };
        let response = get_within(addr, path, Duration::from_secs(30));
        assert_eq!(response.status, 200, "round {round}: {}", response.text());
        if round % 2 == 0 {
            assert!(check_json(response.text()).unwrap().has_thread(name));
        }
        served += 1;
    }
    println!(
        "40 hang-ups, {served} requests answered after them, in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn a_panic_in_the_capture_path_answers_500_and_the_server_recovers() {
    let _watchdog = watchdog("handler panic", Duration::from_secs(120));
    let name = long_lived();
    let calls = Arc::new(AtomicU64::new(0));
    let hook = {
        let calls = calls.clone();
        move |_: &mut Snapshot| {
            if calls.fetch_add(1, Ordering::SeqCst) % 3 == 0 {
                panic!("map_snapshot failed on purpose <script>");
            }
        }
    };
    let addr = start_server(2, move || {
        Webstack::new("/ws/handler-panic")
            .min_interval(Duration::ZERO)
            .map_snapshot(hook.clone())
    });
    let (mut ok, mut failed) = (0, 0);
    for i in 0..12 {
        let format = ["json", "html", "text"][i % 3];
        let response = get(
            addr,
            &format!("/ws/handler-panic?format={format}&augment=0"),
        )
        .unwrap();
        match response.status {
            200 => ok += 1,
            500 => {
                failed += 1;
                assert_eq!(
                    response.text(),
                    "snapshot failed: panicked: map_snapshot failed on purpose <script>\n"
                );
                assert_eq!(
                    response.header("content-type"),
                    Some("text/plain; charset=utf-8")
                );
            }
            other => panic!("status {other}: {}", response.text()),
        }
    }
    assert_eq!((ok, failed), (8, 4));
    // The server and the registry are healthy: the next snapshots, served
    // and direct, show the long-lived thread in its frame.
    calls.store(1, Ordering::SeqCst);
    let response = get(addr, "/ws/handler-panic?format=json&augment=1").unwrap();
    assert_eq!(response.status, 200);
    assert!(check_json(response.text()).unwrap().has_thread(name));
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    let thread = snapshot.routines().find(|r| r.name == name).unwrap();
    assert_eq!(
        thread.frames[0].function,
        "hardening_faults::faults_long_lived"
    );
}

/// A `Capture` impl that panics when asked to.
struct Fragile {
    explode: bool,
    id: u64,
}

static CAPTURES: AtomicU64 = AtomicU64::new(0);
static PANICKED: AtomicU64 = AtomicU64::new(0);

impl Capture for Fragile {
    fn capture(&self) -> Value {
        CAPTURES.fetch_add(1, Ordering::SeqCst);
        if self.explode {
            PANICKED.fetch_add(1, Ordering::SeqCst);
            std::panic::panic_any("Capture impl failed on purpose");
        }
        Value::u64(self.id)
    }
}

#[webstack::instrument]
fn faults_leaf(value: &Fragile) -> u64 {
    value.id
}

/// Calls `faults_leaf` with a value whose `Capture` impl panics if
/// `explode`: the panic starts inside this frame, before the leaf's frame is
/// pushed.
#[webstack::instrument]
fn faults_middle(depth: u32, explode: bool) -> u64 {
    let value = Fragile { explode, id: 5 };
    faults_leaf(&value) + u64::from(depth)
}

/// Frames of the calling thread, innermost first, as function names.
fn my_frames() -> Vec<String> {
    let me = std::thread::current().name().unwrap().to_owned();
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    let routine = snapshot
        .routines()
        .find(|r| r.name == me)
        .unwrap_or_else(|| panic!("{me} is registered"));
    routine
        .frames
        .iter()
        .map(|f| f.function.rsplit("::").next().unwrap().to_owned())
        .collect()
}

#[webstack::instrument]
fn faults_holder(round: u32) -> Vec<String> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| faults_middle(round, true)));
    let payload = result.expect_err("the Capture impl panicked in the caller");
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"Capture impl failed on purpose")
    );
    my_frames()
}

#[test]
fn a_panicking_capture_impl_panics_in_the_caller_and_leaves_its_stack_correct() {
    let _watchdog = watchdog("capture panic", Duration::from_secs(120));
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"Capture impl failed on purpose") {
            default_hook(info);
        }
    }));
    let name = long_lived();
    let addr = start_server(1, || {
        Webstack::new("/ws/capture-panic").min_interval(Duration::ZERO)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let snapshots = {
        let (stop, served) = (stop.clone(), served.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) && served.load(Ordering::SeqCst) < 500 {
                let response = get(addr, "/ws/capture-panic?format=json&augment=1").unwrap();
                assert_eq!(response.status, 200);
                assert!(check_json(response.text()).unwrap().has_thread(name));
                served.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let callers: Vec<_> = (0..4)
        .map(|t| {
            let served = served.clone();
            webstack::thread::Builder::new()
                .name(format!("faults-caller-{t}"))
                .spawn(move || {
                    // At least 20 rounds, and until 3 snapshots overlapped
                    // (the first one with native stacks loads debug info);
                    // at most 100,000 rounds or 30 s.
                    let started = Instant::now();
                    for round in 0..100_000 {
                        let enough = round >= 20 && served.load(Ordering::SeqCst) >= 3;
                        if enough || started.elapsed() > Duration::from_secs(30) {
                            break;
                        }
                        // Only the frame that was on the stack before the
                        // panic is left: `faults_middle` was pushed and
                        // popped by unwinding, `faults_leaf` never pushed.
                        assert_eq!(faults_holder(round), ["faults_holder"]);
                        // And the thread keeps recording normally.
                        assert_eq!(faults_middle(2, false), 7);
                    }
                })
                .unwrap()
        })
        .collect();
    for caller in callers {
        caller.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    snapshots.join().unwrap();
    let served = served.load(Ordering::SeqCst);
    println!(
        "{} panicking Capture calls while {served} snapshots were served",
        PANICKED.load(Ordering::SeqCst)
    );
    assert!(served >= 3);

    // Snapshots never call `Capture` impls.
    let before = CAPTURES.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            get(addr, "/ws/capture-panic?format=html").unwrap().status,
            200
        );
    }
    assert_eq!(CAPTURES.load(Ordering::SeqCst), before);
}
