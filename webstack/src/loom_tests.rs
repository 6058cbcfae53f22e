//! Model checks of the lock-free protocols. The shadow stacks: a reader on
//! another thread never sees a torn frame, and a stack read reported as
//! consistent is one the writer actually had. The registry's lock, the
//! native capture slots, and the tokio hooks' slot table (`hooks` below:
//! a task's spawn and termination in either order leave nothing behind,
//! and a snapshot never reads a later task's state as an earlier one's).
//!
//! Run as `.ci/run` does, without the default features (the hooks' table
//! is built under loom without tokio, and its glue to tokio is not):
//!
//! ```text
//! RUSTFLAGS="--cfg webstack_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p webstack --no-default-features --lib --release loom
//! ```

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

/// The tokio hooks' slot table (`record::hook_table`), two slots with a
/// window of two: a task's record, as the table hands it out and back.
mod hooks {
    use super::{model, thread, Arc, AtomicUsize, Relaxed};
    use crate::record::hook_table::Table;

    type Small = Table<Task, 2, 2>;

    /// A task's record as the model makes it.
    struct Task {
        id: u64,
    }

    /// What the model's registry saw, in one execution.
    #[derive(Default)]
    struct Registry {
        registered: AtomicUsize,
        /// Records retired by the spawn hook (the task ended while it
        /// registered it), then by the terminate hook.
        retired: [AtomicUsize; 2],
    }

    const BY_SPAWN: usize = 0;
    const BY_TERMINATE: usize = 1;

    impl Registry {
        fn register(&self, id: u64) -> Arc<Task> {
            self.registered.fetch_add(1, Relaxed);
            Arc::new(Task { id })
        }

        /// Takes back `record`, which must be task `id`'s: dropping the last
        /// reference, so that a second retirement of it fails in loom's
        /// `Arc::from_raw`, and a record never retired as a leaked `Arc`.
        fn retire(&self, record: Arc<Task>, id: u64, by: usize) {
            assert_eq!(record.id, id, "retired another task's record");
            assert_eq!(Arc::strong_count(&record), 1);
            self.retired[by].fetch_add(1, Relaxed);
        }

        /// (registered, retired by the spawn hook, by the terminate hook)
        fn counts(&self) -> (usize, usize, usize) {
            (
                self.registered.load(Relaxed),
                self.retired[BY_SPAWN].load(Relaxed),
                self.retired[BY_TERMINATE].load(Relaxed),
            )
        }
    }

    /// Spawns task `id` on `table`, its poll clock at `now`.
    fn spawn(table: &Small, registry: &Registry, id: u64, now: u64) {
        table.spawn(
            id,
            || now,
            |_index| registry.register(id),
            |record| registry.retire(record, id, BY_SPAWN),
        );
    }

    fn terminate(table: &Small, registry: &Registry, id: u64) {
        table.terminate(id, |record| registry.retire(record, id, BY_TERMINATE));
    }

    /// Task 1's spawn and termination, each on its own thread, which then
    /// runs `then` (given whether it terminated the task).
    fn spawn_and_terminate_apart(
        table: &Arc<Small>,
        registry: &Arc<Registry>,
        then: fn(&Small, bool),
    ) {
        let threads = [false, true].map(|terminates| {
            let (table, registry) = (table.clone(), registry.clone());
            thread::spawn(move || {
                if terminates {
                    terminate(&table, &registry, 1);
                } else {
                    spawn(&table, &registry, 1, 100);
                }
                then(&table, terminates);
            })
        });
        for thread in threads {
            thread.join().unwrap();
        }
    }

    /// Nothing left of any task: free slots, no tombstone, nothing
    /// untracked, every record registered retired once.
    fn assert_empty(table: &Small, registry: &Registry) {
        assert_eq!(table.ids(), [0, 0], "a slot is still taken");
        assert!(!table.holds(1));
        assert_eq!(table.totals(), (0, 0), "(tombstones, untracked) left");
        assert_eq!(table.untracked_counts(), [0, 0]);
        let (registered, by_spawn, by_terminate) = registry.counts();
        assert_eq!(
            registered,
            by_spawn + by_terminate,
            "records leaked or retired twice"
        );
    }

    /// Tokio may report a task's termination before its spawn, on another
    /// thread. In either order the task leaves nothing behind and its record,
    /// if one was made, is retired once. Counts each way it went: the spawn
    /// took a tombstone (no record), the termination retired the record, or
    /// the spawn did (the task ended while it registered it).
    #[test]
    fn loom_hooks_spawn_and_terminate_in_either_order_leave_nothing() {
        static OUTCOMES: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
        model(|| {
            let table = Arc::new(Small::new());
            let registry = Arc::new(Registry::default());
            spawn_and_terminate_apart(&table, &registry, |_, _| {});
            assert_empty(&table, &registry);
            let outcome = match registry.counts() {
                (0, 0, 0) => 0,
                (1, 0, 1) => 1,
                (1, 1, 0) => 2,
                counts => panic!("(registered, retired by spawn, by terminate): {counts:?}"),
            };
            OUTCOMES[outcome].fetch_add(1, Relaxed);
        });
        let outcomes = ["took a tombstone", "terminate retired", "spawn retired"];
        for (outcome, count) in outcomes.iter().zip(&OUTCOMES) {
            assert!(count.load(Relaxed) > 0, "no execution's spawn {outcome}");
        }
    }

    /// A task whose window is full is counted untracked at its spawn; its
    /// termination, before or after, on another thread, cancels the count.
    /// Counts the executions in which the spawn's count was there first
    /// and those in which the termination's (negative) one was.
    #[test]
    fn loom_hooks_untracked_task_is_uncounted_in_either_order() {
        static FIRST: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
        model(|| {
            let table = Arc::new(Small::new());
            let registry = Arc::new(Registry::default());
            // Tasks 2 and 3 hold both slots of task 1's window; slot 1 is
            // task 1's own.
            spawn(&table, &registry, 2, 100);
            spawn(&table, &registry, 3, 100);
            assert_eq!(table.ids(), [2, 3]);
            spawn_and_terminate_apart(&table, &registry, |table, terminated| {
                // Its own hook's count, still there after it: it came first.
                let own = if terminated { -1 } else { 1 };
                if table.untracked_counts()[1] == own {
                    FIRST[usize::from(terminated)].fetch_add(1, Relaxed);
                }
            });
            assert_eq!(table.totals(), (0, 0), "(tombstones, untracked) left");
            assert_eq!(table.untracked_counts(), [0, 0]);
            assert_eq!(table.untracked(), 0);
            assert_eq!(table.ids(), [2, 3]);
            assert_eq!(registry.counts(), (2, 0, 0));
            terminate(&table, &registry, 2);
            terminate(&table, &registry, 3);
            assert_empty(&table, &registry);
        });
        for (first, count) in ["spawn", "terminate"].iter().zip(&FIRST) {
            assert!(
                count.load(Relaxed) > 0,
                "no execution's {first} counted first"
            );
        }
    }

    /// A snapshot reads task 1's slot while the task terminates and task 3
    /// (whose own slot is the same) takes the slot, with values task 1
    /// never had: the read gives task 1's values, or `None`, never task 3's
    /// as task 1's. Counts both answers.
    #[test]
    fn loom_hooks_state_is_never_a_later_tasks() {
        static ANSWERS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
        model(|| {
            let table = Arc::new(Small::new());
            let registry = Arc::new(Registry::default());
            // Task 1, polled once on thread 7, its poll ending at 101.
            spawn(&table, &registry, 1, 100);
            table.before_poll(1, || 7);
            table.after_poll(1, || 101);
            assert_eq!(table.ids(), [0, 1]);
            let reuser = {
                let (table, registry) = (table.clone(), registry.clone());
                thread::spawn(move || {
                    terminate(&table, &registry, 1);
                    spawn(&table, &registry, 3, 300);
                    table.before_poll(3, || 9);
                })
            };
            let reader = {
                let table = table.clone();
                thread::spawn(move || table.state(1, 1))
            };
            let answer = reader.join().unwrap();
            reuser.join().unwrap();
            if let Some(state) = &answer {
                assert_eq!(
                    (state.running_on, state.polls, state.last_poll_end_ns),
                    (0, 1, 101),
                    "task 1's state has another task's fields"
                );
            }
            ANSWERS[usize::from(answer.is_some())].fetch_add(1, Relaxed);
            assert_eq!(table.ids(), [0, 3]);
            terminate(&table, &registry, 3);
            assert_empty(&table, &registry);
        });
        for (answer, count) in ["None", "task 1's state"].iter().zip(&ANSWERS) {
            assert!(count.load(Relaxed) > 0, "no read answered {answer}");
        }
    }

    /// Tokio's wake after a task dump (a poll of task 1, which had one
    /// poll ending at 101) races the dump's `traced` and a snapshot's read,
    /// in any order: once both ran, the task shows one poll ending at 101,
    /// and the program's next poll counts, as does a second dump's wake
    /// (told the count as shown); the read shows one poll, or two
    /// (the wake counted before `traced` ran, as without traces), never
    /// none. Counts both reads.
    #[test]
    fn loom_hooks_wake_after_a_dump_is_not_counted() {
        static READS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
        model(|| {
            let table = Arc::new(Small::new());
            let registry = Arc::new(Registry::default());
            spawn(&table, &registry, 1, 100);
            table.before_poll(1, || 7);
            table.after_poll(1, || 101);
            let wake = {
                let table = table.clone();
                thread::spawn(move || {
                    table.before_poll(1, || 7);
                    table.after_poll(1, || 200);
                })
            };
            let dump = {
                let table = table.clone();
                thread::spawn(move || table.traced(1, 1, 101))
            };
            let reader = {
                let table = table.clone();
                thread::spawn(move || table.state(1, 1))
            };
            let read = reader.join().unwrap().expect("task 1 holds its slot");
            // (A read during a poll may pair its count with the other
            // poll's end, with traces or without.)
            match read.polls {
                1 => READS[0].fetch_add(1, Relaxed),
                2 => READS[1].fetch_add(1, Relaxed),
                polls => panic!("polls read meanwhile: {polls}"),
            };
            wake.join().unwrap();
            dump.join().unwrap();
            let state = table.state(1, 1).expect("task 1 holds its slot");
            assert_eq!((state.polls, state.last_poll_end_ns), (1, 101));
            // The program's next poll counts, and ends the idle time.
            table.after_poll(1, || 300);
            let next = table.state(1, 1).expect("task 1 holds its slot");
            assert_eq!((next.polls, next.last_poll_end_ns), (2, 300));
            // A second dump, its wake after its notice: counted as shown.
            table.traced(1, 2, 300);
            table.after_poll(1, || 400);
            let again = table.state(1, 1).expect("task 1 holds its slot");
            assert_eq!((again.polls, again.last_poll_end_ns), (2, 300));
            terminate(&table, &registry, 1);
            assert_empty(&table, &registry);
        });
        for (read, count) in ["one poll", "the wake counted"].iter().zip(&READS) {
            assert!(count.load(Relaxed) > 0, "no read showed {read}");
        }
    }
}
