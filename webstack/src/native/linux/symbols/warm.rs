//! The warm-up thread: loads the program's symbols in the background after
//! `init`, so the first snapshot does not pay for them.

use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use super::resolver::Objects;
use super::source::source_line;
use super::OBJECTS;
use crate::snapshot::resolve::tidy;

/// Whether the warm-up thread was started. Not a `Once`: one that a fork
/// found running would keep the child's `init` waiting forever.
static WARMING: AtomicBool = AtomicBool::new(false);

/// Starts, once per process, a low-priority thread that reads the
/// program's symbol table and debug information index and resolves a few
/// addresses every snapshot meets, so the first snapshot does not pay for
/// them. The thread builds its own copy without taking the symbolizer's
/// lock, installs it only if no snapshot loaded symbols meanwhile, and
/// exits. It runs `also` (what later stages warm up) first, at its low
/// priority, and resolves the functions at `code` (those a capture runs on
/// the collecting thread, whose own stack it shows) with the rest. A
/// forked child does not start it again.
pub(in crate::native::sys) fn warm_up(also: fn(), code: Vec<usize>) {
    if WARMING.swap(true, Ordering::Relaxed) {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("webstack-symbols".into())
        .spawn(move || warm(also, code));
}

fn warm(also: fn(), code: Vec<usize>) {
    // What takes the loader's lock (listing the objects, unwinding this
    // thread's stack) runs before the priority drops, so that the lock is
    // never held by a thread that may wait long for the CPU.
    let mut objects = Objects::new();
    objects.relist();
    let mut addresses = warm_addresses();
    // A function's address plus one resolves the function itself.
    addresses.extend(code.iter().map(|function| function + 1));
    lower_priority();
    also();
    let mut sink = Vec::new();
    for lookup in addresses {
        objects.resolve(lookup, &mut sink);
        sink.clear();
    }
    // The program starts its threads after `init`: a second later, resolve
    // what their stacks hold.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut files = HashSet::new();
    for lookup in stack_words(&objects) {
        objects.resolve(lookup, &mut sink);
        files.extend(sink.drain(..).filter_map(|f| f.file));
    }
    {
        let mut installed = OBJECTS.lock();
        if installed.loaded().next().is_none() {
            *installed = objects;
        }
    }
    // And read the source files of those frames, for their `source` lines.
    for file in files {
        source_line(&tidy(&file), 1);
    }
}

/// Words found on the stacks of the process's threads (from the stack
/// pointer each blocked thread's `/proc/self/task/*/syscall` shows, up to
/// 16 KiB, read with `process_vm_readv`) that point into the code of a
/// loaded object: return addresses, mostly, without interrupting anyone;
/// and each thread's instruction pointer from the same file.
fn stack_words(objects: &Objects) -> Vec<usize> {
    const SCAN: usize = 16 << 10;
    const MAX_WORDS: usize = 2048;
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    let mut buffer = vec![0usize; SCAN / std::mem::size_of::<usize>()];
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("syscall")) else {
            continue;
        };
        // "nr arg1 .. arg6 sp pc", or "-1 sp pc" outside a system call.
        let fields: Vec<&str> = text.split_whitespace().collect();
        let field = |back: usize| {
            let at = fields.len().checked_sub(back)?;
            usize::from_str_radix(fields[at].trim_start_matches("0x"), 16).ok()
        };
        let Some(sp) = field(2) else {
            continue;
        };
        // The instruction the thread will resume at is where a capture
        // finds it (looked up as an exact address: one byte on), and no
        // stack word points at it; in a system call it is the C library's.
        if let Some(pc) = field(1) {
            let lookup = pc.wrapping_add(1);
            if objects.list.iter().any(|o| o.contains(pc)) && !found.contains(&lookup) {
                found.push(lookup);
            }
        }
        let local = libc::iovec {
            iov_base: buffer.as_mut_ptr().cast(),
            iov_len: SCAN,
        };
        let remote = libc::iovec {
            iov_base: sp as *mut c_void,
            iov_len: SCAN,
        };
        // SAFETY: reads this process's memory into `buffer` (SCAN bytes);
        // an unmapped source makes the call fail or stop short, never
        // fault.
        let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        let Ok(read) = usize::try_from(read) else {
            continue;
        };
        for &word in &buffer[..read / std::mem::size_of::<usize>()] {
            if objects
                .list
                .iter()
                .any(|o| o.contains(word.wrapping_sub(1)))
                && !found.contains(&word)
            {
                found.push(word);
                if found.len() >= MAX_WORDS {
                    return found;
                }
            }
        }
    }
    found
}

/// Gives the calling thread the lowest priority, nice 19: it gets the CPU
/// when the program leaves it idle, and a small share (1.5% of a nice-0
/// thread's) when it does not. Not `SCHED_IDLE`, which can starve a thread
/// indefinitely, and with it whatever kernel lock its page faults on the
/// mapped file take.
fn lower_priority() {
    // SAFETY: `gettid` has no preconditions; `setpriority` on a thread id
    // changes only that thread.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

/// Return addresses in code that most threads' stacks go through: this
/// thread's own stack (thread start, the standard library) and the
/// standard library's blocking calls.
fn warm_addresses() -> Vec<usize> {
    let mut addresses = Vec::new();
    // SAFETY: on Linux the unwinder is thread-safe; skipping `backtrace`'s
    // lock means a fork never finds it held by this thread.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            addresses.push(frame.ip() as usize);
            addresses.len() < 64
        })
    };
    let blocking: [usize; 4] = [
        std::thread::park as fn() as usize,
        std::thread::sleep as fn(std::time::Duration) as usize,
        std::thread::yield_now as fn() as usize,
        warm_up as fn(fn(), Vec<usize>) as usize,
    ];
    // A function's address plus one resolves the function itself.
    addresses.extend(blocking.iter().map(|a| a + 1));
    addresses
}
