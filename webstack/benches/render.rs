//! Grouping and rendering cost, on a synthetic snapshot and on real tasks.
//!
//! - `synthetic/<tasks>`: a hand-built snapshot of idle tasks five
//!   instrumented frames deep (four await points, a per-task buffer address,
//!   a shared pool address, a few distinct stage, route and connection
//!   values: 24 task buckets under `anypointer`) plus 64 threads (64
//!   buckets: each holds its own worker number). Measures `Buckets::aggregate` alone, then
//!   aggregate + render for each format, at 1,000 / 10,000 / 100,000 tasks
//!   to show the cost is linear in tasks.
//! - `synthetic-unique/10000`: the worst case, every task a bucket of its own.
//! - `recursion/<format>-<fold|nofold>`: 64 threads, each its own bucket,
//!   256 levels deep in one recursive function: what folding the recursion
//!   into one line costs or saves beside showing every frame (`fold=0`).
//! - `…/aggregate+pprof`: Go's goroutine profile (`render::pprof::encode`,
//!   protobuf + gzip) of the same snapshots; in `synthetic` grouped at
//!   `anyvalue` as `/debug/pprof/goroutine` groups, in `synthetic-unique` at
//!   `anypointer` (`format=pprof` with the default similarity: one sample
//!   per task).
//! - `html-vs-json/<case>/<format>`: rendering alone (buckets grouped once,
//!   outside the measurement), HTML beside JSON of the very same buckets:
//!   `grouped-10000` and `grouped-100000` (the `synthetic` snapshots, 88
//!   buckets), `distinct-1000` (the first 1,000 buckets of the all-distinct
//!   10k snapshot, cut from `Buckets` so both formats render exactly those),
//!   `distinct-10064` (all of its buckets: JSON writes all, the HTML page
//!   its first 1,000, so that ratio is not of the same work) and `native-64x40` (64 parked
//!   threads, each a bucket of 40 native frames with addresses and source
//!   lines, as an `augment=1` page shows them). Each case also prints the
//!   HTML / JSON ratio from interleaved timings, and the native case the
//!   cost per native frame.
//! - `real/10000`: 10,000 registered idle tasks and 64 blocked threads (the
//!   workload of `benches/util/workload.rs`); capture (augment=0) +
//!   aggregate + render, the work of one page request.
//!
//! Run with `cargo bench -p webstack --bench render`.

mod util;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use webstack::render::{render, render_to, Format};
use webstack::View;
use webstack::{Arg, Buckets, CreatedBy, Frame, Options, Routine, Similarity, Snapshot, Value};

struct Buffer([u8; 16]);

fn frame(function: &'static str, line: u32, args: Vec<Arg>) -> Frame {
    Frame::new(function, "src/server.rs", line).instrumented(args)
}

fn arg(name: &'static str, ty: &'static str, value: Value) -> Arg {
    Arg::new(name, ty, value)
}

const LEAVES: [&str; 4] = [
    "server::wait_reply",
    "server::read_socket",
    "server::write_socket",
    "server::sleep",
];

/// `distinct`: how many distinct connection ids the tasks hold (every task
/// is its own bucket when it equals `tasks`).
fn synthetic(
    tasks: usize,
    threads: usize,
    distinct: usize,
    buffers: &[Buffer],
    pool: &Buffer,
) -> Snapshot {
    let creator = CreatedBy::new("server::accept_loop", "src/server.rs", 12);
    let mut routines = Vec::with_capacity(tasks + threads);
    for id in 0..threads {
        let mut thread = Routine::thread(id as u64 + 1, format!("worker-{id}"));
        thread.age = Duration::from_secs(60);
        thread.tid = Some(1000 + id as i64);
        thread.frames = vec![
            frame(
                "server::worker_wait",
                80,
                vec![arg("attempt", "u32", Value::u64(0))],
            ),
            frame(
                "server::worker_handle",
                70,
                vec![arg("job", "u64", Value::u64(id as u64 % 4))],
            ),
            frame(
                "server::worker_loop",
                60,
                vec![arg("worker", "u64", Value::u64(id as u64))],
            ),
        ]
        .into();
        routines.push(thread);
    }
    for i in 0..tasks {
        let stage = (i % 3) as u64;
        let mut task = Routine::task((threads + i) as u64 + 1, "connection");
        task.created_by = Some(creator);
        task.age = Duration::from_secs(30);
        task.waiting = Some(Duration::from_millis(i as u64 % 5000));
        task.polls = Some(3);
        task.frames = vec![
            frame(
                LEAVES[i % 4],
                50,
                vec![arg("attempt", "u32", Value::u64(stage))],
            ),
            frame(
                "server::query",
                40,
                vec![
                    arg("stage", "u64", Value::u64(stage)),
                    arg("limit", "u32", Value::u64(100)),
                ],
            ),
            frame(
                "server::read_body",
                30,
                vec![
                    arg(
                        "buffer",
                        "&Buffer",
                        Value::pointer(&buffers[i % buffers.len()]),
                    ),
                    arg("pool", "&Pool", Value::pointer(pool)),
                ],
            ),
            frame(
                "server::handle",
                20,
                vec![arg(
                    "route",
                    "&'static str",
                    Value::str(["/api/users", "/api/orders", "/static", "/health"][i % 4]),
                )],
            ),
            frame(
                "server::connection",
                10,
                vec![arg("conn", "u64", Value::u64((i % distinct) as u64))],
            ),
        ]
        .into();
        routines.push(task);
    }
    let mut snapshot = Snapshot::new(routines);
    snapshot.capture_time = Duration::from_millis(1);
    snapshot
}

fn bench_synthetic(c: &mut Criterion) {
    let sizes: &[usize] = if util::quick() {
        &[1000]
    } else {
        &[1000, 10_000, 100_000]
    };
    let pool = Buffer([0; 16]);
    let buffers: Vec<Buffer> = (0..*sizes.last().unwrap())
        .map(|_| Buffer([0; 16]))
        .collect();
    black_box((&pool.0, &buffers[0].0));
    let mut group = c.benchmark_group("synthetic");
    group.sample_size(20);
    for &tasks in sizes {
        let snapshot = synthetic(tasks, 64, 8, &buffers, &pool);
        group.throughput(Throughput::Elements((tasks + 64) as u64));
        group.bench_with_input(BenchmarkId::new("aggregate", tasks), &snapshot, |b, s| {
            b.iter(|| Buckets::aggregate(s, Similarity::AnyPointer))
        });
        for format in Format::ALL {
            group.bench_with_input(
                BenchmarkId::new(format!("aggregate+{format}"), tasks),
                &snapshot,
                |b, s| {
                    b.iter(|| {
                        let buckets = Buckets::aggregate(s, Similarity::AnyPointer);
                        render(s, &buckets, &View::default().format(format)).expect("render")
                    })
                },
            );
        }
        group.bench_with_input(
            BenchmarkId::new("aggregate+pprof", tasks),
            &snapshot,
            |b, s| {
                b.iter(|| {
                    let buckets = Buckets::aggregate(s, Similarity::AnyValue);
                    webstack::render::pprof::encode(s, &buckets)
                })
            },
        );
    }
    group.finish();

    // The worst case: every task its own bucket (HTML shows the first 1,000).
    let mut group = c.benchmark_group("synthetic-unique");
    group.sample_size(10);
    let tasks = sizes[sizes.len().min(2) - 1];
    let snapshot = synthetic(tasks, 64, tasks, &buffers, &pool);
    group.throughput(Throughput::Elements((tasks + 64) as u64));
    for format in [Format::Html, Format::Json] {
        group.bench_with_input(
            BenchmarkId::new(format!("aggregate+{format}"), tasks),
            &snapshot,
            |b, s| {
                b.iter(|| {
                    let buckets = Buckets::aggregate(s, Similarity::AnyPointer);
                    render(s, &buckets, &View::default().format(format)).expect("render")
                })
            },
        );
    }
    group.bench_with_input(
        BenchmarkId::new("aggregate+pprof", tasks),
        &snapshot,
        |b, s| {
            b.iter(|| {
                let buckets = Buckets::aggregate(s, Similarity::AnyPointer);
                webstack::render::pprof::encode(s, &buckets)
            })
        },
    );
    group.finish();
}

/// `threads` threads, each `depth` levels deep in `server::descend`; the
/// `limit` argument differs per thread, so each is a bucket of its own.
fn recursion(threads: usize, depth: u64) -> Snapshot {
    let routines = (0..threads)
        .map(|id| {
            let mut thread = Routine::thread(id as u64 + 1, format!("walker-{id}"));
            thread.age = Duration::from_secs(60);
            let limit = Value::u64(depth + id as u64);
            thread.frames = (0..depth)
                .rev()
                .map(|level| {
                    frame(
                        "server::descend",
                        90,
                        vec![
                            arg("level", "u64", Value::u64(level)),
                            arg("limit", "u64", limit),
                        ],
                    )
                })
                .chain([frame("server::walk", 100, Vec::new())])
                .collect();
            thread
        })
        .collect();
    let mut snapshot = Snapshot::new(routines);
    snapshot.capture_time = Duration::from_millis(1);
    snapshot
}

fn bench_recursion(c: &mut Criterion) {
    let snapshot = recursion(64, 256);
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
    let mut group = c.benchmark_group("recursion");
    group.sample_size(20);
    group.throughput(Throughput::Elements(64));
    for format in [Format::Html, Format::Text] {
        for fold in [true, false] {
            let name = format!("{format}-{}", if fold { "fold" } else { "nofold" });
            group.bench_function(name, |b| {
                b.iter(|| {
                    let mut out = Vec::with_capacity(1 << 20);
                    let view = View::default().format(format).fold(fold);
                    render_to(&mut out, &snapshot, &buckets, &view).expect("render");
                    out
                })
            });
        }
    }
    group.finish();
}

fn bench_real(c: &mut Criterion) {
    let tasks = if util::quick() { 1000 } else { 10_000 };
    let mut workload = util::workload::Tasks::new();
    workload.grow_webstack(tasks);
    let mut threads = util::workload::Threads::new();
    threads.grow(64);
    let mut group = c.benchmark_group("real");
    group.sample_size(20);
    group.throughput(Throughput::Elements((tasks + 64) as u64));
    for format in [Format::Html, Format::Json] {
        group.bench_function(
            BenchmarkId::new(format!("capture+aggregate+{format}"), tasks),
            |b| {
                b.iter(|| {
                    let snapshot = Snapshot::capture(&Options::default().augment(false));
                    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyPointer);
                    render(&snapshot, &buckets, &View::default().format(format)).expect("render")
                })
            },
        );
    }
    group.finish();
    drop(threads);
    drop(workload);
}

/// Native frames as an `augment=1` page of parked threads shows them: the
/// blocking syscall, std's parking, the runtime, the application's code and
/// the thread's start; `frames` per thread, each thread a bucket of its own
/// (its own line in the application's loop).
fn native(threads: usize, frames: usize) -> Snapshot {
    const STACK: [(&str, &str); 10] = [
        ("syscall", ""),
        (
            "std::sys::pal::unix::futex::futex_wait",
            "/rustc/4d91de4e48198da2e33413efdcd9cd2cc0c46688/library/std/src/sys/pal/unix/futex.rs",
        ),
        (
            "std::sys::sync::condvar::futex::Condvar::wait_optional_timeout",
            "/rustc/4d91de4e48198da2e33413efdcd9cd2cc0c46688/library/std/src/sys/sync/condvar/futex.rs",
        ),
        (
            "std::sync::condvar::Condvar::wait<()>",
            "/rustc/4d91de4e48198da2e33413efdcd9cd2cc0c46688/library/std/src/sync/condvar.rs",
        ),
        (
            "tokio::runtime::park::Inner::park",
            "/home/user/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.41.0/src/runtime/park.rs",
        ),
        (
            "tokio::runtime::scheduler::multi_thread::worker::Context::park_timeout",
            "/home/user/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.41.0/src/runtime/scheduler/multi_thread/worker.rs",
        ),
        ("server::pool::Worker::run", "src/pool.rs"),
        ("server::pool::spawn_worker::{{closure}}", "src/pool.rs"),
        (
            "core::ops::function::FnOnce::call_once<server::pool::spawn_worker::{{closure}}, ()>",
            "/rustc/4d91de4e48198da2e33413efdcd9cd2cc0c46688/library/core/src/ops/function.rs",
        ),
        (
            "std::thread::Builder::spawn_unchecked_::{{closure}}::{{closure}}<server::pool::spawn_worker::{{closure}}, ()>",
            "/rustc/4d91de4e48198da2e33413efdcd9cd2cc0c46688/library/std/src/thread/mod.rs",
        ),
    ];
    let routines = (0..threads)
        .map(|id| {
            let mut thread = Routine::thread(id as u64 + 1, format!("pool-worker-{id}"));
            thread.age = Duration::from_secs(60);
            thread.tid = Some(2000 + id as i64);
            thread.frames = (0..frames)
                .map(|i| {
                    let (function, file) = STACK[i * STACK.len() / frames];
                    let line = if function == "server::pool::Worker::run" {
                        100 + id as u32
                    } else {
                        50 + i as u32
                    };
                    let mut frame = Frame::new(function, file, line);
                    frame.address = Some(0x5555_5555_0000 + 0x40 * i as u64);
                    if !file.is_empty() {
                        frame.source = Some(
                            format!("        let value = call_{i}(&mut state, <T as Trait>::x);")
                                .into(),
                        );
                    }
                    frame
                })
                .collect();
            thread
        })
        .collect();
    let mut snapshot = Snapshot::new(routines);
    snapshot.capture_time = Duration::from_millis(1);
    snapshot.augmented = true;
    snapshot
}

fn render_only(snapshot: &Snapshot, buckets: &Buckets<'_>, format: Format) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    render_to(&mut out, snapshot, buckets, &View::default().format(format)).expect("render");
    out
}

/// Interleaved timings of HTML and JSON of the same buckets (five rounds,
/// median of each), printed so one run answers "HTML / JSON" directly.
fn print_ratio(case: &str, snapshot: &Snapshot, buckets: &Buckets<'_>, frames: usize) {
    let time = |format| {
        let start = std::time::Instant::now();
        let mut n = 0u32;
        while n < 3 || start.elapsed() < Duration::from_millis(200) {
            black_box(render_only(snapshot, buckets, format));
            n += 1;
        }
        start.elapsed() / n
    };
    let (mut html, mut json) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        html.push(time(Format::Html));
        json.push(time(Format::Json));
    }
    html.sort();
    json.sort();
    let (html, json) = (html[2], json[2]);
    let bytes = |format| render_only(snapshot, buckets, format).len();
    println!(
        "html-vs-json/{case}: {} buckets, {frames} frames: HTML {html:.2?} ({} KiB), JSON {json:.2?} ({} KiB), HTML/JSON {:.2}; per frame HTML {:.2?}, JSON {:.2?}",
        buckets.buckets.len(),
        bytes(Format::Html) / 1024,
        bytes(Format::Json) / 1024,
        html.as_secs_f64() / json.as_secs_f64(),
        html / frames.max(1) as u32,
        json / frames.max(1) as u32,
    );
}

fn bench_html_vs_json(c: &mut Criterion) {
    let quick = util::quick();
    let tasks = if quick { 1000 } else { 10_000 };
    let pool = Buffer([0; 16]);
    let buffers: Vec<Buffer> = (0..tasks * 10).map(|_| Buffer([0; 16])).collect();
    black_box((&pool.0, &buffers[0].0));
    let grouped: Vec<(usize, Snapshot)> = if quick {
        vec![1000]
    } else {
        vec![10_000, 100_000]
    }
    .into_iter()
    .map(|tasks| (tasks, synthetic(tasks, 64, 8, &buffers, &pool)))
    .collect();
    let distinct = synthetic(tasks, 64, tasks, &buffers, &pool);
    let native = native(64, 40);
    let mut cases = Vec::new();
    for (tasks, snapshot) in &grouped {
        let buckets = Buckets::aggregate(snapshot, Similarity::AnyPointer);
        cases.push((format!("grouped-{tasks}"), snapshot, buckets));
    }
    let all = Buckets::aggregate(&distinct, Similarity::AnyPointer);
    let mut first = all.clone();
    first.buckets.truncate(1000);
    cases.push(("distinct-1000".to_owned(), &distinct, first));
    cases.push((format!("distinct-{}", all.buckets.len()), &distinct, all));
    let buckets = Buckets::aggregate(&native, Similarity::AnyPointer);
    cases.push(("native-64x40".to_owned(), &native, buckets));

    let mut group = c.benchmark_group("html-vs-json");
    group.sample_size(10);
    // Criterion's filter, if one was given: print ratios only for the cases
    // it selects (a profile of one case should not include the others).
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    for (case, snapshot, buckets) in &cases {
        let frames: usize = buckets.buckets.iter().map(|b| b.frames.len()).sum();
        let name = format!("html-vs-json/{case}/");
        if filter
            .iter()
            .all(|f| name.contains(f.as_str()) || f.contains(&name))
        {
            print_ratio(case, snapshot, buckets, frames);
        }
        group.throughput(Throughput::Elements(frames as u64));
        for format in [Format::Html, Format::Json] {
            group.bench_function(BenchmarkId::new(case, format), |b| {
                b.iter(|| render_only(snapshot, buckets, format))
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_synthetic,
    bench_recursion,
    bench_html_vs_json,
    bench_real
);
criterion_main!(benches);
