//! Soak: the instrumented program churns while clients take snapshots as
//! fast as the server serves them, and every answer is valid.
//!
//! Sizes (bounded by count AND time, whichever ends first; a watchdog aborts
//! the process after 120 s):
//! - 32 lanes, each spawning short-lived threads one after another for
//!   [`SOAK_TIME`] (at most [`LANE_ITERATIONS`] each), alternately with
//!   `webstack::thread::Builder` and plain `std::thread::Builder`. Each thread
//!   recurses through instrumented functions to a random depth in 1..=320
//!   (deeper than the 256-frame shadow-stack bound about one time in five),
//!   and either returns, panics and catches the panic (then checks its own
//!   shadow stack is back to its outer frame), or dies of the panic.
//! - 10,000 idle tasks kept alive in two pools on two threads, continuously
//!   replaced (dropped, created, polled once), batches of them moved from one
//!   pool thread to the other and polled there; plus a 2-worker tokio runtime
//!   running batches of 50 tasks that race instrumented futures in
//!   `tokio::select!`.
//! - 4 long-lived named threads parked in an instrumented function for the
//!   whole test: every complete JSON snapshot must show them.
//! - 4 clients requesting `/debug/webstack` with random valid `augment`,
//!   `similarity`, `format` and `maxmem` over HTTP/1.1 from a real actix
//!   server on 127.0.0.1:0 (min interval 0), checking every answer.
//!
//! Afterwards every soak thread and task has left the registry. Counts are
//! printed (`cargo test --test soak -- --nocapture`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use support::checks::{check_html, check_json, check_text};
use support::poll::poll_once;
use support::rng::Rng;
use support::server::{get, start_server};
use support::wait::watchdog;
use webstack::actix::Webstack;
use webstack::{Options, Snapshot};

const SOAK_TIME: Duration = Duration::from_secs(15);
const LANES: usize = 32;
const LANE_ITERATIONS: u64 = 2_000;
const TASKS: usize = 10_000;
const LONG_LIVED: usize = 4;
const CLIENTS: usize = 4;
const CLIENT_REQUESTS: u64 = 5_000;
const PANIC_MESSAGE: &str = "soak: intended panic";

#[webstack::instrument]
fn soak_descend(level: u32, lane: usize, fate: &str) -> u32 {
    if level == 0 {
        if fate == "panic" || fate == "die" {
            std::panic::panic_any(PANIC_MESSAGE);
        }
        return 0;
    }
    std::hint::black_box(soak_descend(level - 1, lane, fate)) + 1
}

#[webstack::instrument]
fn soak_lane_body(lane: usize, depth: u32, fate: &str, check: bool) {
    if fate == "panic" {
        let result = std::panic::catch_unwind(|| soak_descend(depth, lane, fate));
        assert!(result.is_err());
        if check {
            // The unwinding popped every frame above this one.
            let me = std::thread::current().name().unwrap().to_owned();
            let snapshot = Snapshot::capture(&Options::default().augment(false));
            if snapshot.left_out.threads == 0 {
                let routine = snapshot
                    .routines()
                    .find(|r| r.name == me)
                    .unwrap_or_else(|| panic!("{me} is registered"));
                let functions: Vec<&str> = routine.frames.iter().map(|f| &*f.function).collect();
                assert_eq!(functions, ["soak::soak_lane_body"], "{me}");
                assert_eq!(routine.elided, 0);
            }
        }
    } else {
        let reached = soak_descend(depth, lane, fate);
        assert_eq!(reached, depth);
        if check && depth as usize >= webstack::MAX_DEPTH {
            // Frames past the bound are counted, not lost.
            let me = std::thread::current().name().unwrap().to_owned();
            assert_eq!(deep_check(depth, &me), 2 * depth);
        }
    }
}

/// Recurses to `depth` again and, at the bottom, checks the thread's own
/// routine: the bound's worth of frames and the rest counted as elided.
fn deep_check(depth: u32, me: &str) -> u32 {
    #[webstack::instrument]
    fn soak_deep(level: u32, total: usize, me: &str) -> u32 {
        if level > 0 {
            return std::hint::black_box(soak_deep(level - 1, total, me)) + 1;
        }
        let snapshot = Snapshot::capture(&Options::default().augment(false));
        if snapshot.left_out.threads == 0 {
            let routine = snapshot
                .routines()
                .find(|r| r.name == me)
                .unwrap_or_else(|| panic!("{me} is registered"));
            assert_eq!(routine.frames.len(), total.min(webstack::MAX_DEPTH), "{me}");
            assert_eq!(
                routine.elided,
                total.saturating_sub(webstack::MAX_DEPTH),
                "{me}"
            );
            assert_eq!(routine.frames[0].function, "soak::soak_deep");
        }
        0
    }
    // soak_lane_body, then soak_deep from `depth` down to 0.
    soak_deep(depth, depth as usize + 2, me) + depth
}

/// Pending until dropped: an idle task. Its arguments repeat across tasks
/// (16 slots per pool), so the page groups 10,000 tasks into a few dozen
/// buckets at every similarity, as a server's connection tasks would be.
#[webstack::instrument]
async fn soak_idle(slot: u64, pool: usize) {
    std::future::pending::<()>().await;
}

#[webstack::instrument]
async fn soak_sleeper(id: u64, ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    id
}

#[webstack::instrument]
async fn soak_spinner(id: u64, yields: u32) -> u64 {
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    id
}

#[webstack::instrument]
async fn soak_race(id: u64) -> u64 {
    tokio::select! {
        a = soak_sleeper(id, 2) => a,
        b = soak_spinner(id, 3) => b,
    }
}

/// The same race, but uninstrumented: both branches are task roots polled
/// in turn by one future.
async fn soak_bare_race(id: u64) -> u64 {
    tokio::select! {
        a = soak_sleeper(id, 1) => a,
        b = soak_spinner(id, 2) => b,
    }
}

#[webstack::instrument(skip(release))]
fn soak_long_lived(index: usize, release: mpsc::Receiver<()>) {
    let _ = release.recv();
}

#[derive(Default)]
struct Counters {
    threads_spawned: AtomicU64,
    panics_caught: AtomicU64,
    threads_died: AtomicU64,
    tasks_created: AtomicU64,
    tasks_moved: AtomicU64,
    tokio_tasks: AtomicU64,
    requests: AtomicU64,
    snapshots: [AtomicU64; 3],
    complete_json: AtomicU64,
    routines_seen: AtomicU64,
}

type IdleTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One pool of idle tasks: replaces a few at random each turn, sends some to
/// the other pool and takes in what the other pool sent.
fn run_pool(
    pool: usize,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    outbox: mpsc::SyncSender<Vec<IdleTask>>,
    inbox: mpsc::Receiver<Vec<IdleTask>>,
) {
    be_nice();
    let mut rng = Rng::new(pool as u64 + 77);
    let mut next_id = pool as u64 * 1_000_000_000;
    let mut new_task = |rng: &mut Rng| {
        next_id += 1;
        let mut task: IdleTask = Box::pin(soak_idle(next_id % 16, pool));
        if rng.below(4) == 0 {
            assert!(poll_once(task.as_mut()).is_pending());
        }
        assert!(poll_once(task.as_mut()).is_pending());
        task
    };
    let size = TASKS / 2;
    let mut tasks: Vec<IdleTask> = (0..size).map(|_| new_task(&mut rng)).collect();
    counters
        .tasks_created
        .fetch_add(size as u64, Ordering::Relaxed);
    let mut turn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        turn += 1;
        for _ in 0..20 {
            let i = rng.below(tasks.len() as u64) as usize;
            tasks[i] = new_task(&mut rng);
        }
        counters.tasks_created.fetch_add(20, Ordering::Relaxed);
        if turn % 10 == 0 {
            let batch: Vec<IdleTask> = (0..50)
                .map(|_| {
                    let i = rng.below(tasks.len() as u64) as usize;
                    tasks.swap_remove(i)
                })
                .collect();
            if let Err(mpsc::TrySendError::Full(batch) | mpsc::TrySendError::Disconnected(batch)) =
                outbox.try_send(batch)
            {
                tasks.extend(batch);
            }
        }
        while let Ok(batch) = inbox.try_recv() {
            counters
                .tasks_moved
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for mut task in batch {
                assert!(poll_once(task.as_mut()).is_pending());
                tasks.push(task);
            }
        }
        // Keep the population at the target size.
        while tasks.len() > size {
            drop(tasks.swap_remove(rng.below(tasks.len() as u64) as usize));
        }
        while tasks.len() < size {
            tasks.push(new_task(&mut rng));
            counters.tasks_created.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lowers the calling thread's scheduling priority (Linux: per thread, and
/// inherited by the threads it spawns), so that on a 2-CPU machine the churn
/// does not starve the server: the soak checks correctness under churn, the
/// slowdown test measures contention.
fn be_nice() {
    // SAFETY: `setpriority` on the calling thread's own id (0) has no memory
    // effects; failure only leaves the priority unchanged.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn run_lane(lane: usize, deadline: Instant, stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    be_nice();
    let mut rng = Rng::new(lane as u64 + 1);
    for iteration in 0..LANE_ITERATIONS {
        if Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let depth = 1 + rng.below(320) as u32;
        let fate = *rng.pick(&["return", "return", "panic", "die"]);
        let check = iteration % 40 == 0;
        let name = format!("soak-lane-{lane}-{iteration}");
        let body = move || soak_lane_body(lane, depth, fate, check);
        let handle = if iteration % 2 == 0 {
            webstack::thread::Builder::new()
                .name(name)
                .spawn(body)
                .expect("spawn")
        } else {
            std::thread::Builder::new()
                .name(name)
                .spawn(body)
                .expect("spawn")
        };
        counters.threads_spawned.fetch_add(1, Ordering::Relaxed);
        // Leave the server some of the two CPUs.
        std::thread::sleep(Duration::from_millis(rng.below(3)));
        match handle.join() {
            Ok(()) => {
                assert_ne!(fate, "die");
                if fate == "panic" {
                    counters.panics_caught.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(payload) => {
                assert_eq!(fate, "die", "unexpected panic in lane {lane}");
                assert_eq!(payload.downcast_ref::<&str>(), Some(&PANIC_MESSAGE));
                counters.threads_died.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn run_tokio(stop: Arc<AtomicBool>, counters: Arc<Counters>) {
    be_nice();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("soak-tokio")
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut id = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let handles: Vec<_> = (0..50)
                .map(|i| {
                    id += 1;
                    if i % 2 == 0 {
                        tokio::spawn(soak_race(id))
                    } else {
                        tokio::spawn(soak_bare_race(id))
                    }
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
            counters.tokio_tasks.fetch_add(50, Ordering::Relaxed);
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(10));
}

const SIMILARITIES: [&str; 4] = ["exactflags", "exactlines", "anypointer", "anyvalue"];
const FORMATS: [&str; 3] = ["html", "json", "text"];
const MAXMEMS: [usize; 4] = [0, 1 << 20, 4 << 20, 64 << 20];

fn run_client(
    client: usize,
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    long_lived: Arc<Vec<String>>,
) {
    let mut rng = Rng::new(1000 + client as u64);
    for _ in 0..CLIENT_REQUESTS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let augment = rng.below(2);
        let similarity = *rng.pick(&SIMILARITIES);
        let format = *rng.pick(&FORMATS);
        let maxmem = *rng.pick(&MAXMEMS);
        let path = format!(
            "/debug/webstack?augment={augment}&similarity={similarity}&format={format}&maxmem={maxmem}"
        );
        let t0 = Instant::now();
        let response = get(addr, &path).unwrap_or_else(|e| panic!("{path}: {e}"));
        if std::env::var_os("SOAK_VERBOSE").is_some() {
            eprintln!("{:?} {} {path}", t0.elapsed(), response.body.len());
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            response.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
        let body = response.text();
        let checked = match format {
            "html" => check_html(body),
            "text" => check_text(body),
            _ => check_json(body).map(|summary| {
                counters
                    .routines_seen
                    .fetch_add(summary.threads + summary.tasks, Ordering::Relaxed);
                if summary.left_out == 0 {
                    counters.complete_json.fetch_add(1, Ordering::Relaxed);
                    for name in long_lived.iter() {
                        assert!(summary.has_thread(name), "{path}: {name} missing");
                    }
                }
            }),
        };
        if let Err(problem) = checked {
            panic!("{path}: {problem}\n{}", &body[..body.len().min(2000)]);
        }
        let index = FORMATS.iter().position(|f| *f == format).unwrap();
        counters.snapshots[index].fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn soak() {
    let _watchdog = watchdog("soak", Duration::from_secs(120));
    let started = Instant::now();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&PANIC_MESSAGE) {
            default_hook(info);
        }
    }));

    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut releases = Vec::new();
    let mut long_handles = Vec::new();
    let mut long_names = Vec::new();
    for index in 0..LONG_LIVED {
        let (tx, rx) = mpsc::channel();
        let name = format!("soak-long-{index}");
        long_names.push(name.clone());
        releases.push(tx);
        long_handles.push(
            webstack::thread::Builder::new()
                .name(name)
                .spawn(move || soak_long_lived(index, rx))
                .unwrap(),
        );
    }
    let long_names = Arc::new(long_names);

    let addr = start_server(2, || {
        Webstack::new("/debug/webstack")
            .min_interval(Duration::ZERO)
            .queue_timeout(Duration::from_secs(60))
    });

    let mut workers = Vec::new();
    let (to_b, from_a) = mpsc::sync_channel(4);
    let (to_a, from_b) = mpsc::sync_channel(4);
    for (pool, outbox, inbox) in [(0, to_b, from_b), (1, to_a, from_a)] {
        let (stop, counters) = (stop.clone(), counters.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("soak-pool-{pool}"))
                .spawn(move || run_pool(pool, stop, counters, outbox, inbox))
                .unwrap(),
        );
    }
    {
        let (stop, counters) = (stop.clone(), counters.clone());
        workers.push(
            std::thread::Builder::new()
                .name("soak-tokio-main".into())
                .spawn(move || run_tokio(stop, counters))
                .unwrap(),
        );
    }
    let deadline = Instant::now() + SOAK_TIME;
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name(format!("soak-lane-{lane}"))
                .spawn(move || run_lane(lane, deadline, stop, counters))
                .unwrap()
        })
        .collect();
    // Let the pools fill before the clients start.
    while counters.tasks_created.load(Ordering::Relaxed) < TASKS as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (stop, counters, names) = (stop.clone(), counters.clone(), long_names.clone());
            std::thread::Builder::new()
                .name(format!("soak-client-{client}"))
                .spawn(move || run_client(client, addr, stop, counters, names))
                .unwrap()
        })
        .collect();

    let mut failures = Vec::new();
    for lane in lanes {
        if let Err(e) = lane.join() {
            failures.push(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for handle in clients.into_iter().chain(workers) {
        if let Err(e) = handle.join() {
            failures.push(e);
        }
    }
    drop(releases);
    for handle in long_handles {
        handle.join().unwrap();
    }
    let elapsed = started.elapsed();

    let c = &counters;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "soak: {elapsed:.1?}; {} threads spawned ({} panics caught, {} died of a panic); \
         {} idle tasks created ({} moved between threads); {} tokio tasks; \
         {} requests served, snapshots html/json/text {}/{}/{} ({} complete JSON, {} routines in JSON)",
        load(&c.threads_spawned),
        load(&c.panics_caught),
        load(&c.threads_died),
        load(&c.tasks_created),
        load(&c.tasks_moved),
        load(&c.tokio_tasks),
        load(&c.requests),
        load(&c.snapshots[0]),
        load(&c.snapshots[1]),
        load(&c.snapshots[2]),
        load(&c.complete_json),
        load(&c.routines_seen),
    );
    if let Some(first) = failures.into_iter().next() {
        std::panic::resume_unwind(first);
    }
    assert!(
        load(&c.requests) >= CLIENTS as u64,
        "every client was served"
    );
    assert!(load(&c.threads_died) > 0 && load(&c.panics_caught) > 0);
    assert!(load(&c.tasks_moved) > 0);

    // Everything that ended has left the registry.
    let after = Snapshot::capture(&Options::default().augment(false));
    let leftovers: Vec<String> = after
        .routines()
        .filter(|r| {
            r.name.starts_with("soak") || r.frames.iter().any(|f| f.function.starts_with("soak::"))
        })
        .map(|r| {
            format!(
                "{:?} {} {:?}",
                r.kind,
                r.name,
                r.frames.first().map(|f| &f.function)
            )
        })
        .collect();
    assert_eq!(after.left_out.threads + after.left_out.tasks, 0);
    assert!(leftovers.is_empty(), "still registered: {leftovers:#?}");
}
