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

/// The native capture protocol (`native::protocol`), as the collector and
/// two signal handlers run it: each request is answered (its slot's
/// contents visible to the collector) or abandoned (its handler never
/// writes the slot, even after the slot is requested again) or still
/// claimed (and published once its handler finishes), never two of these;
/// `remaining` comes back to zero; a late handler never claims a newer
/// request. Counts the executions in which each outcome happened, and fails
/// if one never did.
#[test]
fn loom_native_requests_are_answered_abandoned_or_claimed() {
    use crate::native::protocol::{self, Settled};
    use loom::sync::atomic::{AtomicU32 as Word, AtomicUsize as Data};

    static OUTCOMES: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
    model(|| {
        let slots = Arc::new([Word::new(protocol::IDLE), Word::new(protocol::IDLE)]);
        let data = Arc::new([Data::new(0), Data::new(0)]);
        let remaining = Arc::new(Word::new(0));
        let seqs = [1u32, 2];
        for (slot, &seq) in slots.iter().zip(&seqs) {
            protocol::request(slot, &*remaining, seq);
        }
        let handlers: Vec<_> = (0..2)
            .map(|i| {
                let (slots, data, remaining) = (slots.clone(), data.clone(), remaining.clone());
                thread::spawn(move || {
                    if !protocol::claim(&slots[i], seqs[i]) {
                        return false;
                    }
                    data[i].store(seqs[i] as usize, Relaxed);
                    protocol::publish(&slots[i], &*remaining, seqs[i]);
                    true
                })
            })
            .collect();
        // The deadline passes at once.
        let settled: Vec<Settled> = (0..2)
            .map(|i| protocol::settle(&slots[i], &*remaining, seqs[i]))
            .collect();
        for i in 0..2 {
            match settled[i] {
                Settled::Done => assert_eq!(data[i].load(Relaxed), seqs[i] as usize),
                // Reused at once for a newer request, which nobody answers.
                Settled::TimedOut => protocol::request(&slots[i], &*remaining, seqs[i] + 2),
                Settled::Claimed => {}
            }
        }
        let claimed: Vec<bool> = handlers.into_iter().map(|h| h.join().unwrap()).collect();
        for i in 0..2 {
            let outcome = match settled[i] {
                Settled::Done => 0,
                Settled::TimedOut => {
                    assert!(!claimed[i], "an abandoned request was claimed");
                    assert_eq!(data[i].load(Relaxed), 0, "an abandoned slot was written");
                    assert!(
                        !protocol::claim(&slots[i], seqs[i]),
                        "a late claim succeeded"
                    );
                    assert_eq!(
                        protocol::settle(&slots[i], &*remaining, seqs[i] + 2),
                        Settled::TimedOut
                    );
                    1
                }
                Settled::Claimed => {
                    assert!(claimed[i]);
                    assert!(protocol::is_done(&slots[i], seqs[i]));
                    assert_eq!(data[i].load(Relaxed), seqs[i] as usize);
                    2
                }
            };
            OUTCOMES[outcome].fetch_add(1, Relaxed);
        }
        assert_eq!(protocol::remaining(&*remaining), 0);
    });
    for (outcome, count) in ["done", "timed out", "claimed"].iter().zip(&OUTCOMES) {
        assert!(count.load(Relaxed) > 0, "no execution ended {outcome}");
    }
}
