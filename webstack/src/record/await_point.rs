//! Await-point lines: which `.await` of its body an idle instrumented frame
//! is suspended at.
//!
//! `#[webstack::instrument]` rewrites every `.await` it can see in an async
//! body (and in the `async` blocks and closures inside it) into
//! `at_line::<LINE, _, _>(expr, Meta).await`. The
//! [`AtLine`] wrapper forwards the poll and does nothing more when the inner
//! future is ready; only when it returns `Pending` does it leave
//! `(function, line)` in a thread-local. The frame's [`Instrumented`] future,
//! on its own `Pending` path, takes that value (emptying it) and writes the
//! line into its entry of the task's saved chain.
//!
//! Why this shape:
//! - a body cannot reach its own `Instrumented` wrapper (the generator has no
//!   sound pointer to it), so the line travels through a thread-local; but
//!   only on the `Pending` path, where the poll already saves a chain, so an
//!   `.await` that completes immediately costs nothing beyond the inlined
//!   wrapper;
//! - an inner instrumented frame takes the value before its parent's
//!   wrapper sees `Pending`, so every frame of a chain gets its own line;
//! - the value names its function: a frame takes only a line of its own
//!   body, so a value left by a `Pending` that a combinator swallowed
//!   (`future::select`, `timeout` firing) in another function, or by an
//!   `async` block spawned elsewhere, never shows in the wrong file;
//! - each `Pending` overwrites the value: within one body the outermost
//!   pending `.await` is the one the body itself is suspended at (for an
//!   `async` block awaited in the body, the line of that await), and a stale
//!   value of the same body is replaced by the current one.
//!
//! `.await`s inside macro calls (`select!`, `join!`, `try_join!`, or any
//! macro whose tokens contain `.await`) cannot be rewritten: the macro sees
//! the tokens, not the parser. A body with exactly one such call shows that
//! call's line when it is suspended with no visible `.await` pending
//! ([`StaticMeta::AWAIT_FALLBACK`]); with several, the function's definition
//! line.
//!
//! [`Instrumented`]: crate::record::task::Instrumented

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::record::meta::{FrameMeta, StaticMeta};

thread_local! {
    /// `(address of the function's FrameMeta, line)` of the last `.await`
    /// that returned `Pending` and that no frame took yet; `(0, 0)` when
    /// empty.
    static PENDING_AT: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

/// An `.await` of an instrumented body: forwards the poll and, when the
/// inner future is pending, leaves `LINE` for the enclosing frame.
///
/// Created by the code `#[webstack::instrument]` generates (through
/// [`at_line`]); not meant to be named by users. `M` is the function's
/// zero-sized metadata type, so the wrapper is the size of `F`.
#[doc(hidden)]
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct AtLine<F, M, const LINE: u32> {
    inner: F,
    meta: M,
}

/// Wraps what an `.await` on line `LINE` of the function `meta` describes
/// awaits (converted as `.await` does, with `IntoFuture`).
#[doc(hidden)]
#[inline(always)]
pub fn at_line<const LINE: u32, F: IntoFuture, M: StaticMeta>(
    awaited: F,
    meta: M,
) -> AtLine<F::IntoFuture, M, LINE> {
    AtLine {
        inner: awaited.into_future(),
        meta,
    }
}

impl<F: Future, M: StaticMeta, const LINE: u32> Future for AtLine<F, M, LINE> {
    type Output = F::Output;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `self`, and `AtLine` is `Unpin` only when `F` is (auto trait);
        // `meta` is zero-sized and only read.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let inner = unsafe { Pin::new_unchecked(&mut this.inner) };
        let result = inner.poll(cx);
        if result.is_pending() {
            pending_at(this.meta.meta(), LINE);
        }
        result
    }
}

#[cold]
#[inline(never)]
fn pending_at(meta: &'static FrameMeta, line: u32) {
    let _ = PENDING_AT.try_with(|at| at.set((meta as *const FrameMeta as usize, line)));
}

/// The line a frame of `meta`'s function is suspended at, for its
/// `Pending` path: the line its body left, else `fallback` (0 for none).
/// Empties the thread-local either way, so nothing of this poll reaches a
/// later one.
#[inline]
pub(crate) fn take_line(meta: &'static FrameMeta, fallback: u32) -> u32 {
    let (function, line) = PENDING_AT
        .try_with(|at| at.replace((0, 0)))
        .unwrap_or((0, 0));
    if function == meta as *const FrameMeta as usize {
        line
    } else {
        fallback
    }
}

/// Forgets a line left by an earlier, unrelated poll: called when a task
/// root's poll starts.
#[inline]
pub(crate) fn reset() {
    let _ = PENDING_AT.try_with(|at| at.set((0, 0)));
}
