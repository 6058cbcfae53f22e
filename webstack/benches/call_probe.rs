//! Instruction counts per call, for `valgrind --tool=callgrind`: wall-clock
//! benchmarks of nanosecond calls swing with code layout and the machine's
//! load, instruction counts do not. Each mode runs `N` calls of one kind;
//! the cost of one call is the difference between two runs with different
//! `N`, divided by the difference in `N` (see BENCHMARKS.md, "Instruction
//! counts").
//!
//! ```sh
//! cargo build --release -p webstack --example call_probe
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/call_probe nested-webstack 100000
//! ```
//!
//! An example rather than a bench so that it builds as a plain binary, with
//! no criterion harness around the calls; it lives beside the benches to
//! share the measured functions with the `calls` bench.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll};

use await_tree::InstrumentAwait;

#[path = "util/call_fns.rs"]
mod call_fns;

use call_fns::*;

/// Not the benches' `util::run_ready`: that one is `#[inline(always)]`,
/// which lets the poll loop fold into each call and lowers the recorded
/// instruction counts (a task root measures 438 instead of 461).
fn run_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(futures::task::noop_waker_ref());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

#[webstack::instrument(skip_all)]
async fn ws_root(n: u64) -> u64 {
    (0..n).fold(0, |acc, i| acc ^ run_ready(ws_leaf(black_box(i), 2)))
}

/// `n` nested calls of `leaf` inside a webstack task root.
#[webstack::instrument(skip_all)]
async fn ws_root_with(n: u64, leaf: fn(u64, u64) -> u64) -> u64 {
    (0..n).fold(0, |acc, i| acc ^ leaf(black_box(i), 2))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let calls = 0..n;
    let out = match mode.as_str() {
        "sync-plain" => calls.fold(0, |acc, i| acc ^ plain2(black_box(i), 2)),
        "sync-webstack" => calls.fold(0, |acc, i| acc ^ ws2(black_box(i), 2)),
        "sync-webstack-str" => {
            calls.fold(0, |acc, _| acc ^ ws_str(black_box("connection-42")) as u64)
        }
        "sync-plain-u64" => calls.fold(0, |acc, i| acc ^ plain_u64(black_box(i))),
        "sync-webstack-u64" => calls.fold(0, |acc, i| acc ^ ws_u64(black_box(i))),
        "sync-webstack-newtype-hand" => {
            calls.fold(0, |acc, i| acc ^ ws_newtype_hand(UserIdHand(black_box(i))))
        }
        "sync-webstack-newtype-derive" => {
            calls.fold(0, |acc, i| acc ^ ws_newtype_derive(UserId(black_box(i))))
        }
        "sync-plain-enum" => calls.fold(0, |acc, i| {
            acc ^ plain_enum(ConnState::Draining(black_box(i)))
        }),
        "sync-plain-unit" => calls.fold(0, |acc, _| acc ^ plain_enum(black_box(ConnState::Idle))),
        "sync-webstack-enum-hand" => calls.fold(0, |acc, i| {
            acc ^ ws_enum_hand(ConnStateHand::Draining(black_box(i)))
        }),
        "sync-webstack-unit-hand" => calls.fold(0, |acc, _| {
            acc ^ ws_enum_hand(black_box(ConnStateHand::Idle))
        }),
        "sync-webstack-enum-derive" => calls.fold(0, |acc, i| {
            acc ^ ws_enum_derive(ConnState::Draining(black_box(i)))
        }),
        "sync-webstack-unit-derive" => {
            calls.fold(0, |acc, _| acc ^ ws_enum_derive(black_box(ConnState::Idle)))
        }
        "sync-tracing-registry" => {
            tracing::subscriber::with_default(tracing_subscriber::registry(), || {
                calls.fold(0, |acc, i| acc ^ tracing2(black_box(i), 2))
            })
        }
        "nested-plain" => run_ready(async {
            calls.fold(0, |acc, i| acc ^ run_ready(plain_leaf(black_box(i), 2)))
        }),
        "nested-webstack" => run_ready(ws_root(n)),
        "awaits-webstack" => run_ready(ws_root_with(n, |a, b| run_ready(ws_awaits(a, b)))),
        "awaits-webstack-unrewritten" => run_ready(ws_root_with(n, |a, b| {
            run_ready(ws_awaits_unrewritten(a, b))
        })),
        "nested-async-backtrace" => run_ready(
            async_backtrace::location!()
                .frame(async { calls.fold(0, |acc, i| acc ^ run_ready(ab_leaf(black_box(i), 2))) }),
        ),
        "nested-await-tree" => {
            let registry = await_tree::Registry::new(await_tree::Config::default());
            run_ready(registry.register(0u64, "root").instrument(async {
                calls.fold(0, |acc, i| {
                    acc ^ run_ready(plain_leaf(black_box(i), 2).instrument_await("leaf"))
                })
            }))
        }
        "root-webstack" => calls.fold(0, |acc, i| acc ^ run_ready(ws_leaf(black_box(i), 2))),
        "root-async-backtrace" => calls.fold(0, |acc, i| {
            acc ^ run_ready(async_backtrace::location!().frame(plain_leaf(black_box(i), 2)))
        }),
        "root-await-tree" => {
            let registry = await_tree::Registry::new(await_tree::Config::default());
            calls.fold(0, |acc, i| {
                acc ^ run_ready(
                    registry
                        .register(i, "root")
                        .instrument(plain_leaf(black_box(i), 2)),
                )
            })
        }
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    };
    println!("{out}");
}
