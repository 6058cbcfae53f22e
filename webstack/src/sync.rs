//! Atomics used by the lock-free protocols, swapped for loom's under
//! `cfg(webstack_loom)` so the same code is model-checked.

#[cfg(webstack_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(webstack_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};

pub(crate) use std::sync::atomic::Ordering;
