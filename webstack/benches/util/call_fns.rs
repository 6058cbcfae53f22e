//! The functions whose calls are measured, shared by the `calls` bench
//! (wall-clock) and `benches/call_probe.rs` (instructions per call), so both
//! measure the same code.

#![allow(dead_code)]

use std::hint::black_box;

#[inline(never)]
pub fn plain0() -> u64 {
    black_box(1)
}

#[inline(never)]
pub fn plain2(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[inline(never)]
pub fn plain4(a: u64, b: u64, c: u64, d: u64) -> u64 {
    black_box(a) ^ b ^ c ^ d
}

#[inline(never)]
pub fn plain_str(s: &str) -> usize {
    black_box(s).len()
}

#[webstack::instrument]
#[inline(never)]
pub fn ws0() -> u64 {
    black_box(1)
}

#[webstack::instrument]
#[inline(never)]
pub fn ws2(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[webstack::instrument]
#[inline(never)]
pub fn ws4(a: u64, b: u64, c: u64, d: u64) -> u64 {
    black_box(a) ^ b ^ c ^ d
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_str(s: &str) -> usize {
    black_box(s).len()
}

/// A user's id type with the hand-written impl README showed before the
/// derive: the baseline for the derived types below.
pub struct UserIdHand(pub u64);

impl webstack::Capture for UserIdHand {
    #[inline(always)]
    fn capture(&self) -> webstack::Value {
        webstack::Value::u64(self.0)
    }
}

/// The same newtype with the derive: records `UserId(7)`.
#[derive(webstack::Capture)]
pub struct UserId(pub u64);

/// An enum with the derive: `ConnState::Draining(3)`, `ConnState::Idle`.
#[derive(webstack::Capture)]
pub enum ConnState {
    Idle,
    Draining(#[capture] u64),
    Closed {
        #[capture]
        code: u64,
        reason: u64,
    },
}

/// The enum with a hand-written impl that records the field alone (no
/// variant name): the baseline for the derived enum.
pub enum ConnStateHand {
    Idle,
    Draining(u64),
    Closed { code: u64, reason: u64 },
}

impl webstack::Capture for ConnStateHand {
    #[inline(always)]
    fn capture(&self) -> webstack::Value {
        match self {
            ConnStateHand::Idle => webstack::Value::unit(),
            ConnStateHand::Draining(n) => webstack::Value::u64(*n),
            ConnStateHand::Closed { code, .. } => webstack::Value::u64(*code),
        }
    }
}

#[inline(never)]
pub fn plain_u64(id: u64) -> u64 {
    black_box(id)
}

#[inline(never)]
pub fn plain_enum(state: ConnState) -> u64 {
    match black_box(state) {
        ConnState::Idle => 0,
        ConnState::Draining(n) => n,
        ConnState::Closed { code, reason } => code ^ reason,
    }
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_u64(id: u64) -> u64 {
    black_box(id)
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_newtype_hand(id: UserIdHand) -> u64 {
    black_box(id.0)
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_newtype_derive(id: UserId) -> u64 {
    black_box(id.0)
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_enum_hand(state: ConnStateHand) -> u64 {
    match black_box(state) {
        ConnStateHand::Idle => 0,
        ConnStateHand::Draining(n) => n,
        ConnStateHand::Closed { code, reason } => code ^ reason,
    }
}

#[webstack::instrument]
#[inline(never)]
pub fn ws_enum_derive(state: ConnState) -> u64 {
    match black_box(state) {
        ConnState::Idle => 0,
        ConnState::Draining(n) => n,
        ConnState::Closed { code, reason } => code ^ reason,
    }
}

#[tracing::instrument]
#[inline(never)]
pub fn tracing2(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

pub async fn plain_leaf(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[webstack::instrument]
pub async fn ws_leaf(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

#[async_backtrace::framed]
pub async fn ab_leaf(a: u64, b: u64) -> u64 {
    black_box(a) ^ b
}

/// A future ready at its first poll, whose poll the optimiser cannot see
/// through (as a channel or lock that happens to be ready): the `Pending`
/// branch after it stays in the caller's code.
pub struct ReadyOpaque(pub u64);

impl std::future::Future for ReadyOpaque {
    type Output = u64;

    #[inline(never)]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<u64> {
        std::task::Poll::Ready(black_box(self.0))
    }
}

/// `.await` written inside a macro: `#[webstack::instrument]` sees this
/// call's tokens, not the `.await`, so it is left as written (what every
/// `.await` cost before await lines).
macro_rules! await_unrewritten {
    ($future:expr) => {
        $future.await
    };
}

/// Two `.await`s that complete immediately, each rewritten to record its
/// line if it were pending.
#[webstack::instrument]
pub async fn ws_awaits(a: u64, b: u64) -> u64 {
    ReadyOpaque(a).await ^ ReadyOpaque(b).await
}

/// The same body with its `.await`s hidden from the rewrite.
#[webstack::instrument]
pub async fn ws_awaits_unrewritten(a: u64, b: u64) -> u64 {
    await_unrewritten!(ReadyOpaque(a)) ^ await_unrewritten!(ReadyOpaque(b))
}
