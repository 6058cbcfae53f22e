//! The panic hook: after the previous hook's message, the grouped dump of
//! every thread and task, as Go prints on a crash.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use super::worker::{self, PanicDump};
use super::DumpOptions;

/// Installs a panic hook that, after the hook installed before it (by
/// default std's, which prints the panic's message), prints the grouped
/// dump of every thread and task to stderr: [`panic_hook_with`] the default
/// [`DumpOptions`]. `#[webstack::main(panic_hook)]` calls it.
///
/// The panicking thread's own frames are shown as they were at the panic,
/// with their argument values (the hook runs before unwinding). The dump is
/// taken by the `webstack-dump` thread, never by the panicking one; that
/// thread waits for it at most [`DumpOptions::timeout`] (default 5 s), then
/// goes on unwinding (or aborting, with `panic = "abort"`) whatever state
/// the program is in: a panic inside webstack, while a snapshot is being
/// taken, or with a lock held cannot hang the program. A panic inside a
/// snapshot's capture gets a dump without native stacks (the native pass's
/// locks may be the ones it holds). Panics at the same time share one dump,
/// and a panic within 1 s of the end of the previous panic dump prints a
/// one-line note instead (a server catching panics per request must not
/// print a full dump for each).
///
/// Call it once, early in `main` (a second call only changes the options);
/// not from a panicking thread (std's `set_hook` panics there). On failure
/// to start the dump thread the hook is not installed and a line says why
/// on stderr.
pub fn panic_hook() {
    panic_hook_with(DumpOptions::default());
}

/// [`panic_hook`] with other [`DumpOptions`].
pub fn panic_hook_with(options: DumpOptions) {
    *OPTIONS.lock() = Some(options);
    if let Err(e) = worker::get() {
        super::note(format_args!(
            "webstack: panic dumps are off: could not start the dump thread: {e}"
        ));
        return;
    }
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        on_panic();
    }));
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static OPTIONS: parking_lot::Mutex<Option<DumpOptions>> = parking_lot::Mutex::new(None);

thread_local! {
    /// Set while this thread runs the hook's dump request.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|flag| flag.set(false));
    }
}

fn on_panic() {
    // A panic of the dump thread itself (its capture is guarded) or of this
    // hook's own request: the previous hook printed the message; a dump
    // from here could wait on itself.
    if worker::is_worker() || IN_HOOK.try_with(|flag| flag.replace(true)).unwrap_or(true) {
        return;
    }
    let _reset = Reset;
    let Some(mut options) = OPTIONS.try_lock().and_then(|options| options.clone()) else {
        return;
    };
    let in_capture = crate::pipeline::capturing_here();
    if in_capture {
        options.view.augment = false;
    }
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    let tid = tid_suffix();
    let mut header = format!(
        "webstack: every thread and task at the panic in thread '{name}'{tid} (the panicking \
         thread waits in webstack's panic hook)"
    );
    if in_capture {
        header.push_str("; it panicked inside a snapshot, so native stacks are left out");
    }
    let Ok(worker) = worker::get() else {
        super::note(format_args!(
            "webstack: no dump: the dump thread could not be started"
        ));
        return;
    };
    let timeout = options.timeout;
    match worker.dump_for_panic(header, options) {
        PanicDump::Written | PanicDump::Shared => {}
        PanicDump::TooSoon(ago) => super::note(format_args!(
            "webstack: no dump for this panic: the previous panic dump ended {} ms ago",
            ago.as_millis()
        )),
        PanicDump::TimedOut => super::note(format_args!(
            "webstack: the panic dump did not finish within {timeout:?}; going on without it"
        )),
        PanicDump::Failed => {
            super::note(format_args!("webstack: no dump: the dump thread is gone"))
        }
    }
}

fn tid_suffix() -> String {
    match crate::record::stack::current_tid() {
        Some(tid) => format!(" (tid {tid})"),
        None => String::new(),
    }
}
