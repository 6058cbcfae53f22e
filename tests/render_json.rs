//! The JSON form: the documented shape of a hand-built snapshot, compared as
//! a whole, and the invariants of a real capture.

use pretty_assertions::assert_eq;
use serde_json::{json, Value as Json};
use support::model::{elsewhere, sample};
use webstack::render::{render, Format};
use webstack::View;
use webstack::{Buckets, Options, Similarity, Snapshot};

fn json_of(snap: &Snapshot, similarity: Similarity) -> Json {
    let buckets = Buckets::aggregate(snap, similarity);
    let text = render(snap, &buckets, &View::default().format(Format::Json)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn documented_shape() {
    let queue = 0u8;
    let mut snap = sample(&queue);
    snap.process = elsewhere();
    let addr = format!("{:#x}", &queue as *const u8 as u64);
    let creator =
        json!({"function": "app::main", "file": "src/main.rs", "line": 40, "origin": "app"});
    let mut expected = json!({
        "schema": "page",
        "version": 1,
        "similarity": "anyvalue",
        "captured_at": 1_764_092_511_123u64,
        "capture_time_us": 1234,
        "maxmem": 67_108_864,
        "bytes_used": 10240,
        "augmented": false,
        "totals": {"threads": 2, "tasks": 3, "buckets": 3, "left_out": 0,
                   "left_out_threads": 0, "left_out_tasks": 0, "untracked_tasks": 0},
        "process": {"pid": 4242, "exe": "/srv/app/bin/app", "host": "web-1",
                    "uptime_ms": 3_600_000, "webstack": "0.0.9", "platform": "linux aarch64",
                    "source_root": "/srv/app"},
        "buckets": [
            {
                "count": 1, "kind": "thread", "state": "alive", "ids": [1], "names": ["main"],
                "waiting_ms": {"min": 60000, "max": 60000}, "elided": 0, "torn": false,
                "serving": true, "created_by": null,
                "frames": [
                    {"function": "app::handler", "file": "src/app.rs", "line": 12,
                     "instrumented": true, "origin": "app", "crate": "app",
                     "args": [{"name": "id", "type": "u32", "value": "7"}]},
                    {"function": "serde_json::de::from_str",
                     "file": "/home/u/.cargo/registry/src/serde_json-1.0/src/de.rs", "line": 2687,
                     "instrumented": false, "origin": "dependency", "crate": "serde_json",
                     "args": []},
                    {"function": "tokio::runtime::task::raw::poll",
                     "file": "/home/u/.cargo/registry/src/tokio-1/src/runtime/task/raw.rs",
                     "line": 255, "instrumented": false, "origin": "runtime", "crate": "tokio",
                     "address": "0x1234", "args": []},
                    {"function": "tokio::runtime::scheduler::multi_thread::worker::run",
                     "file": "/home/u/.cargo/registry/src/tokio-1/src/runtime/scheduler/multi_thread/worker.rs",
                     "line": 500, "instrumented": false, "origin": "runtime", "crate": "tokio",
                     "args": []},
                    {"function": "std::thread::local::LocalKey<T>::with",
                     "file": "/rustc/abc/library/std/src/thread/local.rs", "line": 283,
                     "instrumented": false, "origin": "std", "crate": "std", "args": []}
                ]
            },
            {
                "count": 3, "kind": "task", "state": "idle", "ids": [5, 6, 7],
                "names": ["conn", "conn", "conn"],
                "waiting_ms": {"min": 2000, "max": 5000}, "elided": 0, "torn": false,
                "serving": false, "created_by": creator,
                "frames": [
                    {"function": "app::leaf", "file": "src/app.rs", "line": 17,
                     "instrumented": true, "origin": "app", "crate": "app",
                     "args": [
                        {"name": "n", "type": "u32", "value": "*"},
                        {"name": "rx", "type": "&Receiver<()>", "value": "#1", "address": addr}
                     ]},
                    {"function": "app::root", "file": "src/app.rs", "line": 22,
                     "instrumented": true, "origin": "app", "crate": "app",
                     "args": [{"name": "name", "type": "&str", "value": "\"alice\""}]}
                ]
            },
            {
                "count": 1, "kind": "thread", "state": "alive", "ids": [2], "names": ["worker"],
                "waiting_ms": {"min": 60000, "max": 60000}, "elided": 0, "torn": false,
                "serving": false, "created_by": null,
                "frames": [
                    {"function": "app::work", "file": "src/app.rs", "line": 30,
                     "instrumented": true, "origin": "app", "crate": "app",
                     "args": [{"name": "q", "type": "&Queue", "value": "#1", "address": addr}]}
                ]
            }
        ]
    });
    // Tasks list their poll counts, parallel to their ids.
    for bucket in expected["buckets"].as_array_mut().unwrap() {
        if bucket["kind"] == "task" {
            bucket["polls"] = json!([1, 1, 1]);
        }
    }
    assert_eq!(json_of(&snap, Similarity::AnyValue), expected);
}

#[test]
fn left_out_and_similarity_are_reported() {
    let queue = 0u8;
    let mut snap = sample(&queue);
    snap.left_out.threads = 2;
    snap.left_out.tasks = 5;
    for s in Similarity::ALL {
        let doc = json_of(&snap, s);
        assert_eq!(doc["similarity"], s.as_str());
        assert_eq!(doc["totals"]["left_out"], 7);
        assert_eq!(doc["totals"]["left_out_threads"], 2);
        assert_eq!(doc["totals"]["left_out_tasks"], 5);
    }
    // anypointer keeps the differing `n` apart: 5 buckets.
    assert_eq!(
        json_of(&snap, Similarity::AnyPointer)["totals"]["buckets"],
        5
    );
}

#[webstack::instrument(skip(rx))]
async fn rj_idle(user: &'static str, attempt: u8, rx: tokio::sync::oneshot::Receiver<()>) {
    rx.await.ok();
}

#[test]
fn real_capture_is_consistent() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut senders = Vec::new();
    let local = tokio::task::LocalSet::new();
    for attempt in 0..3 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        senders.push(tx);
        local.spawn_local(rj_idle("bob \"<b>\"", attempt, rx));
    }
    // Poll every task once so each waits at its await point.
    rt.block_on(local.run_until(tokio::task::yield_now()));
    let snap = Snapshot::capture(&Options::default().augment(false));
    let doc = json_of(&snap, Similarity::AnyValue);

    assert_eq!(doc["version"], 1);
    assert_eq!(doc["totals"]["threads"], snap.threads());
    assert_eq!(doc["totals"]["tasks"], snap.tasks());
    let buckets = doc["buckets"].as_array().unwrap();
    assert_eq!(doc["totals"]["buckets"], buckets.len());
    let mut members = 0;
    for b in buckets {
        let ids = b["ids"].as_array().unwrap();
        assert_eq!(b["count"], ids.len());
        assert_eq!(b["names"].as_array().unwrap().len(), ids.len());
        assert!(b["kind"] == "thread" || b["kind"] == "task");
        for f in b["frames"].as_array().unwrap() {
            assert!(f["function"].is_string() && f["file"].is_string());
            assert!(f["line"].is_u64() && f["instrumented"].is_boolean());
            for a in f["args"].as_array().unwrap() {
                assert!(a["name"].is_string() && a["type"].is_string() && a["value"].is_string());
            }
        }
        members += ids.len();
    }
    assert_eq!(members, snap.routines().len());

    let ours = buckets
        .iter()
        .find(|b| b["frames"][0]["function"] == "render_json::rj_idle")
        .expect("the idle tasks' bucket");
    assert_eq!(ours["count"], 3);
    assert_eq!(ours["names"], json!(["rj_idle", "rj_idle", "rj_idle"]));
    assert_eq!(
        ours["frames"][0]["args"],
        json!([
            {"name": "user", "type": "&'static str", "value": "\"bob \\\"<b>\\\"\""},
            {"name": "attempt", "type": "u8", "value": "*"}
        ])
    );
    drop(senders);
}
