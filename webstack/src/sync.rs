//! Atomics used by the lock-free protocols, swapped for loom's under
//! `cfg(loom)` so the same code is model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64, AtomicUsize};

pub(crate) use std::sync::atomic::Ordering;
