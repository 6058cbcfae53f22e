//! The `webstack-dump` thread: takes the dumps a signal or a panic asks
//! for, so that neither a signal handler nor a panicking thread captures
//! anything itself.
//!
//! Requests arrive as bytes on a pipe (one byte per request: a signal's
//! index, or [`PANIC`]); a signal handler's `write` of one byte is
//! async-signal-safe and never blocks (the write end is non-blocking: a full
//! pipe already holds a request). A panicking thread leaves its request in
//! [`Queue`] and waits on a condition variable, with a timeout, for the
//! dump to be written.

use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::DumpOptions;
use crate::page::page;

/// The byte a panicking thread writes; signals write their index (0..).
pub(super) const PANIC: u8 = 0xff;

/// Number of signals a dump can be asked with (see `signal::DumpSignal`).
pub(super) const SIGNALS: usize = 4;

/// A panic dump is not taken again within this time of the previous one's
/// end: a program that catches panics (a server's per-request
/// `catch_unwind`) must not print a full dump for each.
pub(super) const PANIC_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Worker {
    /// The process that started the thread: in the child of a fork the
    /// thread does not exist, and a new worker is started there.
    pid: u32,
    write: std::os::fd::OwnedFd,
    queue: Mutex<Queue>,
    done: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Panic dumps asked for and written (or given up) so far.
    requested: u64,
    completed: u64,
    /// The panic dump to take next: its ticket, header and options.
    panic: Option<(u64, String, DumpOptions)>,
    /// When the last panic dump ended.
    last_panic_end: Option<Instant>,
    /// Options of each signal that dumps, `None` for those that do not.
    signals: [Option<(&'static str, DumpOptions)>; SIGNALS],
}

static WORKER: Mutex<Option<Arc<Worker>>> = Mutex::new(None);

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is the dump thread.
pub(super) fn is_worker() -> bool {
    IS_WORKER.try_with(Cell::get).unwrap_or(false)
}

/// The running worker of this process, started if there is none.
pub(super) fn get() -> std::io::Result<Arc<Worker>> {
    let mut slot = WORKER.lock();
    if let Some(worker) = &*slot {
        if worker.pid == std::process::id() {
            return Ok(worker.clone());
        }
    }
    let (read, write) = pipe()?;
    let worker = Arc::new(Worker {
        pid: std::process::id(),
        write,
        queue: Mutex::new(Queue::default()),
        done: Condvar::new(),
    });
    let running = worker.clone();
    std::thread::Builder::new()
        .name("webstack-dump".into())
        .spawn(move || run(&running, read))?;
    *slot = Some(worker.clone());
    Ok(worker)
}

impl Worker {
    /// The write end of the pipe, for a signal handler.
    pub(super) fn write_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.write.as_raw_fd()
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Makes signal `index` dump with `options`, under `name`.
    pub(super) fn arm_signal(&self, index: usize, name: &'static str, options: DumpOptions) {
        self.queue.lock().signals[index] = Some((name, options));
    }

    /// Asks for a panic dump and waits for it, at most `options.timeout`.
    pub(super) fn dump_for_panic(&self, header: String, options: DumpOptions) -> PanicDump {
        let timeout = options.timeout;
        let mut queue = self.queue.lock();
        if queue.completed < queue.requested {
            // Another thread's panic dump is being taken: it shows this
            // thread too. Wait for it rather than taking a second one.
            let ticket = queue.requested;
            let in_time = wait(&self.done, &mut queue, ticket, timeout);
            return if in_time {
                PanicDump::Shared
            } else {
                PanicDump::TimedOut
            };
        }
        if let Some(end) = queue.last_panic_end {
            if end.elapsed() < PANIC_INTERVAL {
                return PanicDump::TooSoon(end.elapsed());
            }
        }
        queue.requested += 1;
        let ticket = queue.requested;
        queue.panic = Some((ticket, header, options));
        if !self.wake(PANIC) {
            queue.panic = None;
            queue.completed = ticket;
            return PanicDump::Failed;
        }
        if wait(&self.done, &mut queue, ticket, timeout) {
            PanicDump::Written
        } else {
            PanicDump::TimedOut
        }
    }

    /// Writes one request byte; false if the pipe is gone.
    fn wake(&self, byte: u8) -> bool {
        // SAFETY: `write` reads one byte from a valid local; the fd is open
        // for as long as `self` lives.
        let written = unsafe { libc::write(self.write_fd(), std::ptr::addr_of!(byte).cast(), 1) };
        // A full pipe (EAGAIN) already holds a wake-up.
        written == 1 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }
}

/// What became of a panic's dump.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PanicDump {
    Written,
    /// Another panic's dump, taken at the same time, covers this one.
    Shared,
    TooSoon(Duration),
    TimedOut,
    Failed,
}

/// Waits until panic dump `ticket` is completed; false on timeout.
fn wait(
    done: &Condvar,
    queue: &mut parking_lot::MutexGuard<'_, Queue>,
    ticket: u64,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while queue.completed < ticket {
        if done.wait_until(queue, deadline).timed_out() {
            return queue.completed >= ticket;
        }
    }
    true
}

fn run(worker: &Worker, read: Pipe) {
    IS_WORKER.with(|flag| flag.set(true));
    let mut bytes = [0u8; 64];
    loop {
        let n = match (&read).read(&mut bytes) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let mut seen = [false; SIGNALS];
        for &byte in &bytes[..n] {
            if let Some(seen) = seen.get_mut(usize::from(byte)) {
                *seen = true;
            }
        }
        for (index, asked) in seen.into_iter().enumerate() {
            let armed = worker.queue.lock().signals[index].clone();
            if let (true, Some((name, options))) = (asked, armed) {
                let header = format!("webstack: dump on {name}; the process keeps running");
                write_dump(&header, &options);
            }
        }
        if bytes[..n].contains(&PANIC) {
            let request = worker.queue.lock().panic.take();
            if let Some((ticket, header, options)) = request {
                write_dump(&header, &options);
                let mut queue = worker.queue.lock();
                queue.completed = queue.completed.max(ticket);
                queue.last_panic_end = Some(Instant::now());
                worker.done.notify_all();
            }
        }
    }
}

/// Captures and writes one dump to stderr. A panic inside is caught: the
/// thread keeps serving later requests.
fn write_dump(header: &str, options: &DumpOptions) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let view = &options.view;
        page(
            &view.options(),
            view.similarity,
            None,
            |snapshot, buckets| {
                let stderr = std::io::stderr();
                let mut out = stderr.lock();
                let _ = writeln!(out, "\n{header}");
                let written = super::write_dump(&mut out, snapshot, buckets, view);
                let _ = match written {
                    Ok(()) => writeln!(out, "webstack: end of dump"),
                    Err(e) => writeln!(out, "webstack: dump failed: {e}"),
                };
            },
        );
    }));
    if outcome.is_err() {
        let _ = writeln!(std::io::stderr(), "webstack: dump failed: it panicked");
    }
}

type Pipe = std::fs::File;

/// A pipe whose write end does not block.
fn pipe() -> std::io::Result<(Pipe, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `pipe2` writes two fds into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just opened and are owned by nothing else.
    let (read, write) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    // SAFETY: `fcntl` on an open fd with integer flags.
    let flags = unsafe { libc::fcntl(fds[1], libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((read, write))
}
