//! Native stacks on Linux: `/proc` for the thread list and states, a
//! real-time signal whose handler saves the registers and copies the top of
//! the stack into a preallocated slot, DWARF unwinding of the copies by the
//! collector, `addr2line` over the mapped objects to symbolise afterwards
//! (within the symbol budget, loaded in the background after `init`), and
//! the merge of native and shadow frames. See the [parent module](super) for how a capture works.

mod collect;
mod copy;
mod mapped;
mod merge;
mod objects;
mod proc;
mod signal;
mod symbols;
mod traces;
mod unwind;

use std::time::Duration;

use super::{Error, Method, DEFAULT_STACK_COPY, DEFAULT_TIMEOUT, MAX_NATIVE_FRAMES};
use crate::snapshot::{Origin, Snapshot};

pub(super) fn augment(snapshot: &mut Snapshot) {
    collect::augment(snapshot);
    traces::add(snapshot);
}

pub(super) fn set_trace_deadline(deadline: Duration) {
    traces::set_deadline(deadline);
}

pub(super) fn set_task_traces(on: bool) {
    traces::set_enabled(on);
}

pub(super) fn set_trace_interval(interval: Duration) {
    traces::set_min_interval(interval);
}

pub(super) fn augment_with(snapshot: &mut Snapshot, mark: &mut dyn FnMut(&'static str)) {
    collect::augment_with(snapshot, mark);
}

pub(super) fn set_signal(signal: i32) -> Result<(), Error> {
    signal::set_signal(signal)
}

pub(super) fn current_signal() -> Option<i32> {
    Some(signal::signal())
}

pub(super) fn set_timeout(timeout: Duration) {
    collect::set_timeout(timeout);
}

pub(super) fn timeout() -> Duration {
    collect::timeout()
}

pub(super) fn set_stack_copy(bytes: usize) {
    collect::set_stack_copy(bytes);
}

pub(super) fn stack_copy() -> usize {
    collect::stack_copy()
}

pub(super) fn set_method(method: Method) {
    unwind::set_method(method);
}

pub(super) fn method() -> Method {
    unwind::effective_method()
}

/// # Safety
/// Only from the *prepare* fork handler.
pub(super) unsafe fn prepare_fork() {
    // SAFETY: guaranteed by the caller.
    unsafe { signal::prepare_fork() };
}

/// # Safety
/// Only from the *parent* or *child* fork handler.
pub(super) unsafe fn after_fork(child: bool) {
    if child {
        collect::forget_threads();
        signal::forget_requests();
        symbols::recover_after_fork();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { signal::after_fork() };
}

pub(super) fn in_handler() -> bool {
    signal::in_handler()
}

pub(super) fn handler_runs() -> u64 {
    signal::handler_runs()
}

pub(super) fn skip_blocked_check(skip: bool) {
    collect::skip_blocked_check(skip);
}

pub(super) fn set_parallel(parallel: bool) {
    collect::set_parallel(parallel);
}

pub(super) fn stacks_only() -> Result<usize, String> {
    collect::stacks_only()
}

pub(super) fn symbolize(address: usize) -> usize {
    symbols::symbolize(address).len()
}

pub(super) fn clear_symbol_cache() {
    symbols::clear();
}

pub(super) fn drop_parsed_symbols() {
    symbols::drop_parsed();
}

pub(super) fn symbol_bytes() -> usize {
    symbols::kept_bytes()
}

pub(super) fn symbol_index_bytes() -> usize {
    symbols::fixed_bytes()
}

pub(super) fn symbols_loaded() -> bool {
    symbols::loaded()
}

pub(super) fn set_symbol_budget(bytes: usize) {
    symbols::set_budget(bytes);
}

pub(super) fn symbol_budget() -> usize {
    symbols::budget()
}

pub(super) fn warm_up(also: fn(), mut code: Vec<usize>) {
    code.push(augment as *const () as usize);
    code.extend(collect::capture_path());
    symbols::warm_up(also, code);
}
