//! `webstack::serve::Service` driven directly, with no framework: every
//! query parameter and format, every malformed query, the defaults a
//! service sets, throttling, one snapshot at a time, and recovery from a
//! panic while capturing. What an adapter adds (its headers, HEAD, 405, the
//! mount path) is tested with the adapter (`actix_handler.rs`), and the
//! adapters against each other in `adapter_agreement.rs`.
//!
//! Snapshots are taken one at a time per path, process-wide: each test has
//! its own path.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use pretty_assertions::assert_eq;
use support::wait::{watchdog, Watchdog};
use webstack::render::Format;
use webstack::serve::{Body, Request, Response, Service, Tokio, CONTENT_SECURITY_POLICY};
use webstack::View;
use webstack::{Similarity, DEFAULT_MAXMEM, MIN_MAXMEM};

#[webstack::instrument(skip(inside, release))]
fn parked_worker(job: u32, owner: &str, inside: mpsc::Sender<()>, release: mpsc::Receiver<()>) {
    let _ = inside.send(());
    let _ = release.recv();
}

/// A named thread parked inside an instrumented function with typed
/// arguments, for the page to show; returns once it is inside.
fn start_workload() {
    static START: Once = Once::new();
    START.call_once(|| {
        let (release, parked) = mpsc::channel();
        std::mem::forget(release);
        let (inside, entered) = mpsc::channel();
        webstack::thread::Builder::new()
            .name("serve-test-worker".into())
            .spawn(move || parked_worker(4242, "alice", inside, parked))
            .unwrap();
        entered.recv().unwrap();
    });
}

/// Aborts the test binary if a test runs past a minute.
fn guard(what: &'static str) -> Watchdog {
    watchdog(what, Duration::from_secs(60))
}

/// Answers `method` `path?query` from loopback.
async fn fetch(service: &Service, method: &str, query: &str) -> Response {
    let request = Request::new(method, query).peer("127.0.0.1".parse().ok());
    service.respond(request, &Tokio).await
}

async fn get(service: &Service, query: &str) -> Response {
    fetch(service, "GET", query).await
}

fn body(response: &Response) -> String {
    match &response.body {
        Body::Chunks(chunks) => String::from_utf8(chunks.concat()).unwrap(),
        Body::None => panic!("no body"),
    }
}

fn json(response: &Response) -> serde_json::Value {
    assert_eq!(response.status, 200, "{}", body(response));
    serde_json::from_str(&body(response)).expect("body is JSON")
}

fn assert_security_headers(response: &Response) {
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        response.header("content-security-policy"),
        Some(CONTENT_SECURITY_POLICY)
    );
}

/// An error answer: status, one line of plain text, the security headers.
fn assert_error(response: &Response, status: u16, line: &str) {
    assert_eq!(
        (response.status, body(response)),
        (status, format!("{line}\n"))
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_security_headers(response);
}

/// Makes every capture last `hold`, so that requests overlap.
fn slow(hold: Duration) -> impl Fn(&mut webstack::Snapshot) + Send + Sync + 'static {
    move |_| std::thread::sleep(hold)
}

#[tokio::test]
async fn each_format_renders_the_page_with_typed_arguments() {
    let _watchdog = guard("each_format_renders_the_page_with_typed_arguments");
    start_workload();
    let service = Service::new("/serve-each_format");
    for (query, format) in [
        ("augment=0", Format::Html),
        ("augment=0&format=html", Format::Html),
        ("augment=0&format=json", Format::Json),
        ("augment=0&format=text", Format::Text),
    ] {
        let response = get(&service, query).await;
        let page = body(&response);
        assert_eq!(response.status, 200, "{query}: {page}");
        assert_eq!(
            response.header("content-type"),
            Some(format.content_type()),
            "{query}"
        );
        assert_security_headers(&response);
        match format {
            Format::Html => {
                assert!(page.starts_with("<!DOCTYPE html>"), "{query}");
                assert!(!page.contains("<script"), "{query}");
            }
            Format::Json => assert_eq!(json(&response)["version"], 1),
            Format::Text => assert!(page.starts_with("webstack "), "{query}"),
        }
        // Every format shows the typed arguments of the parked worker.
        assert!(page.contains("parked_worker"), "{query}");
        assert!(page.contains("4242"), "{query}");
        assert!(page.contains("alice"), "{query}");
    }
}

#[tokio::test]
async fn json_reflects_every_parameter() {
    let _watchdog = guard("json_reflects_every_parameter");
    start_workload();
    let service = Service::new("/serve-json_reflects_every_parameter");

    let page = json(&get(&service, "format=json").await);
    assert_eq!(page["augmented"], true);
    assert_eq!(page["maxmem"], DEFAULT_MAXMEM);
    assert_eq!(page["similarity"], "anypointer");

    let page = json(&get(&service, "format=json&augment=0&maxmem=5").await);
    assert_eq!(page["augmented"], false);
    assert_eq!(page["maxmem"], MIN_MAXMEM, "values below 1 MiB are raised");

    let page = json(&get(&service, "maxmem=3000000&format=json&augment=1").await);
    assert_eq!(page["augmented"], true);
    assert_eq!(page["maxmem"], 3_000_000);

    for similarity in Similarity::ALL {
        let query = format!("similarity={similarity}&format=json&augment=0");
        let page = json(&get(&service, &query).await);
        assert_eq!(page["similarity"], similarity.as_str());
    }

    // Percent-encoded names and values are decoded.
    let page = json(&get(&service, "%66ormat=js%6Fn&augment=%30").await);
    assert_eq!(page["augmented"], false);
}

#[tokio::test]
async fn the_serving_thread_comes_first() {
    let _watchdog = guard("the_serving_thread_comes_first");
    let service = Service::new("/serve-the_serving_thread_comes_first");
    let page = json(&get(&service, "format=json&augment=0").await);
    let buckets = page["buckets"].as_array().unwrap();
    assert_eq!(buckets[0]["serving"], true, "{:#}", buckets[0]);
    assert_eq!(buckets.iter().filter(|b| b["serving"] == true).count(), 1);
}

/// Every way a query can be malformed, each answered `400` with one line
/// naming the parameter (the parser's messages are tested here, once).
#[tokio::test]
async fn malformed_parameters_answer_400_naming_the_parameter() {
    let _watchdog = guard("malformed_parameters_answer_400_naming_the_parameter");
    let service = Service::new("/serve-malformed_parameters");
    let allowed = "allowed: augment, maxmem, similarity, format";
    let augment = "augment must be 0 or 1";
    let maxmem = format!(
        "maxmem must be a number of bytes from 0 to {}; values below 1048576 are raised to it",
        usize::MAX
    );
    let similarity = "similarity must be one of: exactflags, exactlines, anypointer, anyvalue";
    let format = "format must be one of: html, json, text";
    let cases: Vec<(&str, String)> = vec![
        ("augment=2", augment.into()),
        ("augment=", augment.into()),
        ("augment", augment.into()),
        ("augment=yes", augment.into()),
        ("augment=true", augment.into()),
        ("augment=01", augment.into()),
        ("augment=-1", augment.into()),
        ("augment=%ff", augment.into()),
        (
            "augment=1&augment=1",
            format!("augment given more than once; {augment}"),
        ),
        ("maxmem=-1", maxmem.clone()),
        ("maxmem=+1", maxmem.clone()),
        ("maxmem=", maxmem.clone()),
        ("maxmem=1.5", maxmem.clone()),
        ("maxmem=1e6", maxmem.clone()),
        ("maxmem=0x10", maxmem.clone()),
        ("maxmem=%2B5", maxmem.clone()),
        ("maxmem=18446744073709551616", maxmem.clone()),
        ("maxmem=99999999999999999999999", maxmem.clone()),
        ("maxmem=99999999999999999999999999", maxmem.clone()),
        (
            "maxmem=1&maxmem=2",
            format!("maxmem given more than once; {maxmem}"),
        ),
        ("similarity=", similarity.into()),
        ("similarity=AnyValue", similarity.into()),
        ("similarity=any", similarity.into()),
        ("similarity=%e2%82", similarity.into()),
        ("format=xml", format.into()),
        ("format=HTML", format.into()),
        (
            "format=json&format=json",
            format!("format given more than once; {format}"),
        ),
        ("foo=1", format!("unknown parameter \"foo\"; {allowed}")),
        (
            "Augment=1",
            format!("unknown parameter \"Augment\"; {allowed}"),
        ),
        (
            "&augment=1",
            format!("empty parameter in the query; {allowed}"),
        ),
        (
            "augment=1&",
            format!("empty parameter in the query; {allowed}"),
        ),
        ("%zz=1", format!("malformed parameter name; {allowed}")),
        ("%ff=1", format!("malformed parameter name; {allowed}")),
        ("%c3%28=1", format!("malformed parameter name; {allowed}")),
        ("a%0Ab=1", format!("unknown parameter \"a\\nb\"; {allowed}")),
        (
            "a%0d%0aSet-Cookie:%20x=1",
            format!("unknown parameter \"a\\r\\nSet-Cookie: x\"; {allowed}"),
        ),
        // The first bad parameter decides, even after good ones.
        ("augment=0&format=json&similarity=x", similarity.into()),
    ];
    for (query, line) in cases {
        let response = get(&service, query).await;
        assert_error(&response, 400, &line);
    }
    // A long unknown name is shortened in the answer.
    let response = get(&service, &"x".repeat(10_000)).await;
    assert_eq!(response.status, 400);
    assert!(body(&response).len() < 200, "{}", body(&response));
}

#[tokio::test]
async fn parameters_are_checked_before_any_capture() {
    let _watchdog = guard("parameters_are_checked_before_any_capture");
    let captures = Arc::new(AtomicUsize::new(0));
    let counter = captures.clone();
    let service =
        Service::new("/serve-parameters_are_checked_before_any_capture").map_snapshot(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
    let response = get(&service, "format=json&similarity=bogus").await;
    assert_eq!(response.status, 400);
    assert_eq!(captures.load(Ordering::SeqCst), 0);
    let response = get(&service, "format=json&augment=0").await;
    assert_eq!(response.status, 200);
    assert_eq!(captures.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn overridden_defaults_apply_unless_asked() {
    let _watchdog = guard("overridden_defaults_apply_unless_asked");
    let service = Service::new("/serve-overridden_defaults_apply_unless_asked")
        .defaults(
            View::default()
                .augment(false)
                .similarity(Similarity::AnyValue)
                .format(Format::Json),
        )
        .maxmem_cap(2 << 20);
    let page = json(&get(&service, "").await);
    assert_eq!(page["augmented"], false);
    assert_eq!(page["maxmem"], 2 << 20, "the default is lowered to the cap");
    assert_eq!(page["similarity"], "anyvalue");

    let page = json(
        &get(
            &service,
            "augment=1&maxmem=1000000000&similarity=exactlines",
        )
        .await,
    );
    assert_eq!(page["augmented"], true);
    assert_eq!(
        page["maxmem"],
        2 << 20,
        "asked values are lowered to the cap"
    );
    assert_eq!(page["similarity"], "exactlines");

    let response = get(&service, "format=text").await;
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let service = Service::new("/serve-overridden_defaults_apply_unless_asked-maxmem")
        .defaults(View::default().maxmem(3 << 20));
    assert_eq!(
        json(&get(&service, "format=json&augment=0").await)["maxmem"],
        3 << 20
    );
}

#[tokio::test]
async fn min_interval_answers_429_with_retry_after_then_recovers() {
    let _watchdog = guard("min_interval_answers_429_with_retry_after_then_recovers");
    let interval = Duration::from_millis(1500);
    let service = Service::new("/serve-min_interval_answers_429").min_interval(interval);
    assert_eq!(get(&service, "format=text&augment=0").await.status, 200);
    // The interval started before the first answer arrived.
    let answered = Instant::now();
    let response = get(&service, "format=text&augment=0").await;
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert_error(
        &response,
        429,
        &format!("too many snapshots; retry in {retry_after} s"),
    );
    // Parameters are still checked first.
    assert_eq!(get(&service, "format=nope").await.status, 400);
    // HEAD takes no snapshot, so it is not limited.
    assert_eq!(fetch(&service, "HEAD", "").await.status, 200);

    let recovered = answered + interval + Duration::from_millis(50);
    tokio::time::sleep(recovered.saturating_duration_since(Instant::now())).await;
    let response = get(&service, "format=text&augment=0").await;
    assert_eq!(response.status, 200, "{}", body(&response));
    // And the next interval starts.
    let response = get(&service, "format=text&augment=0").await;
    assert_eq!(response.status, 429);
}

#[tokio::test]
async fn a_second_concurrent_request_waits_its_turn() {
    let _watchdog = guard("a_second_concurrent_request_waits_its_turn");
    let service = Service::new("/serve-a_second_concurrent_request_waits_its_turn")
        .map_snapshot(slow(Duration::from_millis(300)));
    let started = Instant::now();
    let (a, b) = futures::join!(
        get(&service, "format=text&augment=0"),
        get(&service, "format=text&augment=0")
    );
    assert_eq!((a.status, b.status), (200, 200));
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "snapshots ran one at a time: {:?}",
        started.elapsed()
    );
}

/// The capture runs on the runtime's blocking threads: on a runtime with
/// one async thread (`#[tokio::test]`'s), other work goes on meanwhile.
#[tokio::test]
async fn a_snapshot_does_not_stall_other_work() {
    let _watchdog = guard("a_snapshot_does_not_stall_other_work");
    let service = Service::new("/serve-a_snapshot_does_not_stall_other_work")
        .map_snapshot(slow(Duration::from_millis(600)));
    let started = Instant::now();
    let (snapshot, other_done) = futures::join!(get(&service, "format=text&augment=0"), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        started.elapsed()
    });
    assert_eq!(snapshot.status, 200);
    assert!(
        other_done < Duration::from_millis(450),
        "the other work waited for the snapshot: {other_done:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(600));
}

#[tokio::test]
async fn a_request_that_waits_too_long_answers_503() {
    let _watchdog = guard("a_request_that_waits_too_long_answers_503");
    let service = Service::new("/serve-a_request_that_waits_too_long_answers_503")
        .map_snapshot(slow(Duration::from_millis(500)))
        .queue_timeout(Duration::from_millis(50));
    let (a, b) = futures::join!(
        get(&service, "format=text&augment=0"),
        get(&service, "format=text&augment=0")
    );
    let (ok, busy) = if a.status == 200 { (a, b) } else { (b, a) };
    assert_eq!(ok.status, 200);
    assert_error(
        &busy,
        503,
        "busy: another snapshot is in progress; retry shortly",
    );
    assert_eq!(busy.header("retry-after"), Some("1"));
    // The turn is free again once the first snapshot ended.
    assert_eq!(get(&service, "format=text&augment=0").await.status, 200);
}

#[tokio::test]
async fn a_panic_while_capturing_answers_500_and_the_service_recovers() {
    let _watchdog = guard("a_panic_while_capturing_answers_500_and_the_service_recovers");
    let armed = Arc::new(AtomicBool::new(true));
    let trigger = armed.clone();
    let service =
        Service::new("/serve-a_panic_while_capturing_answers_500").map_snapshot(move |_| {
            if trigger.swap(false, Ordering::SeqCst) {
                panic!("redaction hook failed on purpose");
            }
        });
    let response = get(&service, "format=json&augment=0").await;
    assert_error(
        &response,
        500,
        "snapshot failed: panicked: redaction hook failed on purpose",
    );
    // No lock poisoned, the turn released: the next snapshot is served.
    let page = json(&get(&service, "format=json&augment=0").await);
    assert_eq!(page["version"], 1);
}

#[tokio::test]
async fn extreme_durations_do_not_overflow() {
    let _watchdog = guard("extreme_durations_do_not_overflow");
    let service = Service::new("/serve-extreme_durations_do_not_overflow")
        .min_interval(Duration::MAX)
        .queue_timeout(Duration::MAX);
    assert_eq!(get(&service, "format=text&augment=0").await.status, 200);
    let response = get(&service, "format=text&augment=0").await;
    assert_eq!(response.status, 429);
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 1 << 60, "{retry_after}");
}
