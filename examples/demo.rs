//! The webstack demo: a small program with a realistic mix of blocked
//! threads and idle async tasks, serving its own snapshot page.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! prints
//!
//! ```text
//! webstack demo: open http://127.0.0.1:6060/debug/webstack
//! ```
//!
//! and serves, to loopback clients only, the snapshot page at
//! `/debug/webstack` (`/` redirects there), and Go's goroutine profile at
//! `/debug/pprof/goroutine` (try `go tool pprof -traces
//! http://127.0.0.1:6060/debug/pprof/goroutine`, or `?debug=1`). Set `WEBSTACK_DEMO_ADDR` to
//! `host:port` (or just a port) to listen elsewhere.
//!
//! What the page shows:
//! - a pool of `worker-N` threads blocked on a shared job queue (a `Mutex` +
//!   `Condvar`) inside `worker_loop` → `next_job`, all holding the same
//!   `&Queue` (one `#n` label);
//! - `ledger-writer-N` threads waiting for a mutex that `ledger-auditor`
//!   holds;
//! - a 300-deep recursion, more than the shadow stack keeps (elided frames);
//! - a thread named `<script>alert(1)</script>`, the escaping demo: the page
//!   shows the name as text and runs no script;
//! - 272 idle tasks waiting at four different await points with different
//!   arguments (shards, attempts, file names, user ids — a `UserId` with
//!   `#[derive(webstack::Capture)]`, shown as `UserId(1003)`) — try
//!   `similarity=anyvalue` to fold the per-user sessions into one bucket;
//! - eight `heartbeat` tasks with no instrumented frame, spawned through
//!   `webstack::task::Builder`, listed with their spawn site;
//! - built with `RUSTFLAGS="--cfg tokio_unstable"`, also the tasks of a
//!   `pool` module that spawns with plain `tokio::spawn`, on a runtime with
//!   `webstack::tokio::hooks`, among them two connections of a loopback
//!   server handled by an unannotated `handle_connection`; built also with
//!   `--features taskdump` (and task traces turned on, see
//!   docs/tasks.md), each shows the line it waits at, its `read`;
//! - an actix connection in progress: the demo's own `report-client` thread
//!   asks for `/report`, whose handler waits in `render_report(order:
//!   OrderId(42), stage: ReportStage::Rendering(3))`, shown awaiting at its
//!   `.await`;
//! - the actix worker serving the request, first.
//!
//! `kill -QUIT <pid>` prints the same, as text, to stderr (the demo keeps
//! running), and a panic would print it after the panic's message
//! (`#[webstack::main(panic_hook, dump_on_signal)]`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Condvar, LazyLock, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, App, HttpResponse, HttpServer};
use tokio::sync::{Notify, Semaphore};
use webstack::actix::Webstack;

const DEFAULT_ADDR: &str = "127.0.0.1:6060";
const PATH: &str = "/debug/webstack";

/// A job for the worker pool; none ever arrives, so the workers wait.
#[derive(Debug)]
struct Job {
    id: u64,
}

/// The queue shared by the worker threads and the connection tasks.
struct Queue {
    name: &'static str,
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Wakes connection tasks; never notified in the demo.
    readable: Notify,
    /// Session slots; none free in the demo.
    slots: Semaphore,
}

static QUEUE: LazyLock<Queue> = LazyLock::new(|| Queue {
    name: "jobs",
    jobs: Mutex::new(VecDeque::new()),
    ready: Condvar::new(),
    readable: Notify::new(),
    slots: Semaphore::new(0),
});

/// A user's id: the derive records it as `UserId(1003)`, its field's value,
/// where a type without `Capture` would show as `<by value>`.
#[derive(Clone, Copy, webstack::Capture)]
struct UserId(u64);

/// Account balances, held for good by the auditor.
struct Ledger {
    balances: Mutex<Vec<i64>>,
}

static LEDGER: Ledger = Ledger {
    balances: Mutex::new(Vec::new()),
};

#[webstack::instrument]
fn worker_loop(pool: &str, queue: &Queue) {
    loop {
        let job = next_job(queue.name, queue);
        process(job.id);
    }
}

#[webstack::instrument]
fn next_job(queue_name: &str, queue: &Queue) -> Job {
    let mut jobs = queue.jobs.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = jobs.pop_front() {
            return job;
        }
        jobs = queue.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
    }
}

#[webstack::instrument]
fn process(job: u64) {
    std::hint::black_box(job);
}

/// Takes the ledger lock and keeps it, sleeping, so writers queue up.
#[webstack::instrument(skip(locked))]
fn audit(ledger: &Ledger, year: u16, locked: std::sync::mpsc::Sender<()>) {
    let _balances = ledger.balances.lock().unwrap_or_else(|e| e.into_inner());
    let _ = locked.send(());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[webstack::instrument]
fn post_entry(ledger: &Ledger, account: u64, amount_cents: i64) {
    let mut balances = ledger.balances.lock().unwrap_or_else(|e| e.into_inner());
    balances.push(amount_cents);
}

#[webstack::instrument]
fn descend(level: u32, limit: u32) -> u32 {
    if level < limit {
        return descend(level + 1, limit) + 1;
    }
    loop {
        std::thread::park();
    }
}

#[webstack::instrument]
fn escaping_demo(label: &str) {
    loop {
        std::thread::park();
    }
}

#[webstack::instrument]
fn start_threads() -> std::io::Result<()> {
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        webstack::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map(drop)
    };
    for i in 0..4 {
        spawn(
            format!("worker-{i}"),
            Box::new(|| worker_loop("default", &QUEUE)),
        )?;
    }
    let (locked, is_locked) = std::sync::mpsc::channel();
    spawn(
        "ledger-auditor".into(),
        Box::new(move || audit(&LEDGER, 2025, locked)),
    )?;
    let _ = is_locked.recv();
    for (i, (account, amount)) in [(1001, 2_500), (1002, -1_250)].into_iter().enumerate() {
        spawn(
            format!("ledger-writer-{i}"),
            Box::new(move || post_entry(&LEDGER, account, amount)),
        )?;
    }
    spawn(
        "deep-recursion".into(),
        Box::new(|| {
            descend(0, 300);
        }),
    )?;
    // The escaping demo: program data on the page is text, never markup.
    spawn(
        "<script>alert(1)</script>".into(),
        Box::new(|| escaping_demo("<img src=x onerror=alert(2)>")),
    )?;
    Ok(())
}

#[webstack::instrument]
async fn idle_connection(shard: u8, queue: &'static Queue) {
    read_frame(shard, queue).await;
}

#[webstack::instrument]
async fn read_frame(shard: u8, queue: &'static Queue) {
    queue.readable.notified().await;
}

#[webstack::instrument]
async fn retry_upload(attempt: u32, file: String) {
    backoff(attempt, 250 << attempt).await;
}

#[webstack::instrument]
async fn backoff(attempt: u32, delay_ms: u64) {
    actix_web::rt::time::sleep(Duration::from_secs(24 * 3600) + Duration::from_millis(delay_ms))
        .await;
}

#[webstack::instrument]
async fn session(user: UserId, name: String, queue: &'static Queue) {
    let _slot = wait_for_slot(user, queue).await;
}

#[webstack::instrument]
async fn wait_for_slot(user: UserId, queue: &'static Queue) -> bool {
    queue.slots.acquire().await.is_ok()
}

#[webstack::instrument]
fn spawn_tasks(connections: u32, uploads: u32, sessions: u64) {
    for conn in 0..connections {
        actix_web::rt::spawn(idle_connection((conn % 4) as u8, &QUEUE));
    }
    for upload in 0..uploads {
        let file = format!("report-{}.csv", upload % 3);
        actix_web::rt::spawn(retry_upload(1 + upload % 3, file));
    }
    let names = ["ada", "grace", "linus", "barbara", "ken", "margaret"];
    for user in 0..sessions {
        let name = names[user as usize % names.len()].to_owned();
        actix_web::rt::spawn(session(UserId(1000 + user), name, &QUEUE));
    }
    // Tasks with no instrumented frame at all, spawned through webstack's
    // drop-in for `tokio::spawn`: listed from their spawn, by name, with
    // this function and line as their creator.
    for _ in 0..8 {
        let spawned = webstack::task::Builder::new()
            .name("heartbeat")
            .spawn(async {
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        if let Err(e) = spawned {
            eprintln!("webstack demo: no heartbeat task: {e}");
        }
    }
}

/// Stands for a library that spawns its own tasks with plain
/// `tokio::spawn`, knowing nothing of webstack (a connection pool).
#[cfg(tokio_unstable)]
mod pool {
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    pub(crate) fn start(connections: u32) {
        for _ in 0..connections {
            tokio::spawn(async {
                loop {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
            });
        }
        tokio::spawn(serve_connections(2));
    }

    /// A loopback server with `clients` idle clients: each connection is
    /// a plain `tokio::spawn` of `handle_connection`, with no annotation.
    /// With task traces (`--features taskdump`, see the module docs) the
    /// page shows each one waiting in `handle_connection` at its `read`.
    async fn serve_connections(clients: usize) {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let mut idle = Vec::new();
        for _ in 0..clients {
            if let Ok(client) = TcpStream::connect(addr).await {
                idle.push(client);
            }
        }
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle_connection(stream));
        }
        drop(idle);
    }

    /// Reads requests until the client hangs up: an idle client leaves it
    /// waiting at the `read`.
    async fn handle_connection(mut stream: TcpStream) {
        let mut request = [0u8; 512];
        while let Ok(read) = stream.read(&mut request).await {
            if read == 0 {
                break;
            }
        }
    }
}

/// Built with `RUSTFLAGS="--cfg tokio_unstable"`: a tokio runtime with
/// webstack's task hooks, so that tasks a library spawns with plain
/// `tokio::spawn` are listed too (tokio id, spawn site, polls).
#[cfg(tokio_unstable)]
#[webstack::instrument]
fn start_hooked_runtime() -> std::io::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let runtime = webstack::tokio::hooks(&mut builder)
        .worker_threads(1)
        .thread_name("hooked-worker")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("hooked-runtime".into())
        .spawn(move || {
            runtime.block_on(async {
                pool::start(4);
                std::future::pending::<()>().await
            })
        })
        .map(drop)
}

fn listen_addr() -> SocketAddr {
    let configured = std::env::var("WEBSTACK_DEMO_ADDR").unwrap_or_default();
    let configured = configured.trim();
    if configured.is_empty() {
        return DEFAULT_ADDR.parse().expect("valid default address");
    }
    if let Ok(port) = configured.parse::<u16>() {
        return SocketAddr::from(([127, 0, 0, 1], port));
    }
    configured.parse().unwrap_or_else(|_| {
        eprintln!("WEBSTACK_DEMO_ADDR={configured:?} is not host:port or a port");
        std::process::exit(2)
    })
}

/// An order's id, recorded as `OrderId(42)`.
#[derive(Clone, Copy, webstack::Capture)]
struct OrderId(u64);

/// Where a report is: the derive records the variant and its marked field,
/// `ReportStage::Rendering(3)`.
#[derive(Clone, Copy, webstack::Capture)]
enum ReportStage {
    #[allow(dead_code)]
    Queued,
    Rendering(#[capture] u32),
}

/// The handler of `/report`: its request stays open, waiting for a report
/// that never comes, so the page shows an actix connection in progress.
async fn report_request() -> HttpResponse {
    render_report(OrderId(42), ReportStage::Rendering(3)).await;
    HttpResponse::Ok().body("report\n")
}

#[webstack::instrument]
async fn render_report(order: OrderId, stage: ReportStage) {
    QUEUE.readable.notified().await;
}

/// Opens a connection to the demo's own `/report` and leaves it waiting.
fn open_report_connection(addr: SocketAddr) {
    let spawned = webstack::thread::Builder::new()
        .name("report-client".into())
        .spawn(move || report_client(addr));
    if let Err(e) = spawned {
        eprintln!("webstack demo: no report connection: {e}");
    }
}

/// Asks for `/report`, whose handler never answers, and waits for the
/// answer: its native stack shows `wait_for_report`, which is not
/// instrumented, between the socket read and this frame.
#[webstack::instrument]
fn report_client(addr: SocketAddr) {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let request = format!("GET /report HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_ok() {
        wait_for_report(&mut stream);
    }
    // Keep the thread for the life of the demo.
    loop {
        std::thread::park();
    }
}

/// Reads the socket until the server closes it.
#[inline(never)]
fn wait_for_report(stream: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut buf = [0u8; 512];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
}

async fn index() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, PATH))
        .body(format!("see {PATH}\n"))
}

#[webstack::main(panic_hook, dump_on_signal)]
#[actix_web::main]
pub(crate) async fn main() -> std::io::Result<()> {
    start_threads()?;
    spawn_tasks(200, 60, 12);
    #[cfg(tokio_unstable)]
    start_hooked_runtime()?;
    // The demo shows task traces when built with them; a service turns
    // them on only for a debugging session (docs/tasks.md says why).
    #[cfg(feature = "taskdump")]
    webstack::native::set_task_traces(true);
    let server = HttpServer::new(|| {
        App::new()
            .service(Webstack::new(PATH).goroutine_profile())
            .route("/", web::get().to(index))
            .route("/report", web::get().to(report_request))
    })
    .workers(2)
    // Ctrl-C ends the demo at once: actix would otherwise wait 30 s for
    // open connections, and the report connection stays open by design.
    .shutdown_timeout(0)
    .bind(listen_addr())?;
    for addr in server.addrs() {
        println!("webstack demo: open http://{addr}{PATH}");
    }
    if let Some(&addr) = server.addrs().first() {
        open_report_connection(addr);
    }
    server.run().await
}
