//! Atomics used by the lock-free protocols, swapped for loom's under
//! `cfg(webstack_loom)` so the same code is model-checked.

#[cfg(webstack_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(webstack_loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize};

// For the tokio hooks' table (`record::hook_table`) only, built where it
// is: it hands its records out and back as `Arc`s, loom's in its model.
#[cfg(all(webstack_loom, test))]
pub(crate) use loom::sync::{
    atomic::{AtomicI32, AtomicIsize, AtomicPtr},
    Arc,
};
#[cfg(all(not(webstack_loom), feature = "tokio", tokio_unstable))]
pub(crate) use std::sync::{
    atomic::{AtomicI32, AtomicIsize, AtomicPtr},
    Arc,
};

pub(crate) use std::sync::atomic::Ordering;
