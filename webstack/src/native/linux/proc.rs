//! What `/proc/self/task` says about each thread: name, kernel state, wait
//! channel, blocked and pending signals, start time.
//!
//! Measured on the development machine (2 cores, loaded): reading `stat`
//! costs about half of `status`, so the masks from `status` are only read
//! for threads that failed to answer before.

use std::io::Read;
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

/// Reads one thread's name and state from `stat` (cheaper for the kernel to
/// produce than `status`), and `wchan` for a thread that is not running;
/// `None` if it exited. The signal masks are left empty: see [`read_masks`].
pub(super) fn read_task(tid: i32, buf: &mut String) -> Option<TaskInfo> {
    read_file(&format!("/proc/self/task/{tid}/stat"), buf).ok()?;
    // `tid (comm) S ...`: the name may hold spaces and parentheses.
    let open = buf.find('(')?;
    let close = buf.rfind(')')?;
    let mut info = TaskInfo {
        tid,
        name: buf.get(open + 1..close)?.to_owned(),
        state: buf[close + 1..].trim_start().chars().next().unwrap_or('?'),
        ..TaskInfo::default()
    };
    if info.state != 'R' && read_file(&format!("/proc/self/task/{tid}/wchan"), buf).is_ok() {
        let wchan = buf.trim();
        if !wchan.is_empty() && wchan != "0" {
            info.wchan = Some(wchan.to_owned());
        }
    }
    Some(info)
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
/// stack is one of them.
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
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        match out.last_mut() {
            Some(last) if last[1] == start => last[1] = end,
            Some(last) if last[1] > start => {}
            _ if start < end => out.push([start, end]),
            _ => {}
        }
    }
    Ok(())
}

/// Whether the thread still exists.
pub(super) fn exists(tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/self/task/{tid}")).exists()
}

/// How long ago the thread started, from `stat`'s start time and
/// `/proc/uptime`.
pub(super) fn age(tid: i32, uptime: Option<Duration>, buf: &mut String) -> Option<Duration> {
    let uptime = uptime?;
    read_file(&format!("/proc/self/task/{tid}/stat"), buf).ok()?;
    // The name may contain spaces and parentheses: fields follow the last ')'.
    let rest = &buf[buf.rfind(')')? + 1..];
    // After ')': state is field 3; starttime is field 22.
    let start_ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: `sysconf` has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_second <= 0 {
        return None;
    }
    let started = Duration::from_secs_f64(start_ticks as f64 / ticks_per_second as f64);
    Some(uptime.saturating_sub(started))
}

/// The system's uptime.
pub(super) fn uptime(buf: &mut String) -> Option<Duration> {
    read_file("/proc/uptime", buf).ok()?;
    let seconds: f64 = buf.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(seconds))
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
}
