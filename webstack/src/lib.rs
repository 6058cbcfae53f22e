//! webstack shows what every thread and async task of a running program is
//! doing right now: Go's `/debug/pprof/goroutine?debug=2` for Rust, with the
//! typed argument values of every instrumented frame, grouped into buckets of
//! identical stacks and served as a web page.
//!
//! # Usage
//!
//! ```
//! use webstack::{Options, Snapshot};
//!
//! #[webstack::instrument]
//! fn handle(id: u32, user: &str) -> usize {
//!     // Capture from inside, to see this very frame.
//!     let snapshot = Snapshot::capture(&Options::default().augment(false));
//!     let me = snapshot
//!         .routines()
//!         .find(|r| r.frames.iter().any(|f| f.function.ends_with("::handle")))
//!         .unwrap();
//!     let frame = &me.frames[0];
//!     assert_eq!(frame.args[0].value.to_string(), "7");
//!     assert_eq!(frame.args[1].value.to_string(), "\"alice\"");
//!     user.len() + id as usize
//! }
//!
//! assert_eq!(handle(7, "alice"), 12);
//! ```
//!
//! # What `#[instrument]` does
//!
//! On a sync function it records a frame for the length of the call:
//!
//! ```ignore
//! #[webstack::instrument]
//! fn handle(id: u32, user: &str) -> usize { body }
//! ```
//!
//! expands roughly to
//!
//! ```ignore
//! fn handle(id: u32, user: &str) -> usize {
//!     static META: FrameMeta = FrameMeta { function: "app::handle", file: file!(), line: 2,
//!         args: &[ArgMeta { name: "id", ty: "u32" }, ArgMeta { name: "user", ty: "&str" }], .. };
//!     struct Meta; // implements `StaticMeta`, naming `META`
//!     let _frame = enter(Meta, NoOwner, (Fixed::<U64>::new(id), Value::str(user)));
//!     body
//! }
//! ```
//!
//! `enter` writes the frame into the calling thread's fixed-size shadow stack
//! with plain stores (a sequence lock makes it readable from other threads),
//! and the guard pops it when the call returns or unwinds.
//!
//! An `async fn` becomes a `fn` returning `impl Future<Output = ...>`
//! (capturing the same lifetimes, and holding every argument until the
//! future ends, as the `async fn` did): it records the arguments and returns
//! its body, an `async move` block, wrapped in an [`__private::Instrumented`]
//! future that holds the frame and pushes it on the polling thread's stack
//! for each poll. (It stays an `async fn`, awaiting the wrapper, when it has a
//! destructured parameter, `#[must_use]` (which on an `async fn` applies to
//! the awaited output), another attribute macro such as `#[tokio::test]`,
//! `unsafe`, or an `impl Trait` or `!` return type.) A `fn` returning `impl
//! Future` is wrapped the same way, every `return` included; so is a method
//! of an `#[async_trait]` impl, whose boxed `async move` block gets the
//! frame. The outermost instrumented future polled on a thread is a task
//! root and is registered as a task, with its await chain recorded at every
//! `Pending`.
//!
//! Each `.await` of an async body is rewritten to record its line when it is
//! pending, so an idle task shows every instrumented frame at the `.await`
//! it is suspended at:
//!
//! ```ignore
//! let reply = conn.read_frame().await;
//! // becomes
//! let reply = at_line::<{ line!() }, _, _>(conn.read_frame(), Meta).await; // IntoFuture inside
//! ```
//!
//! [`__private::AtLine`] only forwards the poll when the future is ready;
//! when it is pending it leaves its line in a thread-local, which the
//! frame's `Instrumented` future takes on its own `Pending` path. An
//! `.await` inside a macro call (`select!`, `join!`) cannot be rewritten:
//! the frame then shows the line of that call when its body has one such
//! call, else its definition line.
//!
//! Argument values are recorded through [`Capture`], never through `Debug`.
//! A parameter whose type has no `Capture` impl is recorded as the address
//! and type name of what it points at when it is a reference (`&T`, `&mut
//! T`), a `Box`, `Rc`, `Arc`, `Pin` or raw pointer, so frames holding the
//! same object can be told; taken by value, it is shown as `<by value>`,
//! with no address (the address of the call's copy would say nothing about
//! which object it is). Use `skip(..)` or `skip_all` for secrets.
//!
//! # Misuse is a compile error
//!
//! ```compile_fail
//! #[webstack::instrument(skip(missing))]
//! fn f(present: u32) {}
//! ```
//!
//! ```compile_fail
//! #[webstack::instrument(level = "info")]
//! fn f() {}
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

#[cfg(feature = "actix")]
pub mod actix;
#[cfg(feature = "axum")]
pub mod axum;
mod clock;
mod dump;
mod fork;
#[cfg(target_os = "linux")]
mod futex;
mod group;
mod hash;
mod lock;
pub mod native;
mod page;
mod pipeline;
mod prefetch;
mod record;
pub mod render;
mod sealed;
pub mod serve;
mod snapshot;
mod sync;
mod view;

#[cfg(all(test, not(webstack_loom)))]
mod layout_tests;
#[cfg(all(test, webstack_loom))]
mod loom_tests;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Hooks for webstack's own tests and benchmarks: counters and switches
/// inside the native pass, the fork handlers and the tokio hooks. Not a
/// public API; kept apart from `__private`, which holds only what the
/// macros' generated code needs.
#[doc(hidden)]
pub mod __test_hooks {
    /// Hooks into native stacks.
    pub mod native {
        pub use crate::native::hooks::*;
    }

    /// Hooks for tests that fork at a chosen moment.
    pub mod fork {
        pub use crate::fork::hooks::*;
    }

    /// Hooks into the table of `webstack::tokio::hooks`.
    #[cfg(all(feature = "tokio", tokio_unstable))]
    pub mod tokio {
        pub use crate::record::tokio_hooks::holds_slot;
    }
}

pub use clock::uptime;
pub use dump::{dump, dump_to_string, DumpOptions};
#[cfg(target_os = "linux")]
pub use dump::{dump_on_signal, dump_on_signal_with, DumpSignal, SignalError};
#[cfg(unix)]
pub use dump::{panic_hook, panic_hook_with};
pub use group::{
    Bucket, BucketArg, BucketFrame, Buckets, Member, Members, Merged, ParseSimilarityError,
    Similarity,
};
pub use record::frame_args::MAX_ARGS;
pub use record::stack::MAX_DEPTH;
#[cfg(feature = "tokio")]
pub use record::task_spawn as task;
pub use record::thread;
#[cfg(all(feature = "tokio", tokio_unstable))]
pub use record::tokio_hooks as tokio;
pub use record::value::{Capture, Collection, Shape, Value, STR_BYTES};
pub use snapshot::{
    Arg, Args, CreatedBy, Frame, Frames, Kind, LeftOut, Options, Origin, Process, Routine,
    Routines, Snapshot, State, DEFAULT_MAXMEM, JSON_VERSION, MIN_MAXMEM,
};
pub use view::{QueryError, View};
pub use webstack_macros::{instrument, main, Capture};

/// Initialises webstack: registers the calling thread, starts the uptime
/// clock and, on Linux, a low-priority thread (`webstack-symbols`) that
/// loads the program's symbols in the background and exits, so the first
/// `augment=1` snapshot is not slower than later ones (see
/// [`native`](crate::native#symbols)). `#[webstack::main]` calls it; calling
/// it again does nothing.
pub fn init() {
    clock::uptime(); // starts the uptime clock
    record::stack::current();
    native::warm_up(warm_page, vec![Snapshot::capture as *const () as usize]);
}

/// Run by the warm-up thread, at its low priority: prepares what the first
/// page needs beside symbols (the HTML templates, parsed once per process).
fn warm_page() {
    render::warm_up();
}
