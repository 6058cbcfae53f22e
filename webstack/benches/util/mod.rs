//! Helpers shared by the bench binaries: polling futures by hand with a noop
//! waker (no runtime in the measurement) and the quick `--test` mode.

#![allow(dead_code)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;

pub mod call_fns;

/// Polls `future` in a loop with a noop waker until it is ready.
#[inline(always)]
pub fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(noop_waker_ref());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Polls `future` once; it must stay pending (an idle task).
pub fn poll_pending<F: Future + ?Sized>(future: Pin<&mut F>) {
    let mut cx = Context::from_waker(noop_waker_ref());
    assert!(
        future.poll(&mut cx).is_pending(),
        "a workload future completed"
    );
}

/// Whether the binary runs in criterion's quick smoke mode
/// (`cargo bench -- --test`): every bench body once, small sizes.
pub fn quick() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

pub mod workload;
