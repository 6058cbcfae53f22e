//! Go's goroutine profile (feature `pprof`): the protobuf decoded again by
//! prost and read by `go tool pprof`, and `/debug/pprof/goroutine` with
//! `debug=0|1|2` and `format=pprof` on the page, over HTTP.
//!
//! Without `go` on `PATH` the `go tool pprof` checks print a SKIP line and
//! pass, unless `WEBSTACK_REQUIRE_GO=1` (which `.ci/run` sets).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{mpsc, Once};

use actix_web::http::{header, Method, StatusCode};
use actix_web::{test as actix_test, App};
use pretty_assertions::assert_eq;
use prost::Message;
use proto::Profile;
use support::model::{frame, native, sample, task};
use support::server::{get, start_server};
use webstack::actix::Webstack;
use webstack::render::pprof::{self, NAME_LABEL_NAMES};
use webstack::View;
use webstack::{Buckets, Origin, Similarity, Snapshot};

#[webstack::instrument(skip(release))]
fn pprof_inner(job: u32, release: &mpsc::Receiver<()>) {
    let _ = release.recv();
}

#[webstack::instrument(skip(inside, release))]
fn pprof_outer(job: u32, inside: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    let _ = inside.send(());
    pprof_inner(job + 1, &release);
}

const WORKER: &str = "pprof-test-worker";

/// A named thread parked in `pprof_outer` → `pprof_inner`; returns once it
/// is inside.
fn start_workload() {
    static START: Once = Once::new();
    START.call_once(|| {
        let (release, parked) = mpsc::channel();
        std::mem::forget(release);
        let (inside, entered) = mpsc::channel();
        webstack::thread::Builder::new()
            .name(WORKER.into())
            .spawn(move || pprof_outer(4242, inside, parked))
            .unwrap();
        entered.recv().unwrap();
    });
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    assert_eq!(&body[..2], b"\x1f\x8b", "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut raw)
        .expect("gzip");
    raw
}

/// google/pprof `proto/profile.proto`, as far as webstack writes it: the
/// test decodes the profile with its own message types, as a fleet
/// profiler would.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub(crate) sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub(crate) sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub(crate) mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub(crate) location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub(crate) function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub(crate) string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub(crate) drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub(crate) keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub(crate) time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub(crate) duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub(crate) period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub(crate) period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub(crate) comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub(crate) default_sample_type: i64,
    }

    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub(crate) struct ValueType {
        #[prost(int64, tag = "1")]
        pub(crate) r#type: i64,
        #[prost(int64, tag = "2")]
        pub(crate) unit: i64,
    }

    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub(crate) struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub(crate) location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub(crate) value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub(crate) label: Vec<Label>,
    }

    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub(crate) struct Label {
        #[prost(int64, tag = "1")]
        pub(crate) key: i64,
        #[prost(int64, tag = "2")]
        pub(crate) str: i64,
        #[prost(int64, tag = "3")]
        pub(crate) num: i64,
        #[prost(int64, tag = "4")]
        pub(crate) num_unit: i64,
    }

    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub(crate) struct Mapping {
        #[prost(uint64, tag = "1")]
        pub(crate) id: u64,
        #[prost(uint64, tag = "2")]
        pub(crate) memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub(crate) memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub(crate) file_offset: u64,
        #[prost(int64, tag = "5")]
        pub(crate) filename: i64,
        #[prost(int64, tag = "6")]
        pub(crate) build_id: i64,
        #[prost(bool, tag = "7")]
        pub(crate) has_functions: bool,
        #[prost(bool, tag = "8")]
        pub(crate) has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub(crate) has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub(crate) has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, Eq, prost::Message)]
    pub(crate) struct Location {
        #[prost(uint64, tag = "1")]
        pub(crate) id: u64,
        #[prost(uint64, tag = "2")]
        pub(crate) mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub(crate) address: u64,
        #[prost(message, repeated, tag = "4")]
        pub(crate) line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub(crate) is_folded: bool,
    }

    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub(crate) struct Line {
        #[prost(uint64, tag = "1")]
        pub(crate) function_id: u64,
        #[prost(int64, tag = "2")]
        pub(crate) line: i64,
        #[prost(int64, tag = "3")]
        pub(crate) column: i64,
    }

    #[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
    pub(crate) struct Function {
        #[prost(uint64, tag = "1")]
        pub(crate) id: u64,
        #[prost(int64, tag = "2")]
        pub(crate) name: i64,
        #[prost(int64, tag = "3")]
        pub(crate) system_name: i64,
        #[prost(int64, tag = "4")]
        pub(crate) filename: i64,
        #[prost(int64, tag = "5")]
        pub(crate) start_line: i64,
    }
}

fn decode(body: &[u8]) -> Profile {
    Profile::decode(&*gunzip(body)).expect("a pprof Profile")
}

/// A sample as (value, [(function, file, line)] innermost first, sorted
/// labels), strings resolved.
type Readable = (i64, Vec<(String, String, i64)>, Vec<(String, String)>);

fn readable(profile: &Profile) -> Vec<Readable> {
    let s = |i: i64| profile.string_table[i as usize].clone();
    profile
        .sample
        .iter()
        .map(|sample| {
            let frames = sample
                .location_id
                .iter()
                .map(|&id| {
                    let location = &profile.location[id as usize - 1];
                    assert_eq!(location.id, id);
                    assert_eq!(location.line.len(), 1);
                    let line = location.line[0];
                    let function = &profile.function[line.function_id as usize - 1];
                    assert_eq!(function.id, line.function_id);
                    assert_eq!(function.name, function.system_name);
                    (s(function.name), s(function.filename), line.line)
                })
                .collect();
            let mut labels: Vec<_> = sample.label.iter().map(|l| (s(l.key), s(l.str))).collect();
            labels.sort();
            (sample.value[0], frames, labels)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn owned(frames: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
    frames
        .iter()
        .map(|&(f, file, line)| (f.to_owned(), file.to_owned(), line))
        .collect()
}

/// The sample program of the render tests, grouped as the goroutine route
/// groups it.
fn sample_profile(snapshot: &Snapshot) -> Buckets<'_> {
    Buckets::aggregate(snapshot, Similarity::AnyValue)
}

#[test]
fn the_profile_round_trips_through_prost() {
    let queue = 0u8;
    let snapshot = sample(&queue);
    let buckets = sample_profile(&snapshot);
    let body = pprof::encode(&snapshot, &buckets);
    let profile = decode(&body);
    // Every field webstack wrote was read: encoded again, it is the same.
    assert_eq!(profile.encode_to_vec(), gunzip(&body));

    let s = |i: i64| profile.string_table[i as usize].as_str();
    assert_eq!(s(0), "");
    let types: Vec<_> = profile
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
        .collect();
    assert_eq!(types, [("goroutine", "count")]);
    let period = profile.period_type.unwrap();
    assert_eq!((s(period.r#type), s(period.unit)), ("goroutine", "count"));
    assert_eq!(profile.period, 1);
    assert_eq!(profile.time_nanos, 1_764_092_511_123_000_000);
    assert_eq!(profile.duration_nanos, 1_234_000);
    assert!(profile.mapping.is_empty());

    // One sample per bucket, counts adding up to the routines.
    assert_eq!(profile.sample.len(), buckets.buckets.len());
    let total: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert_eq!(total, snapshot.routines().len() as i64);

    let registry = "/home/u/.cargo/registry/src";
    let expected: Vec<Readable> = vec![
        (
            1,
            owned(&[
                ("app::handler", "src/app.rs", 12),
                (
                    "serde_json::de::from_str",
                    &format!("{registry}/serde_json-1.0/src/de.rs"),
                    2687,
                ),
                (
                    "tokio::runtime::task::raw::poll",
                    &format!("{registry}/tokio-1/src/runtime/task/raw.rs"),
                    255,
                ),
                (
                    "tokio::runtime::scheduler::multi_thread::worker::run",
                    &format!("{registry}/tokio-1/src/runtime/scheduler/multi_thread/worker.rs"),
                    500,
                ),
                (
                    "std::thread::local::LocalKey<T>::with",
                    "/rustc/abc/library/std/src/thread/local.rs",
                    283,
                ),
            ]),
            labels(&[("kind", "thread"), ("name", "main"), ("state", "alive")]),
        ),
        (
            3,
            owned(&[
                ("app::leaf", "src/app.rs", 17),
                ("app::root", "src/app.rs", 22),
            ]),
            labels(&[("kind", "task"), ("name", "conn"), ("state", "idle")]),
        ),
        (
            1,
            owned(&[("app::work", "src/app.rs", 30)]),
            labels(&[("kind", "thread"), ("name", "worker"), ("state", "alive")]),
        ),
    ];
    assert_eq!(readable(&profile), expected);

    // Each table entry once: 8 frames, 8 distinct (function, file, line).
    assert_eq!(profile.location.len(), 8);
    assert_eq!(profile.function.len(), 8);
    let mut strings = profile.string_table.clone();
    strings.sort();
    strings.dedup();
    assert_eq!(strings.len(), profile.string_table.len());
}

#[test]
fn locations_and_functions_are_shared_between_samples() {
    let leaf = || frame("app::leaf", 17, vec![]);
    let snapshot = support::model::snapshot(vec![
        task(
            1,
            "a",
            support::model::secs(1),
            vec![leaf(), frame("app::x", 5, vec![])],
        ),
        task(
            2,
            "b",
            support::model::secs(1),
            vec![leaf(), frame("app::y", 6, vec![])],
        ),
        // Same function, another line: another location, the same function.
        task(
            3,
            "c",
            support::model::secs(1),
            vec![frame("app::leaf", 18, vec![])],
        ),
    ]);
    let buckets = Buckets::aggregate(&snapshot, Similarity::AnyValue);
    let profile = decode(&pprof::encode(&snapshot, &buckets));
    assert_eq!(profile.sample.len(), 3);
    assert_eq!(profile.location.len(), 4);
    assert_eq!(profile.function.len(), 3);
    let ids: Vec<_> = profile.sample.iter().map(|s| s.location_id[0]).collect();
    assert_eq!(ids.iter().filter(|&&id| id == ids[0]).count(), 2);
}

#[test]
fn names_become_a_label_only_where_few() {
    let names = ["w0", "w1", "w2", "w3", "w4", "w5"];
    let snapshot_of = |n: usize| {
        support::model::snapshot(
            names[..n]
                .iter()
                .enumerate()
                .map(|(i, &name)| {
                    let frames = vec![native("app::spin", "src/app.rs", 3, Origin::App)];
                    support::model::thread(
                        i as u64 + 1,
                        name,
                        200 + i as i64,
                        support::model::secs(1),
                        frames,
                    )
                })
                .collect(),
        )
    };
    let name_label = |n: usize| {
        let snapshot = snapshot_of(n);
        let buckets = Buckets::aggregate(&snapshot, Similarity::AnyValue);
        let profile = decode(&pprof::encode(&snapshot, &buckets));
        let (value, _, labels) = readable(&profile).remove(0);
        assert_eq!(value, n as i64);
        labels
            .into_iter()
            .find(|(k, _)| k == "name")
            .map(|(_, v)| v)
    };
    assert_eq!(name_label(1).as_deref(), Some("w0"));
    assert_eq!(
        name_label(NAME_LABEL_NAMES).as_deref(),
        Some("w0, w1, w2, w3")
    );
    assert_eq!(name_label(NAME_LABEL_NAMES + 1), None);
}

/// `go tool pprof`, or `None` (after a SKIP line) when `go` is missing and
/// not required.
fn go() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("go"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var("WEBSTACK_REQUIRE_GO").as_deref() == Ok("1") {
            panic!("go not found on PATH and WEBSTACK_REQUIRE_GO=1");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIP go tool pprof check: go not found on PATH (Debian: apt-get install golang-go); \
             set WEBSTACK_REQUIRE_GO=1 to make this a failure"
        );
    }
    found
}

/// `go tool pprof <flag> <profile>`'s standard output.
fn go_pprof(go: &PathBuf, flag: &str, body: &[u8], name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("webstack-pprof-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("goroutine.pb.gz");
    std::fs::write(&file, body).unwrap();
    let output = Command::new(go)
        .args(["tool", "pprof", flag])
        .arg(&file)
        // No symbolization attempts, no state left in $HOME.
        .env("PPROF_TMPDIR", &dir)
        .env("PPROF_BINARY_PATH", &dir)
        .env("GOCACHE", dir.join("gocache"))
        .env("HOME", &dir)
        .output()
        .expect("run go tool pprof");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "go tool pprof {flag} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    stdout
}

#[test]
fn go_tool_pprof_reads_the_profile() {
    let Some(go) = go() else { return };
    let queue = 0u8;
    let snapshot = sample(&queue);
    let buckets = sample_profile(&snapshot);
    let body = pprof::encode(&snapshot, &buckets);

    let raw = go_pprof(&go, "-raw", &body, "raw");
    assert!(raw.contains("PeriodType: goroutine count"), "{raw}");
    assert!(raw.contains("Period: 1"), "{raw}");
    // The sample lines: value, then location ids innermost first.
    let samples: Vec<&str> = raw
        .lines()
        .skip_while(|l| !l.starts_with("goroutine/count"))
        .skip(1)
        .take_while(|l| !l.starts_with("Locations"))
        .filter(|l| !l.trim_start().starts_with("kind:") && !l.trim().is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(samples, ["1: 1 2 3 4 5", "3: 6 7", "1: 8"], "{raw}");
    for line in [
        "app::leaf src/app.rs:17",
        "app::root src/app.rs:22",
        "app::work src/app.rs:30",
        "serde_json::de::from_str /home/u/.cargo/registry/src/serde_json-1.0/src/de.rs:2687",
    ] {
        assert!(raw.contains(line), "{line:?} missing from\n{raw}");
    }
    assert!(raw.contains("kind:[task]"), "{raw}");
    assert!(raw.contains("name:[conn]"), "{raw}");

    let traces = go_pprof(&go, "-traces", &body, "traces");
    // The three conn tasks' stack, with its count and labels.
    let block = traces
        .split("-----------+-------------------------------------------------------")
        .find(|b| b.contains("app::leaf"))
        .unwrap_or_else(|| panic!("no app::leaf trace in\n{traces}"));
    let lines: Vec<String> = block
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        lines,
        [
            "kind: task",
            "name: conn",
            "state: idle",
            "3 app::leaf",
            "app::root"
        ],
        "{traces}"
    );
}

#[test]
fn a_served_profile_reads_in_go_tool_pprof() {
    start_workload();
    let addr = start_server(1, || {
        Webstack::new("/ws-pprof-served")
            .defaults(View::default().augment(false))
            .goroutine_profile()
    });
    let response = get(addr, "/debug/pprof/goroutine").unwrap();
    assert_eq!(response.status, 200, "{:?}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        response.header("content-disposition"),
        Some("attachment; filename=\"goroutine\"")
    );
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    let profile = decode(&response.body);

    // The parked worker's chain, as a snapshot of the model shows it.
    let shadow =
        support::snapshot::shadow_snapshot_until(std::time::Duration::from_secs(10), |s| {
            s.routines().any(|r| r.name == WORKER)
        });
    let worker = shadow.routines().find(|r| r.name == WORKER).unwrap();
    let chain: Vec<(String, String, i64)> = worker
        .frames
        .iter()
        .map(|f| {
            (
                f.function.to_string(),
                f.file.to_string(),
                i64::from(f.line),
            )
        })
        .collect();
    assert_eq!(
        chain.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["pprof::pprof_inner", "pprof::pprof_outer"]
    );
    assert!(chain.iter().all(|f| f.1.ends_with("pprof.rs") && f.2 > 0));
    let readable = readable(&profile);
    let (value, _, labels) = readable
        .iter()
        .find(|(_, frames, _)| *frames == chain)
        .unwrap_or_else(|| panic!("no sample with {chain:?} in {readable:#?}"));
    assert_eq!(*value, 1);
    assert_eq!(
        *labels,
        self::labels(&[("kind", "thread"), ("name", WORKER), ("state", "alive")])
    );
    // Every routine is in one sample: at least the test's own threads.
    let total: i64 = profile.sample.iter().map(|s| s.value[0]).sum();
    assert!(total >= 2, "{total}");

    let Some(go) = go() else { return };
    let traces = go_pprof(&go, "-traces", &response.body, "served");
    let words: Vec<String> = traces
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let at = words
        .iter()
        .position(|l| *l == format!("name: {WORKER}"))
        .unwrap_or_else(|| panic!("no {WORKER} trace in\n{traces}"));
    assert_eq!(
        words[at - 1..at + 4],
        [
            "kind: thread".to_owned(),
            format!("name: {WORKER}"),
            "state: alive".to_owned(),
            "1 pprof::pprof_inner".to_owned(),
            "pprof::pprof_outer".to_owned(),
        ],
        "{traces}"
    );
}

#[test]
fn debug_1_and_2_answer_text_over_http() {
    start_workload();
    let addr = start_server(1, || {
        Webstack::new("/ws-pprof-debug")
            .defaults(View::default().augment(false))
            .goroutine_profile()
    });
    let counts = get(addr, "/debug/pprof/goroutine?debug=1").unwrap();
    assert_eq!(counts.status, 200, "{}", counts.text());
    assert_eq!(
        counts.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let text = counts.text();
    let first = text.lines().next().unwrap();
    let total: i64 = first
        .strip_prefix("goroutine profile: total ")
        .unwrap_or_else(|| panic!("{text}"))
        .parse()
        .unwrap();
    let sum: i64 = text
        .lines()
        .filter_map(|l| l.split_once(" @ "))
        .map(|(count, _)| count.parse::<i64>().unwrap())
        .sum();
    assert_eq!(sum, total, "{text}");
    // The worker's block: count and addresses (none known without augment),
    // labels, one `#` line per frame.
    let block = text
        .split("\n\n")
        .find(|b| b.contains(WORKER))
        .unwrap_or_else(|| panic!("{text}"));
    let lines: Vec<&str> = block.lines().collect();
    assert_eq!(lines[0], "1 @ 0x0 0x0", "{block}");
    assert_eq!(
        lines[1],
        format!("# labels: {{\"kind\":\"thread\", \"name\":\"{WORKER}\", \"state\":\"alive\"}}")
    );
    assert!(
        lines[2].starts_with("#\t0x0\tpprof::pprof_inner\ttests/pprof.rs:"),
        "{block}"
    );
    assert!(
        lines[3].starts_with("#\t0x0\tpprof::pprof_outer\ttests/pprof.rs:"),
        "{block}"
    );
    assert_eq!(lines.len(), 4, "{block}");

    let dump = get(addr, "/debug/pprof/goroutine?debug=2").unwrap();
    assert_eq!(dump.status, 200, "{}", dump.text());
    assert_eq!(
        dump.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let dump = dump.text();
    assert!(dump.starts_with("webstack "), "{dump}");
    assert!(
        dump.lines()
            .any(|l| l.starts_with("1: thread alive [") && l.contains(WORKER)),
        "{dump}"
    );
    assert!(
        dump.contains("pprof::pprof_inner(job: u32 = 4243)"),
        "{dump}"
    );
    assert!(
        dump.contains("pprof::pprof_outer(job: u32 = 4242)"),
        "{dump}"
    );
}

#[actix_rt::test]
async fn the_page_and_the_route_answer_pprof_with_the_page_rules() {
    start_workload();
    let app = actix_test::init_service(
        App::new().service(
            Webstack::new("/ws-pprof-page")
                .defaults(View::default().augment(false))
                .goroutine_profile_at("/ws-pprof-page/goroutine"),
        ),
    )
    .await;
    let call = |method: Method, uri: &str, peer: &str| {
        actix_test::TestRequest::default()
            .method(method)
            .uri(uri)
            .peer_addr(peer.parse().unwrap())
            .to_request()
    };
    let local = "127.0.0.1:50000";

    let resp = actix_test::call_service(
        &app,
        call(Method::GET, "/ws-pprof-page?format=pprof", local),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap(),
        "application/octet-stream"
    );
    let body = actix_test::read_body(resp).await;
    let profile = decode(&body);
    assert!(readable(&profile)
        .iter()
        .any(|(_, frames, _)| frames.first().is_some_and(|f| f.0 == "pprof::pprof_inner")));

    for uri in ["/ws-pprof-page?format=pprof", "/ws-pprof-page/goroutine"] {
        let resp = actix_test::call_service(&app, call(Method::HEAD, uri, local)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_TYPE)
                .unwrap()
                .to_str()
                .unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            resp.headers()
                .get(header::CONTENT_DISPOSITION)
                .unwrap()
                .to_str()
                .unwrap(),
            "attachment; filename=\"goroutine\""
        );
        assert!(actix_test::read_body(resp).await.is_empty(), "{uri}");

        let resp = actix_test::call_service(&app, call(Method::GET, uri, "192.0.2.1:40000")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{uri}");
        let resp = actix_test::call_service(&app, call(Method::POST, uri, local)).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
    }

    let bad = [
        (
            "/ws-pprof-page?format=pprof2",
            "format must be one of: html, json, text",
        ),
        (
            "/ws-pprof-page?format=pprof&format=pprof",
            "format given more than once; format must be one of: html, json, text",
        ),
        (
            "/ws-pprof-page/goroutine?debug=3",
            "debug must be 0, 1 or 2",
        ),
        (
            "/ws-pprof-page/goroutine?seconds=30",
            "unknown parameter \"seconds\"; allowed: debug",
        ),
    ];
    for (uri, line) in bad {
        let resp = actix_test::call_service(&app, call(Method::GET, uri, local)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        let body = actix_test::read_body(resp).await;
        assert_eq!(std::str::from_utf8(&body).unwrap(), format!("{line}\n"));
    }
}
