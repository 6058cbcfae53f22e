//! After `fork()` the child sees only its own thread, and capturing and
//! registering work there, whatever the parent's other threads were doing
//! at the fork: registering and leaving, polling tasks, capturing snapshots
//! with native stacks.
//!
//! The parent forks [`FORKS`] times while those threads run. Each child arms
//! `alarm` (a hang on a lock the fork left held ends it with `SIGALRM`),
//! checks what it captures, registers a new thread, and leaves with
//! `_exit`: 0, or a code naming the failed check. The parent counts the
//! outcomes and asserts that every child succeeded.
//!
//! Four moments are reached for certain, with hooks that hold a thread
//! there: the warm-up thread parsing the HTML templates (the child renders
//! a page), a thread between inserting its stack in the registry and
//! installing it (the child shows only itself), a cold `augment=1`
//! capture loading symbols (each fork waits at most [`FORK_WAIT`] for it,
//! and children capture native stacks themselves), and a served snapshot
//! holding its path's turn (the child's requests are served).
//!
//! `harness = false`: the process's threads are this file's, and the child
//! never meets a test harness's locks. A child writes nothing through Rust's
//! `stderr` lock (a parent thread may have held it at the fork); its
//! diagnostics go straight to file descriptor 2.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use support::poll::poll_once;
use support::wait::{wait_until, watchdog};
use webstack::__test_hooks::fork as hooks;
use webstack::render::{render, Format};
use webstack::serve::{Request, Service, Tokio};
use webstack::View;
use webstack::{Buckets, Kind, Options, Similarity, Snapshot, State};

/// Children forked: enough for some forks to land while a lock is held.
const FORKS: usize = 50;
/// Seconds a child may take before `SIGALRM` ends it as hung.
const CHILD_SECONDS: u32 = 10;

/// A child's exit codes.
const OK: i32 = 0;
const WRONG_THREADS_SHADOW: i32 = 2;
const FOREIGN_RUNNING_TASK: i32 = 3;
const WRONG_THREADS_NATIVE: i32 = 4;
const NOT_AUGMENTED: i32 = 5;
const WRONG_THREADS_AFTER_REGISTRATION: i32 = 6;
const PANICKED: i32 = 7;
const NO_PAGE: i32 = 8;
const NOT_SERVED: i32 = 9;

#[webstack::instrument]
fn short_lived(round: u64) -> u64 {
    round + 1
}

/// Pending once, then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            Poll::Pending
        }
    }
}

#[webstack::instrument]
async fn polled_task(round: u64) -> u64 {
    YieldOnce(false).await;
    round
}

#[webstack::instrument]
async fn idle_task(id: u32) {
    std::future::pending::<()>().await
}

/// Threads that keep registering, polling and capturing until dropped.
struct Busy {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    fn start() -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        let spawn = |name: &str, body: Box<dyn Fn(u64) + Send>| {
            let stop = stop.clone();
            let rounds = rounds.clone();
            webstack::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || {
                    let mut round = 0;
                    while !stop.load(Ordering::Relaxed) {
                        body(round);
                        round += 1;
                        rounds.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .expect("spawn")
        };
        threads.push(spawn(
            "registering",
            Box::new(|round| {
                let thread = webstack::thread::spawn(move || short_lived(round));
                assert_eq!(thread.join().expect("short-lived thread"), round + 1);
            }),
        ));
        threads.push(spawn(
            "polling",
            Box::new(|round| {
                let mut tasks: Vec<_> = (0..8).map(|i| Box::pin(polled_task(round + i))).collect();
                for task in &mut tasks {
                    assert!(poll_once(task.as_mut()).is_pending());
                }
                for (i, task) in tasks.iter_mut().enumerate() {
                    if i % 2 == 0 {
                        assert_eq!(poll_once(task.as_mut()), Poll::Ready(round + i as u64));
                    }
                }
            }),
        ));
        threads.push(spawn(
            "capturing",
            Box::new(|round| {
                let options = Options::default().augment(round % 4 == 0);
                std::hint::black_box(Snapshot::capture(&options));
            }),
        ));
        // Let each thread get going before the first fork.
        while rounds.load(Ordering::Relaxed) < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Writes a line to file descriptor 2 without Rust's `stderr` lock.
fn say(line: &str) {
    let line = format!("fork child {}: {line}\n", std::process::id());
    // SAFETY: writes from a live buffer of the given length.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

fn describe(snapshot: &Snapshot) -> String {
    snapshot
        .routines()
        .map(|r| {
            format!(
                "{:?} {} {} {:?} tid={:?} running_on={:?}",
                r.kind, r.id, r.name, r.state, r.tid, r.running_on
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The one thread a child must show: itself (its tid is the child's pid).
fn only_this_thread(snapshot: &Snapshot) -> bool {
    // SAFETY: `getpid` has no preconditions.
    let pid = i64::from(unsafe { libc::getpid() });
    let threads: Vec<_> = snapshot
        .routines()
        .filter(|r| r.kind == Kind::Thread)
        .collect();
    threads.len() == 1 && threads[0].tid == Some(pid)
}

fn child_checks() -> i32 {
    let shadow = Snapshot::capture(&Options::default().augment(false));
    if !only_this_thread(&shadow) {
        say(&format!("augment=0 threads: {}", describe(&shadow)));
        return WRONG_THREADS_SHADOW;
    }
    let me = shadow
        .routines()
        .find(|r| r.kind == Kind::Thread)
        .map(|r| r.id);
    let foreign = shadow
        .routines()
        .any(|r| r.kind == Kind::Task && r.state != State::Idle && r.running_on != me);
    if foreign {
        say(&format!("tasks running elsewhere: {}", describe(&shadow)));
        return FOREIGN_RUNNING_TASK;
    }
    let native = Snapshot::capture(&Options::default().augment(true));
    if !only_this_thread(&native) {
        say(&format!("augment=1 threads: {}", describe(&native)));
        return WRONG_THREADS_NATIVE;
    }
    if !native.augmented {
        say(&format!("not augmented: {:?}", native.native_error));
        return NOT_AUGMENTED;
    }
    let thread = webstack::thread::spawn(|| short_lived(7));
    if thread.join().ok() != Some(8) {
        return PANICKED;
    }
    let after = Snapshot::capture(&Options::default().augment(false));
    if !only_this_thread(&after) {
        say(&format!(
            "threads after a registration: {}",
            describe(&after)
        ));
        return WRONG_THREADS_AFTER_REGISTRATION;
    }
    OK
}

/// What became of one child.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Exited(i32),
    Hung,
    Signalled(i32),
}

/// Forks a child that runs `checks` and leaves with its exit code; waits
/// for it (its `alarm` bounds the wait).
fn fork_and_check(checks: fn() -> i32) -> Outcome {
    let (pid, _) = fork_child(checks);
    reap(pid)
}

/// Forks a child that runs `checks` under `alarm` and leaves with its exit
/// code; returns its pid and how long `fork` took in the parent.
fn fork_child(checks: fn() -> i32) -> (libc::pid_t, Duration) {
    let started = Instant::now();
    // SAFETY: the child runs only `checks` and leaves with `_exit`, so it
    // never returns into code that assumes the parent's other threads.
    let pid = unsafe { libc::fork() };
    let took = started.elapsed();
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: `alarm` and `_exit` have no preconditions.
        unsafe { libc::alarm(CHILD_SECONDS) };
        let code = std::panic::catch_unwind(checks).unwrap_or(PANICKED);
        // SAFETY: as above.
        unsafe { libc::_exit(code) };
    }
    (pid, took)
}

/// Waits for the child `pid` (its `alarm` bounds the wait).
fn reap(pid: libc::pid_t) -> Outcome {
    let mut status = 0;
    // SAFETY: `status` is writable; `pid` is our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid, "waitpid: {}", std::io::Error::last_os_error());
    if libc::WIFEXITED(status) {
        Outcome::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
        Outcome::Hung
    } else {
        Outcome::Signalled(libc::WTERMSIG(status))
    }
}

/// What a fork may wait for a capture in flight: the target is 5 ms, the
/// registry reads; a generous bound, so a loaded machine does not fail it.
const FORK_WAIT: Duration = Duration::from_millis(50);

/// A child forked during a cold `augment=1` capture: its own capture with
/// native stacks works, whatever the parent's capture held at the fork.
fn child_captures_native() -> i32 {
    let native = Snapshot::capture(&Options::default().augment(true));
    if !only_this_thread(&native) {
        say(&format!("augment=1 threads: {}", describe(&native)));
        return WRONG_THREADS_NATIVE;
    }
    if !native.augmented {
        say(&format!("not augmented: {:?}", native.native_error));
        return NOT_AUGMENTED;
    }
    OK
}

/// Forks again and again while another thread takes the process's first
/// `augment=1` capture (loading symbols, reading source files): each fork
/// waits at most for the capture's registry reads, not for the rest.
fn fork_during_cold_capture() {
    let running = Arc::new(AtomicBool::new(true));
    let capture = {
        let running = running.clone();
        std::thread::spawn(move || {
            let snapshot = Snapshot::capture(&Options::default().augment(true));
            running.store(false, Ordering::SeqCst);
            (snapshot.augmented, snapshot.capture_time)
        })
    };
    // Past the capture's registry reads, into its native pass.
    std::thread::sleep(Duration::from_millis(5));
    let mut forks = Vec::new();
    while running.load(Ordering::SeqCst) && forks.len() < 40 {
        // The first few children capture native stacks themselves; the
        // others leave at once (each cold capture costs a child seconds).
        let checks = if forks.len() < 4 {
            child_captures_native
        } else {
            || OK
        };
        let (pid, took) = fork_child(checks);
        forks.push((pid, took, running.load(Ordering::SeqCst)));
        std::thread::sleep(Duration::from_millis(10));
    }
    let (augmented, capture_time) = capture.join().expect("the capture thread");
    let outcomes: Vec<Outcome> = forks.iter().map(|&(pid, _, _)| reap(pid)).collect();
    let during: Vec<Duration> = forks
        .iter()
        .filter(|&&(_, _, still)| still)
        .map(|&(_, took, _)| took)
        .collect();
    let longest = forks.iter().map(|&(_, took, _)| took).max();
    println!(
        "fork during a cold capture ({capture_time:?}): {} forks, {} while it ran, \
         longest fork {longest:?}; children: {outcomes:?}",
        forks.len(),
        during.len()
    );
    assert!(augmented, "the cold capture was not augmented");
    assert!(
        longest.is_some_and(|longest| longest <= FORK_WAIT),
        "a fork waited {longest:?} for a capture (bound {FORK_WAIT:?})"
    );
    assert!(
        !during.is_empty(),
        "no fork returned while the capture ran ({capture_time:?})"
    );
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Exited(OK)),
        "children forked during the capture (4 wrong threads, 5 not augmented, Hung): \
         {outcomes:?}"
    );
}

/// Lets the templates' parsing go when dropped, also when an assertion
/// fails.
struct ReleaseTemplates;

impl Drop for ReleaseTemplates {
    fn drop(&mut self) {
        hooks::hold_template_parsing(false);
    }
}

/// A child forked while the warm-up thread parses the HTML templates
/// renders a page of its own.
fn child_renders_html() -> i32 {
    // The hold was copied from the parent; the parse it held is not.
    hooks::hold_template_parsing(false);
    let snapshot = Snapshot::capture(&Options::default().augment(false));
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyValue);
    match render(&snapshot, &buckets, &View::default().format(Format::Html)) {
        Ok(page) if page.contains("</html>") => OK,
        Ok(page) => {
            say(&format!("a page without its end: {} bytes", page.len()));
            NO_PAGE
        }
        Err(error) => {
            say(&format!("render: {error}"));
            NO_PAGE
        }
    }
}

/// `init` starts the warm-up thread, which parses the templates; the fork
/// lands in the middle of that parse (the hook holds it there).
fn fork_while_templates_parse() {
    hooks::hold_template_parsing(true);
    let _release = ReleaseTemplates;
    webstack::init();
    assert!(
        wait_until(Duration::from_secs(20), hooks::template_parsing_held),
        "the warm-up thread never started parsing the templates"
    );
    let outcome = fork_and_check(child_renders_html);
    println!("fork while the templates parse: {outcome:?}");
    assert_eq!(
        outcome,
        Outcome::Exited(OK),
        "the child of a fork during the templates' parsing (8: no page; Hung: \
         it waited for a parse that does not exist in it)"
    );
}

/// Lets held registrations go when dropped, also when an assertion fails.
struct ReleaseRegistration;

impl Drop for ReleaseRegistration {
    fn drop(&mut self) {
        hooks::hold_registration(false);
    }
}

/// The child of a fork that landed mid-registration: the usual checks,
/// once the copied hold is off.
fn child_checks_mid_registration() -> i32 {
    hooks::hold_registration(false);
    child_checks()
}

/// A thread is held between inserting its stack in the registry and
/// installing it as its own when the fork lands: the child shows only
/// itself, and registers threads of its own.
fn fork_mid_registration() {
    hooks::hold_registration(true);
    let release = ReleaseRegistration;
    let thread = webstack::thread::spawn(|| short_lived(1));
    assert!(
        wait_until(Duration::from_secs(20), hooks::registration_held),
        "the new thread never reached the hold in its registration"
    );
    let outcome = fork_and_check(child_checks_mid_registration);
    drop(release);
    assert_eq!(thread.join().expect("the held thread"), 2);
    println!("fork mid-registration: {outcome:?}");
    assert_eq!(
        outcome,
        Outcome::Exited(OK),
        "the child of a fork during a registration (exit codes as below)"
    );
}

/// The path of the service that [`fork_while_serving`] forks beside.
const SERVED_PATH: &str = "/debug/fork-serving";

/// Set by the served snapshot once it holds its turn; it then waits for
/// [`SERVED_RELEASE`].
static SERVED_HELD: AtomicBool = AtomicBool::new(false);
static SERVED_RELEASE: AtomicBool = AtomicBool::new(false);

/// Lets the held snapshot go when dropped, also when an assertion fails.
struct ReleaseServed;

impl Drop for ReleaseServed {
    fn drop(&mut self) {
        SERVED_RELEASE.store(true, Ordering::SeqCst);
    }
}

/// A service that holds each snapshot's turn until [`SERVED_RELEASE`] (at
/// most 30 s), and waits at most 2 s for a turn.
fn held_service() -> Service {
    Service::new(SERVED_PATH)
        .allow_any()
        .queue_timeout(Duration::from_secs(2))
        .map_snapshot(|_| {
            SERVED_HELD.store(true, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !SERVED_RELEASE.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
}

/// The status `service` answers a text page request with, on a runtime of
/// its own.
fn serve_once(service: &Service) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let request = Request::new("GET", "augment=0&format=text");
    runtime.block_on(service.respond(request, &Tokio)).status
}

/// The parent's service, built before the fork, for its child.
static PARENT_SERVICE: std::sync::OnceLock<Service> = std::sync::OnceLock::new();

/// A child forked while the parent served a snapshot: a service of the
/// same path, the parent's or a new one, gets its turn at once (the
/// parent's turn is held by a thread that does not exist here).
fn child_serves() -> i32 {
    SERVED_RELEASE.store(true, Ordering::SeqCst);
    let new = Service::new(SERVED_PATH)
        .allow_any()
        .queue_timeout(Duration::from_secs(2));
    let fresh = serve_once(&new);
    let parents = PARENT_SERVICE.get().map(serve_once);
    if fresh != 200 || parents != Some(200) {
        say(&format!(
            "a new service answered {fresh}, the parent's {parents:?}"
        ));
        return NOT_SERVED;
    }
    OK
}

/// A snapshot request holds its service's turn (one at a time per path)
/// when the fork lands: the child's requests are served, not answered
/// `503` forever.
fn fork_while_serving() {
    let release = ReleaseServed;
    let service = PARENT_SERVICE.get_or_init(held_service);
    let request = std::thread::spawn(|| serve_once(service));
    assert!(
        wait_until(Duration::from_secs(20), || SERVED_HELD
            .load(Ordering::SeqCst)),
        "the served snapshot never reached its hold"
    );
    let outcome = fork_and_check(child_serves);
    drop(release);
    assert_eq!(request.join().expect("the request thread"), 200);
    println!("fork while serving: {outcome:?}");
    assert_eq!(
        outcome,
        Outcome::Exited(OK),
        "the child of a fork during a served snapshot (9: not served)"
    );
}

fn main() {
    let _watchdog = watchdog("fork", Duration::from_secs(600));
    // First, before anything parses the templates.
    fork_while_templates_parse();
    fork_during_cold_capture();
    fork_mid_registration();
    fork_while_serving();
    let mut idle = Box::pin(idle_task(1));
    assert!(poll_once(idle.as_mut()).is_pending());
    // Symbols are loaded once, here: every child starts with them.
    assert!(Snapshot::capture(&Options::default().augment(true)).augmented);

    let busy = Busy::start();
    let mut outcomes = std::collections::BTreeMap::new();
    for round in 0..FORKS {
        *outcomes.entry(fork_and_check(child_checks)).or_insert(0) += 1;
        std::thread::sleep(Duration::from_millis(1 + (round as u64 * 7) % 10));
    }
    drop(busy);
    drop(idle);
    println!("fork: {FORKS} children: {outcomes:?}");
    assert_eq!(
        outcomes.get(&Outcome::Exited(OK)),
        Some(&FORKS),
        "children that did not pass (exit codes: 2 wrong threads augment=0, \
         3 a task running on another thread, 4 wrong threads augment=1, 5 not augmented, \
         6 wrong threads after a registration, 7 panic): {outcomes:?}"
    );
}
