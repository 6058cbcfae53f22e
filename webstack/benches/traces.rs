//! What tokio's task traces add to an `augment=1` capture (feature
//! `taskdump`, `--cfg tokio_unstable`), beside tokio's own dump of the same
//! runtime: a multi-thread runtime built with `webstack::tokio::hooks` and
//! 1,000 or 10,000 idle unannotated tasks waiting at four places (a oneshot,
//! a `Notify`, a timer, an mpsc channel).
//!
//! Three measurements in one run, each on a fresh runtime whose tasks have
//! all been polled (tokio 1.54's dump can leave a runtime frozen, see
//! `fresh_runs`; the bench counts how often, and prints it):
//! - `tokio_dump`: `Handle::dump()` alone, from a thread outside the runtime
//!   (as webstack's dump thread calls it);
//! - `traced`: `Snapshot::capture` with `augment=1` and task traces;
//! - `untraced`: the same capture with task traces off.
//!
//! `traced - untraced` is what a user pays for traces, per task; minus
//! `tokio_dump` it is webstack's own share (reading the addresses,
//! symbolising, merging). Both are printed on stderr.
//!
//! Run with
//! `RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/unstable cargo bench -p webstack --features taskdump --bench traces`.

#[cfg(tokio_unstable)]
mod util;

#[cfg(tokio_unstable)]
mod bench {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use criterion::{BenchmarkId, Criterion, Throughput};
    use tokio::runtime::{Handle, Runtime};
    use tokio::sync::{mpsc, oneshot, Notify};
    use webstack::__test_hooks::native as hooks;
    use webstack::{Options, Snapshot};

    use super::util;

    /// What keeps the idle tasks waiting.
    struct Waiting {
        _oneshots: Vec<oneshot::Sender<()>>,
        _notify: Arc<Notify>,
        _channels: Vec<mpsc::Sender<u8>>,
    }

    async fn read_oneshot(rx: oneshot::Receiver<()>) {
        let _ = rx.await;
    }

    async fn wait_notify(notify: Arc<Notify>) {
        notify.notified().await;
    }

    async fn sleep_long() {
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }

    async fn receive(mut rx: mpsc::Receiver<u8>) {
        let _ = rx.recv().await;
    }

    /// A hooked multi-thread runtime with `n` idle tasks in four shapes.
    fn runtime(n: usize) -> (Runtime, Waiting) {
        let runtime = webstack::tokio::hooks(&mut tokio::runtime::Builder::new_multi_thread())
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let before = POLLS.load(Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        let mut oneshots = Vec::new();
        let mut channels = Vec::new();
        for i in 0..n {
            match i % 4 {
                0 => {
                    let (tx, rx) = oneshot::channel();
                    oneshots.push(tx);
                    spawn(&runtime, read_oneshot(rx));
                }
                1 => {
                    spawn(&runtime, wait_notify(notify.clone()));
                }
                2 => {
                    spawn(&runtime, sleep_long());
                }
                _ => {
                    let (tx, rx) = mpsc::channel(1);
                    channels.push(tx);
                    spawn(&runtime, receive(rx));
                }
            }
        }
        let waiting = Waiting {
            _oneshots: oneshots,
            _notify: notify,
            _channels: channels,
        };
        assert!(
            settle(runtime.handle(), before + n as u64, Duration::from_secs(30)),
            "a fresh runtime's tasks were not all polled in 30 s"
        );
        (runtime, waiting)
    }

    /// Polls of the bench's tasks so far: tokio's dump polls each task once
    /// to trace it, and tokio wakes it afterwards for one more poll.
    static POLLS: AtomicU64 = AtomicU64::new(0);

    /// A task's future, counting its polls in [`POLLS`].
    struct Counted(Pin<Box<dyn Future<Output = ()> + Send>>);

    impl Future for Counted {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            POLLS.fetch_add(1, Ordering::Relaxed);
            self.0.as_mut().poll(cx)
        }
    }

    fn spawn(runtime: &Runtime, future: impl Future<Output = ()> + Send + 'static) {
        runtime.spawn(Counted(Box::pin(future)));
    }

    /// Waits up to `limit` until the bench's tasks were polled `target`
    /// times in all and none is queued: whether they were.
    fn settle(handle: &Handle, target: u64, limit: Duration) -> bool {
        let metrics = handle.metrics();
        let deadline = Instant::now() + limit;
        loop {
            let queued: usize = (0..metrics.num_workers())
                .map(|w| metrics.worker_local_queue_depth(w))
                .sum::<usize>()
                + metrics.global_queue_depth();
            if queued == 0 && POLLS.load(Ordering::Relaxed) >= target {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// What one measured run does to a fresh runtime.
    #[derive(Clone, Copy)]
    enum Run {
        /// `Handle::dump` alone.
        TokioDump,
        /// An `augment=1` capture, with task traces or without.
        Capture { traces: bool },
    }

    impl Run {
        /// The polls of the bench's tasks the run causes: a dump traces
        /// each task with one poll, and tokio's wake after it costs one more.
        fn polls(self, n: usize) -> u64 {
            match self {
                Run::TokioDump | Run::Capture { traces: true } => 2 * n as u64,
                Run::Capture { traces: false } => 0,
            }
        }

        fn index(self) -> usize {
            match self {
                Run::TokioDump => 0,
                Run::Capture { traces: true } => 1,
                Run::Capture { traces: false } => 2,
            }
        }

        fn go(self, handle: &Handle) {
            match self {
                Run::TokioDump => {
                    std::hint::black_box(tokio_dump(handle));
                }
                Run::Capture { traces } => drop(capture(traces)),
            }
        }
    }

    /// Per kind of run ([`Run::index`]): runtimes that did not settle
    /// within [`FROZEN_AFTER`] of the timed run, and timed runs in all.
    static FROZEN: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
    static RUNS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
    /// Children whose untimed first traced capture left the runtime
    /// frozen, and children in all.
    static FROZEN_WARM: AtomicU64 = AtomicU64::new(0);
    static CHILDREN: AtomicU64 = AtomicU64::new(0);
    const FROZEN_AFTER: Duration = Duration::from_secs(1);

    /// What a child reports: the run's nanoseconds, and 1 if the runtime
    /// settled after it; or [`WARM_FROZE`].
    type Report = [u64; 2];
    const WARM_FROZE: Report = [u64::MAX, 0];

    /// One run in a forked child, on a fresh runtime of `n` idle tasks
    /// that had one traced capture first (untimed: symbols, and the same
    /// state for every kind of run); the run's time, or `None` when the
    /// first capture left the runtime frozen.
    ///
    /// In a child, because tokio 1.54's dump can leave a runtime frozen:
    /// woken tasks stay queued while every worker sleeps, and neither a
    /// task spawned from outside nor the runtime's shutdown wakes one
    /// (seen on a plain runtime without webstack, dumped by tokio alone).
    /// A frozen runtime cannot be dropped, and its tasks would stay on
    /// every later capture; a child takes it away when it exits.
    fn run_in_child(n: usize, run: Run) -> Option<Duration> {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
        // SAFETY: the child only builds its own runtime, measures, writes
        // to the pipe and leaves with `_exit`; the bench's other thread
        // (the watchdog) holds no lock the child takes.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let report = child(n, run);
            let bytes: Vec<u8> = report.iter().flat_map(|w| w.to_ne_bytes()).collect();
            // SAFETY: writes from a live buffer of its length; `_exit` has
            // no preconditions.
            unsafe {
                libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
                libc::_exit(0);
            }
        }
        // SAFETY: our copy of the write end, not used again.
        unsafe { libc::close(fds[1]) };
        let mut bytes = [0u8; 16];
        // SAFETY: reads into a live buffer of its length.
        let read = unsafe { libc::read(fds[0], bytes.as_mut_ptr().cast(), bytes.len()) };
        let mut status = 0;
        // SAFETY: our child; `fds[0]` is ours and not used again.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            libc::close(fds[0]);
        }
        assert_eq!(
            read, 16,
            "the child died without a report (status {status})"
        );
        let word = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
        let report = [word(0), word(1)];
        CHILDREN.fetch_add(1, Ordering::Relaxed);
        progress();
        if report == WARM_FROZE {
            FROZEN_WARM.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        RUNS[run.index()].fetch_add(1, Ordering::Relaxed);
        if report[1] == 0 {
            FROZEN[run.index()].fetch_add(1, Ordering::Relaxed);
        }
        Some(Duration::from_nanos(report[0]))
    }

    /// The child's part of [`run_in_child`]. Its runtime is never dropped
    /// (a frozen one's shutdown waits forever): the child leaves with
    /// `_exit`, also on a panic.
    fn child(n: usize, run: Run) -> Report {
        std::panic::set_hook(Box::new(|info| {
            let line = format!("traces: child: {info}\n");
            // SAFETY: writes from a live buffer of its length; `_exit` has
            // no preconditions.
            unsafe {
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(3);
            }
        }));
        let (runtime, waiting) = runtime(n);
        let runtime = std::mem::ManuallyDrop::new(runtime);
        let handle = runtime.handle().clone();
        let before = POLLS.load(Ordering::Relaxed);
        let note = capture(true).task_traces.unwrap_or_default();
        // (A panic here ends the child without a report: the parent fails.)
        assert!(
            note.contains(&format!("{n} tasks traced")),
            "not every task was traced: {note}"
        );
        if !settle(&handle, before + 2 * n as u64, FROZEN_AFTER) {
            return WARM_FROZE;
        }
        let before = POLLS.load(Ordering::Relaxed);
        let started = Instant::now();
        run.go(&handle);
        let took = started.elapsed();
        let settled = settle(&handle, before + run.polls(n), FROZEN_AFTER);
        drop(waiting);
        [took.as_nanos() as u64, u64::from(settled)]
    }

    /// `iters` timed runs, each in a child of its own (a child whose first
    /// capture froze its runtime is replaced by another).
    fn fresh_runs(n: usize, run: Run, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            if let Some(took) = run_in_child(n, run) {
                total += took;
                done += 1;
            }
        }
        total
    }

    /// Seconds since [`START`] at the last run's end, for the watchdog.
    static PROGRESS: AtomicU64 = AtomicU64::new(0);
    static START: OnceLock<Instant> = OnceLock::new();

    fn progress() {
        let start = START.get_or_init(Instant::now);
        PROGRESS.store(start.elapsed().as_secs(), Ordering::Relaxed);
    }

    /// Ends the process if no run ends for [`STALL`]: a dump that never
    /// ends (tokio's loop with tasks queued) fails the bench, never hangs
    /// it.
    fn watchdog() {
        const STALL: u64 = 120;
        progress();
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(5));
            let now = START.get_or_init(Instant::now).elapsed().as_secs();
            if now.saturating_sub(PROGRESS.load(Ordering::Relaxed)) > STALL {
                eprintln!("traces: no run ended for {STALL} s; tokio's dump is stuck");
                std::process::exit(101);
            }
        });
    }

    /// Tokio's dump of the runtime.
    fn tokio_dump(handle: &Handle) -> usize {
        handle.block_on(handle.dump()).tasks().iter().count()
    }

    fn capture(traces: bool) -> Snapshot {
        webstack::native::set_task_traces(traces);
        Snapshot::capture(&Options::default().augment(true))
    }

    /// The median time of `runs` runs, each on a fresh runtime, in µs.
    fn median(n: usize, run: Run, runs: usize) -> f64 {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| fresh_runs(n, run, 1).as_secs_f64() * 1e6)
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    }

    pub fn traces(c: &mut Criterion) {
        watchdog();
        webstack::native::set_trace_deadline(Duration::from_secs(30));
        hooks::set_trace_interval(Duration::ZERO);
        let sizes: &[usize] = if util::quick() {
            &[200]
        } else {
            &[1_000, 10_000]
        };
        let mut group = c.benchmark_group("traces");
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        // The process's own symbols loaded once; each child inherits them.
        assert!(Snapshot::capture(&Options::default().augment(true)).augmented);
        for &n in sizes {
            let runs = if util::quick() { 1 } else { 11 };
            let dump = median(n, Run::TokioDump, runs);
            let on = median(n, Run::Capture { traces: true }, runs);
            let off = median(n, Run::Capture { traces: false }, runs);
            eprintln!(
                "traces/{n} tasks (medians of {runs}): tokio's dump {:.0} µs = {:.2} µs/task; \
                 capture traced {on:.0} µs, untraced {off:.0} µs: traces add {:.2} µs/task, \
                 of which webstack's own (beyond tokio's dump) {:.2} µs/task",
                dump,
                dump / n as f64,
                (on - off) / n as f64,
                (on - off - dump) / n as f64,
            );

            group.throughput(Throughput::Elements(n as u64));
            for (name, run) in [
                ("tokio_dump", Run::TokioDump),
                ("traced", Run::Capture { traces: true }),
                ("untraced", Run::Capture { traces: false }),
            ] {
                group.bench_function(BenchmarkId::new(name, n), |b| {
                    b.iter_custom(|iters| fresh_runs(n, run, iters))
                });
            }
        }
        group.finish();
        webstack::native::set_task_traces(true);
        let [dump, traced, untraced] = [0, 1, 2].map(|i| {
            (
                FROZEN[i].load(Ordering::Relaxed),
                RUNS[i].load(Ordering::Relaxed),
            )
        });
        eprintln!(
            "traces: runtimes left frozen (tasks still queued {} s later): by the first traced \
             capture of a fresh runtime {} of {}; then by tokio's dump {} of {}, a traced \
             capture {} of {}, an untraced one {} of {}",
            FROZEN_AFTER.as_secs(),
            FROZEN_WARM.load(Ordering::Relaxed),
            CHILDREN.load(Ordering::Relaxed),
            dump.0,
            dump.1,
            traced.0,
            traced.1,
            untraced.0,
            untraced.1
        );
    }
}

#[cfg(tokio_unstable)]
criterion::criterion_group!(benches, bench::traces);
#[cfg(tokio_unstable)]
criterion::criterion_main!(benches);

#[cfg(not(tokio_unstable))]
fn main() {
    eprintln!(
        "traces: skipped, build with RUSTFLAGS=\"--cfg tokio_unstable\" (see the file's docs)"
    );
}
