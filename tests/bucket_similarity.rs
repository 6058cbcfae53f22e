//! Grouping routines into buckets at each similarity level: hand-built
//! snapshots after panicparse's examples, then real captures of instrumented
//! threads and tasks.

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::model::{arg, frame, secs, snapshot, task, thread};
use support::normalise::normalise;
use support::snapshot::shadow_snapshot_until;
use support::wait::watchdog;
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Kind, Merged, Options, Similarity, Snapshot, Value};

/// Buckets per level, strictest first.
fn counts(snapshot: &Snapshot) -> Vec<usize> {
    Similarity::ALL
        .iter()
        .map(|&s| Buckets::aggregate(snapshot, s).buckets.len())
        .collect()
}

fn text(snapshot: &Snapshot, similarity: Similarity) -> String {
    let buckets = Buckets::aggregate(snapshot, similarity);
    let text = render(snapshot, &buckets, &View::default().format(Format::Text)).unwrap();
    // Drop the header line (capture totals), keep the bucket blocks.
    text.split_once("\n\n").unwrap().1.to_owned()
}

#[test]
fn similarity_names() {
    let names: Vec<&str> = Similarity::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        ["exactflags", "exactlines", "anypointer", "anyvalue"]
    );
    for s in Similarity::ALL {
        assert_eq!(s.as_str().parse::<Similarity>(), Ok(s));
    }
    assert_eq!(Similarity::default(), Similarity::AnyPointer);
    let err = "AnyValue".parse::<Similarity>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "similarity must be one of: exactflags, exactlines, anypointer, anyvalue"
    );
    assert!("".parse::<Similarity>().is_err());
    assert!("anyvalue ".parse::<Similarity>().is_err());
}

#[test]
fn addresses_differ_merge_under_anypointer_not_exactlines() {
    let (a, b) = (0u64, 0u64);
    let f = |id, p: &u64| {
        task(
            id,
            "conn",
            secs(5),
            vec![frame(
                "app::f",
                10,
                vec![
                    arg("p", "&Queue", Value::pointer(p)),
                    arg("n", "u32", Value::u64(3)),
                ],
            )],
        )
    };
    let snap = snapshot(vec![f(1, &a), f(2, &b)]);
    assert_eq!(counts(&snap), [2, 2, 1, 1]);
    assert_eq!(
        text(&snap, Similarity::AnyPointer),
        "2: task idle [5 s] conn 1, 2\
         \n    app::f(p: &Queue = *, n: u32 = 3)\
         \n        src/app.rs:10\
         \n    spawned by app::main at src/main.rs:40\n"
    );
}

/// Grouping hashes names by their length only: stacks whose names differ
/// but have the same length must still land in different buckets, also when
/// the names are equal strings at different addresses.
#[test]
fn names_of_equal_length_are_compared() {
    let one = |id, function: &'static str, name: &'static str| {
        task(
            id,
            "conn",
            secs(5),
            vec![frame(function, 10, vec![arg(name, "u32", Value::u64(1))])],
        )
    };
    let owned = String::from("app::fa");
    let owned: &'static str = Box::leak(owned.into_boxed_str());
    let snap = snapshot(vec![
        one(1, "app::fa", "n"),
        one(2, "app::fb", "n"),
        one(3, "app::fa", "m"),
        one(4, owned, "n"),
    ]);
    assert_eq!(counts(&snap), [3, 3, 3, 3]);
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    assert_eq!(buckets.buckets[0].ids().collect::<Vec<_>>(), [1, 4]);
}

#[test]
fn integers_differ_merge_only_under_anyvalue() {
    let baz = |id, n| {
        task(
            id,
            "conn",
            secs(5),
            vec![frame("app::baz", 20, vec![arg("n", "u32", Value::u64(n))])],
        )
    };
    let snap = snapshot(vec![baz(1, 3), baz(2, 1)]);
    assert_eq!(counts(&snap), [2, 2, 2, 1]);
    let merged = Buckets::aggregate(&snap, Similarity::AnyValue);
    assert_eq!(merged.buckets[0].frames[0].args[0].value, Merged::Differs);
    let split = Buckets::aggregate(&snap, Similarity::AnyPointer);
    assert_eq!(
        split.buckets[0].frames[0].args[0].value,
        Merged::Same(Value::u64(3))
    );
}

#[test]
fn equal_values_stay_shown_when_merged() {
    let leaf = |id| {
        task(
            id,
            "conn",
            secs(id),
            vec![
                frame(
                    "app::leaf",
                    17,
                    vec![arg("name", "&str", Value::str("alice"))],
                ),
                frame("app::root", 22, vec![arg("n", "u32", Value::u64(id))]),
            ],
        )
    };
    let snap = snapshot((1..=3).map(leaf).collect());
    assert_eq!(
        text(&snap, Similarity::AnyValue),
        "3: task idle [1~3 s] conn 1, 2, 3\
         \n    app::leaf(name: &str = \"alice\")\
         \n        src/app.rs:17\
         \n    app::root(n: u32 = *)\
         \n        src/app.rs:22\
         \n    spawned by app::main at src/main.rs:40\n"
    );
}

#[test]
fn durations_merge_into_a_range() {
    let f = |id, waited| task(id, "conn", waited, vec![frame("app::f", 10, vec![])]);
    let snap = snapshot(vec![
        f(1, secs(7 * 60)),
        f(2, secs(3 * 60)),
        f(3, secs(5 * 60)),
    ]);
    let buckets = Buckets::aggregate(&snap, Similarity::ExactFlags);
    assert_eq!(buckets.buckets.len(), 1);
    assert_eq!(buckets.buckets[0].waiting, (secs(180), secs(420)));
    assert!(
        text(&snap, Similarity::ExactFlags).starts_with("3: task idle [3~7 min] conn 1, 2, 3\n")
    );
}

#[test]
fn threads_range_their_age() {
    let t = |id, age| {
        thread(
            id,
            "worker",
            200 + id as i64,
            age,
            vec![frame("app::work", 5, vec![])],
        )
    };
    let snap = snapshot(vec![t(1, secs(2)), t(2, secs(9))]);
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    assert_eq!(buckets.buckets[0].waiting, (secs(2), secs(9)));
}

#[test]
fn exactflags_splits_on_elided_and_torn() {
    let f = |id| task(id, "conn", secs(1), vec![frame("app::deep", 3, vec![])]);
    let plain = f(1);
    let mut elided = f(2);
    elided.elided = 4;
    let mut torn = f(3);
    torn.torn = true;
    let snap = snapshot(vec![plain, elided, torn]);
    assert_eq!(counts(&snap), [3, 1, 1, 1]);
    let merged = Buckets::aggregate(&snap, Similarity::ExactLines);
    assert_eq!(merged.buckets[0].elided, 4);
    assert!(merged.buckets[0].torn);
    assert!(text(&snap, Similarity::ExactLines)
        .starts_with("3: task idle [1 s] conn 1, 2, 3 (4 frames elided, torn read)\n"));
}

#[test]
fn location_kind_state_and_creator_always_split() {
    let base = || task(1, "conn", secs(1), vec![frame("app::f", 10, vec![])]);
    let mut other_line = base();
    other_line.frames[0].line = 11;
    let mut other_file = base();
    other_file.frames[0].file = "src/other.rs".into();
    let mut other_function = base();
    other_function.frames[0].function = "app::g".into();
    let mut deeper = base();
    deeper.frames = deeper
        .frames
        .iter()
        .cloned()
        .chain([frame("app::caller", 30, vec![])])
        .collect();
    let mut running = base();
    running.state = webstack::State::Running;
    let mut no_creator = base();
    no_creator.created_by = None;
    let mut a_thread = base();
    a_thread.kind = Kind::Thread;
    let variants = vec![
        base(),
        other_line,
        other_file,
        other_function,
        deeper,
        running,
        no_creator,
        a_thread,
    ];
    let n = variants.len();
    let snap = snapshot(
        variants
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.id = i as u64 + 1;
                r
            })
            .collect(),
    );
    assert_eq!(counts(&snap), [n; 4]);
}

#[test]
fn argument_names_and_types_must_match_even_under_anyvalue() {
    let f = |id, name, ty| {
        task(
            id,
            "conn",
            secs(1),
            vec![frame("app::f", 10, vec![arg(name, ty, Value::u64(1))])],
        )
    };
    let snap = snapshot(vec![f(1, "a", "u32"), f(2, "b", "u32"), f(3, "a", "u64")]);
    assert_eq!(counts(&snap), [3, 3, 3, 3]);
}

#[test]
fn order_serving_thread_then_size_then_stack_then_id() {
    let idle = |id, function| task(id, "t", secs(1), vec![frame(function, 1, vec![])]);
    let snap = snapshot(vec![
        thread(
            1,
            "server",
            100,
            secs(3),
            vec![frame("app::serve", 1, vec![])],
        ),
        thread(
            2,
            "other",
            101,
            secs(3),
            vec![frame("app::work", 1, vec![])],
        ),
        thread(
            3,
            "other",
            102,
            secs(3),
            vec![frame("app::work", 1, vec![])],
        ),
        idle(10, "app::b"),
        idle(11, "app::a"),
        idle(12, "app::c"),
        idle(13, "app::c"),
        idle(14, "app::c"),
    ]);
    let buckets = Buckets::aggregate(&snap, Similarity::AnyPointer);
    let order: Vec<(usize, Kind, &str, u64)> = buckets
        .buckets
        .iter()
        .map(|b| {
            (
                b.count,
                b.kind,
                &*b.frames[0].function,
                b.members.first().unwrap().id,
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (1, Kind::Thread, "app::serve", 1),
            (3, Kind::Task, "app::c", 12),
            (2, Kind::Thread, "app::work", 2),
            (1, Kind::Task, "app::a", 11),
            (1, Kind::Task, "app::b", 10),
        ]
    );
    assert!(buckets.buckets[0].serving);
    assert!(buckets.buckets[1..].iter().all(|b| !b.serving));
    assert_eq!(buckets.buckets[1].ids().collect::<Vec<_>>(), [12, 13, 14]);
}

#[test]
fn shared_addresses_get_labels_in_bucket_order() {
    let (queue, pool, lonely) = (0u8, 0u8, 0u8);
    let snap = snapshot(vec![
        // One member, and `app::pool` < `app::solo`: shown last.
        task(
            1,
            "solo",
            secs(1),
            vec![frame(
                "app::solo",
                1,
                vec![
                    arg("pool", "&Pool", Value::pointer(&pool)),
                    arg("q", "&Queue", Value::pointer(&queue)),
                    arg("mine", "&Thing", Value::pointer(&lonely)),
                ],
            )],
        ),
        task(
            2,
            "pair",
            secs(1),
            vec![frame(
                "app::pair",
                1,
                vec![arg("q", "&Queue", Value::pointer(&queue))],
            )],
        ),
        task(
            3,
            "pair",
            secs(1),
            vec![frame(
                "app::pair",
                1,
                vec![arg("q", "&Queue", Value::pointer(&queue))],
            )],
        ),
        task(
            4,
            "pool",
            secs(1),
            vec![frame(
                "app::pool",
                1,
                vec![arg("pool", "&Pool", Value::pointer(&pool))],
            )],
        ),
    ]);
    let buckets = Buckets::aggregate(&snap, Similarity::ExactLines);
    assert_eq!(buckets.label(&queue as *const u8 as u64), Some(1));
    assert_eq!(buckets.label(&pool as *const u8 as u64), Some(2));
    assert_eq!(buckets.label(&lonely as *const u8 as u64), None);
    assert_eq!(buckets.labels(), 2);
    let text = text(&snap, Similarity::ExactLines);
    let hex = format!("{:#x}", &lonely as *const u8 as u64);
    assert_eq!(
        text.replace(&hex, "ADDR"),
        "2: task idle [1 s] pair 2, 3\
         \n    app::pair(q: &Queue = #1)\
         \n        src/app.rs:1\
         \n    spawned by app::main at src/main.rs:40\
         \n\
         \n1: task idle [1 s] pool 4\
         \n    app::pool(pool: &Pool = #2)\
         \n        src/app.rs:1\
         \n    spawned by app::main at src/main.rs:40\
         \n\
         \n1: task idle [1 s] solo 1\
         \n    app::solo(pool: &Pool = #2, q: &Queue = #1, mine: &Thing = ADDR)\
         \n        src/app.rs:1\
         \n    spawned by app::main at src/main.rs:40\n"
    );
}

#[test]
fn aggregation_is_deterministic() {
    let routines = (0..200)
        .map(|i| {
            task(
                i,
                "t",
                secs(i % 7),
                vec![frame(
                    ["app::a", "app::b", "app::c"][(i % 3) as usize],
                    1,
                    vec![arg("n", "u64", Value::u64(i % 5))],
                )],
            )
        })
        .collect();
    let snap = snapshot(routines);
    for s in Similarity::ALL {
        let once = text(&snap, s);
        let mut reversed = snapshot(snap.routines().rev().collect());
        reversed.captured_by_tid = snap.captured_by_tid;
        let twice = text(&reversed, s);
        assert_eq!(once, twice, "{s}");
    }
}

#[test]
fn many_routines_aggregate_quickly() {
    // 50,000 routines in ~1,000 distinct stacks; a pairwise scan would
    // take tens of seconds here, the signature map well under one.
    let routines: Vec<_> = (0..50_000u64)
        .map(|i| {
            task(
                i,
                "t",
                secs(1),
                vec![frame(
                    "app::f",
                    1,
                    vec![arg("n", "u64", Value::u64(i % 1000))],
                )],
            )
        })
        .collect();
    let snap = snapshot(routines);
    let started = std::time::Instant::now();
    let buckets = Buckets::aggregate(&snap, Similarity::ExactLines);
    let took = started.elapsed();
    assert_eq!(buckets.buckets.len(), 1000);
    assert!(buckets.buckets.iter().all(|b| b.count == 50));
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

// Real captures of instrumented code.

/// Far above any of these tests' time (well under a second in a debug
/// build).
const LIMIT: Duration = Duration::from_secs(60);

struct Queue;

#[webstack::instrument]
fn bs_worker(id: u32, queue: &Queue, ready: &Barrier, rx: &mpsc::Receiver<()>) {
    ready.wait();
    rx.recv().ok();
}

#[test]
fn real_threads() {
    let _watchdog = watchdog("bucket_similarity::real_threads", LIMIT);
    let queue = Arc::new(Queue);
    let ready = Arc::new(Barrier::new(4));
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for id in [7, 7, 8] {
        let (tx, rx) = mpsc::channel();
        senders.push(tx);
        let (queue, ready) = (queue.clone(), ready.clone());
        handles.push(
            webstack::thread::Builder::new()
                .name(format!("bs-worker-{id}"))
                .spawn(move || bs_worker(id, &queue, &ready, &rx))
                .unwrap(),
        );
    }
    ready.wait();
    let snap = Snapshot::capture(&Options::default().augment(false));
    for tx in senders {
        tx.send(()).unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }

    let ours = |s: Similarity| -> Vec<(usize, Vec<String>)> {
        let buckets = Buckets::aggregate(&snap, s);
        buckets
            .buckets
            .iter()
            .filter(|b| b.frames.iter().any(|f| f.function.ends_with("::bs_worker")))
            .map(|b| {
                let f = b
                    .frames
                    .iter()
                    .find(|f| f.function.ends_with("::bs_worker"))
                    .unwrap();
                let args = f
                    .args
                    .iter()
                    .map(|a| match a.value {
                        Merged::Differs => "*".to_owned(),
                        Merged::Same(v) if v.is_pointer() => {
                            match buckets.label(v.address().unwrap()) {
                                Some(n) => format!("#{n}"),
                                None => "ADDR".to_owned(),
                            }
                        }
                        Merged::Same(v) => v.to_string(),
                    })
                    .collect();
                (b.count, args)
            })
            .collect()
    };
    // The barrier and receiver differ per thread; the queue is shared.
    // Threads get their ids as they start, so the two `7`s need not come first.
    let mut exact = ours(Similarity::ExactLines);
    exact.sort();
    assert_eq!(
        exact,
        [
            (1, vec!["7".into(), "#1".into(), "#2".into(), "ADDR".into()]),
            (1, vec!["7".into(), "#1".into(), "#2".into(), "ADDR".into()]),
            (1, vec!["8".into(), "#1".into(), "#2".into(), "ADDR".into()]),
        ]
    );
    assert_eq!(
        ours(Similarity::AnyPointer),
        [
            (2, vec!["7".into(), "#1".into(), "#2".into(), "*".into()]),
            (1, vec!["8".into(), "#1".into(), "#2".into(), "ADDR".into()]),
        ]
    );
    assert_eq!(
        ours(Similarity::AnyValue),
        [(3, vec!["*".into(), "#1".into(), "#2".into(), "*".into()])]
    );
}

#[webstack::instrument(skip(rx))]
async fn bs_wait(step: u32, rx: tokio::sync::oneshot::Receiver<()>) {
    rx.await.ok();
}

#[webstack::instrument(name = "bs-conn", skip(rx))]
async fn bs_conn(conn: u32, rx: tokio::sync::oneshot::Receiver<()>) {
    bs_wait(conn % 2, rx).await
}

#[test]
fn real_tasks() {
    let _watchdog = watchdog("bucket_similarity::real_tasks", LIMIT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut senders = Vec::new();
    for conn in 0..4 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        senders.push(tx);
        rt.spawn(bs_conn(conn, rx));
    }
    let ours = |snap: &Snapshot, s: Similarity| -> Vec<String> {
        let buckets = Buckets::aggregate(snap, s);
        let text = render(snap, &buckets, &View::default().format(Format::Text)).unwrap();
        normalise(&text)
            .split("\n\n")
            .filter(|block| block.contains("bs-conn"))
            .map(|block| block.trim_end().to_owned())
            .collect()
    };
    let snap = shadow_snapshot_until(Duration::from_secs(10), |snap| {
        let idle = snap.routines();
        idle.filter(|r| r.name == "bs-conn" && r.frames.len() == 2)
            .count()
            == 4
    });
    let file = file!();
    // Each task's tokio id, in the order of its webstack id.
    let tokio_ids: std::collections::HashMap<String, String> = snap
        .routines()
        .filter(|r| r.name == "bs-conn")
        .map(|r| (r.id.to_string(), r.tokio_id.unwrap().to_string()))
        .collect();
    let block = |count: usize, ids: &str, step: &str, conn: &str| {
        let tokio: Vec<&str> = ids.split(", ").map(|id| tokio_ids[id].as_str()).collect();
        let tokio = tokio.join(", ");
        format!(
            "{count}: task idle [DURATION] bs-conn {ids} (tokio id {tokio}; polls 1)\
             \n    bucket_similarity::bs_wait(step: u32 = {step})\
             \n        awaiting at {file}:LINE\
             \n    bucket_similarity::bs_conn(conn: u32 = {conn})\
             \n        awaiting at {file}:LINE"
        )
    };
    let ids: Vec<u64> = snap
        .routines()
        .filter(|r| r.name == "bs-conn")
        .map(|r| r.id)
        .collect();
    assert_eq!(ids.len(), 4);
    let list = |pick: &[usize]| {
        pick.iter()
            .map(|&i| ids[i].to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(
        ours(&snap, Similarity::AnyValue),
        [block(4, &list(&[0, 1, 2, 3]), "*", "*")]
    );
    // Tasks are spawned from outside an instrumented function: no creator.
    let mut by_step = ours(&snap, Similarity::AnyPointer);
    by_step.sort();
    let mut expected = vec![
        block(1, &list(&[0]), "0", "0"),
        block(1, &list(&[1]), "1", "1"),
        block(1, &list(&[2]), "0", "2"),
        block(1, &list(&[3]), "1", "3"),
    ];
    expected.sort();
    assert_eq!(by_step, expected);
    for tx in senders {
        tx.send(()).unwrap();
    }
    drop(rt);
}

/// A request's extractor: taken by value, no `Capture` impl.
struct BsPath(u64, u64);

/// An account that several requests hold.
struct BsAccount;

#[webstack::instrument(skip(rx))]
async fn bs_transfer(
    path: BsPath,
    account: &'static BsAccount,
    ledger: Arc<BsAccount>,
    rx: tokio::sync::oneshot::Receiver<()>,
) -> u64 {
    rx.await.ok();
    drop((account, ledger));
    path.0 + path.1
}

/// Each call's by-value `path` is its own object: it must not be shown as an
/// address, and above all not as one label shared by all three tasks (its
/// address at the call is a slot of the spawning loop's stack, the same for
/// every call). The `&` and the `Arc` point at one account and one ledger:
/// each gets a label, the same in every task.
#[test]
fn by_value_arguments_get_no_address_and_shared_objects_a_label() {
    let _watchdog = watchdog(
        "bucket_similarity::by_value_arguments_get_no_address_and_shared_objects_a_label",
        LIMIT,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let account: &'static BsAccount = Box::leak(Box::new(BsAccount));
    let ledger = Arc::new(BsAccount);
    let mut senders = Vec::new();
    for i in 0..3 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        senders.push(tx);
        rt.spawn(bs_transfer(BsPath(i, i + 1), account, ledger.clone(), rx));
    }
    let snap = shadow_snapshot_until(Duration::from_secs(10), |snap| {
        let idle = snap.routines();
        idle.filter(|r| r.name == "bs_transfer" && r.state == webstack::State::Idle)
            .count()
            == 3
    });
    for s in [Similarity::ExactLines, Similarity::AnyPointer] {
        let buckets = Buckets::aggregate(&snap, s);
        let text = render(&snap, &buckets, &View::default().format(Format::Text)).unwrap();
        let frames: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("bucket_similarity::bs_transfer("))
            .collect();
        assert_eq!(
            frames,
            ["bucket_similarity::bs_transfer(path: BsPath = <by value>, \
              account: &'static BsAccount = #1, ledger: Arc<BsAccount> = #2)"],
            "{s}:\n{text}"
        );
        assert_eq!(buckets.label(account as *const BsAccount as u64), Some(1));
        assert_eq!(buckets.label(Arc::as_ptr(&ledger) as u64), Some(2));
    }
    for tx in senders {
        tx.send(()).unwrap();
    }
    drop(rt);
}
