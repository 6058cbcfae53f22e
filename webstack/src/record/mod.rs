//! What an instrumented call writes, and where: the record side.
//!
//! Everything here runs on the program's own threads, on the hot path of
//! every instrumented call and poll: no allocation, no lock (the registry's
//! shard locks are taken only when a thread or task starts and ends). The
//! read side ([`crate::snapshot`]) reads it without waiting on it; the two
//! share only the data defined here (frame words, slots, task records and
//! the registry's entries).
//!
//! - [`meta`]: static per-function descriptions (`FrameMeta`).
//! - [`value`]: `Capture` and `Value`, what an argument becomes.
//! - [`probe`]: how the macros record one parameter, chosen at compile time.
//! - [`frame_args`], [`slot`]: the words of one frame; one seqlock slot.
//! - [`stack`]: a thread's shadow stack and the thread-local pointer to it.
//! - [`task`]: instrumented futures, task roots, saved await chains.
//! - [`await_point`]: the line of the `.await` an idle frame is suspended at.
//! - [`registry`]: the global sharded registry of live stacks and tasks.
//! - [`thread`]: spawn wrappers that record their creator.
//! - `task_spawn` (public as `webstack::task`, `tokio` feature): tokio's
//!   spawn functions, registering the task at spawn; `tokio_hooks` (public
//!   as `webstack::tokio`, also `--cfg tokio_unstable`): every task of a
//!   runtime, through tokio's task hooks. Each file's name starts with its
//!   public module's name, so neither is taken for [`task`], the records.
//! - `hook_table`: the hooks' table of per-task slots and its lock-free
//!   protocol, without tokio (also built for its loom model checks).

pub(crate) mod await_point;
pub(crate) mod frame_args;
#[cfg(any(all(feature = "tokio", tokio_unstable), all(test, webstack_loom)))]
pub(crate) mod hook_table;
pub(crate) mod meta;
pub(crate) mod probe;
pub(crate) mod registry;
pub(crate) mod slot;
pub(crate) mod stack;
pub(crate) mod task;
#[cfg(feature = "tokio")]
pub mod task_spawn;
pub mod thread;
#[cfg(all(feature = "tokio", tokio_unstable))]
pub mod tokio_hooks;
pub(crate) mod value;
