//! One frame of a thread's shadow stack, readable from other threads.
//!
//! The frame's header is one word: the address of its `'static`
//! [`FrameMeta`](crate::meta::FrameMeta) (aligned to 64 bytes), with the
//! argument count and two flags in the low bits. The owner and task words are
//! written only when the flags say the frame has them, so a call of a free
//! function below a task root stores neither.
//!
//! The owning thread is the only writer. It publishes a frame with a sequence
//! lock: the sequence is odd while the frame is being written and even once it
//! is complete. A reader copies the words, then checks that the sequence was
//! even and did not change; otherwise the copy may be torn and is discarded.
//! Every word is an atomic, so a racing read is never undefined behaviour, and
//! on x86-64 the writer's side compiles to plain stores (release stores and
//! release fences are free there).

use crate::frame_args::{ArgSlot, FrameArgs};
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
    /// The meta address, `nargs` and the flags below.
    header: AtomicUsize,
    owner: AtomicUsize,
    task: AtomicU64,
    args: [ArgSlot; MAX_ARGS],
}

/// Low bits of the header word holding the argument count (0..=8).
const NARGS_MASK: usize = 0b1111;
/// The owner word belongs to this frame.
const HAS_OWNER: usize = 1 << 4;
/// The task word belongs to this frame.
const HAS_TASK: usize = 1 << 5;
const FLAGS_MASK: usize = NARGS_MASK | HAS_OWNER | HAS_TASK;

const _: () = {
    assert!(MAX_ARGS <= NARGS_MASK);
    assert!(std::mem::align_of::<crate::meta::FrameMeta>() > FLAGS_MASK);
};

impl Slot {
    #[cfg(not(webstack_loom))]
    pub(crate) const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        #[allow(clippy::declare_interior_mutable_const)]
        const ARG: [AtomicU64; VALUE_WORDS] = [ZERO; VALUE_WORDS];
        Slot {
            seq: AtomicU64::new(0),
            header: AtomicUsize::new(0),
            owner: AtomicUsize::new(0),
            task: AtomicU64::new(0),
            args: [ARG; MAX_ARGS],
        }
    }

    #[cfg(webstack_loom)]
    pub(crate) fn new() -> Self {
        Slot {
            seq: AtomicU64::new(0),
            header: AtomicUsize::new(0),
            owner: AtomicUsize::new(0),
            task: AtomicU64::new(0),
            args: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }

    /// Publishes a frame: `meta` is the address of a `&'static FrameMeta`,
    /// `owner` and `task` are 0 when the frame has none (both are constants
    /// in most callers, so the checks fold away). Must only be called by the
    /// slot's owning thread.
    #[inline(always)]
    pub(crate) fn write<A: FrameArgs + ?Sized>(
        &self,
        meta: usize,
        owner: usize,
        task: u64,
        args: &A,
    ) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let mut header = meta | args.store(&self.args);
        if owner != 0 {
            self.owner.store(owner, Ordering::Relaxed);
            header |= HAS_OWNER;
        }
        if task != 0 {
            self.task.store(task, Ordering::Relaxed);
            header |= HAS_TASK;
        }
        self.header.store(header, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// The metadata word as the owning thread last wrote it (0 if never
    /// written). Only for the owner: as the only writer it cannot see a torn
    /// frame, so no sequence check (nor a copy of the arguments) is needed.
    #[inline]
    pub(crate) fn own_meta(&self) -> usize {
        self.header.load(Ordering::Relaxed) & !FLAGS_MASK
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
        let header = self.header.load(Ordering::Relaxed);
        let meta = header & !FLAGS_MASK;
        let nargs = (header & NARGS_MASK).min(MAX_ARGS);
        // Words the frame did not write hold a previous frame's: read as 0.
        let owner = match header & HAS_OWNER {
            0 => 0,
            _ => self.owner.load(Ordering::Relaxed),
        };
        let task = match header & HAS_TASK {
            0 => 0,
            _ => self.task.load(Ordering::Relaxed),
        };
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
