//! Native stacks where they are not supported (anything but Linux):
//! `augment` is a documented no-op, and settings answer
//! [`Error::Unsupported`].

use std::time::Duration;

use super::{Error, Method, DEFAULT_TIMEOUT};
use crate::snapshot::Snapshot;

pub(super) fn augment(_snapshot: &mut Snapshot) {}

pub(super) fn augment_with(_snapshot: &mut Snapshot, _mark: &mut dyn FnMut(&'static str)) {}

pub(super) fn set_signal(_signal: i32) -> Result<(), Error> {
    Err(Error::Unsupported)
}

pub(super) fn current_signal() -> Option<i32> {
    None
}

pub(super) fn set_timeout(_timeout: Duration) {}

pub(super) fn set_trace_deadline(_deadline: Duration) {}

pub(super) fn set_task_traces(_on: bool) {}

pub(super) fn set_trace_interval(_interval: Duration) {}

pub(super) fn timeout() -> Duration {
    DEFAULT_TIMEOUT
}

pub(super) fn set_stack_copy(_bytes: usize) {}

pub(super) fn stack_copy() -> usize {
    super::DEFAULT_STACK_COPY
}

pub(super) fn set_method(_method: Method) {}

pub(super) fn method() -> Method {
    Method::Auto
}

/// # Safety
/// Only from the *prepare* fork handler.
pub(super) unsafe fn prepare_fork() {}

/// # Safety
/// Only from the *parent* or *child* fork handler.
pub(super) unsafe fn after_fork(_child: bool) {}

pub(super) fn in_handler() -> bool {
    false
}

pub(super) fn handler_runs() -> u64 {
    0
}

pub(super) fn skip_blocked_check(_skip: bool) {}

pub(super) fn set_parallel(_parallel: bool) {}

pub(super) fn stacks_only() -> Result<usize, String> {
    Err(Error::Unsupported.to_string())
}

pub(super) fn symbolize(_address: usize) -> usize {
    0
}

pub(super) fn clear_symbol_cache() {}

pub(super) fn drop_parsed_symbols() {}

pub(super) fn symbol_bytes() -> usize {
    0
}

pub(super) fn symbol_index_bytes() -> usize {
    0
}

pub(super) fn symbols_loaded() -> bool {
    false
}

static BUDGET: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(super::DEFAULT_SYMBOL_BUDGET);

pub(super) fn set_symbol_budget(bytes: usize) {
    BUDGET.store(bytes.max(1 << 20), std::sync::atomic::Ordering::Relaxed);
}

pub(super) fn symbol_budget() -> usize {
    BUDGET.load(std::sync::atomic::Ordering::Relaxed)
}

/// No symbols to load here: only `also`, once per process, on a thread of
/// its own (which exits when done).
pub(super) fn warm_up(also: fn(), _code: Vec<usize>) {
    // Not a `Once`: one that a fork found running would keep the child's
    // `init` waiting forever.
    static WARMING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if WARMING.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("webstack-warm-up".into())
        .spawn(also);
}
