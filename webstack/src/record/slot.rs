//! One frame of a thread's shadow stack, readable from other threads.
//!
//! The frame's header is one word: the address of its `'static`
//! [`FrameMeta`](crate::record::meta::FrameMeta) (aligned to 64 bytes), with the
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

use crate::record::frame_args::{ArgSlot, FrameArgs, MAX_ARGS};
use crate::record::value::{Value, EXTRA_WORDS, VALUE_WORDS};
use crate::sync::{fence, AtomicU64, AtomicUsize, Ordering};

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
    assert!(std::mem::align_of::<crate::record::meta::FrameMeta>() > FLAGS_MASK);
};

impl Slot {
    /// An empty slot. Outside loom, stacks get theirs as zeroed pages
    /// ([`slots`]); this spells out what those zeros are, for the test that
    /// checks they match.
    #[cfg(all(test, not(webstack_loom)))]
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
        // `FrameArgs` is sealed: the count is a tuple's length, at most
        // `MAX_ARGS`, so it stays within `NARGS_MASK` below the meta address.
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

/// The slots of one thread's stack, in memory that costs nothing resident
/// until a frame is written there: a thread that stays 8 frames deep commits
/// one page of its 256 slots (~104 KiB).
///
/// The array is mapped fresh from the kernel, whose anonymous pages read as
/// zero and are committed when first written, instead of being taken from
/// the allocator: even a zeroed allocation (`calloc`) writes the zeros when
/// it hands out memory freed earlier, as a thread pool's short-lived threads
/// make it do all the time, and building the slots with [`Slot::new`] lets
/// the optimiser decide whether the zeros are written (without optimisation
/// they are: +100 KiB per registered thread). No code writes them here.
#[cfg(not(webstack_loom))]
pub(crate) struct Slots {
    ptr: std::ptr::NonNull<Slot>,
    len: usize,
}

/// Loom's atomics are not valid as zero bytes: build them one by one.
#[cfg(webstack_loom)]
pub(crate) type Slots = Box<[Slot]>;

#[cfg(webstack_loom)]
pub(crate) fn slots(len: usize) -> Slots {
    (0..len).map(|_| Slot::new()).collect()
}

/// `len` empty slots; none (frames are then counted, not recorded) if the
/// memory cannot be had.
#[cfg(not(webstack_loom))]
pub(crate) fn slots(len: usize) -> Slots {
    let empty = Slots {
        ptr: std::ptr::NonNull::dangling(),
        len: 0,
    };
    let Ok(layout) = std::alloc::Layout::array::<Slot>(len) else {
        return empty;
    };
    if layout.size() == 0 {
        return empty;
    }
    match pages::map(layout.size()) {
        Some(ptr) => Slots {
            ptr: ptr.cast(),
            len,
        },
        None => empty,
    }
}

// Zero bytes are a valid `Slot`, and the one `Slot::new` makes: every field is
// an `AtomicU64` or `AtomicUsize` (alone or in arrays), which std documents
// as having "the same size and bit validity as the underlying integer type",
// and 0 is what `new` stores in each (checked by the `zeroed_slot_is_new`
// test). Fresh pages are aligned far beyond a `Slot`.
#[cfg(not(webstack_loom))]
const _: () = assert!(std::mem::align_of::<Slot>() <= 4096);

#[cfg(not(webstack_loom))]
impl std::ops::Deref for Slots {
    type Target = [Slot];

    #[inline(always)]
    fn deref(&self) -> &[Slot] {
        // SAFETY: `ptr` is either dangling with `len` 0, or the start of a
        // mapping of `len` slots, zeroed (a valid `Slot` each, see above),
        // aligned, and owned by `self` until `drop`; slots are only written
        // through their atomics, so shared references to them are sound.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(not(webstack_loom))]
impl Drop for Slots {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // `Slot` has no destructor: the memory can go as it is.
        let bytes = self.len * std::mem::size_of::<Slot>();
        // SAFETY: a nonzero `len` means `ptr` came from `pages::map` of
        // exactly `bytes` (the size of the layout `slots` computed), and this
        // is its only release: `Slots` is not `Clone`.
        unsafe { pages::unmap(self.ptr.cast(), bytes) };
    }
}

// SAFETY: `Slots` owns its array as a `Box<[Slot]>` would, and `[Slot]` is
// `Send` and `Sync` (atomics only).
#[cfg(not(webstack_loom))]
unsafe impl Send for Slots {}
// SAFETY: as above.
#[cfg(not(webstack_loom))]
unsafe impl Sync for Slots {}

/// Zeroed memory whose pages are committed only when written.
#[cfg(all(unix, not(webstack_loom)))]
mod pages {
    use std::ptr::{null_mut, NonNull};

    pub(super) fn map(bytes: usize) -> Option<NonNull<u8>> {
        // SAFETY: a new private anonymous mapping, at an address the kernel
        // picks, touches no memory that exists.
        let ptr = unsafe {
            libc::mmap(
                null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        // Where transparent huge pages are on for every mapping, the first
        // write to a run of merged slot arrays could commit 2 MiB.
        #[cfg(target_os = "linux")]
        // SAFETY: advice about the mapping just made; if it fails, nothing
        // changed.
        unsafe {
            libc::madvise(ptr, bytes, libc::MADV_NOHUGEPAGE);
        }
        NonNull::new(ptr.cast())
    }

    /// # Safety
    /// `ptr` and `bytes` must be those of one earlier `map`, not yet undone,
    /// and nothing may use that memory afterwards.
    pub(super) unsafe fn unmap(ptr: NonNull<u8>, bytes: usize) {
        // SAFETY: the caller gives a live mapping of ours, unused from now on.
        unsafe { libc::munmap(ptr.as_ptr().cast(), bytes) };
    }
}

/// Zeroed memory from the allocator, where there is no `mmap`.
#[cfg(all(not(unix), not(webstack_loom)))]
mod pages {
    use std::alloc::Layout;
    use std::ptr::NonNull;

    fn layout(bytes: usize) -> Option<Layout> {
        Layout::from_size_align(bytes, 4096).ok()
    }

    pub(super) fn map(bytes: usize) -> Option<NonNull<u8>> {
        // SAFETY: `slots` never asks for 0 bytes.
        NonNull::new(unsafe { std::alloc::alloc_zeroed(layout(bytes)?) })
    }

    /// # Safety
    /// `ptr` and `bytes` must be those of one earlier `map`, not yet undone,
    /// and nothing may use that memory afterwards.
    pub(super) unsafe fn unmap(ptr: NonNull<u8>, bytes: usize) {
        if let Some(layout) = layout(bytes) {
            // SAFETY: allocated by `map` with this very layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }
}

#[cfg(all(test, not(webstack_loom)))]
mod tests {
    use super::*;

    /// The premise of `slots`: a fresh slot is all zero bytes.
    #[test]
    fn zeroed_slot_is_new() {
        let slot = Slot::new();
        // SAFETY: `slot` is live, nothing writes it meanwhile, and a `Slot`
        // (atomic integers only) has no padding, so every byte is
        // initialised.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&slot as *const Slot).cast::<u8>(),
                std::mem::size_of::<Slot>(),
            )
        };
        assert!(bytes.iter().all(|&b| b == 0));
    }

    #[test]
    fn mapped_slots_read_as_empty_and_take_frames() {
        let slots = slots(256);
        assert_eq!(slots.len(), 256);
        assert!(slots
            .iter()
            .all(|slot| slot.read().is_none() && slot.seq() == 0));
        static META: crate::record::meta::FrameMeta = crate::record::meta::FrameMeta {
            name: "f",
            function: "slot::f",
            task_name: "f",
            file: "slot.rs",
            line: 1,
            args: &[],
        };
        slots[255].write(META.addr(), 0, 7, &());
        let (words, _) = slots[255].read().expect("a written frame");
        assert_eq!((words.task, words.nargs), (7, 0));
        drop(slots);
        assert!(super::slots(0).is_empty());
    }
}
