//! An instrumented `async fn` is expanded to a `fn` returning the
//! instrumented future; its arguments must still live, and be dropped, with
//! the future, in the order an `async fn`'s are. Each case runs the same body
//! as a plain `async fn` and as an instrumented one and compares the drop
//! logs.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use support::poll::poll_once;

type Log = Arc<Mutex<Vec<&'static str>>>;

struct Noisy(&'static str, Log);

impl Drop for Noisy {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
    }
}

/// Yields once, then completes.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

async fn plain(first: Noisy, _unused: Noisy, mut last: Noisy, log: Log) {
    let _ = first.0;
    YieldOnce(false).await;
    last.0 = "last (renamed in the body)";
    log.lock().unwrap().push("body");
}

#[webstack::instrument(skip(log))]
async fn instrumented(first: Noisy, _unused: Noisy, mut last: Noisy, log: Log) {
    let _ = first.0;
    YieldOnce(false).await;
    last.0 = "last (renamed in the body)";
    log.lock().unwrap().push("body");
}

struct Owner {
    _field: Noisy,
}

impl Owner {
    async fn plain(self, arg: Noisy) {
        YieldOnce(false).await;
        let _ = arg.0;
    }

    #[webstack::instrument]
    async fn instrumented(self, arg: Noisy) {
        YieldOnce(false).await;
        let _ = arg.0;
    }
}

fn args(log: &Log) -> (Noisy, Noisy, Noisy) {
    (
        Noisy("first", log.clone()),
        Noisy("unused", log.clone()),
        Noisy("last", log.clone()),
    )
}

fn taken(log: &Log) -> Vec<&'static str> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// Polls `future` `polls` times (or to completion), then drops it; returns
/// the log at creation, after the polls, and after the drop.
fn run<F: Future>(log: &Log, future: F, polls: usize) -> [Vec<&'static str>; 3] {
    let at_call = taken(log);
    let after_polls = {
        let mut future = pin!(future);
        for _ in 0..polls {
            if poll_once(future.as_mut()).is_ready() {
                break;
            }
        }
        taken(log)
    };
    [at_call, after_polls, taken(log)]
}

#[test]
fn arguments_live_and_drop_with_the_future() {
    let log = Log::default();
    for polls in [0, 1, 2] {
        let (a, b, c) = args(&log);
        let expected = run(&log, plain(a, b, c, log.clone()), polls);
        let (a, b, c) = args(&log);
        let actual = run(&log, instrumented(a, b, c, log.clone()), polls);
        assert_eq!(actual, expected, "after {polls} polls");
    }
    // The case that matters: nothing is dropped at the call, not even the
    // argument the body never names.
    let (a, b, c) = args(&log);
    let [at_call, while_pending, at_drop] = run(&log, instrumented(a, b, c, log.clone()), 1);
    assert!(
        at_call.is_empty() && while_pending.is_empty(),
        "{at_call:?} {while_pending:?}"
    );
    assert_eq!(at_drop, ["last", "unused", "first"]);
}

#[test]
fn a_receiver_taken_by_value_lives_with_the_future() {
    let log = Log::default();
    for polls in [0, 1, 2] {
        let owner = Owner {
            _field: Noisy("self", log.clone()),
        };
        let expected = run(&log, owner.plain(Noisy("arg", log.clone())), polls);
        let owner = Owner {
            _field: Noisy("self", log.clone()),
        };
        let actual = run(&log, owner.instrumented(Noisy("arg", log.clone())), polls);
        assert_eq!(actual, expected, "after {polls} polls");
    }
    let owner = Owner {
        _field: Noisy("self", log.clone()),
    };
    let [at_call, _, at_drop] = run(&log, owner.instrumented(Noisy("arg", log.clone())), 1);
    assert!(at_call.is_empty(), "{at_call:?}");
    assert_eq!(at_drop, ["arg", "self"]);
}
