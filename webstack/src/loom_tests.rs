//! Model checks of the shadow-stack protocol: a reader on another thread
//! never sees a torn frame, and a stack read reported as consistent is one
//! the writer actually had.
//!
//! Run with `RUSTFLAGS="--cfg webstack_loom" cargo test -p webstack --lib --release loom`.

use loom::sync::Arc;
use loom::thread;

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use crate::record::frame_args::Narrow;
use crate::record::meta::{ArgMeta, FrameMeta};
use crate::record::slot::Slot;
use crate::record::stack::ThreadStack;
use crate::record::value::Value;

static ARGS: [ArgMeta; 1] = [ArgMeta {
    name: "x",
    ty: "u64",
}];

static META_A: FrameMeta = FrameMeta {
    name: "a",
    function: "loom::a",
    task_name: "a",
    file: "a.rs",
    line: 1,
    args: &ARGS,
};

static META_B: FrameMeta = FrameMeta {
    name: "b",
    function: "loom::b",
    task_name: "b",
    file: "b.rs",
    line: 2,
    args: &ARGS,
};

/// The argument each frame is always written with, so a mix of two frames'
/// words is detectable.
fn arg_of(meta: usize) -> u64 {
    if meta == META_A.addr() {
        1
    } else {
        2
    }
}

/// Loom explores every interleaving up to this many preemptions; the
/// protocols here are two-thread and short, so 3 covers the interesting ones.
///
/// Readers run on a spawned thread: loom did not schedule a spawned writer
/// before the main thread's first load, so a read on the main thread only
/// ever saw the empty slot. Each test counts (in a std atomic, outside the
/// model) the executions whose read saw a frame, and fails if none did.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

#[test]
fn loom_slot_reads_are_never_torn() {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    model(|| {
        let slot = Arc::new(Slot::new());
        let writer = {
            let slot = slot.clone();
            thread::spawn(move || {
                slot.write(META_A.addr(), 0, 0, &(Value::u64(1),));
                slot.write(META_B.addr(), 0, 0, &(Value::u64(2),));
            })
        };
        let reader = thread::spawn(move || {
            if let Some((words, _seq)) = slot.read() {
                assert!(words.meta == META_A.addr() || words.meta == META_B.addr());
                assert_eq!(words.nargs, 1);
                assert_eq!(words.args[0], Value::u64(arg_of(words.meta)));
                SEEN.fetch_add(1, Relaxed);
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
    assert!(SEEN.load(Relaxed) > 0, "no execution read a frame");
}

/// A frame with an owner, a task and a narrow argument, then one without
/// (whose slot still holds the first one's owner and task words), then the
/// first again: a reader sees each frame with its own words only.
#[test]
fn loom_slot_owner_and_task_words_belong_to_their_frame() {
    const OWNER_A: usize = 0x1000;
    static SEEN_B: AtomicUsize = AtomicUsize::new(0);
    model(|| {
        let slot = Arc::new(Slot::new());
        let writer = {
            let slot = slot.clone();
            thread::spawn(move || {
                let narrow = (Narrow::new(Value::u64(1)),);
                slot.write(META_A.addr(), OWNER_A, 7, &narrow);
                slot.write(META_B.addr(), 0, 0, &(Value::u64(2),));
                slot.write(META_A.addr(), OWNER_A, 7, &narrow);
            })
        };
        let reader = thread::spawn(move || {
            if let Some((words, _seq)) = slot.read() {
                assert_eq!(words.nargs, 1);
                assert_eq!(words.args[0], Value::u64(arg_of(words.meta)));
                if words.meta == META_A.addr() {
                    assert_eq!((words.owner, words.task), (OWNER_A, 7));
                } else {
                    assert_eq!(words.meta, META_B.addr());
                    assert_eq!((words.owner, words.task), (0, 0));
                    SEEN_B.fetch_add(1, Relaxed);
                }
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
    assert!(
        SEEN_B.load(Relaxed) > 0,
        "no execution read the second frame"
    );
}

#[test]
fn loom_consistent_stack_reads_match_a_real_state() {
    static SEEN_BOTH: AtomicUsize = AtomicUsize::new(0);
    model(|| {
        let stack = Arc::new(ThreadStack::new(1, "t".into(), None));
        let writer = {
            let stack = stack.clone();
            thread::spawn(move || {
                let outer = stack.push(&META_A, 0, 0, &(Value::u64(1),));
                let inner = stack.push(&META_B, 0, 0, &(Value::u64(2),));
                stack.pop(inner);
                stack.pop(outer);
                stack.push(&META_B, 0, 0, &(Value::u64(2),));
            })
        };
        let reader = thread::spawn(move || {
            let mut frames = Vec::new();
            let (_depth, consistent) = stack.read(&mut frames);
            for frame in &frames {
                assert_eq!(frame.args[0], Value::u64(arg_of(frame.meta)));
            }
            if consistent {
                let metas: Vec<usize> = frames.iter().map(|f| f.meta).collect();
                let states = [
                    vec![],
                    vec![META_A.addr()],
                    vec![META_A.addr(), META_B.addr()],
                    vec![META_B.addr()],
                ];
                assert!(states.contains(&metas), "impossible stack {metas:?}");
                if metas.len() == 2 {
                    SEEN_BOTH.fetch_add(1, Relaxed);
                }
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
    assert!(
        SEEN_BOTH.load(Relaxed) > 0,
        "no execution read the two-frame stack"
    );
}

/// Executions in which the registry's lock was found held (so the
/// contended path, which marks it and waits, ran).
static LOCK_CONTENDED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn loom_shard_lock_excludes_and_orders() {
    use loom::sync::atomic::AtomicU32 as Counter;

    model(|| {
        let lock = Arc::new(crate::lock::Mutex::new(()));
        // Relaxed inside the lock: only the lock's acquire and release make
        // each thread see the other's store, and only its exclusion keeps
        // both increments.
        let count = Arc::new(Counter::new(0));
        let add = |lock: &crate::lock::Mutex<()>, count: &Counter| {
            let _guard = lock.lock();
            let seen = count.load(Relaxed);
            count.store(seen + 1, Relaxed);
        };
        let other = {
            let (lock, count) = (lock.clone(), count.clone());
            thread::spawn(move || add(&lock, &count))
        };
        add(&lock, &count);
        if count.load(Relaxed) == 1 {
            // This thread went first; the other one may now be waiting.
            LOCK_CONTENDED.fetch_add(1, Relaxed);
        }
        other.join().unwrap();
        assert_eq!(count.load(Relaxed), 2);
        // Unlocked again, whichever path each thread took.
        drop(lock.lock());
    });
    assert!(LOCK_CONTENDED.load(Relaxed) > 0);
}
