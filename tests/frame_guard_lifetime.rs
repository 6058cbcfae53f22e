//! A frame guard that safe code keeps past its thread's registration (here
//! in a thread-local destroyed after webstack's own) must not touch the
//! freed thread stack when it drops.
//!
//! No sanitizer runs here, so the binary detects the use after free itself:
//! while the thread exits, its global allocator fills each freed block with a
//! pattern and keeps it; afterwards, any block whose pattern changed was
//! written after it was freed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use webstack::__private::{enter, FrameGuard, FrameMeta, NoOwner, StaticMeta};

const POISON: u8 = 0xA5;
const HELD: usize = 4096;

/// Quarantines freed blocks while `ON`.
struct Quarantine;

static ON: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: [(AtomicUsize, AtomicUsize); HELD] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; HELD];

// SAFETY: every method forwards to `System`, except that a block freed while
// `ON` is kept (never handed out again) after being filled with `POISON`,
// which stays within the block's own `layout.size()` bytes.
unsafe impl GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ON.load(Ordering::SeqCst) {
            let index = COUNT.fetch_add(1, Ordering::SeqCst);
            if index < HELD {
                // SAFETY: `ptr` is a live block of `layout.size()` bytes
                // that the caller gives up.
                unsafe { std::ptr::write_bytes(ptr, POISON, layout.size()) };
                BLOCKS[index].0.store(ptr as usize, Ordering::SeqCst);
                BLOCKS[index].1.store(layout.size(), Ordering::SeqCst);
                return;
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Quarantine = Quarantine;

static META: FrameMeta = FrameMeta {
    name: "kept",
    function: "frame_guard_lifetime::kept",
    task_name: "kept",
    file: file!(),
    line: line!(),
    args: &[],
};

struct Kept;

impl StaticMeta for Kept {
    fn meta(&self) -> &'static FrameMeta {
        &META
    }
}

thread_local! {
    static KEEP: RefCell<Option<FrameGuard>> = const { RefCell::new(None) };
}

fn main() {
    let thread = std::thread::spawn(|| {
        // First use first: this thread-local is destroyed after the ones
        // webstack creates when `enter` registers the thread.
        KEEP.with(|_| ());
        let guard = enter(Kept, NoOwner, ());
        KEEP.with(|keep| *keep.borrow_mut() = Some(guard));
        ON.store(true, Ordering::SeqCst);
    });
    thread.join().unwrap();
    ON.store(false, Ordering::SeqCst);
    let held = COUNT.load(Ordering::SeqCst).min(HELD);
    let mut written = Vec::new();
    for (ptr, size) in &BLOCKS[..held] {
        let (ptr, size) = (ptr.load(Ordering::SeqCst), size.load(Ordering::SeqCst));
        // SAFETY: a quarantined block is never freed or reused, so its
        // `size` bytes stay readable.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, size) };
        if let Some(offset) = bytes.iter().position(|&b| b != POISON) {
            written.push(format!("{size}-byte block written at offset {offset}"));
        }
    }
    assert!(
        held > 0,
        "the thread's teardown freed nothing: the test saw nothing"
    );
    assert!(
        written.is_empty(),
        "memory written after it was freed: {written:?}"
    );
    println!(
        "test a kept frame guard does not touch the freed stack ... ok ({held} blocks checked)"
    );
}
