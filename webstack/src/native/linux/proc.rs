//! What `/proc/self/task` says about each thread: name, kernel state, wait
//! channel, blocked and pending signals, start time.
//!
//! Measured on the development machine (2 cores, loaded): reading `stat`
//! costs about half of `status`, so the masks from `status` are only read
//! for threads that failed to answer before. The per-thread files are read
//! relative to one descriptor of `/proc/self/task` ([`TaskDir`]) into a
//! buffer on the stack, with one `openat`, `read` and `close` each (reading
//! them into a `String` through `std::fs` took five system calls a file and
//! a path walk through `/proc/self`), and `stat` is read once per thread per
//! capture: it gives the name, the state and the start time.
//!
//! Opening is most of the cost: on a 2-core AMD EPYC KVM guest, `openat`,
//! `read` and `close` of `stat` and `wchan` took 18.3 µs a thread, and
//! `pread` of the same two files kept open 6.9 µs. So [`OpenFiles`] keeps
//! both open from one capture to the next, for as many threads as a small
//! share of the process's descriptor limit allows (see [`OpenFiles::new`]);
//! the other threads' files are opened and closed each time.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// One thread as the kernel describes it.
#[derive(Clone, Debug, Default)]
pub(super) struct TaskInfo {
    pub(super) tid: i32,
    /// `comm`, at most 15 bytes.
    pub(super) name: String,
    /// The state letter of `status` (`R`, `S`, `D`, ...).
    pub(super) state: char,
    /// The kernel function the thread sleeps in, when readable.
    pub(super) wchan: Option<String>,
    /// Signals the thread blocks (`SigBlk`).
    pub(super) blocked: u64,
    /// Signals pending for the thread itself (`SigPnd`).
    pub(super) pending: u64,
    /// When the thread started, in clock ticks after boot (`stat`).
    pub(super) start_ticks: Option<u64>,
}

impl TaskInfo {
    /// Go-style state text: `sleeping in futex_wait_queue`, `running`.
    pub(super) fn state_text(&self) -> String {
        let state = match self.state {
            'R' => "running",
            'S' => "sleeping",
            'D' => "disk wait",
            'T' => "stopped",
            't' => "tracing stop",
            'Z' => "zombie",
            'X' => "dead",
            'I' => "idle",
            'P' => "parked",
            _ => "unknown state",
        };
        match &self.wchan {
            Some(wchan) => format!("{state} in {wchan}"),
            None => state.to_owned(),
        }
    }

    /// Whether `signal` is blocked by, or already pending for, the thread.
    pub(super) fn cannot_take(&self, signal: i32) -> Option<&'static str> {
        let bit = 1u64.checked_shl(signal as u32 - 1).unwrap_or(0);
        if self.blocked & bit != 0 {
            Some("signal blocked")
        } else if self.pending & bit != 0 {
            Some("signal still pending")
        } else {
            None
        }
    }
}

/// The tids of the process's threads, in the order `/proc` lists them.
pub(super) fn list_tids(out: &mut Vec<i32>) -> std::io::Result<()> {
    out.clear();
    for entry in std::fs::read_dir("/proc/self/task")? {
        let Ok(entry) = entry else { continue };
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(tid);
        }
    }
    out.sort_unstable();
    Ok(())
}

/// `/proc/self/task`, open for one capture: the threads' files are opened
/// relative to it.
pub(super) struct TaskDir(OwnedFd);

impl TaskDir {
    pub(super) fn open() -> std::io::Result<TaskDir> {
        let path = c"/proc/self/task";
        // SAFETY: `path` is a NUL-terminated string; the flags ask for a
        // read-only directory descriptor.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(TaskDir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Opens `<tid>/<file>` read-only; `None` if it cannot be opened (the
    /// thread exited).
    fn open_file(&self, tid: i32, file: &str) -> Option<OwnedFd> {
        let mut path = [0u8; 48];
        let mut cursor = std::io::Cursor::new(&mut path[..]);
        use std::io::Write;
        write!(cursor, "{tid}/{file}\0").ok()?;
        let len = cursor.position() as usize;
        let path = CStr::from_bytes_with_nul(&path[..len]).ok()?;
        // SAFETY: `self.0` is an open directory descriptor; `path` is a
        // NUL-terminated relative path.
        let fd = unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                path.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Reads `<tid>/<file>` into `buf`; returns the bytes read, or `None` if
    /// it cannot be opened (the thread exited). A file longer than `buf` is
    /// cut.
    fn read<'a>(&self, tid: i32, file: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let fd = self.open_file(tid, file)?;
        let len = read_from_start(&fd, buf)?;
        Some(&buf[..len])
    }

    /// Whether the thread still exists.
    pub(super) fn exists(&self, tid: i32) -> bool {
        let mut buf = [0u8; 8];
        self.read(tid, "comm", &mut buf).is_some()
    }
}

/// Reads `fd` from its start into `buf` with `pread`, so that a file kept
/// open reads afresh each time; the bytes read, or `None` on an error (the
/// thread of a `/proc` file exited: `ESRCH`). A file longer than `buf` is
/// cut.
fn read_from_start(fd: &OwnedFd, buf: &mut [u8]) -> Option<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is writable for `rest.len()` bytes; `fd` is open.
        let n = unsafe {
            libc::pread(
                fd.as_raw_fd(),
                rest.as_mut_ptr().cast(),
                rest.len(),
                filled as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n > 0 => filled += n as usize,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return None,
        }
        // `/proc` files of one page or less come whole in one read.
        if filled < buf.len() {
            break;
        }
    }
    Some(filled)
}

/// The per-thread files read at every capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum File {
    Stat,
    Wchan,
}

impl File {
    fn name(self) -> &'static str {
        match self {
            File::Stat => "stat",
            File::Wchan => "wchan",
        }
    }
}

/// Threads' `stat` and `wchan` files kept open across captures, at most
/// [`OpenFiles::limit`] descriptors. A kept file names one thread for as
/// long as it is open: once that thread exits, reading it fails with
/// `ESRCH` even if its tid was given to a new thread, and the file is
/// dropped and opened afresh (or not at all).
pub(super) struct OpenFiles {
    by_tid: HashMap<i32, [Option<OwnedFd>; 2]>,
    held: usize,
    limit: usize,
}

/// Most descriptors [`OpenFiles`] keeps...
const MAX_OPEN_FILES: usize = 256;
/// ... and at most this share of the soft `RLIMIT_NOFILE`: 64 of 1,024.
const OPEN_FILES_SHARE: usize = 16;

impl OpenFiles {
    /// Keeps at most `min(256, RLIMIT_NOFILE / 16)` descriptors: two a
    /// thread, so 128 threads, or 32 under the common soft limit of 1,024.
    pub(super) fn new() -> OpenFiles {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid `rlimit` to write to.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
        } else {
            0
        };
        OpenFiles::with_limit((soft / OPEN_FILES_SHARE).min(MAX_OPEN_FILES))
    }

    fn with_limit(limit: usize) -> OpenFiles {
        OpenFiles {
            by_tid: HashMap::new(),
            held: 0,
            limit,
        }
    }

    /// Descriptors kept open now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held
    }

    /// Closes the files of threads not in `tids` (sorted).
    pub(super) fn retain(&mut self, tids: &[i32]) {
        let held = &mut self.held;
        self.by_tid.retain(|tid, files| {
            let keep = tids.binary_search(tid).is_ok();
            if !keep {
                *held -= files.iter().flatten().count();
            }
            keep
        });
    }

    /// Reads `file` of thread `tid` into `buf`: from the descriptor kept
    /// open if there is one, else opened now and kept if there is room.
    /// `None` if the thread exited.
    fn read<'a>(
        &mut self,
        dir: &TaskDir,
        tid: i32,
        file: File,
        buf: &'a mut [u8],
    ) -> Option<&'a [u8]> {
        let slot = file as usize;
        if let Some(fd) = self.by_tid.get(&tid).and_then(|f| f[slot].as_ref()) {
            if let Some(len) = read_from_start(fd, buf) {
                return Some(&buf[..len]);
            }
            // Its thread exited: the tid may name a new one now. Both
            // files named that thread.
            if let Some(files) = self.by_tid.remove(&tid) {
                self.held -= files.iter().flatten().count();
            }
        }
        let fd = dir.open_file(tid, file.name())?;
        let len = read_from_start(&fd, buf)?;
        if self.held < self.limit {
            self.held += 1;
            self.by_tid.entry(tid).or_default()[slot] = Some(fd);
        }
        Some(&buf[..len])
    }
}

/// Reads one thread's name, state and start time from `stat`, and `wchan`
/// for a thread that is not running; `None` if it exited. The signal masks
/// are left empty: see [`read_masks`].
pub(super) fn read_task(dir: &TaskDir, files: &mut OpenFiles, tid: i32) -> Option<TaskInfo> {
    let mut buf = [0u8; 1024];
    let stat = files.read(dir, tid, File::Stat, &mut buf)?;
    let mut info = parse_stat(tid, stat)?;
    if info.state != 'R' {
        let mut buf = [0u8; 128];
        if let Some(wchan) = files.read(dir, tid, File::Wchan, &mut buf) {
            let wchan = String::from_utf8_lossy(wchan);
            let wchan = wchan.trim();
            if !wchan.is_empty() && wchan != "0" {
                info.wchan = Some(wchan.to_owned());
            }
        }
    }
    Some(info)
}

/// `tid (comm) S ...`: the name may hold spaces and parentheses, so the
/// fields are counted after the last `)`.
fn parse_stat(tid: i32, stat: &[u8]) -> Option<TaskInfo> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let name = String::from_utf8_lossy(stat.get(open + 1..close)?).into_owned();
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().and_then(|f| f.chars().next()).unwrap_or('?');
    // After ')': state is field 3; starttime is field 22.
    let start_ticks = fields.nth(18).and_then(|f| f.parse().ok());
    Some(TaskInfo {
        tid,
        name,
        state,
        start_ticks,
        ..TaskInfo::default()
    })
}

/// Fills the blocked and pending signal masks from `status` (the masks in
/// `stat` stop at signal 31); returns the thread's state letter there, or
/// `None` if it exited.
pub(super) fn read_masks(info: &mut TaskInfo, buf: &mut String) -> Option<char> {
    read_file(&format!("/proc/self/task/{}/status", info.tid), buf).ok()?;
    let mut state = '?';
    for line in buf.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "State" => state = value.chars().next().unwrap_or('?'),
            "SigBlk" => info.blocked = u64::from_str_radix(value, 16).unwrap_or(0),
            "SigPnd" => info.pending = u64::from_str_radix(value, 16).unwrap_or(0),
            _ => {}
        }
    }
    Some(state)
}

/// The process's readable and writable mappings from `/proc/self/maps`,
/// as sorted `[start, end)` pairs, adjacent ones joined: every thread's
/// stack is one of them. The main thread's (`[stack]`) reaches down to the
/// mapping below it, where it grows.
pub(super) fn writable_mappings(
    buf: &mut String,
    out: &mut Vec<[usize; 2]>,
) -> std::io::Result<()> {
    out.clear();
    read_file("/proc/self/maps", buf)?;
    for line in buf.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(mut start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if line.ends_with("[stack]") {
            // Apart from the mapping below: a thread's stack there ends at
            // its own end.
            start = out.last().map_or(0, |last| (last[1] + 1).min(start));
        }
        match out.last_mut() {
            Some(last) if last[1] == start => last[1] = end,
            Some(last) if last[1] > start => {}
            _ if start < end => out.push([start, end]),
            _ => {}
        }
    }
    Ok(())
}

/// How long ago the thread started, from its start time in `stat` and
/// `/proc/uptime`.
pub(super) fn age(info: &TaskInfo, uptime: Option<Duration>) -> Option<Duration> {
    let uptime = uptime?;
    let start_ticks = info.start_ticks?;
    // SAFETY: `sysconf` has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return None;
    }
    let started = Duration::from_secs_f64(start_ticks as f64 / ticks_per_second as f64);
    Some(uptime.saturating_sub(started))
}

/// The system's uptime: `CLOCK_BOOTTIME`, the clock of `/proc/uptime` and
/// of the start times in `stat`, read without a file (opening, reading and
/// closing `/proc/uptime` was a tenth of the collector's own time).
pub(super) fn uptime() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid `timespec` to write to.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(now.tv_sec).ok()?,
        u32::try_from(now.tv_nsec).ok()?,
    ))
}

fn read_file(path: &str, buf: &mut String) -> std::io::Result<()> {
    buf.clear();
    std::fs::File::open(path)?.read_to_string(buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_the_one_proc_reports() {
        let mut buf = String::new();
        read_file("/proc/uptime", &mut buf).unwrap();
        let seconds: f64 = buf.split_whitespace().next().unwrap().parse().unwrap();
        let uptime = uptime().unwrap().as_secs_f64();
        assert!((uptime - seconds).abs() < 1.0, "{uptime} against {seconds}");
    }

    #[test]
    fn stat_gives_name_state_and_start_time() {
        let stat = b"123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 19 20\n";
        let info = parse_stat(123, stat).unwrap();
        assert_eq!(info.name, "a (b) c");
        assert_eq!(info.state, 'S');
        assert_eq!(info.start_ticks, Some(4242));
        assert!(parse_stat(1, b"garbage").is_none());
    }

    #[test]
    fn this_thread_reads_from_the_task_directory() {
        let dir = TaskDir::open().unwrap();
        // SAFETY: `gettid` has no preconditions.
        let tid = unsafe { libc::gettid() };
        let mut files = OpenFiles::new();
        let info = read_task(&dir, &mut files, tid).unwrap();
        assert_eq!(info.state, 'R');
        assert!(info.start_ticks.is_some());
        assert!(dir.exists(tid));
        assert!(!dir.exists(i32::MAX));
        assert!(read_task(&dir, &mut files, i32::MAX).is_none());
    }

    /// A thread parked on a channel, and its tid.
    fn parked_thread() -> (
        i32,
        std::sync::mpsc::Sender<()>,
        std::thread::JoinHandle<()>,
    ) {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            // SAFETY: `gettid` has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = go_rx.recv();
        });
        (tid_rx.recv().unwrap(), go_tx, handle)
    }

    /// Reads `tid` until it is seen sleeping (it may still be on its way to
    /// its wait).
    fn read_sleeping(dir: &TaskDir, files: &mut OpenFiles, tid: i32) -> TaskInfo {
        for _ in 0..1000 {
            let info = read_task(dir, files, tid).unwrap();
            if info.state == 'S' {
                return info;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("thread {tid} never slept");
    }

    #[test]
    fn kept_files_read_afresh_and_close_when_their_thread_exits() {
        let dir = TaskDir::open().unwrap();
        let mut files = OpenFiles::with_limit(8);
        let (tid, go, handle) = parked_thread();
        let first = read_sleeping(&dir, &mut files, tid);
        assert_eq!(files.held(), 2, "stat and wchan kept open");
        // Read again through the kept files: the same thread, read afresh.
        // (`wchan` is empty for a moment while the thread is woken.)
        let again = (0..1000)
            .map(|_| read_task(&dir, &mut files, tid).unwrap())
            .find(|again| again.state == 'S' && again.wchan.is_some())
            .expect("a sleeping thread's wait channel");
        assert_eq!(again.start_ticks, first.start_ticks);
        assert_eq!(files.held(), 2);
        drop(go);
        handle.join().unwrap();
        assert!(
            read_task(&dir, &mut files, tid).is_none(),
            "an exited thread"
        );
        assert_eq!(files.held(), 0, "its kept file was dropped");
        files.retain(&[]);
        assert_eq!(files.held(), 0);
    }

    #[test]
    fn kept_files_stay_within_their_limit_and_go_with_their_threads() {
        let dir = TaskDir::open().unwrap();
        let mut files = OpenFiles::with_limit(3);
        let threads: Vec<_> = (0..3).map(|_| parked_thread()).collect();
        for (tid, _, _) in &threads {
            read_sleeping(&dir, &mut files, *tid);
        }
        assert_eq!(files.held(), 3);
        // Every thread still reads, kept open or not.
        for (tid, _, _) in &threads {
            assert_eq!(read_sleeping(&dir, &mut files, *tid).tid, *tid);
        }
        assert_eq!(files.held(), 3);
        let mut listed: Vec<i32> = threads.iter().skip(1).map(|t| t.0).collect();
        listed.sort_unstable();
        files.retain(&listed);
        assert!(files.held() <= 1, "{} kept", files.held());
        for (_, go, handle) in threads {
            drop(go);
            handle.join().unwrap();
        }
    }

    #[test]
    fn the_default_limit_is_a_small_share_of_the_descriptor_limit() {
        let files = OpenFiles::new();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `limit` is a valid `rlimit` to write to.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(rc, 0);
        assert!(files.limit <= MAX_OPEN_FILES);
        assert!(files.limit as u64 <= limit.rlim_cur / 16);
    }

    #[test]
    fn writable_mappings_hold_this_threads_stack_sorted_and_disjoint() {
        let mut buf = String::new();
        let mut mappings = Vec::new();
        writable_mappings(&mut buf, &mut mappings).unwrap();
        let local = 0u8;
        let here = std::hint::black_box(&local) as *const u8 as usize;
        assert!(
            mappings.iter().any(|m| (m[0]..m[1]).contains(&here)),
            "{here:#x} not in {mappings:x?}"
        );
        assert!(mappings.iter().all(|m| m[0] < m[1]));
        assert!(mappings.windows(2).all(|w| w[0][1] < w[1][0]));
    }

    #[test]
    fn the_main_stack_reaches_down_to_the_mapping_below_it() {
        let mut buf = String::new();
        let mut mappings = Vec::new();
        writable_mappings(&mut buf, &mut mappings).unwrap();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let stack = maps.lines().find(|l| l.ends_with("[stack]")).unwrap();
        let (start, end) = stack
            .split_whitespace()
            .next()
            .unwrap()
            .split_once('-')
            .unwrap();
        let start = usize::from_str_radix(start, 16).unwrap();
        let end = usize::from_str_radix(end, 16).unwrap();
        let index = mappings.iter().position(|m| m[1] == end).unwrap();
        // It reaches below where the stack is mapped now, to where it can grow.
        assert!(
            mappings[index][0] < start,
            "{:x?} {start:x}",
            mappings[index]
        );
        assert!(index == 0 || mappings[index - 1][1] + 1 == mappings[index][0]);
    }
}
