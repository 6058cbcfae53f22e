//! One frame of a thread's shadow stack, readable from other threads.
//!
//! The owning thread is the only writer. It publishes a frame with a sequence
//! lock: the sequence is odd while the frame is being written and even once it
//! is complete. A reader copies the words, then checks that the sequence was
//! even and did not change; otherwise the copy may be torn and is discarded.
//! Every word is an atomic, so a racing read is never undefined behaviour, and
//! on x86-64 the writer's side compiles to plain stores (release stores and
//! release fences are free there).

use crate::sync::{fence, AtomicU64, AtomicUsize, Ordering};
use crate::value::{Value, EXTRA_WORDS, VALUE_WORDS};

/// Most arguments recorded per frame; further ones are not recorded.
pub const MAX_ARGS: usize = 8;

/// The words of one frame as the writer stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameWords {
    /// Address of the frame's `'static` metadata; never 0 for a written slot.
    pub(crate) meta: usize,
    /// `fn() -> &'static str` naming `Self` for methods, or 0.
    pub(crate) owner: usize,
    /// Id of the task whose root frame this is, or 0.
    pub(crate) task: u64,
    /// Number of valid entries in `args`.
    pub(crate) nargs: usize,
    pub(crate) args: [Value; MAX_ARGS],
}

pub(crate) struct Slot {
    seq: AtomicU64,
    meta: AtomicUsize,
    owner: AtomicUsize,
    task: AtomicU64,
    nargs: AtomicUsize,
    args: [[AtomicU64; VALUE_WORDS]; MAX_ARGS],
}

impl Slot {
    #[cfg(not(webstack_loom))]
    pub(crate) const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        #[allow(clippy::declare_interior_mutable_const)]
        const ARG: [AtomicU64; VALUE_WORDS] = [ZERO; VALUE_WORDS];
        Slot {
            seq: AtomicU64::new(0),
            meta: AtomicUsize::new(0),
            owner: AtomicUsize::new(0),
            task: AtomicU64::new(0),
            nargs: AtomicUsize::new(0),
            args: [ARG; MAX_ARGS],
        }
    }

    #[cfg(webstack_loom)]
    pub(crate) fn new() -> Self {
        Slot {
            seq: AtomicU64::new(0),
            meta: AtomicUsize::new(0),
            owner: AtomicUsize::new(0),
            task: AtomicU64::new(0),
            nargs: AtomicUsize::new(0),
            args: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Publishes a frame. Must only be called by the slot's owning thread.
    #[inline(always)]
    pub(crate) fn write(&self, meta: usize, owner: usize, task: u64, args: &[Value]) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.meta.store(meta, Ordering::Relaxed);
        self.owner.store(owner, Ordering::Relaxed);
        self.task.store(task, Ordering::Relaxed);
        let n = args.len().min(MAX_ARGS);
        self.nargs.store(n, Ordering::Relaxed);
        for (words, value) in self.args.iter().zip(&args[..n]) {
            let (header, payload, extra) = value.to_words();
            words[0].store(header, Ordering::Relaxed);
            words[1].store(payload, Ordering::Relaxed);
            for k in 0..value.extra_words() {
                words[2 + k].store(extra[k], Ordering::Relaxed);
            }
        }
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The metadata word as the owning thread last wrote it (0 if never
    /// written). Only for the owner: as the only writer it cannot see a torn
    /// frame, so no sequence check (nor a copy of the arguments) is needed.
    #[inline]
    pub(crate) fn own_meta(&self) -> usize {
        self.meta.load(Ordering::Relaxed)
    }

    /// The current sequence number (even when the slot is stable).
    #[inline]
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Copies the frame out, or returns `None` if it was being written (or was
    /// never written). The returned sequence lets a caller check later that the
    /// slot still holds the same frame.
    pub(crate) fn read(&self) -> Option<(FrameWords, u64)> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let meta = self.meta.load(Ordering::Relaxed);
        let owner = self.owner.load(Ordering::Relaxed);
        let task = self.task.load(Ordering::Relaxed);
        let nargs = self.nargs.load(Ordering::Relaxed).min(MAX_ARGS);
        let mut raw = [[0u64; VALUE_WORDS]; MAX_ARGS];
        for (out, words) in raw.iter_mut().zip(&self.args).take(nargs) {
            for (o, w) in out.iter_mut().zip(words) {
                *o = w.load(Ordering::Relaxed);
            }
        }
        fence(Ordering::Acquire);
        let after = self.seq.load(Ordering::Relaxed);
        if before != after || meta == 0 {
            return None;
        }
        let mut args = [Value::unit(); MAX_ARGS];
        for (value, words) in args.iter_mut().zip(&raw).take(nargs) {
            let mut extra = [0u64; EXTRA_WORDS];
            extra.copy_from_slice(&words[2..]);
            *value = Value::from_words(words[0], words[1], extra);
        }
        Some((
            FrameWords {
                meta,
                owner,
                task,
                nargs,
                args,
            },
            before,
        ))
    }
}
