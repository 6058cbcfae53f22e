//! Threads blocked inside nested instrumented functions, captured and compared
//! as a whole: functions, typed argument values, creators, elided frames,
//! registration on first call and removal on exit, panics.

use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::Duration;

use pretty_assertions::assert_eq;
use support::snapshot::{describe_all, routines, shadow_snapshot};
use support::wait::{wait_until, watchdog};

/// Far above any test's time (well under a second in a debug build).
const LIMIT: Duration = Duration::from_secs(60);

pub struct Queue {
    items: Mutex<Vec<u32>>,
    ready: Condvar,
}

#[webstack::instrument]
fn serve(worker: u32, role: &str, queue: &Queue) -> u32 {
    wait_for_job(worker as u64 * 10, Some(3u8), queue)
}

#[webstack::instrument(skip(queue))]
fn wait_for_job(slot: u64, priority: Option<u8>, queue: &Queue) -> u32 {
    let mut items = queue.items.lock().unwrap();
    loop {
        if let Some(item) = items.pop() {
            return item + slot as u32 + priority.unwrap_or(0) as u32;
        }
        items = queue.ready.wait(items).unwrap();
    }
}

#[webstack::instrument]
fn start_pool(size: u32, queue: Arc<Queue>) -> Vec<std::thread::JoinHandle<u32>> {
    (0..size)
        .map(|i| {
            let queue = queue.clone();
            webstack::thread::Builder::new()
                .name(format!("pool-{i}"))
                .spawn(move || serve(i, "pool", &queue))
                .unwrap()
        })
        .collect()
}

#[test]
fn blocked_workers_show_nested_frames_and_creator() {
    let _watchdog = watchdog(
        "threads::blocked_workers_show_nested_frames_and_creator",
        LIMIT,
    );
    let queue = Arc::new(Queue {
        items: Mutex::new(Vec::new()),
        ready: Condvar::new(),
    });
    let handles = start_pool(2, queue.clone());
    let ready = wait_until(Duration::from_secs(5), || {
        let snapshot = shadow_snapshot();
        routines(&snapshot, |n| n.starts_with("pool-"))
            .iter()
            .filter(|r| r.frames.len() == 2)
            .count()
            == 2
    });
    assert!(ready, "workers never reached their wait");
    let snapshot = shadow_snapshot();
    let text = describe_all(&snapshot, |n| n.starts_with("pool-"));
    assert_eq!(
        text,
        "Thread \"pool-0\" alive created_by=threads::start_pool at threads.rs:LINE\n\
         \x20 threads::wait_for_job(slot: u64 = 0, priority: Option<u8> = Some(3)) threads.rs:LINE\n\
         \x20 threads::serve(worker: u32 = 0, role: &str = \"pool\", queue: &Queue = ADDR) threads.rs:LINE\n\
         Thread \"pool-1\" alive created_by=threads::start_pool at threads.rs:LINE\n\
         \x20 threads::wait_for_job(slot: u64 = 10, priority: Option<u8> = Some(3)) threads.rs:LINE\n\
         \x20 threads::serve(worker: u32 = 1, role: &str = \"pool\", queue: &Queue = ADDR) threads.rs:LINE\n"
    );
    // Both workers hold the same queue: the same address.
    let addresses: Vec<u64> = routines(&snapshot, |n| n.starts_with("pool-"))
        .iter()
        .map(|r| r.frames[1].args[2].value.address().unwrap())
        .collect();
    assert_eq!(addresses, vec![Arc::as_ptr(&queue) as u64; 2]);
    // The creator line is the `spawn` call inside `start_pool`.
    let pool = routines(&snapshot, |n| n == "pool-0").remove(0);
    let created = pool.created_by.unwrap();
    assert!(created.file.ends_with("threads.rs"));
    assert_eq!(
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/threads.rs"))
            .unwrap()
            .lines()
            .nth(created.line as usize - 1)
            .unwrap()
            .trim(),
        ".spawn(move || serve(i, \"pool\", &queue))"
    );
    {
        let mut items = queue.items.lock().unwrap();
        items.extend([100, 200]);
    }
    queue.ready.notify_all();
    let mut results: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    results.sort();
    assert_eq!(results.len(), 2);
}

#[webstack::instrument]
fn recurse(level: u32, barrier: &Barrier) {
    if level == 0 {
        barrier.wait();
        barrier.wait();
    } else {
        recurse(level - 1, barrier);
    }
}

#[test]
fn deep_recursion_is_bounded_and_counts_elided_frames() {
    let _watchdog = watchdog(
        "threads::deep_recursion_is_bounded_and_counts_elided_frames",
        LIMIT,
    );
    let barrier = Arc::new(Barrier::new(2));
    let worker = {
        let barrier = barrier.clone();
        webstack::thread::Builder::new()
            .name("deep".into())
            .stack_size(16 << 20)
            .spawn(move || recurse(299, &barrier))
            .unwrap()
    };
    barrier.wait();
    let snapshot = shadow_snapshot();
    let deep = routines(&snapshot, |n| n == "deep").remove(0);
    assert_eq!(deep.frames.len(), webstack::MAX_DEPTH);
    assert_eq!(deep.elided, 300 - webstack::MAX_DEPTH);
    // Frames are innermost first; the outermost kept frame is the first call.
    assert_eq!(deep.frames.last().unwrap().args[0].value.to_string(), "299");
    assert_eq!(
        deep.frames[0].args[0].value.to_string(),
        (300 - webstack::MAX_DEPTH as u32).to_string()
    );
    barrier.wait();
    worker.join().unwrap();
}

#[webstack::instrument]
fn explode(depth: u32) {
    if depth == 0 {
        panic!("boom");
    }
    explode(depth - 1);
}

#[webstack::instrument]
fn survive_panic(barrier: &Barrier) {
    let caught = std::panic::catch_unwind(|| explode(3));
    assert!(caught.is_err());
    barrier.wait();
    barrier.wait();
}

#[test]
fn caught_panic_pops_unwound_frames() {
    let _watchdog = watchdog("threads::caught_panic_pops_unwound_frames", LIMIT);
    let barrier = Arc::new(Barrier::new(2));
    let worker = {
        let barrier = barrier.clone();
        webstack::thread::Builder::new()
            .name("panicky".into())
            .spawn(move || survive_panic(&barrier))
            .unwrap()
    };
    barrier.wait();
    let snapshot = shadow_snapshot();
    assert_eq!(
        describe_all(&snapshot, |n| n == "panicky"),
        "Thread \"panicky\" alive created_by=<uninstrumented> at threads.rs:LINE\n\
         \x20 threads::survive_panic(barrier: &Barrier = ADDR) threads.rs:LINE\n"
    );
    barrier.wait();
    worker.join().unwrap();
}

#[webstack::instrument]
fn plain_worker(barrier: &Barrier) {
    barrier.wait();
    barrier.wait();
}

#[test]
fn std_threads_register_on_first_call_and_leave_on_exit() {
    let _watchdog = watchdog(
        "threads::std_threads_register_on_first_call_and_leave_on_exit",
        LIMIT,
    );
    let barrier = Arc::new(Barrier::new(2));
    let worker = {
        let barrier = barrier.clone();
        std::thread::Builder::new()
            .name("std-spawned".into())
            .spawn(move || {
                plain_worker(&barrier);
                // After the call the thread is still registered, with no frame.
                barrier.wait();
                barrier.wait();
            })
            .unwrap()
    };
    barrier.wait();
    let during = shadow_snapshot();
    assert_eq!(
        describe_all(&during, |n| n == "std-spawned"),
        "Thread \"std-spawned\" alive\n  threads::plain_worker(barrier: &Barrier = ADDR) threads.rs:LINE\n"
    );
    barrier.wait();
    barrier.wait();
    let after_call = shadow_snapshot();
    assert_eq!(
        describe_all(&after_call, |n| n == "std-spawned"),
        "Thread \"std-spawned\" alive\n"
    );
    barrier.wait();
    worker.join().unwrap();
    let gone = shadow_snapshot();
    assert_eq!(describe_all(&gone, |n| n == "std-spawned"), "");
}

#[test]
fn uninstrumented_threads_are_not_registered() {
    let _watchdog = watchdog("threads::uninstrumented_threads_are_not_registered", LIMIT);
    let handle = std::thread::Builder::new()
        .name("never-instrumented".into())
        .spawn(|| std::thread::sleep(Duration::from_millis(200)))
        .unwrap();
    let snapshot = shadow_snapshot();
    assert_eq!(describe_all(&snapshot, |n| n == "never-instrumented"), "");
    handle.join().unwrap();
}

/// A type without `Capture`: recorded by the address of the value.
pub struct Opaque {
    _id: u32,
}

#[webstack::instrument]
fn hold_twice_borrowed(item: &&Opaque, again: &mut &Opaque, deep: &&&Opaque) -> Vec<u64> {
    let snapshot = shadow_snapshot();
    let frame = snapshot
        .routines()
        .flat_map(|r| r.frames.to_vec())
        .find(|f| f.function.ends_with("hold_twice_borrowed"))
        .expect("the call's own frame is in the snapshot");
    frame
        .args
        .iter()
        .map(|arg| arg.value.address().expect("a reference records an address"))
        .collect()
}

#[test]
fn references_to_references_record_the_value_they_lead_to() {
    let _watchdog = watchdog(
        "references_to_references_record_the_value_they_lead_to",
        LIMIT,
    );
    let first = Opaque { _id: 1 };
    let second = Opaque { _id: 2 };
    let third = Opaque { _id: 3 };
    let want = [&first, &second, &third].map(|o| o as *const Opaque as u64);
    // Each outer reference is a temporary of this call: its address says
    // nothing about the object, and the next call may reuse it.
    let got = hold_twice_borrowed(&&first, &mut &second, &&&third);
    assert_eq!(got, want, "addresses of the values, not of the references");
}
